#!/usr/bin/env python3
"""Smoke test of bench/msg: `bench_msg --quick --json FILE` runs, exits 0, and reports
every transport x payload with positive figures for both raw libzmq and the runtime.
It checks that the bench works, not that the targets are met (that depends on the machine).
"""
import json
import os
import subprocess
import tempfile

from tap import diag, done_testing, ok

ROOT = os.environ.get('TROUPE_ROOT', os.path.dirname(os.path.dirname(os.path.dirname(
    os.path.abspath(__file__)))))
BUILD = os.environ.get('TROUPE_BUILD', os.path.join(ROOT, 'build'))
BENCH = os.path.join(BUILD, 'bin', 'bench_msg')

TRANSPORTS = ['inproc', 'ipc', 'tcp']
PAYLOADS = [64, 1048576]
FIGURES = ['rtt_p50_us', 'rtt_p99_us', 'msgs_per_s', 'mb_per_s']


def main():
    if not ok(os.access(BENCH, os.X_OK), 'bench_msg is built (%s)' % BENCH):
        done_testing()
    with tempfile.TemporaryDirectory(prefix='troupe-test-bench-') as tmp:
        out = os.path.join(tmp, 'out.json')
        try:
            env = dict(os.environ, TMPDIR=tmp)  # the bench's run directories go here
            p = subprocess.run([BENCH, '--quick', '--json', out], cwd=tmp, timeout=120, env=env,
                               stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
            rc, text = p.returncode, p.stdout.decode('utf-8', 'replace')
        except subprocess.TimeoutExpired as e:
            rc, text = None, (e.stdout or b'').decode('utf-8', 'replace')
        ok(rc == 0, 'bench_msg --quick exits 0 (got %s)' % rc)
        if rc != 0:
            diag(text)
        try:
            with open(out) as f:
                doc = json.load(f)
        except (OSError, ValueError) as e:
            ok(False, 'the JSON file is written and parses (%s)' % e)
            done_testing()
        ok(True, 'the JSON file is written and parses')
        ok(doc.get('machine', {}).get('nproc', 0) > 0, 'the JSON names the machine')
        cells = {(r.get('transport'), r.get('payload_bytes')): r for r in doc.get('results', [])}
        for t in TRANSPORTS:
            for n in PAYLOADS:
                r = cells.get((t, n))
                if not ok(r is not None and r.get('ok'), '%s %d B: measured' % (t, n)):
                    diag(r and r.get('error'))
                    continue
                bad = ['%s.%s' % (side, k) for side in ('raw', 'runtime') for k in FIGURES
                       if not (isinstance(r.get(side, {}).get(k), (int, float)) and
                               r[side][k] > 0)]
                ok(not bad, '%s %d B: every figure is a positive number%s' % (
                    t, n, (' (not: %s)' % ', '.join(bad)) if bad else ''))
                ratios = r.get('ratio', {})
                ok(all(ratios.get(k, 0) > 0 for k in ('rtt_p50', 'rtt_p99', 'msgs_per_s')),
                   '%s %d B: ratios are positive' % (t, n))
        left = [f for f in os.listdir(tmp) if f.startswith('troupe-bench-')]
        ok(not left, 'the bench removes its run directories (left: %s)' % (left or 'none'))
    done_testing()


if __name__ == '__main__':
    main()
