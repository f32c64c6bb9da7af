"""Regressions found in review: a client posing as an executor, a client that leaves while a
reply to it is being sent, recomputation of a preempted sequence with chunked prefill off,
and a tokenizer process that dies with requests in flight."""
import asyncio
import os
import signal
import time

import msgpack
import zmq

from harness import pids_of_children
from serving_util import AsyncClient, Client, TroupeError, serve, topology_file
from tap import done_testing, ok

# 1. model_info carrying an executor's fields from a client changes nothing.
with serve() as srv:
    c = Client(srv.endpoint, timeout=20)
    want = c.generate('Once upon a time', max_tokens=16, temperature=0).tokens
    s = zmq.Context.instance().socket(zmq.DEALER)
    s.connect(srv.endpoint)
    s.send(msgpack.packb({'type': 'model_info', 'id': 'spoof', 'rank': 0, 'world': 1,
                          'vocab_size': 100000, 'block_size': 0, 'kv_blocks': 1,
                          'context_length': 3}))
    ok(s.poll(10000) and msgpack.unpackb(s.recv()).get('vocab_size') == 512,
       'a model_info with executor fields is answered with the real model')
    s.close(0)
    ok(c.generate('Once upon a time', max_tokens=16, temperature=0).tokens == want,
       'and generation is unchanged')

    # 2. X asks for two choices, reads one output and leaves while Y streams: the frontend
    #    cancels X's requests when a send to X fails, and goes on serving Y.
    async def scene(ep):
        async with AsyncClient(ep, timeout=30) as y:
            ys = y.stream('Once upon a time', max_tokens=400, temperature=0, ignore_eos=True)
            x = zmq.Context.instance().socket(zmq.DEALER)
            x.connect(ep)
            x.send(msgpack.packb({'type': 'generate', 'id': 'x', 'prompt': 'The cat', 'n': 2,
                                  'max_tokens': 300, 'ignore_eos': True}))
            x.poll(10000)
            x.recv()
            x.close(0)
            n = 0
            async for d in ys:
                n += len(d.tokens)
            return n
    ok(asyncio.run(scene(srv.endpoint)) == 400, 'Y streams all 400 tokens while X leaves')
    ok(c.health()['status'] == 'ok', 'the server is healthy after it')
    c.close()

# 3. chunked_prefill off, a pool too small for both: the preempted sequence recomputes
#    prompt + output (longer than max_batch_tokens) in chunks and finishes.
topo = topology_file('kv: {block_size: 16, n_blocks: 10}\n'
                     'scheduler: {chunked_prefill: false, max_batch_tokens: 64}\n')
with serve(['-c', topo]) as srv:
    async def two(ep):
        async with AsyncClient(ep, timeout=60) as c:
            return await asyncio.gather(
                c.generate(tokens=[1] + [400] * 59, max_tokens=90, temperature=0, ignore_eos=True),
                c.generate(tokens=[1, 403, 407, 261, 378], max_tokens=140, temperature=0,
                           ignore_eos=True))
    t0 = time.time()
    try:
        a, b = asyncio.run(two(srv.endpoint))
        ok(len(a.tokens) == 90 and len(b.tokens) == 140,
           'both finish (%.1f s) though recomputation exceeds max_batch_tokens' % (time.time() - t0))
    except TroupeError as e:
        ok(False, 'both finish: %s' % e)

# 4. A tokenizer process dies: its requests end with an error at once, and new requests go
#    to the tokenizer that lives.
topo = topology_file('''on_failure: keep
processes:
  - {name: front, actors: [frontend, tokenizer, scheduler, kv_manager]}
  - {name: tok, actors: [tokenizer]}
  - {name: rank0, actors: [executor, communicator], rank: 0}
''')
with serve(['-c', topo]) as srv:
    c = Client(srv.endpoint, timeout=20)
    streams = [c.stream('Once upon a time', max_tokens=480, temperature=0, ignore_eos=True)
               for _ in range(2)]   # one through each tokenizer (round robin)
    for st in streams:
        next(iter(st))
    victim = [p for p in pids_of_children(srv.proc.pid)
              if ' tok ' in open('/proc/%d/cmdline' % p).read().replace('\0', ' ') + ' ']
    os.kill(victim[0], signal.SIGKILL)
    ends = []
    for st in streams:
        try:
            for d in st:
                pass
            ends.append(st.result().finish_reason)
        except TroupeError as e:
            ends.append('error: %s' % e)
    ok(sorted(e.split(':')[0] for e in ends) == ['error', 'length'],
       'the request on the dead tokenizer ends with an error, the other finishes: %s' % ends)
    ok(all(len(c.generate('Once', max_tokens=4).tokens) == 4 for _ in range(3)),
       'new requests are served by the live tokenizer')
    c.close()
done_testing()
