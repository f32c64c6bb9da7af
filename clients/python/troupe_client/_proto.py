"""Wire helpers shared by Client and AsyncClient: encoding requests, decoding outputs,
and assembling a generate request's outputs into deltas and a Result.

Nothing here does I/O.
"""
import itertools
import os
import struct

import msgpack

# generate's fields (transport/msgs.def), other than id/prompt/tokens/stream.
GENERATE_PARAMS = frozenset([
    'max_tokens', 'temperature', 'top_p', 'top_k', 'min_p', 'seed', 'stop', 'stop_token_ids',
    'ignore_eos', 'logprobs', 'n', 'priority',
])


class TroupeError(Exception):
    """The server refused or failed a request.

    code: bad_request | unknown_type | too_large | unsupported_version | unavailable | busy |
          timeout | internal (from the server's `error` reply), or "generation" for a choice
          that ended with finish_reason "error", or "closed" when the client was closed.
    message: the server's text. field: the offending request field, when one is at fault.
    id: the request id the error refers to.
    """

    def __init__(self, code, message, field=None, id=None):  # noqa: A002 - the protocol's name
        super().__init__('%s: %s' % (code, message))
        self.code = code
        self.message = message
        self.field = field
        self.id = id

    def __repr__(self):
        return 'TroupeError(code=%r, message=%r, field=%r)' % (self.code, self.message, self.field)


class TroupeTimeout(TroupeError, TimeoutError):
    """No reply from the server within the client's timeout (code "timeout")."""

    def __init__(self, message, id=None):  # noqa: A002
        TroupeError.__init__(self, 'timeout', message, None, id)


def pack(obj):
    return msgpack.packb(obj, use_bin_type=True)


def unpack(frame):
    return msgpack.unpackb(frame, raw=False, strict_map_key=False)


