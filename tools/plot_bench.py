#!/usr/bin/env python3
"""Draws the JSON of `troupe bench --json FILE` as PNGs.

    .venv/bin/python tools/plot_bench.py bench.json [more.json ...] [-o OUTDIR] [--title T]

Writes into OUTDIR (default: beside the first file, named after it):
    <name>_cdf.png        latency CDFs, one panel each for TTFT, TPOT, ITL and end-to-end,
                          one curve per load level (successful requests only)
    <name>_load.png       request throughput and goodput (left axis, req/s) and output-token
                          throughput (right axis, tok/s) against the load: concurrency or
                          rate. With several files, each file is one series (label: its name).
Needs matplotlib (tools/requirements-test.txt). Prints the paths it wrote.
"""
import argparse
import json
import os
import sys

import matplotlib

matplotlib.use('Agg')
import matplotlib.pyplot as plt  # noqa: E402


def load(path):
    with open(path) as f:
        d = json.load(f)
    if 'levels' not in d or 'config' not in d:
        raise SystemExit('%s: not a troupe bench JSON (no levels/config)' % path)
    return d


def level_label(lv):
    return '%s %g' % ('concurrency' if lv['mode'] == 'concurrency' else 'rate', lv['load'])


def samples(lv, key):
    out = []
    for r in lv.get('requests', []):
        if not r.get('ok'):
            continue
        if key == 'itl_ms':
            out.extend(r.get('itl_ms') or [])
        elif r.get(key) is not None:
            out.append(r[key])
    return sorted(out)


def plot_cdfs(d, path, title):
    fig, axes = plt.subplots(2, 2, figsize=(11, 8))
    panels = [('ttft_ms', 'TTFT (ms)'), ('tpot_ms', 'TPOT (ms)'), ('itl_ms', 'ITL (ms)'),
              ('e2e_ms', 'end-to-end latency (ms)')]
    for ax, (key, name) in zip(axes.flat, panels):
        drew = False
        for lv in d['levels']:
            v = samples(lv, key)
            if not v:
                continue
            y = [(i + 1) / len(v) for i in range(len(v))]
            ax.step(v, y, where='post', label=level_label(lv))
            drew = True
        ax.set_xlabel(name)
        ax.set_ylabel('fraction of %s' % ('gaps' if key == 'itl_ms' else 'requests'))
        ax.set_ylim(0, 1.02)
        ax.grid(True, alpha=0.3)
        if drew:
            ax.legend(fontsize=8)
        else:
            ax.text(0.5, 0.5, 'no samples', ha='center', va='center', transform=ax.transAxes)
    fig.suptitle(title)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def plot_load(runs, path, title):
    fig, ax = plt.subplots(figsize=(8, 5))
    ax2 = ax.twinx()
    modes = set()
    for name, d in runs:
        levels = sorted(d['levels'], key=lambda lv: lv['load'])
        x = [lv['load'] for lv in levels]
        modes.update(lv['mode'] for lv in levels)
        s = [lv['summary'] for lv in levels]
        tag = '' if len(runs) == 1 else ' (%s)' % name
        ax.plot(x, [v['request_throughput'] or 0 for v in s], 'o-', label='requests/s' + tag)
        ax.plot(x, [v['goodput'] or 0 for v in s], 's--', label='goodput req/s' + tag)
        ax2.plot(x, [v['output_throughput'] or 0 for v in s], '^:', color='gray',
                 label='output tok/s' + tag)
    ax.set_xlabel(' / '.join(sorted('concurrency (requests in flight)' if m == 'concurrency'
                                    else 'offered rate (requests/s)' for m in modes)))
    if modes == {'concurrency'}:
        ax.set_xscale('log', base=2)
        ticks = sorted({lv['load'] for _, d in runs for lv in d['levels']})
        ax.set_xticks(ticks)
        ax.set_xticklabels(['%g' % t for t in ticks])
    ax.set_ylabel('requests/s')
    ax2.set_ylabel('output tokens/s')
    ax.set_ylim(bottom=0)
    ax2.set_ylim(bottom=0)
    ax.grid(True, alpha=0.3)
    h1, l1 = ax.get_legend_handles_labels()
    h2, l2 = ax2.get_legend_handles_labels()
    ax.legend(h1 + h2, l1 + l2, fontsize=8, loc='upper left')
    slo = runs[0][1]['config']
    objectives = ['%s <= %g ms' % (k.upper(), slo['slo_%s_ms' % k]) for k in ('ttft', 'tpot')
                  if slo.get('slo_%s_ms' % k) is not None]
    if objectives:
        title += '\ngoodput: requests with ' + ' and '.join(objectives)
    fig.suptitle(title)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def main():
    ap = argparse.ArgumentParser(description=__doc__.split('\n')[1])
    ap.add_argument('files', nargs='+')
    ap.add_argument('-o', '--outdir', default=None)
    ap.add_argument('--title', default=None)
    a = ap.parse_args()
    runs = [(os.path.splitext(os.path.basename(f))[0], load(f)) for f in a.files]
    outdir = a.outdir or os.path.dirname(os.path.abspath(a.files[0]))
    os.makedirs(outdir, exist_ok=True)
    base = runs[0][0]
    title = a.title or 'troupe bench: %s' % ', '.join(n for n, _ in runs)
    written = []
    for name, d in runs:
        p = os.path.join(outdir, '%s_cdf.png' % name)
        plot_cdfs(d, p, '%s - latency CDFs' % (a.title or name))
        written.append(p)
    p = os.path.join(outdir, '%s_load.png' % base)
    plot_load(runs, p, title)
    written.append(p)
    for p in written:
        print(p)
    return 0


if __name__ == '__main__':
    sys.exit(main())
