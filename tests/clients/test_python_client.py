"""The Python client package (clients/python/troupe_client) against a pyzmq mock server:
requests, streaming reassembly, n > 1, errors, abort, timeouts, several requests in flight
on one blocking Client."""
import os
import struct
import sys
import time

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(HERE, '..', '..', 'clients', 'python'))
sys.path.insert(0, os.path.join(HERE, '..'))

import msgpack  # noqa: E402

from mock_server import MockServer, expected_text, expected_tokens  # noqa: E402
from tap import diag, done_testing, ok  # noqa: E402
from troupe_client import Client, Delta, Result, TroupeError, TroupeTimeout  # noqa: E402


def wait_for(pred, timeout=5):
    deadline = time.time() + timeout
    while time.time() < deadline:
        if pred():
            return True
        time.sleep(0.01)
    return False


def raises(fn, exc=TroupeError):
    try:
        fn()
    except exc as e:
        return e
    except Exception as e:  # noqa: BLE001
        diag('raised %r instead of %s' % (e, exc.__name__))
        return None
    return None


with MockServer() as m, Client(m.endpoint, timeout=10) as c:
    # ---- simple requests ----
    h = c.health()
    ok(h['status'] == 'ok' and h['actors'][0]['name'] == 'frontend', 'health returns the reply map')
    ok(c.model_info()['vocab_size'] == 512, 'model_info returns the reply map')
    ok('kv_manager' in c.stats()['actors'], 'stats returns the reply map')
    ok(c.tokenize('hi') == [1, 104, 105], 'tokenize decodes the bin of int32 LE into a list')
    ok(c.tokenize('hi', add_special=False) == [104, 105], 'tokenize passes add_special')
    ids = [r['id'] for r in m.received]
    ok(len(set(ids)) == len(ids) and all(isinstance(i, str) for i in ids),
       'every request got its own generated id: %s' % ids[:3])

    # ---- generate ----
    r = c.generate('Once upon a time', max_tokens=20, temperature=0)
    ok(isinstance(r, Result), 'generate returns a Result')
    ok(r.text == expected_text('Once upon a time', 20) and r.tokens == expected_tokens('Once upon a time', 20),
       'generate: text and tokens')
    ok(r.finish_reason == 'length', 'finish_reason length')
    ok(r.usage == {'prompt_tokens': 16, 'completion_tokens': 20}, 'usage %r' % (r.usage,))
    ok(set(r.metrics) >= {'ttft_ms', 'tpot_ms', 'e2e_ms', 'queue_ms'} and r.ttft_ms >= 0 and r.tpot_ms >= 0,
       'metrics with ttft/tpot: %r' % (r.metrics,))
    req = m.received[-1]
    ok(req['type'] == 'generate' and req['stream'] is False and req['temperature'] == 0
       and req['max_tokens'] == 20 and req['prompt'] == 'Once upon a time',
       'generate sends stream=false and the params as given')
    r = c.generate('x', max_tokens=5, id='my-id')
    ok(r.id == 'my-id' and m.received[-1]['id'] == 'my-id', 'an explicit id is used')
    r = c.generate('y', max_tokens=5, id=12345)
    ok(r.id == 12345 and r.text == expected_text('y', 5), 'an int id works')

    r = c.generate(tokens=[5, 6, 7], max_tokens=6)
    sent = m.received[-1]['tokens']
    ok(isinstance(sent, bytes) and struct.unpack('<3i', sent) == (5, 6, 7),
       'tokens= go on the wire as a bin of int32 LE')
    ok(r.tokens == expected_tokens([5, 6, 7], 6), 'generate from token ids')

    c.generate('z', max_tokens=3, stop='abc', stop_token_ids=[2, 3])
    q = m.received[-1]
    ok(q['stop'] == ['abc'] and struct.unpack('<2i', q['stop_token_ids']) == (2, 3),
       'stop as one string is sent as a list; stop_token_ids as int32 bin')
    e = raises(lambda: c.generate('z', max_tokens=3, temprature=0), TypeError)
    ok(e is not None and 'temprature' in str(e), 'a misspelt parameter raises TypeError before sending')
    e = raises(lambda: c.generate(max_tokens=3), TypeError)
    ok(e is not None, 'generate without prompt or tokens raises TypeError')

    # ---- logprobs ----
    r = c.generate('lp', max_tokens=4, logprobs=2)
    ok(r.logprobs == [-0.25 * (t % 4) for t in r.tokens], 'logprobs decoded from float32 bin')
    ok(r.top_logprobs == [[(t, 0.0), (t + 1, -0.5)] for t in r.tokens],
       'top_logprobs regrouped per token as (id, logprob) pairs')

    # ---- streaming ----
    deltas = list(c.stream('Once upon a time', max_tokens=40))
    ok(all(isinstance(d, Delta) for d in deltas) and len(deltas) > 5, 'stream yields %d Deltas' % len(deltas))
    ok(''.join(d.text for d in deltas) == expected_text('Once upon a time', 40),
       'concatenated stream text == the whole text')
    ok(sum((d.tokens for d in deltas), []) == expected_tokens('Once upon a time', 40),
       'concatenated stream tokens == the whole tokens')
    ok(deltas[-1].finish_reason == 'length' and all(d.finish_reason is None for d in deltas[:-1]),
       'only the last delta has a finish_reason')
    ok(deltas[-1].usage['completion_tokens'] == 40 and 'ttft_ms' in deltas[-1].metrics,
       'the last delta has usage and metrics')
    ok(any(d.text == '' for d in deltas) or any(len(d.text) != len(d.tokens) for d in deltas),
       'the mock did send deltas whose text lags their tokens (reassembly is tested)')
    ok(m.received[-1]['stream'] is True, 'stream sends stream=true')
    s = c.stream('abc', max_tokens=12)
    res = s.result()
    ok(res.text == expected_text('abc', 12) and res.finish_reason == 'length' and s.done,
       'Stream.result() reads the rest and assembles a Result')

    # ---- n > 1 ----
    r = c.generate('multi', max_tokens=10, n=3)
    ok(len(r.choices) == 3 and [ch.index for ch in r.choices] == [0, 1, 2], 'n=3: three choices')
    ok(all(ch.text == expected_text('multi', 10, ch.index) and ch.finish_reason == 'length'
           for ch in r.choices), 'n=3: each choice has its own text')
    ok(r.text == r.choices[0].text and r.usage['completion_tokens'] == 30,
       'n=3: Result.text is choice 0, usage sums the choices')
    s = c.stream('multi', max_tokens=10, n=3)
    texts = {0: '', 1: '', 2: ''}
    finals = 0
    order = []
    for d in s:
        texts[d.index] += d.text
        order.append(d.index)
        finals += d.finish_reason is not None
    ok(finals == 3 and all(texts[i] == expected_text('multi', 10, i) for i in range(3)),
       'n=3 stream: deltas demultiplexed by index, the stream ends after 3 finals')
    ok(len(set(order[:6])) > 1, 'n=3 stream: the choices interleave')

    # ---- several streams in flight on one Client ----
    s1 = c.stream('first', max_tokens=30)
    s2 = c.stream('second', max_tokens=30)
    t1 = t2 = ''
    it1, it2 = iter(s1), iter(s2)
    while not (s1.done and s2.done):
        if not s1.done:
            t1 += next(it1).text
        if not s2.done:
            t2 += next(it2).text
    ok(t1 == expected_text('first', 30) and t2 == expected_text('second', 30),
       'two streams read alternately on one Client each get their own deltas')
    s3 = c.stream('third', max_tokens=20)
    r = c.generate('fourth', max_tokens=20)  # reads s3's outputs meanwhile, keeps them
    ok(r.text == expected_text('fourth', 20), 'a generate while a stream is in flight')
    ok(s3.result().text == expected_text('third', 20), '... and the stream still gets every delta')

    # ---- errors ----
    e = raises(lambda: c.generate('x', temperature=-1))
    ok(e is not None and e.code == 'bad_request' and e.field == 'temperature' and 'temperature' in e.message,
       'an error reply raises TroupeError(code, message, field): %r' % (e,))
    e = raises(lambda: list(c.stream('', max_tokens=4)))
    ok(e is not None and e.field == 'prompt', 'an error reply ends a stream with TroupeError')
    e = raises(lambda: c.generate('!error', max_tokens=10))
    ok(e is not None and e.code == 'generation' and 'executor failed' in e.message,
       'finish_reason "error" raises TroupeError(code "generation")')
    got = []
    e = raises(lambda: [got.append(d) for d in c.stream('!error', max_tokens=10)])
    ok(e is not None and e.code == 'generation' and len(got) >= 1,
       'in a stream too, after the deltas before it')
    e = raises(lambda: c.generate('!noid', max_tokens=2), TroupeError)
    ok(e is not None and e.code == 'bad_request', 'an error reply without id goes to the only request in flight')
    ok(c.health()['status'] == 'ok', 'the client works after errors')

    # ---- abort ----
    s = c.stream('long one', max_tokens=100000)
    first = [next(s) for _ in range(3)]
    c.abort(s.id)
    rest = list(s)
    ok(m.aborts[-1] == s.id, 'abort(id) sends abort with that id')
    ok(rest and rest[-1].finish_reason == 'abort' and s.done,
       'the stream ends with finish_reason "abort" after %d more deltas' % len(rest))
    ok(sum(len(d.tokens) for d in first + rest) < 100000, 'it stopped early')
    s = c.stream('long two', max_tokens=100000)
    next(s)
    n_aborts = len(m.aborts)
    s.close()
    ok(wait_for(lambda: m.aborts[-1:] == [s.id]), 'Stream.close() mid-stream aborts the request')
    with c.stream('long three', max_tokens=100000) as s:
        for d in s:
            break
    ok(wait_for(lambda: m.aborts[-1:] == [s.id]), 'leaving a with block mid-stream aborts the request')
    ok(wait_for(lambda: m.blocks_used() == 0), 'the mock has nothing left running')
    s = c.stream('short', max_tokens=3)
    list(s)
    n_aborts = len(m.aborts)
    s.close()
    c.health()
    ok(len(m.aborts) == n_aborts, 'closing a finished stream sends no abort')

    # ---- timeouts ----
    t0 = time.monotonic()
    e = raises(lambda: c.generate('!silent', max_tokens=3, timeout=0.3), TroupeTimeout)
    dt = time.monotonic() - t0
    ok(e is not None and isinstance(e, TimeoutError) and e.code == 'timeout', 'no reply raises TroupeTimeout')
    ok(0.25 <= dt < 2, 'after the timeout (%.2fs)' % dt)
    silent = [q['id'] for q in m.received if q.get('prompt') == '!silent'][-1]
    ok(wait_for(lambda: silent in m.aborts), 'a timed-out generate is aborted on the server')
    s = c.stream('!silent', max_tokens=3, timeout=0.2)
    e = raises(lambda: next(s), TroupeTimeout)
    ok(e is not None, 'a stream times out waiting for its next delta')
    c2 = Client(m.endpoint, timeout=0.2)
    e = raises(lambda: c2.generate('!silent'), TroupeTimeout)
    ok(e is not None, 'the Client-wide timeout applies to every request')
    ok(c2.generate('ok', max_tokens=2, timeout=5).text == expected_text('ok', 2),
       'a per-call timeout overrides it; the client works after a timeout')
    c2.close()
    e = raises(lambda: c2.health())
    ok(e is not None and e.code == 'closed', 'a closed client raises TroupeError(closed)')

    # ---- duplicate ids ----
    s = c.stream('dup', max_tokens=50, id='same')
    e = raises(lambda: c.stream('dup', max_tokens=5, id='same'), ValueError)
    ok(e is not None, 'an id already in flight on this client is refused')
    s.close()

    # ---- an unreachable server ----
    bad = Client('tcp://127.0.0.1:1', timeout=0.2)
    ok(raises(bad.health, TroupeTimeout) is not None, 'no server: health times out')
    bad.close()

    # ---- one Client per thread ----
    import threading
    results = {}

    def worker(k):
        with Client(m.endpoint, timeout=10) as tc:
            results[k] = [tc.generate('thread %d %d' % (k, j), max_tokens=15).text for j in range(10)]
    threads = [threading.Thread(target=worker, args=(k,)) for k in range(6)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(30)
    ok(all(results.get(k) == [expected_text('thread %d %d' % (k, j), 15) for j in range(10)] for k in range(6)),
       '6 threads, one Client each, 10 requests each')

    ok(msgpack.version >= (1, 0, 0), 'msgpack >= 1.0')

done_testing()
