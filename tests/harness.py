"""Shared helpers for integration tests: start `troupe serve`, talk to it with pyzmq.

    with Server(['-c', 'examples/topologies/two-process.yaml']) as srv:
        c = Client(srv.endpoint)
        reply = c.request({'type': 'health'})
"""
import os
import signal
import socket
import subprocess
import tempfile
import threading
import time

import msgpack
import zmq

ROOT = os.environ.get('TROUPE_ROOT', os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
BIN = os.environ.get('TROUPE_BIN', os.path.join(ROOT, 'build', 'bin', 'troupe'))


def free_port():
    s = socket.socket()
    s.bind(('127.0.0.1', 0))
    port = s.getsockname()[1]
    s.close()
    return port


def pids_of_children(pid):
    """Every live process whose parent chain reaches pid (from /proc)."""
    parents = {}
    for d in os.listdir('/proc'):
        if not d.isdigit():
            continue
        try:
            with open('/proc/%s/stat' % d) as f:
                fields = f.read().rsplit(')', 1)[1].split()
            if fields[0] != 'Z':
                parents[int(d)] = int(fields[1])
        except OSError:
            pass
    out = []
    for p in parents:
        q = p
        while q in parents and q > 1:
            q = parents[q]
            if q == pid:
                out.append(p)
                break
    return out


def pids_with_cmdline(substring):
    out = []
    for d in os.listdir('/proc'):
        if not d.isdigit():
            continue
        try:
            with open('/proc/%s/cmdline' % d, 'rb') as f:
                cmd = f.read().replace(b'\0', b' ').decode('utf-8', 'replace')
            with open('/proc/%s/stat' % d) as f:
                state = f.read().rsplit(')', 1)[1].split()[0]
        except OSError:
            continue
        if substring in cmd and state != 'Z':
            out.append(int(d))
    return out


class Server:
    """`troupe serve ARGS --listen tcp://127.0.0.1:PORT`, waited on until it prints ready."""

    def __init__(self, args, ready_timeout=30, env=None, expect_ready=True):
        self.port = free_port()
        self.endpoint = 'tcp://127.0.0.1:%d' % self.port
        self.args = [BIN, 'serve'] + list(args) + ['--listen', self.endpoint]
        self.ready_timeout = ready_timeout
        self.env = dict(os.environ, **(env or {}))
        self.env['TROUPE_LOG'] = (env or {}).get('TROUPE_LOG', 'info')  # tests read info lines
        self.tmp = tempfile.mkdtemp(prefix='troupe-test-')
        self.env['TMPDIR'] = self.tmp
        self.expect_ready = expect_ready
        self.proc = None
        self.stdout_lines = []
        self.stderr_lines = []

    def _pump(self, stream, sink):
        for line in iter(stream.readline, b''):
            sink.append(line.decode('utf-8', 'replace').rstrip('\n'))
        stream.close()

    def start(self):
        self.proc = subprocess.Popen(self.args, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                                     env=self.env, cwd=ROOT)
        self._threads = [threading.Thread(target=self._pump, args=(self.proc.stdout, self.stdout_lines),
                                          daemon=True),
                         threading.Thread(target=self._pump, args=(self.proc.stderr, self.stderr_lines),
                                          daemon=True)]
        for t in self._threads:
            t.start()
        if not self.expect_ready:
            return self
        deadline = time.time() + self.ready_timeout
        while time.time() < deadline:
            if any('troupe: ready' in l for l in self.stdout_lines):
                return self
            if self.proc.poll() is not None:
                break
            time.sleep(0.02)
        raise RuntimeError('server did not get ready (rc=%s)\n%s' % (self.proc.poll(), self.stderr()))

    def stderr(self):
        return '\n'.join(self.stderr_lines)

    def wait(self, timeout=30):
        try:
            rc = self.proc.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            rc = self.proc.wait()
            rc = ('timeout', rc)
        for t in self._threads:
            t.join(timeout=5)
        return rc

    def stop(self, sig=signal.SIGINT, timeout=30):
        if self.proc.poll() is None:
            self.proc.send_signal(sig)
        return self.wait(timeout)

    def __enter__(self):
        return self.start()

    def __exit__(self, *exc):
        if self.proc and self.proc.poll() is None:
            self.stop()
        for p in pids_with_cmdline('--rundir ' + self.tmp):
            os.kill(p, signal.SIGKILL)


class Client:
    """A DEALER socket: one msgpack map per frame out, one per frame back."""

    def __init__(self, endpoint, timeout=10):
        self.ctx = zmq.Context.instance()
        self.sock = self.ctx.socket(zmq.DEALER)
        self.sock.setsockopt(zmq.LINGER, 0)
        self.sock.setsockopt(zmq.RCVTIMEO, int(timeout * 1000))
        self.sock.connect(endpoint)

    def send_raw(self, *frames):
        self.sock.send_multipart(list(frames))

    def recv(self):
        frames = self.sock.recv_multipart()
        assert len(frames) == 1, 'expected one frame, got %d' % len(frames)
        return msgpack.unpackb(frames[0], raw=False)

    def request(self, obj):
        self.send_raw(msgpack.packb(obj, use_bin_type=True))
        return self.recv()

    def close(self):
        self.sock.close(0)
