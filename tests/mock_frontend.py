#!/usr/bin/env python3
"""A stand-in troupe frontend for client tests: a ROUTER speaking the client protocol.

(A separate program, for clients in any language and for the CLI; the Python client
package's tests use the in-process tests/clients/mock_server.py instead.)

    python tests/mock_frontend.py [--endpoint tcp://127.0.0.1:0] [--token-ms 2] [--error-every K]

Prints "ready ENDPOINT PID" on stdout once bound, then serves until SIGTERM/SIGINT (or its
parent process goes away). No model: the output is deterministic, so tests can check it.

generate: `prompt` or `tokens` required, else error{bad_request}. Choice i streams
max_tokens (default 8) tokens, one per output, token_ms apart; token k of a request is
id 100 + k and its text "t{k} " (so the whole text is "t0 t1 t2 ..."). The first output
comes ttft_ms (default 5) after the request. stop strings end the choice with
finish_reason "stop" when the text so far contains one; stream=false sends one output
with everything. Final outputs carry usage and metrics like the real server's.
Special prompts: "!error" -> error{bad_request, field prompt}; "!busy" -> error{busy};
"!fail" -> one token, then finish_reason "error"; "!hang" -> never answers.
--error-every K: every K-th generate (1-based count) is answered error{busy}.
abort {id}: every unfinished choice of that id ends with finish_reason "abort".
tokenize: one token per UTF-8 byte (+ BOS 1 unless add_special is false).
model_info, health, stats: fixed, plausible replies.
"""
import argparse
import heapq
import os
import signal
import struct
import sys
import time

import msgpack
import zmq


def i32s(v):
    return struct.pack('<%di' % len(v), *v)


class Choice:
    def __init__(self, req, index):
        self.req = req
        self.index = index
        self.k = 0            # tokens sent
        self.text = ''
        self.done = False
        self.first_s = None


