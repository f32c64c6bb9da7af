"""`troupe bench` against tests/mock_frontend.py: closed and open loop, the JSON's fields and
their consistency, errors counted (not fatal), goodput, prompt files, timeouts, and
tools/plot_bench.py over the JSON."""
import json
import os
import subprocess
import tempfile

from harness import BIN, ROOT
from mock_frontend import MockServer
from tap import diag, done_testing, ok, skip

TMP = tempfile.mkdtemp(prefix='troupe-bench-test-')


def bench(ep, *args, timeout=120):
    p = subprocess.run([BIN, 'bench', '--endpoint', ep] + [str(a) for a in args],
                       stdout=subprocess.PIPE, stderr=subprocess.PIPE, timeout=timeout, text=True)
    return p.returncode, p.stdout, p.stderr


def load(path):
    try:
        with open(path) as f:
            return json.load(f)
    except (OSError, ValueError) as e:
        diag('cannot read %s: %s' % (path, e))
        return {'config': {}, 'levels': []}


def ordered(d):
    eps = 1e-9 * max(1.0, abs(d['max'] or 0))   # the mean of equal values may round past them
    return d['n'] == 0 or (d['min'] <= d['p50'] <= d['p90'] <= d['p99'] <= d['max'] and
                           d['min'] - eps <= d['mean'] <= d['max'] + eps)


def check_level(lv, n, what):
    s = lv['summary']
    reqs = lv.get('requests', [])
    ok(s['requests'] == n == len(reqs) and s['ok'] + s['errors'] == n,
       '%s: %d requests = ok %d + errors %d, one record each' % (what, n, s['ok'], s['errors']))
    ok(all(ordered(s[k]) for k in ('ttft_ms', 'tpot_ms', 'itl_ms', 'e2e_ms')) and
       all(ordered(s['server'][k]) for k in ('queue_ms', 'ttft_ms', 'tpot_ms', 'e2e_ms')),
       '%s: min <= p50 <= p90 <= p99 <= max, client and server figures' % what)
    ok(s['goodput'] <= s['request_throughput'] + 1e-9 and s['good_requests'] <= s['ok'],
       '%s: goodput %.2f <= throughput %.2f' % (what, s['goodput'], s['request_throughput']))
    good = [r for r in reqs if r['ok']]
    ok(s['output_tokens'] == sum(r['output_tokens'] for r in good) and
       abs(s['output_throughput'] - s['output_tokens'] / s['duration_s']) < 1e-6 * s['output_throughput'] + 1e-9,
       '%s: output tokens and token throughput agree with the records' % what)
    ok(s['ttft_ms']['n'] == len(good) and
       s['itl_ms']['n'] == sum(len(r['itl_ms']) for r in good) and
       all(len(r['itl_ms']) == r['outputs'] - 1 for r in good if r['outputs'] == r['output_tokens']),
       '%s: one TTFT per ok request, an ITL per gap between token outputs' % what)
    ok(all(r['ttft_ms'] <= r['e2e_ms'] and r['server']['completion_tokens'] == r['output_tokens']
           for r in good), '%s: per request, ttft <= e2e, server and client token counts agree' % what)


with MockServer('--token-ms', 1, '--ttft-ms', 2, '--error-every', 5) as m:
    jf = os.path.join(TMP, 'closed.json')
    rc, out, err = bench(m.endpoint, '--concurrency', '1,4', '--num-prompts', 15, '--input-len',
                         '10:30', '--output-len', '4:12', '--seed', 7, '--json', jf)
    ok(rc == 0, 'closed loop at concurrency 1,4 runs (rc=%d)' % rc)
    if rc:
        diag(err)
    rows = [l for l in out.splitlines() if l.startswith('| ')]
    ok(len(rows) == 3 and rows[0].startswith('| concurrency') and rows[1].startswith('| 1 |') and
       rows[2].startswith('| 4 |'), 'one table: a header and a row per level')
    ok('[' not in err, 'no progress bar when stderr is not a terminal')
    d = load(jf)
    c = d['config']
    ok(c.get('mode') == 'concurrency' and c.get('loads') == [1, 4] and c.get('num_prompts') == 15
       and c.get('input_len') == [10, 30] and c.get('seed') == 7 and c.get('vocab') == 512,
       'config recorded (vocab from model_info)')
    ok([lv['load'] for lv in d['levels']] == [1, 4], 'a level per concurrency value')
    for lv in d['levels']:
        check_level(lv, 15, 'concurrency %d' % lv['load'])
        s = lv['summary']
        ok(s['errors'] == s['errors_by_kind'].get('busy', 0) == 3,
           'concurrency %d: the server\'s error replies are counted by kind: %s' %
           (lv['load'], s['errors_by_kind']))
        ok(all(10 <= r['prompt_tokens'] <= 30 for r in lv['requests']) and
           all(4 <= r['output_tokens'] <= 12 for r in lv['requests'] if r['ok']),
           'concurrency %d: synthetic lengths within the ranges' % lv['load'])
        ok(isinstance(lv.get('server_stats'), dict) and lv['server_stats'].get('type') == 'stats',
           'concurrency %d: the server\'s stats kept' % lv['load'])
    ok([r['prompt_tokens'] for r in d['levels'][0]['requests']] ==
       [r['prompt_tokens'] for r in d['levels'][1]['requests']], 'the same prompts at every level')

    # plots
    try:
        import matplotlib  # noqa: F401
        have_mpl = True
    except ImportError:
        have_mpl = False
    if have_mpl:
        p = subprocess.run([os.environ.get('TROUPE_PYTHON') or os.path.join(ROOT, '.venv', 'bin', 'python'),
                            os.path.join(ROOT, 'tools', 'plot_bench.py'), jf, '-o', TMP],
                           stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, timeout=120)
        pngs = [l for l in p.stdout.splitlines() if l.endswith('.png')]
        ok(p.returncode == 0 and len(pngs) == 2 and all(os.path.getsize(f) > 10000 for f in pngs),
           'tools/plot_bench.py draws the CDFs and the load plot')
        if p.returncode:
            diag(p.stdout)
    else:
        skip('matplotlib not installed')

