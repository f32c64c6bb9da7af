"""Blocking client: one ZeroMQ DEALER socket, replies demultiplexed by request id."""
import collections
import logging
import time

import zmq

from ._proto import (Assembler, IdMaker, TroupeError, TroupeTimeout, check_choice_error,
                     decode_i32s, generate_request, n_choices, pack, unpack)

DEFAULT_ENDPOINT = 'tcp://127.0.0.1:5555'
DEFAULT_TIMEOUT = 60.0
_DEFAULT = object()
log = logging.getLogger('troupe_client')


class Client:
    """A blocking client of `troupe serve`.

        with Client('tcp://127.0.0.1:5555') as c:
            r = c.generate('Once upon a time', max_tokens=32, temperature=0)
            print(r.text, r.finish_reason, r.metrics['ttft_ms'])
            for d in c.stream('Once upon a time', max_tokens=32):
                print(d.text, end='', flush=True)

    timeout: the longest wait, in seconds, for the next message of a request (a whole
    non-streamed generate, or the next delta of a stream); None waits for ever. Every
    method takes its own timeout= too. A request that times out is aborted on the server.

    Many requests may be in flight at once: stream() returns as soon as the request is
    sent, and messages for other requests that arrive while one is read are kept for them.
    A Client is **not thread-safe** (neither is its ZeroMQ socket): use one Client per
    thread, or AsyncClient for concurrency in one thread.
    """

    def __init__(self, endpoint=DEFAULT_ENDPOINT, timeout=DEFAULT_TIMEOUT, context=None):
        self.endpoint = endpoint
        self.timeout = timeout
        self._ctx = context or zmq.Context.instance()
        self._sock = self._ctx.socket(zmq.DEALER)
        self._sock.setsockopt(zmq.LINGER, 0)
        self._sock.connect(endpoint)
        self._pending = {}          # id -> deque of replies not yet read
        self._new_id = IdMaker()
        self._closed = False

    # ---- plumbing ----

    def _timeout(self, t):
        return self.timeout if t is _DEFAULT else t

    def _send(self, msg):
        if self._closed:
            raise TroupeError('closed', 'the client is closed')
        self._sock.send(pack(msg))

    def _register(self, rid):
        if rid in self._pending:
            raise ValueError('request id %r is already in flight on this client' % (rid,))
        self._pending[rid] = collections.deque()

    def _unregister(self, rid):
        self._pending.pop(rid, None)

    def _dispatch(self, frame):
        try:
            msg = unpack(frame)
        except Exception as e:  # noqa: BLE001 - a bad frame must not stop the others
            log.warning('troupe_client: undecodable reply dropped (%s)', e)
            return
        if not isinstance(msg, dict):
            log.warning('troupe_client: reply that is not a map dropped')
            return
        rid = msg.get('id')
        try:
            q = self._pending.get(rid)
        except TypeError:  # unhashable id
            q = None
        if q is None and rid is None and msg.get('type') == 'error' and len(self._pending) == 1:
            q = next(iter(self._pending.values()))  # an error the server could not tie to an id
        if q is not None:
            q.append(msg)
        # else: a late reply to a request given up on (aborted, timed out): dropped

    def _next(self, rid, timeout):
        """The next reply for rid, reading (and dispatching) the socket as needed."""
        q = self._pending[rid]
        deadline = None if timeout is None else time.monotonic() + timeout
        while not q:
            if self._closed:
                raise TroupeError('closed', 'the client is closed', None, rid)
            if deadline is None:
                wait = -1
            else:
                wait = max(0, int((deadline - time.monotonic()) * 1000 + 0.999))
            if not self._sock.poll(wait, zmq.POLLIN):
                if deadline is not None and time.monotonic() >= deadline:
                    raise TroupeTimeout('no reply to request %r within %gs' % (rid, timeout), rid)
                continue
            while True:
                try:
                    frame = self._sock.recv(zmq.NOBLOCK)
                except zmq.Again:
                    break
                self._dispatch(frame)
        return q.popleft()

    def _call(self, msg, timeout):
        rid = self._new_id()
        msg['id'] = rid
        self._register(rid)
        try:
            self._send(msg)
            r = self._next(rid, self._timeout(timeout))
        finally:
            self._unregister(rid)
        if r.get('type') == 'error':
            raise TroupeError(r.get('code', 'internal'), r.get('message', ''), r.get('field'), rid)
        return r

    # ---- requests ----

    def health(self, timeout=_DEFAULT):
        """{status: ok|degraded, uptime_s, actors: [{name, kind, process, status, latency_us}]}"""
        return self._call({'type': 'health'}, timeout)

    def stats(self, timeout=_DEFAULT):
        """{uptime_s, actors: {name: {msgs_in, ..., actor: {its own counters}}}}"""
        return self._call({'type': 'stats'}, timeout)

    def model_info(self, timeout=_DEFAULT):
        """{model, arch, dtype, n_params, vocab_size, context_length, bos_id, eos_id, device,
        kv_blocks, block_size, kv_bytes}"""
        return self._call({'type': 'model_info'}, timeout)

    def tokenize(self, text, add_special=None, timeout=_DEFAULT):
        """The token ids of text (list of int)."""
        msg = {'type': 'tokenize', 'text': text}
        if add_special is not None:
            msg['add_special'] = bool(add_special)
        return decode_i32s(self._call(msg, timeout).get('tokens'))

    def abort(self, id):  # noqa: A002 - the protocol's name
        """Ask the server to stop request `id` (idempotent, no reply). A stream of that id then
        ends with deltas whose finish_reason is "abort"."""
        self._send({'type': 'abort', 'id': id})

    def generate(self, prompt=None, tokens=None, *, id=None, timeout=_DEFAULT, extra=None,  # noqa: A002
                 **params):
        """Generate and wait for the whole answer -> Result.

        prompt (str) or tokens (list of int); params: max_tokens, temperature (0 = greedy),
        top_p, top_k, min_p, seed, stop (str or list of str), stop_token_ids, ignore_eos,
        logprobs (top logprobs per token, 0..20), n (choices), priority. extra: a dict of
        further fields sent as is. Raises TroupeError if the server refuses the request or a
        choice ends with finish_reason "error"."""
        rid = self._new_id() if id is None else id
        req = generate_request(rid, prompt, tokens, False, params, extra)
        asm = Assembler(rid, n_choices(params))
        self._register(rid)
        try:
            self._send(req)
            while not asm.done:
                d = asm.feed(self._next(rid, self._timeout(timeout)))
                err = check_choice_error(d, rid)
                if err is not None:
                    raise err
            return asm.result()
        except BaseException as e:
            refused = isinstance(e, TroupeError) and e.code not in ('timeout', 'generation')
            if not refused:  # the server may still be working on it
                self._abort_quietly(rid)
            raise
        finally:
            self._unregister(rid)

    def stream(self, prompt=None, tokens=None, *, id=None, timeout=_DEFAULT, extra=None,  # noqa: A002
               **params):
        """Send a streamed generate request and return a Stream at once: iterate it for
        Deltas (index, text, tokens, logprobs, finish_reason, ... as they come), across all
        choices. Same parameters as generate()."""
        rid = self._new_id() if id is None else id
        req = generate_request(rid, prompt, tokens, True, params, extra)
        s = Stream(self, rid, n_choices(params), self._timeout(timeout))
        self._register(rid)
        try:
            self._send(req)
        except BaseException:
            self._unregister(rid)
            raise
        return s

    def _abort_quietly(self, rid):
        try:
            self._send({'type': 'abort', 'id': rid})
        except Exception:  # noqa: BLE001 - best effort
            pass

    def close(self):
        """Close the socket; the server aborts this client's unfinished requests."""
        if not self._closed:
            self._closed = True
            self._sock.close(0)
            self._pending.clear()

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()


