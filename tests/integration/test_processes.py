"""Multi-process topologies: start, exchange messages, stop cleanly; supervision.

Real processes started by `troupe serve -c FILE`; liveness is checked through the
frontend's health request, which pings every actor in every process through its inbox.
"""
import json
import os
import signal
import tempfile
import time

from harness import ROOT, Client, Server, pids_of_children, pids_with_cmdline
from tap import diag, done_testing, ok

TOPO = os.path.join(ROOT, 'examples', 'topologies')


def wait_for(pred, timeout=10):
    deadline = time.time() + timeout
    while time.time() < deadline:
        if pred():
            return True
        time.sleep(0.05)
    return False


def health(srv):
    c = Client(srv.endpoint)
    try:
        return c.request({'type': 'health'})
    finally:
        c.close()


def check_topology(name, procs):
    with Server(['-c', os.path.join(TOPO, name)]) as srv:
        rundirs = os.listdir(srv.tmp)
        h = health(srv)
        got = {}
        for a in h.get('actors', []):
            got.setdefault(a['process'], []).append(a['name'])
        ok(h.get('status') == 'ok', '%s: every actor in every process answers health' % name)
        ok(sorted(got) == sorted(procs), '%s: actors live in processes %s' % (name, sorted(got)))
        children = pids_of_children(srv.proc.pid)
        ok(len(children) == len(procs), '%s: one OS process per entry (%d)' % (name, len(children)))
        ok(len(rundirs) == 1 and rundirs[0].startswith('troupe-'),
           '%s: a private run directory while serving (%s)' % (name, rundirs))
        rc = srv.stop(signal.SIGINT)
        ok(rc == 0, '%s: SIGINT stops the troupe with exit code 0 (got %s)' % (name, rc))
        ok(not any(os.path.exists('/proc/%d' % p) and p in pids_of_children(1) for p in children)
           and not pids_with_cmdline('--rundir ' + srv.tmp),
           '%s: no orphan processes' % name)
        ok(os.listdir(srv.tmp) == [], '%s: run directory and ipc files removed' % name)
        ok(any('process front' in l and 'exited with status 0' in l for l in srv.stderr_lines),
           '%s: the launcher reports each child exit' % name)


check_topology('two-process.yaml', ['front', 'rank0'])
check_topology('three-process.yaml', ['front', 'tok', 'rank0'])

# Killing a child: reported with its signal, the others are stopped, exit code 3.
with Server(['-c', os.path.join(TOPO, 'two-process.yaml')]) as srv:
    victim = [p for p in pids_of_children(srv.proc.pid)
              if 'rank0' in open('/proc/%d/cmdline' % p).read()]
    ok(len(victim) == 1, 'found the rank0 process')
    others = [p for p in pids_of_children(srv.proc.pid) if p not in victim]
    os.kill(victim[0], signal.SIGKILL)
    rc = srv.wait(timeout=30)
    ok(rc == 3, 'launcher exits with code 3 when a process dies (got %s)' % (rc,))
    ok(any('process rank0 (pid %d) killed by signal 9' % victim[0] in l for l in srv.stderr_lines),
       'the launcher names the dead process, its pid and signal')
    ok(wait_for(lambda: not any(os.path.exists('/proc/%d/cmdline' % p) and
                                open('/proc/%d/cmdline' % p).read() for p in others), 5),
       'no orphans: the surviving process was stopped too')
    ok(os.listdir(srv.tmp) == [], 'run directory removed after the failure')

# on_failure: keep -> the rest keep serving, and health shows the lost actors as down.
keep_yaml = open(os.path.join(TOPO, 'two-process.yaml')).read().replace(
    'on_failure: shutdown', 'on_failure: keep')
with tempfile.NamedTemporaryFile('w', suffix='.yaml', delete=False) as f:
    f.write(keep_yaml)
    keep_path = f.name
with Server(['-c', keep_path]) as srv:
    victim = [p for p in pids_of_children(srv.proc.pid)
              if 'rank0' in open('/proc/%d/cmdline' % p).read()]
    os.kill(victim[0], signal.SIGKILL)
    ok(wait_for(lambda: any('killed by signal 9' in l for l in srv.stderr_lines)),
       'keep: the death is reported')
    time.sleep(0.3)
    h = health(srv)
    st = {a['name']: a['status'] for a in h.get('actors', [])}
    ok(srv.proc.poll() is None, 'keep: the launcher goes on serving')
    ok(h.get('status') == 'degraded' and st.get('executor.0') == 'down' and
       st.get('communicator.0') == 'down' and st.get('scheduler') == 'ok',
       'keep: health is degraded and names the lost actors down: %s' % st)
    rc = srv.stop()
    ok(rc == 3, 'keep: exit code 3 after a loss, even on a clean stop (got %s)' % (rc,))
os.unlink(keep_path)

# The example custom actor, wired in through the topology file.
log_path = tempfile.mktemp(suffix='.jsonl')
reqlog_yaml = open(os.path.join(TOPO, 'reqlog.yaml')).read()
import re  # noqa: E402
reqlog_yaml = re.sub(r'path: *[^,}\n]+', 'path: ' + log_path, reqlog_yaml)
with tempfile.NamedTemporaryFile('w', suffix='.yaml', delete=False) as f:
    f.write(reqlog_yaml)
    reqlog_path = f.name
with Server(['-c', reqlog_path]) as srv:
    c = Client(srv.endpoint)
    c.request({'type': 'health', 'id': 'r1'})
    c.request({'type': 'generate', 'id': 'r2', 'prompt': 'hello', 'stream': False, 'max_tokens': 2})
    c.send_raw(b'\x93garbage')
    c.recv()
    c.close()
    ok(wait_for(lambda: os.path.exists(log_path) and len(open(log_path).readlines()) >= 3),
       'reqlog writes one line per request')
    lines = [json.loads(l) for l in open(log_path)] if os.path.exists(log_path) else []
    ok([l.get('id') for l in lines[:2]] == ['r1', 'r2'] and lines[1].get('error') is None
       and lines[2].get('error') == 'bad_request', 'reqlog lines carry id, type and error')
    if len(lines) < 3:
        diag(srv.stderr())
    s = Client(srv.endpoint)
    st = s.request({'type': 'stats'})
    s.close()
    ok(st['actors'].get('reqlog', {}).get('actor', {}).get('logged', 0) >= 3,
       'reqlog reports its own counters through stats')
os.unlink(reqlog_path)
if os.path.exists(log_path):
    os.unlink(log_path)

# Start-up failures: a port in use, a bad topology file, a bad flag.
with Server([]) as first:
    second = Server([], expect_ready=False)
    second.endpoint = first.endpoint
    second.args[-1] = first.endpoint
    second.start()
    rc = second.wait(timeout=20)
    ok(rc == 2, 'listening on a port in use fails to start with exit code 2 (got %s)' % (rc,))
    ok(any('cannot listen on' in l and 'Address already in use' in l for l in second.stderr_lines),
       'and says why')
bad = os.path.join(ROOT, 'tests', 'data', 'topologies', 'tensor-zero.yaml')
srv = Server(['-c', bad], expect_ready=False).start()
rc = srv.wait()
ok(rc == 1 and any(bad + ':' in l for l in srv.stderr_lines),
   'a bad topology file exits 1 with FILE:LINE: reason: %s' % srv.stderr_lines[-1:])
srv = Server(['-c', '/nonexistent/topo.yaml'], expect_ready=False).start()
rc = srv.wait()
ok(rc == 1 and any('cannot open' in l for l in srv.stderr_lines), 'a missing file exits 1')

done_testing()
