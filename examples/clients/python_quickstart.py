# %% [markdown]
# # troupe from Python: a quickstart
#
# Start a server first (every actor a thread, the bundled 260K-parameter model):
#
#     build/bin/troupe serve --model tests/data/models/stories260K.bin &
#
# then run this file (`python examples/clients/python_quickstart.py [ENDPOINT]`), or open it
# in an editor that runs `# %%` cells (VS Code, Spyder, Jupyter's jupytext). The client is
# the package in clients/python (`pip install -e clients/python`); only pyzmq and msgpack
# are needed.

# %%
import asyncio
import os
import sys
import time

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), '..', '..', 'clients', 'python'))
from troupe_client import AsyncClient, Client, TroupeError  # noqa: E402

ENDPOINT = sys.argv[1] if len(sys.argv) > 1 and not sys.argv[1].startswith('-') else 'tcp://127.0.0.1:5555'
client = Client(ENDPOINT, timeout=30)

# %% [markdown]
# ## Is it up? Every actor answers a ping through its own queue.

# %%
h = client.health()
print('status:', h['status'], ' uptime %.1fs' % h['uptime_s'])
for a in h['actors']:
    print('  %-16s %-12s process=%-6s %-7s %s us' % (a['name'], a['kind'], a['process'], a['status'],
                                                     a.get('latency_us', '-')))

# %% [markdown]
# ## What does it serve?

# %%
info = client.model_info()
for k in ('model', 'arch', 'dtype', 'n_params', 'vocab_size', 'context_length', 'device',
          'kv_blocks', 'block_size'):
    print('%-15s %s' % (k, info.get(k)))
print('"Once upon a time" ->', client.tokenize('Once upon a time'))

# %% [markdown]
# ## A greedy generate (temperature 0): the same prompt always gives the same tokens.

# %%
r = client.generate('Once upon a time', max_tokens=48, temperature=0)
print(repr(r.text))
print('finish_reason=%s  usage=%s' % (r.finish_reason, r.usage))
print('TTFT %.1f ms, TPOT %.2f ms/token, end to end %.1f ms' % (
    r.metrics['ttft_ms'], r.metrics['tpot_ms'], r.metrics['e2e_ms']))

# %% [markdown]
# ## Streaming: deltas arrive as the tokens are generated; their text concatenated is the
# whole text. A stop string ends the choice with finish_reason "stop" and is not emitted.

# %%
t0 = time.perf_counter()
first = None
pieces = []
for d in client.stream('Once upon a time', max_tokens=64, temperature=0.8, seed=7, stop=['.']):
    if first is None and d.tokens:
        first = time.perf_counter() - t0
    pieces.append(d.text)
    print(d.text, end='', flush=True)
    if d.finish_reason:
        print('\n[finish_reason=%s stop_reason=%r, first delta after %.1f ms (client side)]' % (
            d.finish_reason, d.stop_reason, first * 1000))

# %% [markdown]
# ## Several choices of one prompt (n), and errors: a refused request raises TroupeError
# naming the field at fault.

# %%
r = client.generate('The little dog', max_tokens=16, temperature=1.0, seed=1, n=3)
for ch in r.choices:
    print(ch.index, repr(ch.text), ch.finish_reason)
try:
    client.generate('The little dog', temperature=-1)
except TroupeError as e:
    print('refused: code=%s field=%s: %s' % (e.code, e.field, e.message))

# %% [markdown]
# ## 8 concurrent requests from asyncio, on one socket: the server batches them.
# Each greedy answer is the same as the one it gives alone.

# %%
PROMPTS = ['Once upon a time', 'The cat', 'Lily wanted', 'One day, a boy', 'The sun was',
           'Tom and Sue', 'There was a big', 'In the park']


async def concurrent():
    async with AsyncClient(ENDPOINT, timeout=60) as ac:
        t0 = time.perf_counter()
        rs = await asyncio.gather(*(ac.generate(p, max_tokens=32, temperature=0) for p in PROMPTS))
        wall = time.perf_counter() - t0
    for p, r in zip(PROMPTS, rs):
        print('%-18s TTFT %6.1f ms  TPOT %5.2f ms  %r' % (p, r.ttft_ms, r.tpot_ms, r.text[:40]))
    n = sum(len(r.tokens) for r in rs)
    print('%d tokens in %.2fs: %.0f tokens/s over 8 requests' % (n, wall, n / wall))

asyncio.run(concurrent())

# %% [markdown]
# ## Abort mid-stream: the stream ends with finish_reason "abort", and the server frees
# the request's KV blocks (see kv_manager's blocks_used in stats).

# %%
s = client.stream('Once upon a time', max_tokens=400, ignore_eos=True)
got, aborted = 0, False
for d in s:
    got += len(d.tokens)
    if got >= 10 and not aborted:
        client.abort(s.id)          # or s.abort(); s.close() (or leaving a `with`) aborts too
        aborted = True
    if d.finish_reason:
        print('ended with finish_reason=%s after %d tokens' % (d.finish_reason, got))

for _ in range(50):                 # the blocks are released right after the final output
    kv = client.stats()['actors'].get('kv_manager', {}).get('actor', {})
    if kv.get('blocks_used') == 0:
        break
    time.sleep(0.02)
print('kv blocks used after the abort:', kv.get('blocks_used'), 'of', kv.get('blocks_total'))

# %%
client.close()