class Stream:
    """The deltas of one streamed generate request, an iterator. Iteration ends when every
    choice has finished. id: the request id. result(): read the rest, return the Result.
    abort(): ask the server to stop (the stream then ends with finish_reason "abort").
    close() (or leaving a `with` block, or breaking out and dropping it): stop reading, and
    abort the request if it is unfinished."""

    def __init__(self, client, rid, n, timeout):
        self._client = client
        self.id = rid
        self._asm = Assembler(rid, n)
        self._timeout = timeout
        self._closed = False

    def __iter__(self):
        return self

    def __next__(self):
        if self._closed or self._asm.done:
            self._finish()
            raise StopIteration
        try:
            d = self._asm.feed(self._client._next(self.id, self._timeout))
            err = check_choice_error(d, self.id)
            if err is not None:
                raise err
        except TroupeError as e:
            self.close(abort=e.code in ('timeout', 'generation'))
            raise
        if self._asm.done:
            self._finish()
        return d

    @property
    def done(self):
        return self._asm.done

    @property
    def choices(self):
        """The choices so far (complete once the stream ends)."""
        return self._asm.choices

    def result(self):
        for _ in self:
            pass
        return self._asm.result()

    def abort(self):
        self._client.abort(self.id)

    def _finish(self):
        if not self._closed:
            self._closed = True
            self._client._unregister(self.id)

    def close(self, abort=True):
        if not self._closed:
            if abort and not self._asm.done and not self._client._closed:
                self._client._abort_quietly(self.id)
            self._finish()

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()

    def __del__(self):
        try:
            self.close()
        except Exception:  # noqa: BLE001 - interpreter shutdown
            pass
