"""asyncio client: one zmq.asyncio DEALER socket, a reader task that hands each reply to
the asyncio.Queue of its request id."""
import asyncio
import logging

import zmq
import zmq.asyncio

from ._proto import (Assembler, IdMaker, TroupeError, TroupeTimeout, check_choice_error,
                     decode_i32s, generate_request, n_choices, pack, unpack)
from .client import DEFAULT_ENDPOINT, DEFAULT_TIMEOUT

_DEFAULT = object()
log = logging.getLogger('troupe_client')


class _Closed:
    """Put into every queue when the reader ends."""

    def __init__(self, exc):
        self.exc = exc


class AsyncClient:
    """The asyncio client; the same methods as Client, as coroutines.

        async with AsyncClient('tcp://127.0.0.1:5555') as c:
            results = await asyncio.gather(*(c.generate(p, max_tokens=32) for p in prompts))
            async for d in c.stream('Once upon a time', max_tokens=32):
                print(d.text, end='')

    Any number of requests may be in flight at once from any number of tasks: one reader
    task receives every reply and passes it to the queue of its request id. Use a client
    from the event loop it was first used in (create it inside that loop's coroutine).
    timeout: as for Client, the longest wait for the next message of a request.
    """

    def __init__(self, endpoint=DEFAULT_ENDPOINT, timeout=DEFAULT_TIMEOUT, context=None):
        self.endpoint = endpoint
        self.timeout = timeout
        self._ctx = context
        self._sock = None
        self._reader = None
        self._pending = {}           # id -> asyncio.Queue
        self._new_id = IdMaker()
        self._closed = False
        self._dead = None            # the exception that ended the reader

    # ---- plumbing ----

    def _timeout(self, t):
        return self.timeout if t is _DEFAULT else t

    def _start(self):
        if self._closed:
            raise TroupeError('closed', 'the client is closed')
        if self._dead is not None:
            raise TroupeError('closed', 'the client\'s reader ended: %s' % (self._dead,))
        if self._sock is None:
            ctx = self._ctx or zmq.asyncio.Context.instance()
            self._sock = ctx.socket(zmq.DEALER)
            self._sock.setsockopt(zmq.LINGER, 0)
            self._sock.connect(self.endpoint)
            self._reader = asyncio.get_running_loop().create_task(self._read())

    async def _read(self):
        try:
            while True:
                frame = await self._sock.recv()
                try:
                    msg = unpack(frame)
                except Exception as e:  # noqa: BLE001
                    log.warning('troupe_client: undecodable reply dropped (%s)', e)
                    continue
                if not isinstance(msg, dict):
                    continue
                rid = msg.get('id')
                try:
                    q = self._pending.get(rid)
                except TypeError:
                    q = None
                if q is None and rid is None and msg.get('type') == 'error' \
                        and len(self._pending) == 1:
                    q = next(iter(self._pending.values()))
                if q is not None:
                    q.put_nowait(msg)
        except asyncio.CancelledError:
            raise
        except Exception as e:  # noqa: BLE001 - handed to every waiting request
            if not self._closed:
                log.warning('troupe_client: reader ended: %s', e)
            self._dead = e
            for q in self._pending.values():
                q.put_nowait(_Closed(e))

    def _register(self, rid):
        if rid in self._pending:
            raise ValueError('request id %r is already in flight on this client' % (rid,))
        q = asyncio.Queue()
        self._pending[rid] = q
        return q

    def _unregister(self, rid):
        self._pending.pop(rid, None)

    async def _send(self, msg):
        self._start()
        await self._sock.send(pack(msg))

    def _send_nowait(self, msg):
        """Send without awaiting (from finally blocks and __del__): zmq.asyncio sends at once
        unless the socket would block."""
        if self._closed or self._sock is None:
            return
        try:
            f = self._sock.send(pack(msg))
            f.add_done_callback(lambda f: f.cancelled() or f.exception())
        except Exception:  # noqa: BLE001 - best effort
            pass

    async def _next(self, rid, q, timeout):
        try:
            if timeout is None:
                msg = await q.get()
            else:
                msg = await asyncio.wait_for(q.get(), timeout)
        except asyncio.TimeoutError:
            raise TroupeTimeout('no reply to request %r within %gs' % (rid, timeout), rid) from None
        if isinstance(msg, _Closed):
            raise TroupeError('closed', 'connection ended: %s' % (msg.exc,), None, rid)
        return msg

    async def _call(self, msg, timeout):
        self._start()
        rid = self._new_id()
        msg['id'] = rid
        q = self._register(rid)
        try:
            await self._send(msg)
            r = await self._next(rid, q, self._timeout(timeout))
        finally:
            self._unregister(rid)
        if r.get('type') == 'error':
            raise TroupeError(r.get('code', 'internal'), r.get('message', ''), r.get('field'), rid)
        return r

    # ---- requests ----

    async def health(self, timeout=_DEFAULT):
        return await self._call({'type': 'health'}, timeout)

    async def stats(self, timeout=_DEFAULT):
        return await self._call({'type': 'stats'}, timeout)

    async def model_info(self, timeout=_DEFAULT):
        return await self._call({'type': 'model_info'}, timeout)

    async def tokenize(self, text, add_special=None, timeout=_DEFAULT):
        msg = {'type': 'tokenize', 'text': text}
        if add_special is not None:
            msg['add_special'] = bool(add_special)
        return decode_i32s((await self._call(msg, timeout)).get('tokens'))

    async def abort(self, id):  # noqa: A002
        await self._send({'type': 'abort', 'id': id})

    async def generate(self, prompt=None, tokens=None, *, id=None, timeout=_DEFAULT,  # noqa: A002
                       extra=None, **params):
        """As Client.generate. Cancelling the task aborts the request on the server."""
        self._start()
        rid = self._new_id() if id is None else id
        req = generate_request(rid, prompt, tokens, False, params, extra)
        asm = Assembler(rid, n_choices(params))
        q = self._register(rid)
        try:
            await self._send(req)
            while not asm.done:
                d = asm.feed(await self._next(rid, q, self._timeout(timeout)))
                err = check_choice_error(d, rid)
                if err is not None:
                    raise err
            return asm.result()
        except BaseException as e:
            refused = isinstance(e, TroupeError) and e.code not in ('timeout', 'generation')
            if not refused:
                self._send_nowait({'type': 'abort', 'id': rid})
            raise
        finally:
            self._unregister(rid)

    def stream(self, prompt=None, tokens=None, *, id=None, timeout=_DEFAULT,  # noqa: A002
               extra=None, **params):
        """An AsyncStream: `async for delta in client.stream(...)`. The request is sent when
        iteration starts (or by `await s.start()`)."""
        rid = self._new_id() if id is None else id
        req = generate_request(rid, prompt, tokens, True, params, extra)
        return AsyncStream(self, rid, req, n_choices(params), self._timeout(timeout))

    async def close(self):
        """Stop the reader and close the socket; the server aborts unfinished requests."""
        if self._closed:
            return
        self._closed = True
        if self._reader is not None:
            self._reader.cancel()
            try:
                await self._reader
            except BaseException:  # noqa: BLE001 - CancelledError
                pass
        for q in self._pending.values():
            q.put_nowait(_Closed('client closed'))
        if self._sock is not None:
            self._sock.close(0)

    async def __aenter__(self):
        self._start()
        return self

    async def __aexit__(self, *exc):
        await self.close()