def decode_i32s(v):
    """Token ids: msgpack bin of int32 LE, or an array of ints -> list of int."""
    if v is None:
        return []
    if isinstance(v, (bytes, bytearray, memoryview)):
        b = bytes(v)
        if len(b) % 4:
            raise ValueError('token bin of %d bytes is not a multiple of 4' % len(b))
        return list(struct.unpack('<%di' % (len(b) // 4), b))
    return list(v)


def decode_f32s(v):
    """Floats: msgpack bin of float32 LE, or an array of numbers -> list of float."""
    if v is None:
        return []
    if isinstance(v, (bytes, bytearray, memoryview)):
        b = bytes(v)
        if len(b) % 4:
            raise ValueError('float bin of %d bytes is not a multiple of 4' % len(b))
        return list(struct.unpack('<%df' % (len(b) // 4), b))
    return [float(x) for x in v]


def encode_tokens(tokens):
    """A list of ints as bin int32 LE; anything else is sent as given (the server checks it)."""
    if isinstance(tokens, (bytes, bytearray)):
        return bytes(tokens)
    try:
        seq = list(tokens)
    except TypeError:
        return tokens
    if all(type(t) is int and -2**31 <= t < 2**31 for t in seq):
        return struct.pack('<%di' % len(seq), *seq)
    return seq


class IdMaker:
    """Request ids unique to one client: "<8 random hex>-<counter>"."""

    def __init__(self):
        self.prefix = os.urandom(4).hex()
        self.counter = itertools.count(1)

    def __call__(self):
        return '%s-%d' % (self.prefix, next(self.counter))


def generate_request(rid, prompt, tokens, stream, params, extra=None):
    """The `generate` map. params are checked against the protocol's field names (a typo
    raises TypeError here rather than being ignored by the server); extra is passed as is."""
    unknown = set(params) - GENERATE_PARAMS
    if unknown:
        raise TypeError('unknown generate parameter(s): %s (known: %s)' % (
            ', '.join(sorted(unknown)), ', '.join(sorted(GENERATE_PARAMS))))
    if prompt is None and tokens is None:
        raise TypeError('generate needs prompt= or tokens=')
    req = {'type': 'generate', 'id': rid, 'stream': bool(stream)}
    if prompt is not None:
        req['prompt'] = prompt
    if tokens is not None:
        req['tokens'] = encode_tokens(tokens)
    for k, v in params.items():
        if v is None:
            continue
        if k == 'stop' and isinstance(v, str):
            v = [v]
        elif k == 'stop_token_ids':
            v = encode_tokens(v)
        req[k] = v
    if extra:
        req.update(extra)
    return req


def n_choices(params):
    n = params.get('n')
    return n if isinstance(n, int) and not isinstance(n, bool) and n > 1 else 1


class Delta:
    """One `output` message of a generate request: what choice `index` produced since its
    previous output. finish_reason (and usage, metrics, stop_reason) only on the last one."""

    __slots__ = ('id', 'index', 'text', 'tokens', 'logprobs', 'top_logprobs', 'finish_reason',
                 'stop_reason', 'error', 'usage', 'metrics', 'raw')

    def __init__(self, msg):
        self.raw = msg
        self.id = msg.get('id')
        self.index = msg.get('index', 0)
        self.text = msg.get('text') or ''
        self.tokens = decode_i32s(msg.get('tokens'))
        lp = msg.get('logprobs')
        self.logprobs = decode_f32s(lp) if lp is not None else None
        self.top_logprobs = None
        if msg.get('top_tokens') is not None and self.tokens:
            ids = decode_i32s(msg.get('top_tokens'))
            vals = decode_f32s(msg.get('top_logprobs'))
            k = len(ids) // len(self.tokens) if self.tokens else 0
            if k and len(vals) == len(ids):
                self.top_logprobs = [list(zip(ids[i * k:(i + 1) * k], vals[i * k:(i + 1) * k]))
                                     for i in range(len(self.tokens))]
        self.finish_reason = msg.get('finish_reason')
        self.stop_reason = msg.get('stop_reason')
        self.error = msg.get('error')
        self.usage = msg.get('usage')
        self.metrics = msg.get('metrics')

    @property
    def finished(self):
        return self.finish_reason is not None

    def __repr__(self):
        s = 'Delta(id=%r, index=%d, text=%r, tokens=%r' % (self.id, self.index, self.text, self.tokens)
        if self.finish_reason:
            s += ', finish_reason=%r' % self.finish_reason
        return s + ')'


class Choice:
    """One choice of a generate request: its deltas concatenated (complete once
    finish_reason is set)."""

    __slots__ = ('index', 'tokens', 'logprobs', 'top_logprobs', 'finish_reason', 'stop_reason',
                 'error', 'usage', 'metrics', '_parts')

    def __init__(self, index):
        self.index = index
        self._parts = []
        self.tokens = []
        self.logprobs = None
        self.top_logprobs = None
        self.finish_reason = None
        self.stop_reason = None
        self.error = None
        self.usage = None
        self.metrics = None

    @property
    def text(self):
        if len(self._parts) > 1:
            self._parts = [''.join(self._parts)]
        return self._parts[0] if self._parts else ''

    def add(self, d):
        if d.text:
            self._parts.append(d.text)
        self.tokens.extend(d.tokens)
        if d.logprobs is not None:
            self.logprobs = (self.logprobs or []) + d.logprobs
        if d.top_logprobs is not None:
            self.top_logprobs = (self.top_logprobs or []) + d.top_logprobs
        if d.finish_reason is not None:
            self.finish_reason = d.finish_reason
            self.stop_reason = d.stop_reason
            self.error = d.error
            self.usage = d.usage
            self.metrics = d.metrics
        return self

    def __repr__(self):
        return 'Choice(index=%d, text=%r, finish_reason=%r)' % (self.index, self.text, self.finish_reason)


class Result:
    """A finished generate request. text, tokens, finish_reason, stop_reason, logprobs,
    top_logprobs, metrics are choice 0's; choices holds every choice (n > 1); usage adds the
    completion tokens of every choice: {prompt_tokens, completion_tokens}."""

    def __init__(self, rid, choices):
        self.id = rid
        self.choices = choices
        c0 = choices[0]
        self.text = c0.text
        self.tokens = c0.tokens
        self.finish_reason = c0.finish_reason
        self.stop_reason = c0.stop_reason
        self.logprobs = c0.logprobs
        self.top_logprobs = c0.top_logprobs
        self.metrics = c0.metrics or {}
        usage = {}
        for c in choices:
            u = c.usage or {}
            if 'prompt_tokens' in u:
                usage.setdefault('prompt_tokens', u['prompt_tokens'])
            usage['completion_tokens'] = usage.get('completion_tokens', 0) + u.get(
                'completion_tokens', len(c.tokens))
        self.usage = usage

    @property
    def ttft_ms(self):
        return self.metrics.get('ttft_ms')

    @property
    def tpot_ms(self):
        return self.metrics.get('tpot_ms')

    def __repr__(self):
        return 'Result(id=%r, text=%r, finish_reason=%r, n=%d)' % (
            self.id, self.text, self.finish_reason, len(self.choices))


class Assembler:
    """Collects the outputs of one generate request (n choices) into Choices."""

    def __init__(self, rid, n):
        self.rid = rid
        self.n = n
        self.choices = [Choice(i) for i in range(n)]
        self.open = n

    def feed(self, msg):
        """One reply for this request -> a Delta; raises TroupeError for an `error` reply."""
        t = msg.get('type')
        if t == 'error':
            self.open = 0
            raise TroupeError(msg.get('code', 'internal'), msg.get('message', ''), msg.get('field'),
                              msg.get('id', self.rid))
        if t != 'output':
            raise TroupeError('internal', 'unexpected %r reply to generate' % (t,), None, self.rid)
        d = Delta(msg)
        i = d.index
        if not isinstance(i, int) or i < 0:
            raise TroupeError('internal', 'output with bad index %r' % (i,), None, self.rid)
        while i >= len(self.choices):  # more choices than asked for: keep them all
            self.choices.append(Choice(len(self.choices)))
            self.open += 1
        c = self.choices[i]
        was_open = c.finish_reason is None
        c.add(d)
        if d.finish_reason is not None and was_open:
            self.open -= 1
        return d

    @property
    def done(self):
        return self.open <= 0

    def result(self):
        return Result(self.rid, self.choices)


def check_choice_error(d, rid):
    if d.finish_reason == 'error':
        return TroupeError('generation', d.error or 'generation failed', None, rid)
    return None

