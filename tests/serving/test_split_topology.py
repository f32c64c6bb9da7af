"""A split topology (front: frontend, tokenizer, scheduler, kv_manager; rank0: executor,
communicator, each its own OS process, talking over ipc://) gives the same tokens as one
process, alone and batched; abort frees the KV blocks there too."""
import asyncio

from serving_util import PROMPTS, AsyncClient, Client, first_diff, serve, topology_file, wait_kv_free
from tap import diag, done_testing, ok

MAX = 40
SPLIT = topology_file('''
processes:
  - {name: front, actors: [frontend, tokenizer, scheduler, kv_manager]}
  - {name: rank0, actors: [executor, communicator], rank: 0}
''')


def run_all(endpoint):
    c = Client(endpoint, timeout=120)
    alone = [c.generate(p, temperature=0, max_tokens=MAX, ignore_eos=True) for p in PROMPTS[:8]]
    sampled = c.generate(PROMPTS[0], temperature=0.8, seed=11, max_tokens=MAX)
    streamed = ''.join(d.text for d in c.stream(PROMPTS[1], temperature=0, max_tokens=MAX, ignore_eos=True))

    async def conc():
        async with AsyncClient(endpoint, timeout=120) as ac:
            return await asyncio.gather(*(ac.generate(p, temperature=0, max_tokens=MAX, ignore_eos=True)
                                          for p in PROMPTS[:8]))
    batched = asyncio.run(conc())
    return c, alone, sampled, streamed, batched


with serve() as srv:
    c, alone1, sampled1, streamed1, batched1 = run_all(srv.endpoint)
    c.close()

with serve(['-c', SPLIT]) as srv:
    c, alone2, sampled2, streamed2, batched2 = run_all(srv.endpoint)
    h = c.health()
    procs = sorted({a['process'] for a in h['actors']})
    ok(h['status'] == 'ok' and procs == ['front', 'rank0'], 'split: health ok, actors in processes %s' % procs)
    for i, (a, b) in enumerate(zip(alone1, alone2)):
        if a.tokens != b.tokens:
            diag('%r: first difference at token %s' % (PROMPTS[i], first_diff(a.tokens, b.tokens)))
    ok([r.tokens for r in alone2] == [r.tokens for r in alone1], 'split: 8 greedy requests give the tokens of one process')
    ok([r.text for r in alone2] == [r.text for r in alone1], '  and the same text')
    ok(sampled2.tokens == sampled1.tokens, 'split: a seeded sample is the same as in one process')
    ok(streamed2 == streamed1 == alone1[1].text, 'split: streaming gives the same text')
    ok([r.tokens for r in batched2] == [r.tokens for r in alone1], 'split: 8 concurrent requests give the same tokens')

    s = c.stream(PROMPTS[2], temperature=0, max_tokens=400, ignore_eos=True)
    next(s)
    s.abort()
    rest = list(s)
    ok(rest and rest[-1].finish_reason == 'abort', 'split: abort mid-stream ends with abort')
    ok(wait_kv_free(c)[0], 'split: every KV block is freed')
    c.close()

done_testing()
