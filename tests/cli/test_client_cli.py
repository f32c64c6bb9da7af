"""`troupe client` against tests/mock_frontend.py: streamed text, summary, --json, errors,
timeouts, Ctrl-C (abort, then exit 130)."""
import json
import os
import signal
import subprocess
import time

from harness import BIN
from mock_frontend import MockServer
from tap import diag, done_testing, ok


def run(ep, *args, stdin=None, timeout=30):
    p = subprocess.run([BIN, 'client', '--endpoint', ep] + list(args), input=stdin,
                       stdout=subprocess.PIPE, stderr=subprocess.PIPE, timeout=timeout, text=True)
    return p.returncode, p.stdout, p.stderr


with MockServer('--token-ms', 1, '--ttft-ms', 2) as m:
    rc, out, err = run(m.endpoint, '--max-tokens', '5', '--temperature', '0', 'Once upon')
    ok(rc == 0 and out == 't0 t1 t2 t3 t4 ', 'stdout holds exactly the text (rc=%d out=%r)' % (rc, out))
    ok('finish_reason=length' in err and 'tokens=5' in err and 'ttft=' in err and 'tpot=' in err,
       'one-line summary on stderr: %s' % err.strip())
    ok(len(err.strip().splitlines()) == 1, 'the summary is one line')

    rc, out, err = run(m.endpoint, '-n', '9', '--stop', 'nope', '--stop', 't2', '--json', 'x')
    try:
        j = json.loads(out)
    except ValueError:
        j = {}
        diag(out)
    ok(rc == 0 and j.get('text') == 't0 t1 t2 ' and j.get('finish_reason') == 'stop' and
       j.get('stop_reason') == 't2', '--json: text, finish_reason, stop_reason')
    ok(j.get('tokens') == [100, 101, 102] and j.get('usage', {}).get('completion_tokens') == 3,
       '--json: tokens and usage')
    ok(all(isinstance(j.get('client', {}).get(k), float) for k in ('ttft_ms', 'tpot_ms', 'e2e_ms'))
       and 'ttft_ms' in j.get('metrics', {}), '--json: client and server timings')

    rc, out, err = run(m.endpoint, '-n', '3', '--no-stream', '-', stdin='from stdin')
    ok(rc == 0 and out == 't0 t1 t2 ' and 'outputs=1' in err, '--no-stream, prompt from stdin')

    rc, out, err = run(m.endpoint, '!error')
    ok(rc == 1 and 'bad_request' in err, 'a bad_request reply: exit 1 with the message (%s)' % err.strip())
    rc, out, err = run(m.endpoint, '!busy')
    ok(rc == 3 and 'busy' in err, 'another error reply: exit 3 (%s)' % err.strip())
    rc, out, err = run(m.endpoint, '!fail')
    ok(rc == 3 and 'finish_reason=error' in err and 'on purpose' in err,
       'finish_reason error: exit 3 with the reason')
    rc, out, err = run(m.endpoint, '--timeout', '0.3', '!hang')
    ok(rc == 3 and 'no reply' in err, 'no reply within --timeout: exit 3 (%s)' % err.strip())
    rc, out, err = run(m.endpoint, '--max-tokens', 'many', 'x')
    ok(rc == 1 and 'bad number' in err, 'bad option value: exit 1')

    # Ctrl-C: a long request is aborted and the command exits 130
    p = subprocess.Popen([BIN, 'client', '--endpoint', m.endpoint, '-n', '100000', 'long'],
                         stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    time.sleep(0.5)
    p.send_signal(signal.SIGINT)
    try:
        out, err = p.communicate(timeout=10)
    except subprocess.TimeoutExpired:
        p.kill()
        out, err = p.communicate()
    ok(p.returncode == 130 and 'finish_reason=abort' in err and out.startswith('t0 t1 '),
       'SIGINT: abort sent, final output abort, exit 130 (rc=%s: %s)' % (p.returncode, err.strip()))

rc, out, err = run('tcp://127.0.0.1:1', '--timeout', '0.2', 'x')
ok(rc == 3 and 'no reply' in err, 'nobody listening: exit 3 after the timeout')

done_testing()
