"""Bad generate requests get an `error` naming the field at fault, and the server keeps
serving: a good request after them gives the answer it gave before."""
from serving_util import CONTEXT, PROMPTS, Client, TroupeError, serve, wait_kv_free
from tap import diag, done_testing, ok
from harness import Client as RawClient  # noqa: E402 - serving_util puts tests/ on sys.path
import msgpack  # noqa: E402

with serve() as srv:
    c = Client(srv.endpoint, timeout=60)
    good = c.generate(PROMPTS[0], temperature=0, max_tokens=24)
    ok(good.tokens, 'a good request first (%d tokens)' % len(good.tokens))
    long_prompt = 'Once upon a time there was a dog. ' * 80
    n_long = len(c.tokenize(long_prompt))
    ok(n_long > CONTEXT, 'a prompt of %d tokens (context %d)' % (n_long, CONTEXT))

    cases = [
        ('empty prompt', dict(prompt=''), 'prompt'),
        ('empty token list', dict(tokens=[]), 'tokens'),
        ('prompt longer than the context', dict(prompt=long_prompt, max_tokens=4), 'prompt'),
        ('token prompt longer than the context', dict(tokens=[1] + [400] * (CONTEXT + 10), max_tokens=4), 'tokens'),
        ('token id outside the vocabulary', dict(tokens=[1, 99999], max_tokens=4), 'tokens'),
        ('negative token id', dict(tokens=[1, -3], max_tokens=4), 'tokens'),
        ('max_tokens 0', dict(prompt='Hi', max_tokens=0), 'max_tokens'),
        ('max_tokens beyond the context', dict(prompt='Hi', max_tokens=100000), 'max_tokens'),
        ('max_tokens 2^40', dict(prompt='Hi', max_tokens=2 ** 40), 'max_tokens'),
        ('max_tokens negative', dict(prompt='Hi', max_tokens=-1), 'max_tokens'),
        ('temperature < 0', dict(prompt='Hi', temperature=-0.5), 'temperature'),
        ('temperature NaN', dict(prompt='Hi', temperature=float('nan')), 'temperature'),
        ('top_p 0', dict(prompt='Hi', top_p=0.0), 'top_p'),
        ('top_p 1.5', dict(prompt='Hi', top_p=1.5), 'top_p'),
        ('top_p negative', dict(prompt='Hi', top_p=-0.2), 'top_p'),
        ('min_p 2', dict(prompt='Hi', min_p=2.0), 'min_p'),
        ('top_k negative', dict(prompt='Hi', top_k=-1), 'top_k'),
        ('logprobs 21', dict(prompt='Hi', logprobs=21), 'logprobs'),
        ('n 65', dict(prompt='Hi', n=65), 'n'),
        ('seed negative', dict(prompt='Hi', seed=-1), 'seed'),
        ('max_tokens a string', dict(prompt='Hi', max_tokens='10'), 'max_tokens'),
        ('temperature a string', dict(prompt='Hi', temperature='hot'), 'temperature'),
        ('top_p an array', dict(prompt='Hi', top_p=[0.5]), 'top_p'),
        ('prompt an int', dict(prompt=42), 'prompt'),
        ('stop a string, not a list', dict(prompt='Hi', extra={'stop': 'x'}), 'stop'),
        ('stop a list of ints', dict(prompt='Hi', stop=[1, 2]), 'stop'),
        ('n a string', dict(prompt='Hi', n='2'), 'n'),
        ('ignore_eos a string', dict(prompt='Hi', ignore_eos='yes'), 'ignore_eos'),
        ('a string among the token ids', dict(tokens=[1, 'a'], max_tokens=4), 'tokens'),
        ('stop_token_ids a string', dict(prompt='Hi', stop_token_ids='2'), 'stop_token_ids'),
    ]
    for i, (what, kw, field) in enumerate(cases):
        rid = 'bad-%d' % i
        try:
            r = c.generate(id=rid, **kw)
            ok(False, '%s -> error naming %s' % (what, field))
            diag('  answered instead: %r %r' % (r.finish_reason, r.text[:60]))
        except TroupeError as e:
            good_err = e.code == 'bad_request' and e.field == field and field in e.message and e.id == rid
            ok(good_err, '%s -> error naming %s' % (what, field))
            if not good_err:
                diag('  got %r' % (e,))
        except Exception as e:  # noqa: BLE001
            ok(False, '%s -> error naming %s (the client raised %r)' % (what, field, e))
        if i % 8 == 7:
            ok(c.health()['status'] == 'ok', '... the server is healthy')
    # neither prompt nor tokens (the client package refuses to send that: raw frames)
    raw = RawClient(srv.endpoint, timeout=30)
    e = raw.request({'type': 'generate', 'id': 'noprompt', 'max_tokens': 4})
    ok(e.get('type') == 'error' and e.get('code') == 'bad_request' and e.get('field') == 'prompt'
       and e.get('id') == 'noprompt', 'neither prompt nor tokens -> error naming prompt (%r)' % (e,))
    # a stop string that is not UTF-8 (msgpack str with bytes ff fe): it would come back in
    # stop_reason, which clients decode as UTF-8
    frame = bytearray(msgpack.packb({'type': 'generate', 'id': 'badutf8', 'prompt': 'Hi',
                                     'stop': ['zz']}))
    i = frame.index(b'\xa2zz')
    frame[i:i + 3] = b'\xa2\xff\xfe'
    raw.send_raw(bytes(frame))
    e = raw.recv()
    ok(e.get('type') == 'error' and e.get('field') == 'stop' and 'UTF-8' in e.get('message', ''),
       'a stop string that is not UTF-8 -> error naming stop (%r)' % (e,))
    raw.close()
    # streamed bad requests are refused the same way
    try:
        list(c.stream('', max_tokens=4))
        ok(False, 'a streamed request with an empty prompt is refused')
    except TroupeError as e:
        ok(e.field == 'prompt', 'a streamed request with an empty prompt is refused (%s)' % e.field)

    ok(wait_kv_free(c)[0], 'no KV block is held by the refused requests')
    again = c.generate(PROMPTS[0], temperature=0, max_tokens=24)
    ok(again.tokens == good.tokens, 'the server keeps serving: a good request gives the same answer')
    ok(c.health()['status'] == 'ok', 'health ok at the end')
    c.close()

done_testing()
