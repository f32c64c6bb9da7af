"""scheduler.mixed_batch_tokens: a step that carries decodes takes at most that many tokens
(prefill keeps at least a KV block), so long prompts arriving amid running streams are
prefilled in small chunks; every request still gives the tokens it gives alone.

A real `troupe serve` with the bundled stories260K model (block size 16); the Python
client package."""
import asyncio

from serving_util import (PROMPTS, AsyncClient, Client, actor_counters, first_diff, serve,
                          topology_file, wait_kv_free)
from tap import diag, done_testing, ok

MAX = 200
LONG = ' '.join(PROMPTS) * 3   # a prompt of a few hundred tokens


async def mixed(endpoint):
    """Six streams; once each has 4 tokens, the long prompt arrives amid their decodes."""
    async with AsyncClient(endpoint, timeout=120) as c:
        seen = [0] * 6

        async def stream(i, p):
            toks = []
            async for d in c.stream(p, max_tokens=MAX, temperature=0, ignore_eos=True):
                toks += d.tokens or []
                seen[i] = len(toks)
            return toks

        async def late_long():
            while min(seen) < 4:
                await asyncio.sleep(0.002)
            r = await c.generate(LONG, max_tokens=8, temperature=0, ignore_eos=True)
            return r.tokens, min(seen)
        *streams, (long_toks, at) = await asyncio.gather(
            *(stream(i, p) for i, p in enumerate(PROMPTS[:6])), late_long())
        return streams + [long_toks], at


def check(topo_text, what, expect_max):
    topo = topology_file(topo_text)
    with serve(['-c', topo]) as srv:
        c = Client(srv.endpoint, timeout=120)
        n_long = len(c.tokenize(LONG))
        alone = [c.generate(p, max_tokens=MAX, temperature=0, ignore_eos=True)
                 for p in PROMPTS[:6]]
        alone.append(c.generate(LONG, max_tokens=8, temperature=0, ignore_eos=True))
        got, at = asyncio.run(mixed(srv.endpoint))
        ok(at < MAX, '%s: the long prompt arrived while the streams decoded (at token %d)'
           % (what, at))
        bad = [i for i, (a, g) in enumerate(zip(alone, got)) if a.tokens != g]
        ok(not bad, '%s: %d streams and a %d-token prompt give the tokens they give alone'
           % (what, len(got) - 1, n_long))
        for i in bad:
            diag('  request %d: first difference at token %s' % (i, first_diff(alone[i].tokens,
                                                                             got[i])))
        sched = actor_counters(c.stats(), 'scheduler')
        mx = sched.get('mixed_tokens_max')
        ok(mx is not None and 0 < mx <= expect_max,
           '%s: the largest step with decodes has %r tokens (at most %d)' % (what, mx, expect_max))
        ok(wait_kv_free(c)[0], '%s: every KV block is free at the end' % what)
        c.close()
        return mx


# a budget of 20 with decodes: 6 decodes leave 14 tokens of prompt, raised to the floor of
# one KV block (16): at most 6 + 16 = 22 tokens in a step with decodes
small = check('scheduler: {chunk_size: 256, mixed_batch_tokens: 20}\n', 'mixed budget 20', 22)
# without the option the whole chunk rides with the decodes
big = check('scheduler: {chunk_size: 256}\n', 'no mixed budget', 256 + 6)
ok(big > small, 'without a mixed budget the steps with decodes are larger (%s > %s)' % (big, small))
done_testing()
