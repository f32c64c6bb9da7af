"""A pyzmq mock of troupe's frontend for unit tests of the Python client package.

It speaks the client protocol (ROUTER socket, one msgpack map per frame) with a fake,
deterministic "model": choice i of a request with prompt P generates

    token j = 97 + (sum(P's bytes) + 7 * j * (i + 1)) % 26      (so text is 'a'..'z')

Streams are cut into outputs of 0..3 tokens whose text may lag one token behind (as a real
server holds back an incomplete UTF-8 character), every choice of every request advancing
one output per tick, so concurrent requests interleave on the wire.

Special prompts: '!silent' is never answered; '!error' ends with finish_reason "error"
after 2 tokens; '!noid' gets an `error` reply without an id. temperature < 0, an empty
prompt, and max_tokens 0 are refused with bad_request naming the field.

    with MockServer() as m:
        c = Client(m.endpoint)
"""
import random
import struct
import threading
import time

import msgpack
import zmq


def expected_tokens(prompt, n_tokens, index=0):
    if isinstance(prompt, str):
        prompt = prompt.encode()
    h = sum(prompt) if isinstance(prompt, (bytes, bytearray)) else sum(prompt)
    return [97 + (h + 7 * j * (index + 1)) % 26 for j in range(n_tokens)]


def expected_text(prompt, n_tokens, index=0):
    return ''.join(chr(t) for t in expected_tokens(prompt, n_tokens, index))


def i32s(v):
    return struct.pack('<%di' % len(v), *v)


def f32s(v):
    return struct.pack('<%df' % len(v), *v)


class _Choice:
    def __init__(self, req, index, tokens):
        self.req = req
        self.index = index
        self.tokens = tokens        # everything it will generate
        self.sent = 0               # tokens sent
        self.text_sent = 0          # characters sent (may lag by one)
        self.finish = None          # set when the final output has gone
        self.t_first = None


class _Request:
    def __init__(self, client, msg, now):
        self.client = client
        self.msg = msg
        self.id = msg.get('id')
        self.stream = msg.get('stream', True)
        self.t0 = now
        self.aborted = False
        self.choices = []


