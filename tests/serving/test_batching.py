"""Batching invariance: greedy requests served concurrently (batched by the scheduler)
produce exactly the tokens each produces alone.

A real `troupe serve` with the bundled stories260K model; the Python client package."""
import asyncio
import random

from serving_util import PROMPTS, AsyncClient, Client, actor_counters, first_diff, serve, wait_kv_free
from tap import diag, done_testing, ok

MAX = 48


def compare(what, alone, got):
    bad = [i for i, (a, g) in enumerate(zip(alone, got))
           if a.tokens != g.tokens or a.text != g.text or a.finish_reason != g.finish_reason]
    ok(not bad and len(got) == len(alone), '%s: every request gives the tokens it gives alone' % what)
    for i in bad[:4]:
        diag('  prompt %r: alone %d tokens (%s), here %d tokens (%s); first difference at token %s' % (
            PROMPTS[i], len(alone[i].tokens), alone[i].finish_reason, len(got[i].tokens),
            got[i].finish_reason, first_diff(alone[i].tokens, got[i].tokens)))
        diag('    alone: %r' % alone[i].text[:120])
        diag('    here:  %r' % got[i].text[:120])


async def concurrent(endpoint, staggered=False, streams=False):
    rnd = random.Random(7)
    async with AsyncClient(endpoint, timeout=120) as c:
        async def one(p):
            if staggered:
                await asyncio.sleep(rnd.random() * 0.015)  # a request lasts ~10-30 ms here
            if streams:
                return await c.stream(p, max_tokens=MAX, temperature=0, ignore_eos=True).result()
            return await c.generate(p, max_tokens=MAX, temperature=0, ignore_eos=True)
        return await asyncio.gather(*(one(p) for p in PROMPTS))


with serve() as srv:
    c = Client(srv.endpoint, timeout=120)
    alone = [c.generate(p, max_tokens=MAX, temperature=0, ignore_eos=True) for p in PROMPTS]
    ok(all(len(r.tokens) == MAX and r.finish_reason == 'length' for r in alone),
       'alone: %d greedy requests of %d tokens each' % (len(PROMPTS), MAX))
    ok(len({tuple(r.tokens) for r in alone}) > 1, 'different prompts give different outputs')
    again = [c.generate(p, max_tokens=MAX, temperature=0, ignore_eos=True) for p in PROMPTS[:4]]
    compare('alone twice (determinism)', alone[:4], again)

    def steps():
        return actor_counters(c.stats(), 'scheduler').get('steps', 0)

    for what, kw in (('16 concurrent generates (AsyncClient, one socket)', {}),
                     ('16 concurrent streams', dict(streams=True)),
                     ('16 staggered arrivals (joining a running batch)', dict(staggered=True))):
        s0 = steps()
        got = asyncio.run(concurrent(srv.endpoint, **kw))
        n_steps = steps() - s0
        compare(what, alone, got)
        ok(0 < n_steps < len(PROMPTS) * MAX,
           '  they were batched: %d scheduler steps for %d tokens' % (n_steps, len(PROMPTS) * MAX))

    st = c.stats()
    sch = st['actors'].get('scheduler', {}).get('actor', {})
    diag('scheduler counters: %s' % sch)
    freed, used = wait_kv_free(c)
    ok(freed, 'every KV block is free after the requests end (blocks_used %s)' % used)
    c.close()

done_testing()