with MockServer('--token-ms', 1, '--ttft-ms', 2) as m:
    # open loop, an SLO nobody meets, the progress bar
    jf = os.path.join(TMP, 'open.json')
    rc, out, err = bench(m.endpoint, '--rate', '200,400', '--max-concurrency', 3, '-n', 10,
                         '--output-len', 5, '--slo-ttft-ms', 0.001, '--progress', '--json', jf)
    d = load(jf)
    ok(rc == 0 and [lv['load'] for lv in d['levels']] == [200, 400] and
       d['config'].get('mode') == 'rate', 'open loop at two rates')
    for lv in d['levels']:
        check_level(lv, 10, 'rate %g' % lv['load'])
    ok(all(lv['summary']['goodput'] == 0 and lv['summary']['request_throughput'] > 0
           for lv in d['levels']), 'an SLO of 0.001 ms: goodput 0, throughput > 0')
    sends = sorted(r['send_ms'] for r in d['levels'][0]['requests'])
    ok(sends[-1] > 5, 'open loop spreads the sends over time (last at %.1f ms)' % sends[-1])
    ok('rate 200' in err and '10/10' in err, '--progress draws a bar on stderr')

    # prompt files
    pf = os.path.join(TMP, 'prompts.jsonl')
    with open(pf, 'w') as f:
        f.write('{"prompt": "hello", "max_tokens": 3}\n\n{"tokens": [5, 6, 7], "max_tokens": 6}\n'
                '{"prompt": "no max"}\n')
    jf = os.path.join(TMP, 'file.json')
    rc, out, err = bench(m.endpoint, '--prompts', pf, '-n', 6, '-c', 2, '--output-len', 4, '--json', jf)
    d = load(jf)
    reqs = d['levels'][0]['requests'] if d['levels'] else []
    ok(rc == 0 and [r['output_tokens'] for r in reqs] == [3, 6, 4, 3, 6, 4],
       '--prompts: max_tokens per line (default --output-len), the file cycles')
    rc, out, err = bench(m.endpoint, '--prompts', pf, '--json', jf)
    ok(rc == 0 and load(jf)['config']['num_prompts'] == 3, '--prompts without -n: one request per line')
    with open(pf, 'w') as f:
        f.write('{"prompt": "fine"}\n{"max_tokens": 3}\n')
    rc, out, err = bench(m.endpoint, '--prompts', pf)
    ok(rc == 1 and 'prompts.jsonl:2:' in err, 'a bad line: exit 1 naming file:line (%s)' % err.strip())

    # a request that never finishes becomes a timeout error, and the run goes on
    with open(pf, 'w') as f:
        f.write('{"prompt": "!hang"}\n{"prompt": "fine", "max_tokens": 2}\n')
    rc, out, err = bench(m.endpoint, '--prompts', pf, '-c', 2, '--timeout', 0.5, '--json', jf)
    s = load(jf)['levels'][0]['summary'] if rc == 0 else {}
    ok(rc == 0 and s.get('ok') == 1 and s.get('errors_by_kind') == {'timeout': 1},
       'silence past --timeout: the request counts as a timeout error, exit 0')

rc, out, err = bench('tcp://127.0.0.1:5555', '--concurrency', '2', '--rate', '3')
ok(rc == 1 and 'exclude' in err, '--concurrency with --rate: usage error')
rc, out, err = bench('tcp://127.0.0.1:5555', '--input-len', '30:10')
ok(rc == 1 and 'bad value' in err, 'a backwards range: usage error')

done_testing()
