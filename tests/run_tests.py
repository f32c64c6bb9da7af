#!/usr/bin/env python3
"""Run every test of troupe and print one closing line "N passed, N failed[, N skipped]".

Tests are programs that print TAP: the C tests built into BUILD/tests/**/test_*, and the
Python tests tests/**/test_*.py (run with TROUPE_PYTHON, else .venv/bin/python, else
/usr/bin/python3). Each TAP "ok" line counts as one pass, "not ok" as one failure; a
program that exits non-zero, times out, or prints no plan adds one failure of its own.

    python3 tests/run_tests.py --build-dir build [-k substring] [-v]
"""
import argparse
import os
import re
import subprocess
import sys
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def python_for_tests():
    env = os.environ.get('TROUPE_PYTHON')
    if env:
        return env
    venv = os.path.join(ROOT, '.venv', 'bin', 'python')
    if os.path.exists(venv):
        return venv
    return '/usr/bin/python3' if os.path.exists('/usr/bin/python3') else sys.executable


def find_tests(build_dir):
    tests = []
    cdir = os.path.join(build_dir, 'tests')
    for dirpath, _, files in os.walk(cdir):
        for f in sorted(files):
            p = os.path.join(dirpath, f)
            if f.startswith('test_') and os.access(p, os.X_OK) and '.' not in f:
                tests.append(('c', p))
    for dirpath, _, files in os.walk(os.path.join(ROOT, 'tests')):
        for f in sorted(files):
            if f.startswith('test_') and f.endswith('.py'):
                tests.append(('py', os.path.join(dirpath, f)))
    return sorted(tests, key=lambda t: os.path.relpath(t[1], ROOT))


def run_one(kind, path, build_dir, timeout, verbose):
    env = dict(os.environ)
    env['TROUPE_ROOT'] = ROOT
    env['TROUPE_BUILD'] = os.path.abspath(build_dir)
    env['TROUPE_BIN'] = os.path.join(os.path.abspath(build_dir), 'bin', 'troupe')
    env['PYTHONPATH'] = os.path.join(ROOT, 'tests') + os.pathsep + env.get('PYTHONPATH', '')
    env.setdefault('TROUPE_LOG', 'warn')
    cmd = [python_for_tests(), '-u', path] if kind == 'py' else [path]
    t0 = time.monotonic()
    try:
        p = subprocess.run(cmd, cwd=ROOT, env=env, stdout=subprocess.PIPE,
                           stderr=subprocess.STDOUT, timeout=timeout)
        out, rc, timed_out = p.stdout.decode('utf-8', 'replace'), p.returncode, False
    except subprocess.TimeoutExpired as e:
        out = (e.stdout or b'').decode('utf-8', 'replace')
        rc, timed_out = -9, True
    dt = time.monotonic() - t0
    passed = failed = skipped = 0
    plan = False
    for line in out.splitlines():
        if re.match(r'^ok \d+', line):
            if '# skip' in line.lower():
                skipped += 1
            else:
                passed += 1
        elif re.match(r'^not ok \d+', line):
            failed += 1
        elif re.match(r'^1\.\.\d+', line):
            plan = True
    problem = None
    if timed_out:
        problem = 'timed out after %ds' % timeout
    elif rc != 0 and failed == 0:
        problem = 'exited with status %d' % rc
    elif not plan:
        problem = 'printed no TAP plan'
    if problem:
        failed += 1
    show = verbose or failed
    name = os.path.relpath(path, ROOT)
    status = 'FAIL' if failed else 'ok'
    print('%-4s %-48s %3d passed %2d failed %2d skipped  %5.1fs%s' % (
        status, name, passed, failed, skipped, dt, ('  (' + problem + ')') if problem else ''))
    if show:
        for line in out.splitlines():
            if failed and not verbose and line.startswith('ok '):
                continue
            print('    | ' + line)
    sys.stdout.flush()
    return passed, failed, skipped


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument('--build-dir', default='build')
    ap.add_argument('-k', default=None, help='run tests whose path contains this')
    ap.add_argument('-v', action='store_true')
    ap.add_argument('--timeout', type=int, default=int(os.environ.get('TROUPE_TEST_TIMEOUT', 600)))
    a = ap.parse_args()
    tests = find_tests(a.build_dir)
    if a.k:
        tests = [t for t in tests if a.k in t[1]]
    tp = tf = ts = 0
    for kind, path in tests:
        p, f, s = run_one(kind, path, a.build_dir, a.timeout, a.v)
        tp, tf, ts = tp + p, tf + f, ts + s
    print('%d passed, %d failed, %d skipped' % (tp, tf, ts))
    return 1 if tf or not tests else 0


if __name__ == '__main__':
    sys.exit(main())