class MockServer:
    def __init__(self, tick_s=0.002, seed=1):
        self.ctx = zmq.Context()
        self.sock = self.ctx.socket(zmq.ROUTER)
        self.sock.setsockopt(zmq.LINGER, 0)
        port = self.sock.bind_to_random_port('tcp://127.0.0.1')
        self.endpoint = 'tcp://127.0.0.1:%d' % port
        self.tick_s = tick_s
        self.rnd = random.Random(seed)
        self.received = []          # every decoded request
        self.aborts = []            # ids of abort requests
        self.sent_outputs = 0
        self.active = []            # _Request
        self._stop = threading.Event()
        self._t = threading.Thread(target=self._run, daemon=True)
        self._t0 = time.monotonic()

    # ---- lifecycle ----

    def start(self):
        self._t.start()
        return self

    def stop(self):
        self._stop.set()
        self._t.join(5)
        self.sock.close(0)
        self.ctx.term()

    def __enter__(self):
        return self.start()

    def __exit__(self, *exc):
        self.stop()

    def blocks_used(self):
        return sum(1 for r in self.active for c in r.choices if c.finish is None)

    # ---- loop ----

    def _send(self, client, obj):
        self.sock.send_multipart([client, msgpack.packb(obj, use_bin_type=True)])

    def _run(self):
        poller = zmq.Poller()
        poller.register(self.sock, zmq.POLLIN)
        next_tick = time.monotonic()
        while not self._stop.is_set():
            wait = max(0, next_tick - time.monotonic())
            if poller.poll(int(wait * 1000)):
                while True:
                    try:
                        frames = self.sock.recv_multipart(zmq.NOBLOCK)
                    except zmq.Again:
                        break
                    self._handle(frames)
            if time.monotonic() >= next_tick:
                self._tick()
                next_tick = time.monotonic() + self.tick_s

    def _error(self, client, rid, code, message, field=None):
        e = {'type': 'error', 'v': 1, 'code': code, 'message': message}
        if rid is not None:
            e['id'] = rid
        if field:
            e['field'] = field
        self._send(client, e)

    def _handle(self, frames):
        client, body = frames[0], frames[-1]
        try:
            msg = msgpack.unpackb(body, raw=False)
        except Exception:  # noqa: BLE001
            self._error(client, None, 'bad_request', 'not msgpack')
            return
        self.received.append(msg)
        t, rid = msg.get('type'), msg.get('id')
        if t == 'health':
            self._send(client, {'type': 'health', 'id': rid, 'status': 'ok', 'uptime_s': 1.0,
                                'actors': [{'name': 'frontend', 'kind': 'frontend',
                                            'process': 'main', 'status': 'ok', 'latency_us': 5}]})
        elif t == 'stats':
            self._send(client, {'type': 'stats', 'id': rid, 'uptime_s': 1.0, 'actors': {
                'frontend': {'msgs_in': len(self.received), 'actor': {'requests': len(self.received)}},
                'kv_manager': {'actor': {'blocks_total': 64, 'blocks_used': self.blocks_used()}},
                'scheduler': {'actor': {'waiting': 0, 'running': len(self.active), 'preemptions': 0}}}})
        elif t == 'model_info':
            self._send(client, {'type': 'model_info', 'id': rid, 'model': 'mock', 'arch': 'llama',
                                'dtype': 'f32', 'n_params': 260000, 'vocab_size': 512,
                                'context_length': 512, 'bos_id': 1, 'eos_id': 2, 'device': 'cpu',
                                'kv_blocks': 64, 'block_size': 16, 'kv_bytes': 1 << 20})
        elif t == 'tokenize':
            text = msg.get('text', '')
            toks = ([1] if msg.get('add_special', True) else []) + list(text.encode())
            self._send(client, {'type': 'tokenize', 'id': rid, 'tokens': i32s(toks)})
        elif t == 'abort':
            self.aborts.append(rid)
            for r in self.active:
                if r.id == rid and r.client == client:
                    r.aborted = True
        elif t == 'generate':
            self._generate(client, msg)
        else:
            self._error(client, rid, 'unknown_type', 'unknown message type %r' % (t,), 'type')

    def _generate(self, client, msg):
        rid = msg.get('id')
        prompt = msg.get('prompt')
        toks = msg.get('tokens')
        if prompt == '!noid':
            self._error(client, None, 'bad_request', 'mock: an error without id')
            return
        if prompt == '!silent':
            return
        if prompt is None and toks is None:
            return self._error(client, rid, 'bad_request', 'generate needs prompt or tokens', 'prompt')
        if prompt == '':
            return self._error(client, rid, 'bad_request', "'prompt' is empty", 'prompt')
        if isinstance(msg.get('temperature'), (int, float)) and msg['temperature'] < 0:
            return self._error(client, rid, 'bad_request', "'temperature' must be >= 0", 'temperature')
        max_tokens = msg.get('max_tokens', 16)
        if max_tokens == 0:
            return self._error(client, rid, 'bad_request', "'max_tokens' must be >= 1", 'max_tokens')
        if isinstance(toks, bytes):
            key = list(struct.unpack('<%di' % (len(toks) // 4), toks))
        else:
            key = prompt if prompt is not None else list(toks)
        r = _Request(client, msg, time.monotonic())
        n = msg.get('n', 1) or 1
        for i in range(n):
            r.choices.append(_Choice(r, i, expected_tokens(key, max_tokens, i)))
        r.prompt_tokens = len(key.encode()) if isinstance(key, str) else len(key)
        r.error_after = 2 if prompt == '!error' else None
        self.active.append(r)

    def _output(self, r, c, new, text, finish=None):
        out = {'type': 'output', 'id': r.id, 'index': c.index, 'tokens': i32s(new), 'text': text}
        k = r.msg.get('logprobs') or 0
        if k and new:
            out['logprobs'] = f32s([-0.25 * (t % 4) for t in new])
            top = []
            for t in new:
                top += [t + j for j in range(k)]
            out['top_tokens'] = i32s(top)
            out['top_logprobs'] = f32s([-0.5 * j for j in range(k)] * len(new))
        if finish:
            now = time.monotonic()
            out['finish_reason'] = finish
            if finish == 'error':
                out['error'] = 'mock: the executor failed'
            out['usage'] = {'prompt_tokens': r.prompt_tokens, 'completion_tokens': c.sent}
            e2e = (now - r.t0) * 1000
            ttft = ((c.t_first or now) - r.t0) * 1000
            out['metrics'] = {'queue_ms': 0.1, 'ttft_ms': ttft, 'e2e_ms': e2e,
                              'tpot_ms': (e2e - ttft) / max(1, c.sent - 1)}
        self.sent_outputs += 1
        self._send(r.client, out)

    def _tick(self):
        now = time.monotonic()
        for r in list(self.active):
            for c in r.choices:
                if c.finish is not None:
                    continue
                if r.aborted:
                    c.finish = 'abort'
                    self._flush(r, c, 'abort', whole=not r.stream)
                    continue
                if r.error_after is not None and c.sent >= r.error_after:
                    c.finish = 'error'
                    self._flush(r, c, 'error', whole=not r.stream)
                    continue
                step = self.rnd.choice([0, 1, 1, 2, 3])
                lo = c.sent
                c.sent = min(len(c.tokens), c.sent + step)
                if c.sent and c.t_first is None:
                    c.t_first = now
                done = c.sent == len(c.tokens)
                if not r.stream:
                    if done:
                        c.finish = 'length'
                        self._flush(r, c, 'length', whole=True)
                    continue
                # text lags one token behind now and then (held back, as an incomplete character)
                if not (done or step or self.rnd.random() < 0.2):  # sometimes an empty output
                    continue
                lag = 1 if (not done and c.sent > c.text_sent and self.rnd.random() < 0.3) else 0
                upto = c.sent - lag
                text = ''.join(chr(t) for t in c.tokens[c.text_sent:upto]) if upto > c.text_sent else ''
                c.text_sent = max(c.text_sent, upto)
                if done:
                    c.finish = 'length'
                self._output(r, c, c.tokens[lo:c.sent], text, c.finish)
            if all(c.finish is not None for c in r.choices):
                self.active.remove(r)

    def _flush(self, r, c, finish, whole=False):
        lo = 0 if whole else c.text_sent
        text = ''.join(chr(t) for t in c.tokens[lo:c.sent])
        new = c.tokens[:c.sent] if whole else []
        if not whole:
            # tokens already sent; only the held-back text remains
            c.text_sent = c.sent
        self._output(r, c, new, text, finish)