class Mock:
    def __init__(self, args):
        self.args = args
        self.ctx = zmq.Context()
        self.sock = self.ctx.socket(zmq.ROUTER)
        self.sock.setsockopt(zmq.LINGER, 0)
        self.sock.setsockopt(zmq.SNDHWM, 0)
        self.sock.setsockopt(zmq.RCVHWM, 0)
        ep = args.endpoint
        if ep.endswith(':0'):
            port = self.sock.bind_to_random_port(ep[:-2])
            ep = '%s:%d' % (ep[:-2], port)
        else:
            self.sock.bind(ep)
        self.endpoint = ep
        self.timers = []      # heap of (due, seq, choice)
        self.seq = 0
        self.live = {}        # (rid, id) -> [choices]
        self.n_generate = 0
        self.counts = {'requests': 0, 'replies': 0, 'errors': 0, 'aborts': 0}
        self.start = time.monotonic()

    def send(self, rid, obj):
        self.counts['replies'] += 1
        if obj.get('type') == 'error':
            self.counts['errors'] += 1
        self.sock.send_multipart([rid, msgpack.packb(obj, use_bin_type=True)])

    def error(self, rid, id_, code, message, field=None):
        m = {'type': 'error', 'v': 1, 'code': code, 'message': message}
        if id_ is not None:
            m['id'] = id_
        if field:
            m['field'] = field
        self.send(rid, m)

    def schedule(self, due, ch):
        self.seq += 1
        heapq.heappush(self.timers, (due, self.seq, ch))

    # ---- generate ----

    def on_generate(self, rid, m):
        id_ = m.get('id')
        self.n_generate += 1
        prompt, tokens = m.get('prompt'), m.get('tokens')
        if prompt is None and tokens is None:
            return self.error(rid, id_, 'bad_request', "one of 'prompt' or 'tokens' is required",
                              'prompt')
        if prompt == '!error':
            return self.error(rid, id_, 'bad_request', "field 'prompt': refused by the mock",
                              'prompt')
        if prompt == '!busy' or (self.args.error_every and self.n_generate % self.args.error_every == 0):
            return self.error(rid, id_, 'busy', 'the mock is busy')
        if prompt == '!hang':
            return
        if isinstance(tokens, bytes):
            n_prompt = len(tokens) // 4
        elif tokens is not None:
            n_prompt = len(tokens)
        else:
            n_prompt = len(prompt.encode()) + 1
        req = {'rid': rid, 'id': id_, 'max': m.get('max_tokens', 8), 'stop': m.get('stop') or [],
               'stream': m.get('stream', True), 'fail': prompt == '!fail', 't0': time.monotonic(),
               'n_prompt': n_prompt}
        chs = [Choice(req, i) for i in range(m.get('n', 1) or 1)]
        self.live[(rid, repr(id_))] = chs
        for ch in chs:
            if req['max'] == 0:
                self.finish(ch, 'length', [], '')
            else:
                self.schedule(req['t0'] + self.args.ttft_ms / 1000, ch)

    def finish(self, ch, reason, toks, text, extra=None):
        req = ch.req
        now = time.monotonic()
        ch.done = True
        e2e = (now - req['t0']) * 1000
        ttft = ((ch.first_s or now) - req['t0']) * 1000
        tpot = (now - ch.first_s) * 1000 / (ch.k - 1) if ch.first_s and ch.k > 1 else 0.0
        m = {'type': 'output', 'v': 1, 'id': req['id'], 'index': ch.index, 'tokens': i32s(toks),
             'text': text, 'finish_reason': reason,
             'usage': {'prompt_tokens': req['n_prompt'], 'completion_tokens': ch.k},
             'metrics': {'queue_ms': 0.1, 'ttft_ms': ttft, 'tpot_ms': tpot, 'e2e_ms': e2e}}
        if extra:
            m.update(extra)
        self.send(req['rid'], m)
        key = (req['rid'], repr(req['id']))
        if key in self.live and all(c.done for c in self.live[key]):
            del self.live[key]

    def step(self, ch):
        """Produces the choice's next token (or, with stream=false, all of them)."""
        if ch.done:
            return
        req = ch.req
        toks, text = [], ''
        while True:
            t = 't%d ' % ch.k
            toks.append(100 + ch.k)
            text += t
            ch.k += 1
            ch.text += t
            if ch.first_s is None:
                ch.first_s = time.monotonic()
            hit = next((s for s in req['stop'] if s and s in ch.text), None)
            if req['fail']:
                return self.finish(ch, 'error', toks, text, {'error': 'the mock failed on purpose'})
            if hit is not None:
                return self.finish(ch, 'stop', toks, text, {'stop_reason': hit})
            if ch.k >= req['max']:
                return self.finish(ch, 'length', toks, text)
            if req['stream']:
                break
        self.send(req['rid'], {'type': 'output', 'v': 1, 'id': req['id'], 'index': ch.index,
                               'tokens': i32s(toks), 'text': text})
        self.schedule(time.monotonic() + self.args.token_ms / 1000, ch)

    def on_abort(self, rid, m):
        chs = self.live.get((rid, repr(m.get('id'))))
        if not chs:
            return
        self.counts['aborts'] += 1
        for ch in chs:
            if not ch.done:
                self.finish(ch, 'abort', [], '')

    # ---- the rest ----

    def on_request(self, rid, frame):
        self.counts['requests'] += 1
        try:
            m = msgpack.unpackb(frame, raw=False)
        except Exception:  # noqa: BLE001 - any undecodable frame is a bad request
            return self.error(rid, None, 'bad_request', 'not msgpack')
        if not isinstance(m, dict) or not isinstance(m.get('type'), str):
            return self.error(rid, None, 'bad_request', "missing field 'type'", 'type')
        t, id_ = m['type'], m.get('id')
        if t == 'generate':
            self.on_generate(rid, m)
        elif t == 'abort':
            self.on_abort(rid, m)
        elif t == 'tokenize':
            text = m.get('text', '')
            toks = ([1] if m.get('add_special', True) else []) + list(text.encode())
            self.send(rid, {'type': 'tokenize', 'v': 1, 'id': id_, 'tokens': i32s(toks)})
        elif t == 'model_info':
            self.send(rid, {'type': 'model_info', 'v': 1, 'id': id_, 'model': 'mock', 'arch': 'llama',
                            'dtype': 'f32', 'n_params': 1000, 'vocab_size': 512,
                            'context_length': 4096, 'bos_id': 1, 'eos_id': 2, 'device': 'cpu',
                            'kv_blocks': 64, 'block_size': 16, 'kv_bytes': 65536})
        elif t == 'health':
            self.send(rid, {'type': 'health', 'v': 1, 'id': id_, 'status': 'ok',
                            'uptime_s': time.monotonic() - self.start,
                            'actors': [{'name': 'mock', 'kind': 'mock', 'process': 'main',
                                        'status': 'ok', 'latency_us': 1}]})
        elif t == 'stats':
            self.send(rid, {'type': 'stats', 'v': 1, 'id': id_,
                            'uptime_s': time.monotonic() - self.start,
                            'actors': {'mock': {'msgs_in': self.counts['requests'],
                                                'actor': dict(self.counts)}}})
        else:
            self.error(rid, id_, 'unknown_type', "unknown type '%s'" % t, 'type')

    def run(self):
        stop = []
        for s in (signal.SIGTERM, signal.SIGINT):
            signal.signal(s, lambda *_: stop.append(1))
        parent = os.getppid()
        print('ready %s %d' % (self.endpoint, os.getpid()), flush=True)
        poller = zmq.Poller()
        poller.register(self.sock, zmq.POLLIN)
        while not stop and os.getppid() == parent:
            now = time.monotonic()
            while self.timers and self.timers[0][0] <= now:
                self.step(heapq.heappop(self.timers)[2])
            wait = 200 if not self.timers else max(0, (self.timers[0][0] - time.monotonic()) * 1000)
            try:
                ready = dict(poller.poll(wait))
            except zmq.ZMQError:
                continue
            if self.sock in ready:
                for _ in range(1000):
                    try:
                        frames = self.sock.recv_multipart(zmq.NOBLOCK)
                    except zmq.Again:
                        break
                    if len(frames) != 2:
                        self.error(frames[0], None, 'bad_request', 'several frames in one message')
                        continue
                    self.on_request(frames[0], frames[1])
        self.sock.close(0)
        self.ctx.term()


class MockServer:
    """Runs this file as a child process for a test: `with MockServer() as m: m.endpoint`."""

    def __init__(self, *args):
        self.args = [str(a) for a in args]

    def __enter__(self):
        import subprocess
        self.proc = subprocess.Popen([sys.executable, '-u', os.path.abspath(__file__)] + self.args,
                                     stdout=subprocess.PIPE, text=True)
        line = self.proc.stdout.readline().split()
        if not line or line[0] != 'ready':
            self.proc.kill()
            raise RuntimeError('mock server did not start: %r' % line)
        self.endpoint = line[1]
        return self

    def __exit__(self, *exc):
        self.proc.terminate()
        try:
            self.proc.wait(timeout=10)
        except Exception:  # noqa: BLE001
            self.proc.kill()
            self.proc.wait()
        self.proc.stdout.close()


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument('--endpoint', default='tcp://127.0.0.1:0')
    ap.add_argument('--token-ms', type=float, default=2.0)
    ap.add_argument('--ttft-ms', type=float, default=5.0)
    ap.add_argument('--error-every', type=int, default=0)
    Mock(ap.parse_args()).run()


if __name__ == '__main__':
    sys.exit(main())
