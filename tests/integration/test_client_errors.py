"""Bad client input of every kind gets an `error` reply, and the server keeps serving.

A real `troupe serve` (single process), a real pyzmq DEALER client.
"""
import os
import random

import msgpack

from harness import Client, Server
from tap import diag, done_testing, ok


def check_error(c, frames, code, what, field=None, id_=None):
    c.send_raw(*frames)
    try:
        r = c.recv()
    except Exception as e:  # noqa: BLE001 - any failure to answer is the failure we test
        ok(False, '%s: no reply (%s)' % (what, e))
        return None
    good = r.get('type') == 'error' and r.get('code') == code and isinstance(r.get('message'), str)
    if field is not None:
        good = good and r.get('field') == field and field in r.get('message', '')
    if id_ is not None:
        good = good and r.get('id') == id_
    ok(good, '%s -> error %s%s' % (what, code, ' naming field %s' % field if field else ''))
    if not good:
        diag(repr(r))
    h = c.request({'type': 'health'})
    ok(h.get('type') == 'health' and h.get('status') == 'ok', '  ... and health still answers ok')
    return r


def pack(o):
    return msgpack.packb(o, use_bin_type=True)


with Server([]) as srv:
    c = Client(srv.endpoint)
    rnd = random.Random(1234)

    h = c.request({'type': 'health', 'id': 'h1'})
    names = sorted(a['name'] for a in h.get('actors', []))
    ok(h.get('status') == 'ok' and h.get('id') == 'h1', 'health answers ok with the id echoed')
    ok(names == sorted(['frontend', 'tokenizer', 'scheduler', 'kv_manager', 'executor.0',
                        'communicator.0']), 'health lists every actor: %s' % names)
    ok(all(a['status'] == 'ok' and a['latency_us'] >= 0 for a in h['actors']),
       'every actor answered through its queue')

    for i in range(3):
        blob = bytes(rnd.getrandbits(8) for _ in range(rnd.randint(1, 300)))
        check_error(c, [blob], 'bad_request', 'random bytes #%d (%d bytes)' % (i, len(blob)))
    good = pack({'type': 'health', 'id': 'x' * 40})
    check_error(c, [good[:len(good) // 2]], 'bad_request', 'truncated msgpack')
    check_error(c, [b''], 'bad_request', 'empty frame')
    check_error(c, [b'\xc1'], 'bad_request', 'reserved byte 0xc1')
    check_error(c, [b'\xdd\xff\xff\xff\xff'], 'bad_request', 'array32 claiming 4 billion items')
    for v in (42, 'health', [1, 2, 3], None, 3.5, True):
        check_error(c, [pack(v)], 'bad_request', 'non-map value %r' % (v,))
    check_error(c, [pack({'id': 1})], 'bad_request', 'map without type', field='type')
    check_error(c, [pack({'type': 7})], 'bad_request', 'type is an int', field='type')
    check_error(c, [pack({'type': 'fly_to_moon', 'id': 'm1'})], 'unknown_type',
                'unknown message type', id_='m1')
    check_error(c, [pack({'type': 'ping', 'seq': 1})], 'unknown_type', 'internal message from a client')
    check_error(c, [pack({'type': 'health', 'v': 99})], 'unsupported_version', 'newer version')
    check_error(c, [pack({'type': 'generate', 'id': 'g1', 'max_tokens': 'many'})], 'bad_request',
                'generate with max_tokens a string', field='max_tokens', id_='g1')
    check_error(c, [pack({'type': 'generate', 'id': 'g2', 'temperature': [1]})], 'bad_request',
                'generate with temperature an array', field='temperature', id_='g2')
    check_error(c, [pack({'type': 'generate', 'id': 'g3', 'tokens': [1, 'a']})], 'bad_request',
                'generate with a string among token ids', field='tokens', id_='g3')
    check_error(c, [pack({'type': 'generate', 'id': 'g4', 'max_tokens': -5})], 'bad_request',
                'generate with negative max_tokens', field='max_tokens', id_='g4')
    check_error(c, [pack({'type': 'abort'})], 'bad_request', 'abort without its required id',
                field='id')
    check_error(c, [pack({'type': 'health', 'id': {'a': 1}})], 'bad_request', 'id of the wrong type',
                field='id')
    r = c.request({'type': 'generate', 'id': 'g5', 'prompt': 'hi', 'mystery': 1, 'stream': False,
                   'max_tokens': 3})
    ok(r.get('type') == 'output' and r.get('id') == 'g5' and r.get('finish_reason') in ('length', 'stop'),
       'generate with an unknown extra field (ignored) is served: %s' % r)
    # the serving checks that happen before any work: each names its field
    for req, field, what in [
            ({'prompt': ''}, 'prompt', 'an empty prompt'),
            ({'tokens': []}, 'tokens', 'an empty token list'),
            ({}, 'prompt', 'neither prompt nor tokens'),
            ({'prompt': 'a', 'tokens': [1]}, 'prompt', 'both prompt and tokens'),
            ({'prompt': 'a', 'max_tokens': 0}, 'max_tokens', 'max_tokens 0'),
            ({'prompt': 'a', 'max_tokens': 10 ** 9}, 'max_tokens', 'max_tokens beyond the schema limit'),
            ({'prompt': 'a', 'max_tokens': 100000}, 'max_tokens', 'max_tokens beyond the context'),
            ({'prompt': 'a', 'temperature': -0.5}, 'temperature', 'a negative temperature'),
            ({'prompt': 'a', 'top_p': 0}, 'top_p', 'top_p 0'),
            ({'prompt': 'a', 'top_p': 1.5}, 'top_p', 'top_p above 1'),
            ({'prompt': 'a', 'min_p': 2}, 'min_p', 'min_p above 1'),
            ({'prompt': 'a', 'n': 0}, 'n', 'n 0'),
            ({'prompt': 'a', 'stop': 'x'}, 'stop', 'stop as a string, not a list'),
            ({'prompt': 'a', 'seed': 'x'}, 'seed', 'a string seed'),
            ({'tokens': [1, 100000]}, 'tokens', 'a token id outside the vocabulary'),
            ({'prompt': 'once ' * 600}, 'prompt', 'a prompt over the context length')]:
        m = {'type': 'generate', 'id': 'bad'}
        m.update(req)
        check_error(c, [pack(m)], 'bad_request', 'generate with %s' % what, field=field, id_='bad')
    r = c.request({'type': 'generate', 'id': 'after', 'prompt': 'Once', 'stream': False,
                   'max_tokens': 2, 'temperature': 0})
    ok(r.get('type') == 'output' and r.get('usage', {}).get('completion_tokens') == 2,
       'a good request after the bad ones is served: %s' % r)
    check_error(c, [pack({'type': 'health'}), pack({'type': 'health'})], 'bad_request',
                'two frames in one message')
    big = pack({'type': 'generate', 'prompt': 'x'}) + b'\0' * (64 * 1024 * 1024)
    r = check_error(c, [big], 'too_large', 'a 64 MiB frame')
    if r:
        ok('limit' in r['message'], 'too_large says what the limit is: %s' % r['message'])

    s = c.request({'type': 'stats'})
    fe = s.get('actors', {}).get('frontend', {}).get('actor', {})
    ok(s.get('type') == 'stats' and fe.get('requests', 0) > 20,
       'stats counts the frontend requests (%s)' % fe.get('requests'))
    errs = fe.get('errors', {})
    ok(errs.get('bad_request', 0) >= 15 and errs.get('too_large') == 1 and
       errs.get('unknown_type') == 2, 'stats counts errors by code: %s' % errs)
    c.close()

    # A client that vanishes mid-request does not disturb the server.
    gone = Client(srv.endpoint)
    gone.send_raw(pack({'type': 'health', 'id': 'gone'}))
    gone.close()
    c2 = Client(srv.endpoint)
    ok(c2.request({'type': 'health'}).get('status') == 'ok', 'a vanished client leaves the server fine')
    c2.close()
    rc = srv.stop()
    ok(rc == 0, 'SIGINT stops the server with exit code 0 (got %s)' % (rc,))

done_testing()
