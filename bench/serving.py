#!/usr/bin/env python3
"""Serving scenarios of issue 4, each measured against its own baseline in one run.

    .venv/bin/python bench/serving.py MODEL [--scenario overhead,batching,chunked] [--reps 3]
        [--tokenizer DIR] [--threads N] [--json FILE]

overhead  single-stream greedy decode through `troupe serve` (1000 / tpot_ms, tpot from the
          server's metrics of a request with a 64-token prompt and 128 new tokens, EOS
          ignored: contexts 64..192, 128 on average) beside `bench_forward --decode 1 --ctx
          128` on the same model, alternated --reps times; the ratio of medians. Target >= 0.90.
batching  output tokens/s of 16 concurrent streams (128-token prompts, 128 new tokens each;
          all output tokens / wall time from the first send to the last final) beside one
          stream alone (same request). Target >= 4x.
chunked   8 streams decode (32-token prompts, 256 new tokens); once they are all streaming, one
          2048-token prompt arrives. Inter-token latency (gap between successive outputs of
          a stream, client clock) of the 8 streams over their whole run: median, p99 and max,
          with chunked_prefill on (--chunk tokens, default 64; --budget: max_batch_tokens,
          the step's token budget; --mixed: mixed_batch_tokens, the budget of a step that
          carries decodes) and off. Target
          with chunking: p99 <= 3x median.

MODEL is anything `troupe serve -m` takes; an HF directory without tokenizer.json, or a GGUF
without a vocabulary, needs --tokenizer (a tokenizer.json directory). Prompts are random
token ids (the weights are random too). Prints a table; --json writes every figure.
"""
import argparse
import asyncio
import json
import os
import random
import re
import statistics
import subprocess
import sys
import tempfile
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, os.path.join(ROOT, 'clients', 'python'))
sys.path.insert(0, os.path.join(ROOT, 'tests'))

from harness import Server  # noqa: E402
from troupe_client import AsyncClient, Client  # noqa: E402

BIN_DIR = os.path.join(ROOT, 'build', 'bin')


def topology(tokenizer, threads=0, **scheduler):
    lines = []
    if tokenizer:
        lines.append('tokenizer: {path: %s}' % tokenizer)
    if threads:
        lines.append('executor: {threads: %d}' % threads)
    if scheduler:
        lines.append('scheduler: {%s}' % ', '.join('%s: %s' % kv for kv in scheduler.items()))
    lines.append('kv: {memory_gb: 1.0}')
    f = tempfile.NamedTemporaryFile('w', suffix='.yaml', delete=False)
    f.write('\n'.join(lines) + '\n')
    f.close()
    return f.name


VOCAB = [40000]


def learn_vocab(endpoint):
    c = Client(endpoint, timeout=600)
    VOCAB[0] = c.model_info()['vocab_size']
    c.close()