class AsyncStream:
    """Async iterator of the Deltas of one streamed request (see Stream)."""

    def __init__(self, client, rid, req, n, timeout):
        self._client = client
        self.id = rid
        self._req = req
        self._asm = Assembler(rid, n)
        self._timeout = timeout
        self._q = None
        self._closed = False

    async def start(self):
        """Send the request now (iteration does it otherwise)."""
        if self._q is None and not self._closed:
            self._client._start()
            self._q = self._client._register(self.id)
            try:
                await self._client._send(self._req)
            except BaseException:
                self._finish()
                raise
        return self

    def __aiter__(self):
        return self

    async def __anext__(self):
        if self._q is None:
            await self.start()
        if self._closed or self._asm.done:
            self._finish()
            raise StopAsyncIteration
        try:
            d = self._asm.feed(await self._client._next(self.id, self._q, self._timeout))
            err = check_choice_error(d, self.id)
            if err is not None:
                raise err
        except TroupeError as e:
            self._close(abort=e.code in ('timeout', 'generation'))
            raise
        except BaseException:  # cancelled
            self._close(abort=True)
            raise
        if self._asm.done:
            self._finish()
        return d

    @property
    def done(self):
        return self._asm.done

    @property
    def choices(self):
        return self._asm.choices

    async def result(self):
        async for _ in self:
            pass
        return self._asm.result()

    async def abort(self):
        await self._client.abort(self.id)

    def _finish(self):
        if not self._closed:
            self._closed = True
            if self._q is not None:
                self._client._unregister(self.id)

    def _close(self, abort):
        if not self._closed:
            if abort and self._q is not None and not self._asm.done:
                self._client._send_nowait({'type': 'abort', 'id': self.id})
            self._finish()

    async def aclose(self):
        """Stop reading; abort the request if it is unfinished."""
        self._close(abort=True)

    async def __aenter__(self):
        return await self.start()

    async def __aexit__(self, *exc):
        await self.aclose()

    def __del__(self):
        try:
            self._close(abort=True)
        except Exception:  # noqa: BLE001
            pass
