"""`troupe client` and `troupe bench` against a real `troupe serve` (the bundled default
model, tests/data/models/stories260K.bin): the client prints exactly the text of a greedy
request made over pyzmq, and bench at concurrency 1 and 4 finishes every request ok."""
import json
import os
import subprocess
import tempfile

import msgpack

from harness import BIN, Client, Server
from tap import diag, done_testing, ok

TMP = tempfile.mkdtemp(prefix='troupe-cli-serve-')
PROMPT = 'Once upon a time'


def run(*args, timeout=120):
    p = subprocess.run([BIN] + [str(a) for a in args], stdout=subprocess.PIPE,
                       stderr=subprocess.PIPE, timeout=timeout, text=True)
    return p.returncode, p.stdout, p.stderr


def greedy(c, prompt, n):
    c.send_raw(msgpack.packb({'type': 'generate', 'id': 'ref', 'prompt': prompt, 'max_tokens': n,
                              'temperature': 0}, use_bin_type=True))
    text, final = '', None
    while final is None:
        r = c.recv()
        if r.get('type') != 'output':
            diag(repr(r))
            return None, r
        text += r.get('text', '')
        if 'finish_reason' in r:
            final = r
    return text, final


with Server([]) as srv:
    c = Client(srv.endpoint, timeout=60)
    ref, final = greedy(c, PROMPT, 40)
    ok(ref is not None and len(ref) > 20, 'a greedy request over pyzmq: %r' % ref)

    rc, out, err = run('client', '--endpoint', srv.endpoint, '--max-tokens', 40, '--temperature', 0,
                       PROMPT)
    ok(rc == 0 and out == ref, 'troupe client prints the same text (rc=%d)' % rc)
    if out != ref:
        diag('client: %r' % out)
    ok('finish_reason=' in err and 'tokens=' in err, 'summary: %s' % err.strip())

    rc, out, err = run('client', '--endpoint', srv.endpoint, '-n', 40, '-t', 0, '--no-stream',
                       '--json', PROMPT)
    try:
        j = json.loads(out)
    except ValueError:
        j = {}
    ok(rc == 0 and j.get('text') == ref and
       len(j.get('tokens', [])) == j.get('usage', {}).get('completion_tokens', -1),
       '--no-stream --json: same text, tokens match usage')

    jf = os.path.join(TMP, 'bench.json')
    rc, out, err = run('bench', '--endpoint', srv.endpoint, '--concurrency', '1,4',
                       '--num-prompts', 6, '--input-len', '8:32', '--output-len', '8:24',
                       '--json', jf)
    ok(rc == 0, 'bench at concurrency 1,4 runs (rc=%d)' % rc)
    if rc:
        diag(err)
    try:
        with open(jf) as f:
            d = json.load(f)
    except (OSError, ValueError):
        d = {'levels': [], 'config': {}}
    ok(d['config'].get('vocab') == 512, 'synthetic ids below the model\'s vocabulary (%s)' %
       d['config'].get('vocab'))
    for lv in d['levels']:
        s = lv['summary']
        ok(s['ok'] == 6 and s['errors'] == 0, 'concurrency %d: every request ok (%d ok, errors %s)'
           % (lv['load'], s['ok'], s['errors_by_kind']))
        good = [r for r in lv['requests'] if r['ok']]
        ok(all(r['output_tokens'] == r['server']['completion_tokens'] and 8 <= r['output_tokens'] <= 24
               and r['finish_reason'] == 'length' for r in good),
           'concurrency %d: ignore_eos: each request generates its max_tokens' % lv['load'])
        ok(s['ttft_ms']['p50'] <= s['ttft_ms']['p99'] and s['server']['ttft_ms']['n'] == 6,
           'concurrency %d: client and server figures present' % lv['load'])

    pf = os.path.join(TMP, 'prompts.jsonl')
    with open(pf, 'w') as f:
        for p in ('Once upon a time', 'The cat', 'Lily and Tom went'):
            f.write(json.dumps({'prompt': p, 'max_tokens': 16}) + '\n')
    rc, out, err = run('bench', '--endpoint', srv.endpoint, '--prompts', pf, '-c', 2, '--json', jf)
    with open(jf) as f:
        s = json.load(f)['levels'][0]['summary']
    ok(rc == 0 and s['ok'] == 3, 'bench with a prompt file: every request ok')

done_testing()