def prompt(n, seed):
    r = random.Random(seed)
    return [r.randrange(min(100, VOCAB[0] // 4), VOCAB[0]) for _ in range(n)]


def pct(xs, p):
    xs = sorted(xs)
    return xs[min(len(xs) - 1, int(round(p / 100 * (len(xs) - 1))))]


def library_decode(model, threads):
    out = subprocess.run([os.path.join(BIN_DIR, 'bench_forward'), model, '--prefill', '8',
                          '--decode', '1', '--ctx', '128', '--steps', '48', '--reps', '1']
                         + (['--threads', str(threads)] if threads else []),
                         capture_output=True, text=True, timeout=600).stdout
    m = re.search(r'decode batch\s+1:\s+([\d.]+) tokens/s', out)
    if not m:
        sys.exit('bench_forward printed no decode figure:\n' + out)
    return float(m.group(1))


def serve_decode(endpoint):
    """(tokens/s, the executor's forward ms per step, its sampling ms per step)."""
    c = Client(endpoint, timeout=600)
    c.generate(tokens=prompt(16, 0), max_tokens=4, temperature=0, ignore_eos=True)  # warm
    e0 = c.stats()['actors']['executor.0']['actor']
    # 64 prompt tokens + 128 new: the contexts run 64..192, 128 on average, as in
    # bench_forward --ctx 128
    r = c.generate(tokens=prompt(64, 1), max_tokens=128, temperature=0, ignore_eos=True)
    e1 = c.stats()['actors']['executor.0']['actor']
    c.close()
    steps = max(1, e1['steps'] - e0['steps'])
    return (1000.0 / r.metrics['tpot_ms'], (e1['forward_ms'] - e0['forward_ms']) / steps,
            (e1['sample_ms'] - e0['sample_ms']) / steps)


def scenario_overhead(model, args, out):
    lib, srv, fwd, smp = [], [], [], []
    topo = topology(args.tokenizer, args.threads)
    with Server(['-m', model, '-c', topo], ready_timeout=600) as s:
        learn_vocab(s.endpoint)
        for _ in range(args.reps):
            tok_s, f, sm = serve_decode(s.endpoint)
            srv.append(tok_s)
            fwd.append(f)
            smp.append(sm)
            lib.append(library_decode(model, args.threads))   # the server is idle meanwhile
    ls, ss = statistics.median(lib), statistics.median(srv)
    out['overhead'] = dict(threads=args.threads, library_tok_s=lib, serve_tok_s=srv,
                           library_median=ls, serve_median=ss, ratio=ss / ls,
                           executor_forward_ms_per_step=fwd, executor_sample_ms_per_step=smp)
    print('overhead (%s threads): single-stream decode, library %s tok/s (median %.1f, %.2f ms/step), '
          'through serve %s tok/s (median %.1f): %.2f of library (target >= 0.90); inside the '
          'server the executor spends %.2f ms/step in the forward and %.2f in sampling (medians)'
          % (args.threads or 'all', ['%.1f' % x for x in lib], ls, 1000 / ls,
             ['%.1f' % x for x in srv], ss, ss / ls, statistics.median(fwd),
             statistics.median(smp)))


async def run_streams(endpoint, n, new_tokens, plen):
    async with AsyncClient(endpoint, timeout=600) as c:
        t0 = time.monotonic()
        res = await asyncio.gather(*(c.generate(tokens=prompt(plen, 100 + i), max_tokens=new_tokens,
                                                temperature=0, ignore_eos=True)
                                     for i in range(n)))
        dt = time.monotonic() - t0
    return sum(len(r.tokens) for r in res) / dt


def scenario_batching(model, args, out):
    one, sixteen = [], []
    with Server(['-m', model, '-c', topology(args.tokenizer)], ready_timeout=600) as s:
        learn_vocab(s.endpoint)
        asyncio.run(run_streams(s.endpoint, 1, 4, 16))  # warm
        for _ in range(args.reps):
            one.append(asyncio.run(run_streams(s.endpoint, 1, 128, 128)))
            sixteen.append(asyncio.run(run_streams(s.endpoint, 16, 128, 128)))
    a, b = statistics.median(one), statistics.median(sixteen)
    out['batching'] = dict(one_tok_s=one, sixteen_tok_s=sixteen, ratio=b / a)
    print('batching: output tokens/s, 1 stream %s (median %.1f), 16 streams %s (median %.1f): '
          '%.2fx (target >= 4x)' % (['%.1f' % x for x in one], a, ['%.1f' % x for x in sixteen],
                                    b, b / a))


async def chunked_once(endpoint, long_len):
    stamps = {i: [] for i in range(8)}
    marks = {}

    async def stream(i, c):
        async for d in c.stream(tokens=prompt(32, 200 + i), max_tokens=256, temperature=0,
                                ignore_eos=True):
            if d.tokens:
                stamps[i].append(time.monotonic())

    async def long(c):
        while min(len(v) for v in stamps.values()) < 16:
            await asyncio.sleep(0.01)
        marks['sent'] = time.monotonic()
        async for d in c.stream(tokens=prompt(long_len, 999), max_tokens=4, temperature=0,
                                ignore_eos=True):
            if d.tokens and 'first' not in marks:
                marks['first'] = time.monotonic()

    async with AsyncClient(endpoint, timeout=600) as c:
        await asyncio.gather(*(stream(i, c) for i in range(8)), long(c))
    gaps = []
    for ts in stamps.values():
        gaps += [(b - a) * 1e3 for a, b in zip(ts, ts[1:])]
    return gaps, (marks['first'] - marks['sent']) * 1e3


def scenario_chunked(model, args, out):
    res = {}
    on = dict(chunked_prefill='true', chunk_size=args.chunk)
    if args.budget:
        on['max_batch_tokens'] = args.budget
    if args.mixed:
        on['mixed_batch_tokens'] = args.mixed
    for label, sched in (('on', on),
                         ('off', dict(chunked_prefill='false', max_batch_tokens=4096))):
        with Server(['-m', model, '-c', topology(args.tokenizer, **sched)], ready_timeout=600) as s:
            learn_vocab(s.endpoint)
            asyncio.run(run_streams(s.endpoint, 1, 4, 16))  # warm
            runs = [chunked_once(s.endpoint, args.long_prompt) for _ in range(args.reps)]
            runs = [asyncio.run(r) for r in runs]
        gaps = [g for r in runs for g in r[0]]
        med, p99 = statistics.median(gaps), pct(gaps, 99)
        res[label] = dict(sched, median_ms=med, p99_ms=p99, max_ms=max(gaps), ratio=p99 / med,
                          n=len(gaps), long_ttft_ms=[r[1] for r in runs])
        print('chunked prefill %-3s: ITL of 8 streams with a %d-token prompt arriving: median '
              '%.1f ms, p99 %.1f ms, max %.1f ms, p99/median %.2f (n=%d; the long prompt\'s '
              'TTFT %s ms)' % (label, args.long_prompt, med, p99, max(gaps), p99 / med,
                               len(gaps), ['%.0f' % r[1] for r in runs]))
    out['chunked'] = res


def main():
    ap = argparse.ArgumentParser(description=__doc__.split('\n')[0])
    ap.add_argument('model')
    ap.add_argument('--scenario', default='overhead,batching,chunked')
    ap.add_argument('--reps', type=int, default=3)
    ap.add_argument('--tokenizer')
    ap.add_argument('--long-prompt', type=int, default=2048)
    ap.add_argument('--chunk', type=int, default=64, help='chunk_size with chunking on')
    ap.add_argument('--budget', type=int, default=0,
                    help='max_batch_tokens with chunking on (decodes + chunk; default 2048)')
    ap.add_argument('--mixed', type=int, default=0,
                    help='mixed_batch_tokens with chunking on: the budget of steps that carry '
                         'decodes (default: max_batch_tokens)')
    ap.add_argument('--threads', type=int, default=0,
                    help='overhead: executor and bench_forward threads (default: every core)')
    ap.add_argument('--json')
    args = ap.parse_args()
    out = dict(model=args.model, date=time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime()),
               cpus=os.cpu_count())
    for s in args.scenario.split(','):
        dict(overhead=scenario_overhead, batching=scenario_batching,
             chunked=scenario_chunked)[s](args.model, args, out)
    if args.json:
        with open(args.json, 'w') as f:
            json.dump(out, f, indent=1)


if __name__ == '__main__':
    main()
