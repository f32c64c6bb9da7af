"""troupe_client.AsyncClient against the pyzmq mock server: many concurrent requests on
one socket, async streams, n > 1, errors, abort, cancellation, timeouts."""
import asyncio
import os
import sys
import time

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(HERE, '..', '..', 'clients', 'python'))
sys.path.insert(0, os.path.join(HERE, '..'))

from mock_server import MockServer, expected_text, expected_tokens  # noqa: E402
from tap import diag, done_testing, ok  # noqa: E402
from troupe_client import AsyncClient, Result, TroupeError, TroupeTimeout  # noqa: E402


async def araises(coro, exc=TroupeError):
    try:
        await coro
    except exc as e:
        return e
    except Exception as e:  # noqa: BLE001
        diag('raised %r instead of %s' % (e, exc.__name__))
        return None
    return None


async def wait_for(pred, timeout=5):
    deadline = time.time() + timeout
    while time.time() < deadline:
        if pred():
            return True
        await asyncio.sleep(0.01)
    return False


async def collect(c, prompt, arrivals, **kw):
    text, toks, last = '', [], None
    async for d in c.stream(prompt, **kw):
        arrivals.append(prompt)
        text += d.text
        toks += d.tokens
        last = d
    return text, toks, last


async def main(m):
    async with AsyncClient(m.endpoint, timeout=10) as c:
        h = await c.health()
        ok(h['status'] == 'ok', 'health')
        ok((await c.model_info())['context_length'] == 512, 'model_info')
        ok('scheduler' in (await c.stats())['actors'], 'stats')
        ok(await c.tokenize('ab') == [1, 97, 98], 'tokenize')

        r = await c.generate('Once upon a time', max_tokens=24, temperature=0)
        ok(isinstance(r, Result) and r.text == expected_text('Once upon a time', 24)
           and r.finish_reason == 'length' and r.usage['completion_tokens'] == 24,
           'generate returns the Result')

        # 32 concurrent generates on one socket
        prompts = ['prompt number %d' % i for i in range(32)]
        t0 = time.monotonic()
        rs = await asyncio.gather(*(c.generate(p, max_tokens=30) for p in prompts))
        dt = time.monotonic() - t0
        ok(all(r.text == expected_text(p, 30) and r.tokens == expected_tokens(p, 30)
               for p, r in zip(prompts, rs)), '32 concurrent generates each get their own answer')
        ok(len({r.id for r in rs}) == 32, '... under 32 distinct ids')
        diag('32 concurrent generates of 30 tokens: %.2fs' % dt)

        # 8 concurrent streams
        arrivals = []
        sp = ['stream %d' % i for i in range(8)]
        outs = await asyncio.gather(*(collect(c, p, arrivals, max_tokens=40) for p in sp))
        ok(all(t == expected_text(p, 40) and k == expected_tokens(p, 40) and last.finish_reason == 'length'
               for p, (t, k, last) in zip(sp, outs)),
           '8 concurrent async streams each reassemble their own text and tokens')
        switches = sum(1 for a, b in zip(arrivals, arrivals[1:]) if a != b)
        ok(switches > 8, 'their deltas arrived interleaved (%d switches)' % switches)

        # n > 1
        r = await c.generate('multi', max_tokens=12, n=4)
        ok(len(r.choices) == 4 and all(ch.text == expected_text('multi', 12, ch.index) for ch in r.choices),
           'n=4: four choices, each its own')
        texts = ['', '', '']
        finals = 0
        async for d in c.stream('multi', max_tokens=12, n=3):
            texts[d.index] += d.text
            finals += d.finished
        ok(finals == 3 and texts == [expected_text('multi', 12, i) for i in range(3)],
           'n=3 async stream: demultiplexed by index, ends after 3 finals')

        # errors
        e = await araises(c.generate('x', temperature=-0.5))
        ok(e is not None and e.code == 'bad_request' and e.field == 'temperature',
           'an error reply raises TroupeError naming the field')
        e = await araises(c.stream('', max_tokens=3).result())
        ok(e is not None and e.field == 'prompt', 'an error reply ends an async stream')
        e = await araises(c.generate('!error', max_tokens=5))
        ok(e is not None and e.code == 'generation', 'finish_reason "error" raises')
        bad = await asyncio.gather(c.generate('good', max_tokens=5), c.generate('x', max_tokens=0),
                                   return_exceptions=True)
        ok(isinstance(bad[0], Result) and isinstance(bad[1], TroupeError) and bad[1].field == 'max_tokens',
           'a refused request does not disturb a concurrent good one')

        # abort mid-stream
        s = c.stream('long', max_tokens=100000)
        got = []
        async for d in s:
            got.append(d)
            if len(got) == 3:
                await c.abort(s.id)
        ok(got[-1].finish_reason == 'abort' and s.done, 'abort(id) mid-stream: the stream ends with "abort"')
        ok(s.id in m.aborts, 'the abort went to the server with the id')

        s = c.stream('long 2', max_tokens=100000)
        async for d in s:
            break
        await s.aclose()
        ok(await wait_for(lambda: s.id in m.aborts), 'aclose() mid-stream aborts')
        async with c.stream('long 3', max_tokens=100000) as s3:
            async for d in s3:
                break
        ok(await wait_for(lambda: s3.id in m.aborts), 'leaving async with mid-stream aborts')

        # cancellation of a generate task aborts the request
        task = asyncio.ensure_future(c.generate('long 4', max_tokens=100000, id='cancel-me'))
        await asyncio.sleep(0.1)
        task.cancel()
        e = await araises(task, asyncio.CancelledError)
        ok(e is not None and await wait_for(lambda: 'cancel-me' in m.aborts),
           'cancelling a generate task aborts the request on the server')
        ok(await wait_for(lambda: m.blocks_used() == 0), 'nothing left running in the mock')

        # timeouts
        t0 = time.monotonic()
        e = await araises(c.generate('!silent', timeout=0.3), TroupeTimeout)
        dt = time.monotonic() - t0
        ok(e is not None and isinstance(e, TimeoutError) and 0.25 <= dt < 2,
           'no reply: TroupeTimeout after %.2fs' % dt)
        e = await araises(c.stream('!silent', timeout=0.2).result(), TroupeTimeout)
        ok(e is not None, 'an async stream times out too')
        r, e = await asyncio.gather(c.generate('fine', max_tokens=8),
                                    araises(c.generate('!silent', timeout=0.3), TroupeTimeout))
        ok(r.text == expected_text('fine', 8) and e is not None,
           'a timeout does not disturb a concurrent request')

        # a burst from many tasks, mixed streams and generates
        async def one(i):
            if i % 2:
                return (await c.stream('mix %d' % i, max_tokens=20).result()).text
            return (await c.generate('mix %d' % i, max_tokens=20)).text
        texts = await asyncio.gather(*(one(i) for i in range(64)))
        ok(texts == [expected_text('mix %d' % i, 20) for i in range(64)],
           '64 mixed concurrent streams and generates')
        ok(len(c._pending) == 0, 'no request left registered')

    e = await araises(c.health())
    ok(e is not None and e.code == 'closed', 'a closed AsyncClient raises TroupeError(closed)')

    # no server
    c = AsyncClient('tcp://127.0.0.1:1', timeout=0.2)
    ok(await araises(c.health(), TroupeTimeout) is not None, 'no server: TroupeTimeout')
    await c.close()


with MockServer() as mock:
    asyncio.run(main(mock))
    # a second event loop with a fresh client works (no state bound to the first loop)
    async def again():
        async with AsyncClient(mock.endpoint, timeout=5) as c:
            return (await c.generate('again', max_tokens=4)).text
    ok(asyncio.run(again()) == expected_text('again', 4), 'a new AsyncClient in a second asyncio.run')

done_testing()
