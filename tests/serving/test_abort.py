"""Abort mid-stream and client disconnect end the requests and free every KV block
(kv_manager's blocks_used, read through `stats`, returns to 0)."""
import asyncio
import time

import msgpack

from serving_util import (PROMPTS, AsyncClient, Client, actor_counters, kv_blocks_used, serve,  # noqa: I100
                          wait_kv_free)
from harness import Client as RawClient  # noqa: E402 - serving_util puts tests/ on sys.path
from tap import diag, done_testing, ok

LONG = dict(temperature=0, max_tokens=480, ignore_eos=True)

with serve() as srv:
    c = Client(srv.endpoint, timeout=120)
    ok(kv_blocks_used(c) == 0, 'an idle server uses no KV block (stats: kv_manager blocks_used)')

    # ---- abort mid-stream ----
    s = c.stream(PROMPTS[0], **LONG)
    head = [next(s) for _ in range(3)]
    used_mid = kv_blocks_used(c)
    c.abort(s.id)
    rest = list(s)
    n = sum(len(d.tokens) for d in head + rest)
    ok(rest and rest[-1].finish_reason == 'abort', 'abort mid-stream: the stream ends with finish_reason abort')
    ok(n < 480, '  after %d of 480 tokens' % n)
    ok(rest[-1].usage is not None and rest[-1].usage.get('completion_tokens') == n,
       '  its usage counts the tokens sent (%s)' % rest[-1].usage)
    freed, used = wait_kv_free(c)
    ok(freed, '  every KV block is freed (blocks_used %s during, %s after)' % (used_mid, used))

    # ---- abort with n=3 ----
    s = c.stream(PROMPTS[1], n=3, temperature=1.0, seed=1, max_tokens=480, ignore_eos=True)
    finals = {}
    aborted = False
    for d in s:
        if not aborted:
            s.abort()
            aborted = True
        if d.finish_reason:
            finals[d.index] = d.finish_reason
    ok(sorted(finals) == [0, 1, 2] and set(finals.values()) == {'abort'},
       'abort with n=3: every choice ends with abort (%s)' % finals)
    ok(wait_kv_free(c)[0], '  every KV block is freed')

    # ---- abort of a non-streamed generate (AsyncClient) ----
    async def abort_generate():
        async with AsyncClient(srv.endpoint, timeout=120) as ac:
            task = asyncio.ensure_future(ac.generate(PROMPTS[2], id='abort-me', **LONG))
            await asyncio.sleep(0.05)
            await ac.abort('abort-me')
            return await task
    r = asyncio.run(abort_generate())
    ok(r.finish_reason in ('abort', 'length'), 'abort of a non-streamed generate: it ends (%s, %d tokens)' % (
        r.finish_reason, len(r.tokens)))
    if r.finish_reason == 'length':
        diag('the generate finished before the abort arrived: the check above is weak')
    ok(wait_kv_free(c)[0], '  every KV block is freed')

    # ---- abort of an unknown id: no reply, nothing happens ----
    c.abort('no-such-request')
    ok(c.health()['status'] == 'ok', 'abort of an unknown id is ignored')
    # ---- abort twice (idempotent) ----
    s = c.stream(PROMPTS[3], **LONG)
    next(s)
    s.abort()
    s.abort()
    tail = list(s)
    ok(tail[-1].finish_reason == 'abort' and sum(1 for d in tail if d.finish_reason) == 1,
       'abort twice: one final output')

    # ---- client disconnect ----
    for how in ('streams', 'generates'):
        gone = Client(srv.endpoint, timeout=120)
        if how == 'streams':
            ss = [gone.stream(p, **LONG) for p in PROMPTS[:8]]
            for s in ss:
                next(s)
        else:  # raw frames: nothing is read before the client goes
            raw = RawClient(srv.endpoint)
            for p in PROMPTS[:8]:
                raw.send_raw(msgpack.packb(dict(type='generate', id=p, prompt=p, stream=False, **LONG)))
            time.sleep(0.05)
            gone.close()
            gone = raw
        used_before = kv_blocks_used(c)
        sch = actor_counters(c.stats(), 'scheduler')
        gone.close()
        t0 = time.time()
        freed, used = wait_kv_free(c)
        dt = time.time() - t0
        ok(freed, 'client disconnect with 8 %s in flight: every KV block is freed (%s before, %s after, %.2fs)' % (
            how, used_before, used, dt))
        if not used_before:
            diag('the requests had finished before the disconnect: the check above is weak')
        diag('scheduler before the disconnect: %s' % sch)
        sch = actor_counters(c.stats(), 'scheduler')
        ok(sch.get('running', 0) == 0 and sch.get('waiting', 0) == 0,
           '  the scheduler has nothing running or waiting: %s' % sch)

    r = c.generate(PROMPTS[0], temperature=0, max_tokens=8)
    ok(r.finish_reason in ('length', 'stop') and r.tokens, 'the server serves on after aborts and disconnects')
    c.close()

done_testing()
