"""`troupe serve` with the executor on cuda:0 (tests/gpu/run.sh runs it on a GPU machine).

Greedy generations, one at a time and eight at once (decode batches of several buckets):
with decode graphs (executor.cuda_graphs, the default) and without they must give the same
tokens, and most prompts the CPU's tokens (float sums differ, so near-ties may not); stats
must show the cuda backend, graphs recorded and replayed. The KV pool sized from
kv.memory_fraction 0.45 must hold about half the blocks of the default 0.9. Skipped without
a GPU or without a CUDA build."""
import asyncio
import os
import shutil
import subprocess
import sys

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), '..', 'serving'))
from harness import BIN, Server  # noqa: E402
from serving_util import (MODEL, PROMPTS, AsyncClient, Client, actor_counters,  # noqa: E402
                          device_topology, first_diff, topology_file)
from tap import diag, done_testing, ok, skip  # noqa: E402


def usable():
    smi = shutil.which('nvidia-smi')
    try:
        gpu = smi and 'GPU' in subprocess.run([smi, '-L'], capture_output=True, text=True,
                                              timeout=20).stdout
        cuda = 'libcudart' in subprocess.run(['ldd', BIN], capture_output=True, text=True,
                                             timeout=20).stdout
    except (OSError, subprocess.TimeoutExpired):
        return False
    return bool(gpu and cuda)


if not usable():
    skip('no GPU, or troupe built without CUDA: GPU serving test not run')
    done_testing()

MAX = 40


def run(topo):
    with Server(['--model', MODEL, '-c', topo], ready_timeout=120) as srv:
        c = Client(srv.endpoint, timeout=120)
        alone = [c.generate(p, temperature=0, max_tokens=MAX, ignore_eos=True).tokens
                 for p in PROMPTS[:8]]

        async def conc():
            async with AsyncClient(srv.endpoint, timeout=120) as ac:
                return await asyncio.gather(*(ac.generate(p, temperature=0, max_tokens=MAX,
                                                          ignore_eos=True) for p in PROMPTS[:8]))
        batched = [r.tokens for r in asyncio.run(conc())]
        ex = actor_counters(c.stats(), 'executor')
        c.close()
        return alone, batched, ex


cpu = run(topology_file('processes:\n  - {name: main, device: cpu, actors: [frontend, tokenizer, '
                        'scheduler, kv_manager, executor, communicator]}\n'))
graphs = run(device_topology('cuda:0'))
eager = run(device_topology('cuda:0', 'executor: {cuda_graphs: false}\n'))
half = run(device_topology('cuda:0', 'kv: {memory_fraction: 0.45}\n'))

ok(graphs[2].get('backend') == 'cuda:0', 'executor runs on cuda:0 (%s)' % graphs[2].get('backend'))


def agree(a, b, what):
    """Prompts whose tokens agree; a near-tie may flip one (split-K and GEMM shapes differ)."""
    n = sum(x == y for x, y in zip(a, b))
    for i, (x, y) in enumerate(zip(a, b)):
        if x != y:
            diag('%s: %r differs from token %s' % (what, PROMPTS[i], first_diff(x, y)))
    return n


n = agree(graphs[0], eager[0], 'graphs on/off, alone')
ok(n >= 7, 'graphs on and off: the same tokens for %d of 8 prompts, one at a time' % n)
n = agree(graphs[1], eager[1], 'graphs on/off, batched')
ok(n >= 7, 'graphs on and off: the same tokens for %d of 8 prompts, eight at once' % n)
n = agree(graphs[1], graphs[0], 'graphs, batched/alone')
ok(n >= 7, 'graphs: batched tokens equal one-at-a-time tokens for %d of 8 prompts' % n)
ok(graphs[2].get('graphs', 0) > 0 and graphs[2].get('graph_steps', 0) > 0,
   'graphs recorded (%s) and replayed (%s steps)' % (graphs[2].get('graphs'),
                                                    graphs[2].get('graph_steps')))
ok(eager[2].get('graphs') == -1 and eager[2].get('graph_steps') == 0,
   'executor.cuda_graphs false: no graphs')
same = agree(cpu[0], graphs[0], 'cpu/cuda')
ok(same >= 6, 'cuda greedy tokens equal the cpu ones for %d of 8 prompts' % same)
full, part = graphs[2].get('kv_blocks', 0), half[2].get('kv_blocks', 0)
ratio = part / full if full else 0
ok(0.4 <= ratio <= 0.6, 'kv.memory_fraction 0.45 gives %d blocks, 0.9 gives %d (ratio %.2f)'
   % (part, full, ratio))
done_testing()
