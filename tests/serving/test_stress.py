"""Many concurrent requests with random parameters (sampling, n, stop strings, streams
aborted midway) against random scheduler and KV settings, some pools small enough to force
preemption: every request ends, and every KV block comes back."""
import asyncio
import os
import random
import time
from collections import Counter

from tap import done_testing, ok
from serving_util import AsyncClient, Client, TroupeError, serve, topology_file, wait_kv_free


def run(seed):
    R = random.Random(seed)
    topo = topology_file('kv: {n_blocks: %d}\nscheduler: {max_seqs: %d, chunk_size: %d, '
                         'max_batch_tokens: %d}\n'
                         % (R.choice([40, 64, 400]), R.choice([4, 16, 64]), R.choice([16, 64, 512]),
                            R.choice([64, 256, 2048])))

    async def main(ep):
        # generous: under ASan a request at the back of a thrashing queue waits ~30 s
        async with AsyncClient(ep, timeout=float(os.environ.get('TROUPE_TEST_TIMEOUT', 120))) as c:
            async def one(i):
                r = random.Random(seed * 1000 + i)
                await asyncio.sleep(r.random() * 0.5)
                kw = dict(max_tokens=r.randint(1, 120), temperature=r.choice([0, 0.8]),
                          seed=r.randint(0, 99), n=r.choice([1, 1, 2]), ignore_eos=r.random() < 0.5)
                if r.random() < 0.3:
                    kw['stop'] = [r.choice(['.', 'the', 'Lily'])]
                prompt = ' '.join(r.choice(['Once', 'upon', 'a', 'time', 'cat', 'dog'])
                                  for _ in range(r.randint(1, 60)))
                if r.random() < 0.2:
                    s = c.stream(prompt, **kw)
                    async for d in s:
                        if r.random() < 0.3:
                            await s.abort()
                            break
                    return 'aborted'
                try:
                    res = await c.generate(prompt, **kw)
                    return res.finish_reason
                except TroupeError as e:
                    return 'error:' + e.code
            return await asyncio.gather(*(one(i) for i in range(150)))

    with serve(['-c', topo]) as srv:
        t0 = time.time()
        out = asyncio.run(main(srv.endpoint))
        c = Client(srv.endpoint, timeout=10)
        freed, used = wait_kv_free(c)
        st = c.stats()['actors']['scheduler']['actor']
        c.close()
    n = Counter(out)
    ok(len(out) == 150 and not any(k.startswith('error') for k in n),
       'seed %d: 150 requests end without error in %.1f s: %s' % (seed, time.time() - t0, dict(n)))
    ok(freed and st['running'] == 0 and st['waiting'] == 0,
       'seed %d: every KV block freed, nothing left queued (%d preemptions)' % (seed, st['preemptions']))


for s in (1, 4, 8):
    run(s)
done_testing()
