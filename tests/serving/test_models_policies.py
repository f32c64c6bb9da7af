"""Serving beyond the defaults: an HF checkpoint served end to end against HF transformers'
own greedy continuation, replicated tokenizers in separate processes, and the priority
policy's order."""
import asyncio
import os
import time

from serving_util import ROOT, AsyncClient, Client, Server, actor_counters, serve, topology_file
from tap import diag, done_testing, ok

# 1. An HF directory (tests/data/models/tinystories-656k: config.json, safetensors,
#    tokenizer.json) through the whole troupe == transformers' greedy generate.
HF = os.path.join(ROOT, 'tests', 'data', 'models', 'tinystories-656k')
try:
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer
    have_hf = True
except Exception as e:  # noqa: BLE001
    have_hf = False
    diag('transformers unavailable: %s' % e)
if have_hf:
    tok = AutoTokenizer.from_pretrained(HF)
    model = AutoModelForCausalLM.from_pretrained(HF, torch_dtype=torch.float32)
    model.eval()
    with Server(['-m', HF]) as srv:
        c = Client(srv.endpoint, timeout=60)
        for prompt in ['Once upon a time', 'The little dog']:
            ids = tok(prompt, return_tensors='pt').input_ids
            want, seq = [], ids[0].tolist()
            with torch.no_grad():   # greedy by full recomputation (generate() needs torch.distributed)
                for _ in range(24):
                    want.append(int(model(torch.tensor([seq + want])).logits[0, -1].argmax()))
            got = c.generate(prompt, max_tokens=24, temperature=0, ignore_eos=True)
            ok(c.tokenize(prompt) == ids[0].tolist(), 'served tokenize(%r) == HF tokenizers' % prompt)
            ok(got.tokens[:len(want)] == want,
               'served greedy continuation of %r == transformers generate (%d tokens)'
               % (prompt, len(want)))
            if got.tokens[:len(want)] != want:
                diag('got  %s' % got.tokens)
                diag('want %s' % want)
        info = c.model_info()
        ok(info['arch'] == 'llama' and info['vocab_size'] == model.config.vocab_size,
           'model_info describes the HF model: %s' % {k: info[k] for k in ('arch', 'vocab_size',
                                                                          'context_length')})
        c.close()
else:
    ok(True, '# SKIP transformers not installed')

# 2. Two tokenizers, each in its own process: requests are spread over both, and every
#    request's text comes back through the tokenizer that encoded it.
topo = topology_file('''processes:
  - {name: front, actors: [frontend, tokenizer, scheduler, kv_manager]}
  - {name: tok, actors: [tokenizer]}
  - {name: rank0, actors: [executor, communicator], rank: 0}
''')
with serve(['-c', topo]) as srv:
    c = Client(srv.endpoint, timeout=60)
    alone = c.generate('Once upon a time', max_tokens=20, temperature=0)
    outs = [c.generate('Once upon a time', max_tokens=20, temperature=0) for _ in range(4)]
    ok(all(o.text == alone.text and o.tokens == alone.tokens for o in outs),
       'every request gives the same text through either tokenizer')
    st = c.stats()['actors']
    reqs = [st.get(n, {}).get('actor', {}).get('requests', 0) for n in ('tokenizer.0', 'tokenizer.1')]
    ok(all(r >= 2 for r in reqs), 'both tokenizers served requests: %s' % reqs)
    c.close()

# 3. The priority policy: one sequence at a time; A (400 tokens) runs while C (priority 10)
#    and B (priority 0) arrive and wait -- B must finish before C although it arrived later. Under fcfs, C first.
def order(policy):
    topo = topology_file('scheduler: {policy: %s, max_seqs: 1}\n' % policy)
    done = []

    async def run(endpoint):
        async with AsyncClient(endpoint, timeout=60) as c:
            async def one(name, prio, delay):
                await asyncio.sleep(delay)
                await c.generate('Once upon a time', max_tokens=400 if name == 'A' else 20,
                                 temperature=0, ignore_eos=True, priority=prio)
                done.append(name)
            await asyncio.gather(one('A', 5, 0), one('C', 10, 0.01), one('B', 0, 0.02))
    with serve(['-c', topo]) as srv:
        asyncio.run(run(srv.endpoint))
    return done


got = order('priority')
ok(got == ['A', 'B', 'C'], 'priority: the lower value runs first among the waiting (%s)' % got)
got = order('fcfs')
ok(got == ['A', 'C', 'B'], 'fcfs: arrival order (%s)' % got)
done_testing()
