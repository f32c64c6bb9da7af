"""KV pressure: a KV pool of 12 blocks of 16 tokens (192 token slots) and 16 concurrent
requests of ~55 tokens each. Every request completes with the tokens it gives alone
(preempted sequences are recomputed), stats shows preemptions, and every block is freed."""
import asyncio

from serving_util import (PROMPTS, AsyncClient, Client, actor_counters, first_diff, serve,
                          topology_file, wait_kv_free)
from tap import diag, done_testing, ok

MAX = 48
TOPO = topology_file('''
kv: {block_size: 16, n_blocks: 12}
scheduler: {policy: fcfs}
''')


async def concurrent(endpoint, streams=False):
    async with AsyncClient(endpoint, timeout=180) as c:
        async def one(p):
            if streams:
                return await c.stream(p, max_tokens=MAX, temperature=0, ignore_eos=True).result()
            return await c.generate(p, max_tokens=MAX, temperature=0, ignore_eos=True)
        return await asyncio.gather(*(one(p) for p in PROMPTS), return_exceptions=True)


with serve(['-c', TOPO]) as srv:
    c = Client(srv.endpoint, timeout=180)
    info = c.model_info()
    ok(info.get('kv_blocks') == 12 and info.get('block_size') == 16,
       'model_info: kv_blocks 12, block_size 16 from the topology file (%s, %s)' % (
           info.get('kv_blocks'), info.get('block_size')))
    kv = actor_counters(c.stats(), 'kv_manager')
    ok(kv.get('blocks_total') == 12 and kv.get('blocks_used') == 0, 'stats: kv_manager blocks_total 12: %s' % kv)

    alone = [c.generate(p, max_tokens=MAX, temperature=0, ignore_eos=True) for p in PROMPTS]
    ok(all(len(r.tokens) == MAX for r in alone), 'alone: each of %d requests gives %d tokens' % (len(PROMPTS), MAX))
    need = [-(-(r.usage['prompt_tokens'] + MAX) // 16) for r in alone]
    diag('blocks each request needs: %s (sum %d, pool 12)' % (need, sum(need)))
    pre0 = actor_counters(c.stats(), 'scheduler').get('preemptions', 0)

    for what, streams in (('generates', False), ('streams', True)):
        got = asyncio.run(concurrent(srv.endpoint, streams))
        errs = [g for g in got if isinstance(g, BaseException)]
        ok(not errs, '16 concurrent %s under KV pressure all complete (%d errors)' % (what, len(errs)))
        for e in errs[:3]:
            diag('  %r' % (e,))
        bad = [i for i, (a, g) in enumerate(zip(alone, got))
               if isinstance(g, BaseException) or a.tokens != g.tokens or a.text != g.text]
        ok(not bad, '  each gives exactly the tokens it gives alone')
        for i in bad[:3]:
            if not isinstance(got[i], BaseException):
                diag('  %r: first difference at token %s' % (PROMPTS[i], first_diff(alone[i].tokens, got[i].tokens)))
        freed, used = wait_kv_free(c)
        ok(freed, '  every KV block is free afterwards (blocks_used %s)' % used)

    sch = actor_counters(c.stats(), 'scheduler')
    ok(sch.get('preemptions', 0) > pre0, 'stats: the scheduler preempted sequences (preemptions %s)' % sch.get('preemptions'))
    diag('scheduler: %s' % sch)
    r = c.generate(PROMPTS[0], max_tokens=MAX, temperature=0, ignore_eos=True)
    ok(r.tokens == alone[0].tokens, 'the server serves on normally')
    c.close()

done_testing()
