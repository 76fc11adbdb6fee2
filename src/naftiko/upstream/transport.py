"""An HTTP/1.1 transport for httpx over asyncio protocols and httptools' C parser.

Why: under load, httpx's default transport (httpcore on anyio) costs several times the
CPU per upstream call in bench/ (pool bookkeeping polls every pooled connection per
request, anyio stream attributes, h11 in pure Python). It serves both branches of
``upstream.client.send``: ``fetch`` is the fast path (bytes from ``upstream.wire``, the
whole response read in one go); ``handle_async_request`` plugs it in below
``httpx.AsyncClient`` for the general path, where auth flows, redirects and content
decoding stay httpx's. Failures are raised as the httpx exceptions ``upstream.client``
classifies.

Scope, on purpose: HTTP/1.1 only (what the engine speaks), no proxies (clients are built
with ``trust_env=False``), one request per connection at a time, idle connections kept per
origin up to ``max_idle`` and for ``keepalive_expiry_s``. A response body is read as it
arrives (reading pauses above a buffer limit, so the engine's size limit stays effective).
"""

from __future__ import annotations

import asyncio
import select
import ssl
import time
from collections import deque
from collections.abc import AsyncIterator
from typing import NamedTuple

import httpx
from httptools import HttpParserError, HttpParserUpgrade, HttpResponseParser

from naftiko.errors import ResponseTooLarge, UpstreamError
from naftiko.upstream.tls import trust_context

__all__ = [
    "DEFAULT_PORTS",
    "MAX_RESPONSE_HEAD",
    "DeadlineExceeded",
    "Http11Transport",
    "Origin",
    "RawResponse",
    "ResponseHeadTooLarge",
    "ResponseTooLarge",
    "WireRequest",
    "checked_head",
    "wire_request",
]

Origin = tuple[bytes, str, int]  # (scheme, host, port): what a pooled connection serves
DEFAULT_PORTS = {b"http": 80, b"https": 443}  # the schemes we send over, by raw scheme
_BUFFER_HIGH = 256 * 1024  # pause reading above this many unread body bytes
# Bytes of status lines and headers (interim responses included) before a response's
# body: httptools buffers a header whole, so a 50 MB header held the loop for seconds.
# 64 KiB is 4x what httpcore (h11) allowed and above what nginx accepts of a request.
MAX_RESPONSE_HEAD = 64 * 1024
# RFC 9110 §9.2.2: sending one of these twice has the effect of sending it once.
_IDEMPOTENT = frozenset({b"GET", b"HEAD", b"OPTIONS", b"TRACE", b"PUT", b"DELETE"})


class _Connection(asyncio.Protocol):
    """One keep-alive connection; parses one response at a time (a fresh parser each)."""

    def __init__(self, loop: asyncio.AbstractEventLoop) -> None:
        self._loop = loop
        self.transport: asyncio.Transport | None = None
        self._fd = -1  # the socket's, to ask it whether the peer spoke while idle
        self.closed = False
        self.idle_since = 0.0
        self._parser: HttpResponseParser | None = None
        self._waiter: asyncio.Future[None] | None = None
        self._error: Exception | None = None
        self._paused = False
        self._drain: asyncio.Future[None] | None = None
        self.status = 0
        self.headers: list[tuple[bytes, bytes]] = []
        self.headers_done = False
        self.complete = False
        self.keep_alive = False
        self.chunks: deque[bytes] = deque()
        self._buffered = 0
        self._head = False
        self._eof_framed = False
        self._interim = False
        self._head_bytes = 0

    # -- asyncio.Protocol
    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport  # type: ignore[assignment]
        sock = transport.get_extra_info("socket")
        self._fd = sock.fileno() if sock is not None else -1

    def data_received(self, data: bytes) -> None:
        parser = self._parser
        if parser is None:  # bytes while idle: the server broke the protocol
            self.close()
            return
        if not self.headers_done:
            room = MAX_RESPONSE_HEAD - self._head_bytes
            if len(data) > room:  # the head may end inside the allowed part: parse that
                head, data = data[:room], data[room:]
                self._feed(parser, head)
                if not self.headers_done:
                    self._fail(ResponseHeadTooLarge(MAX_RESPONSE_HEAD))
                    return
            else:
                self._head_bytes += len(data)
        self._feed(parser, data)

    def _feed(self, parser: HttpResponseParser, data: bytes) -> None:
        if self._error is not None:
            return
        try:
            parser.feed_data(data)
        except HttpParserUpgrade:
            self._fail(httpx.RemoteProtocolError("protocol upgrade is not supported"))
        except HttpParserError as exc:
            self._fail(httpx.RemoteProtocolError(f"malformed response ({type(exc).__name__})"))

    def eof_received(self) -> bool:
        return False  # close our side too; connection_lost follows

    def connection_lost(self, exc: Exception | None) -> None:
        self.closed = True
        if self._parser is None or self.complete:
            return
        if self._eof_framed and self.headers_done and exc is None:
            self.keep_alive = False
            self.on_message_complete()
        elif exc is not None:
            self._fail(httpx.ReadError("connection lost"))
        elif not self.headers_done and self.status == 0:
            self._fail(httpx.RemoteProtocolError("Server disconnected without sending a response."))
        else:
            self._fail(httpx.RemoteProtocolError("incomplete response (connection closed)"))
        self._wake_drain()

    def pause_writing(self) -> None:
        self._drain = self._loop.create_future()

    def resume_writing(self) -> None:
        self._wake_drain()

    # -- httptools callbacks
    def on_message_begin(self) -> None:
        if self.complete:  # a byte of another message after ours: never reuse this one
            self.keep_alive = False

    def on_status(self, status: bytes) -> None:
        if self.complete:  # another message's (on_message_begin has marked the connection)
            return
        assert self._parser is not None
        self.status = self._parser.get_status_code()

    def on_header(self, name: bytes, value: bytes) -> None:
        if not self.complete:
            self.headers.append((name, value))

    def on_headers_complete(self) -> None:
        if self.complete:
            return
        assert self._parser is not None
        status = self._parser.get_status_code()
        if 100 <= status < 200:  # interim (103 Early Hints...): the real answer follows
            self.headers = []
            self._interim = True
            return
        self.status = status
        self.headers_done = True
        if self._head or status in (204, 304):
            self.keep_alive = self._parser.should_keep_alive() and not self._head
            self.on_message_complete()
            return
        names = {name.lower() for name, _ in self.headers}
        self._eof_framed = b"content-length" not in names and b"transfer-encoding" not in names
        self._wake()

    def on_body(self, body: bytes) -> None:
        if self.complete:
            return
        self.chunks.append(body)
        self._buffered += len(body)
        if self._buffered > _BUFFER_HIGH and not self._paused and self.transport is not None:
            self._paused = True
            self.transport.pause_reading()
        self._wake()

    def on_message_complete(self) -> None:
        if self._interim:  # the end of an interim response, not of ours
            self._interim = False
            return
        if self.complete:
            return
        if self._parser is not None and not self._eof_framed and not self._head:
            self.keep_alive = self._parser.should_keep_alive()
        self.complete = True
        self._wake()

    # -- used by the transport
    def start(self, head: bool) -> None:
        """Prepare to parse the response to the request about to be written."""
        self._parser = HttpResponseParser(self)
        self.status = 0
        self.headers = []
        self.headers_done = self.complete = self.keep_alive = False
        self._eof_framed = self._interim = False
        self._head_bytes = 0
        self.chunks.clear()
        self._buffered = 0
        self._head = head
        self._error = None

    def finish(self) -> None:
        """The exchange is over; the connection is idle (or closed) from now on."""
        self._parser = None
        self.idle_since = time.monotonic()

    def write(self, data: bytes) -> None:
        assert self.transport is not None
        self.transport.write(data)

    async def drained(self, timeout: float | None, deadline: float | None = None) -> None:
        if self._drain is not None and not self.closed:
            await self._wait(self._drain, timeout, httpx.WriteTimeout, deadline)

    async def wait(self, timeout: float | None, deadline: float | None = None) -> None:
        """Until more of the response is known (headers, a chunk, the end, a failure)."""
        if self._error is not None:
            raise self._error
        self._waiter = self._loop.create_future()
        try:
            await self._wait(self._waiter, timeout, httpx.ReadTimeout, deadline)
        finally:
            self._waiter = None
        if self._error is not None:
            raise self._error

    def take(self) -> bytes:
        chunk = self.chunks.popleft()
        self._buffered -= len(chunk)
        if self._paused and self._buffered <= _BUFFER_HIGH // 4 and self.transport is not None:
            self._paused = False
            self.transport.resume_reading()
        return chunk

    def close(self) -> None:
        self.closed = True
        if self.transport is not None:
            self.transport.close()

    def stale(self) -> bool:
        """Whether this idle connection can no longer carry a request.

        A peer that closes right after its answer (without ``Connection: close``) or at its
        keep-alive timeout sends a FIN the event loop may not have read yet, when the next
        request follows at once; so the socket itself is asked, as httpcore does: an idle
        connection with anything to read (an EOF, or bytes nobody asked for) is done.
        """
        if self.closed:
            return True
        if self._fd < 0:
            return False
        try:
            readable, _, _ = select.select((self._fd,), (), (), 0)
        except (OSError, ValueError):
            return True
        return bool(readable)

    async def _wait(
        self,
        future: asyncio.Future[None],
        timeout: float | None,
        error: type[Exception],
        deadline: float | None,
    ) -> None:
        timeout, error = _bounded(self._loop, timeout, error, deadline)
        if timeout is None:
            await future
            return
        handle = self._loop.call_later(timeout, _expire, future)
        try:
            await future
        except TimeoutError:
            raise error("timed out") from None
        finally:
            handle.cancel()

    def _wake(self) -> None:
        waiter = self._waiter
        if waiter is not None and not waiter.done():
            waiter.set_result(None)

    def _wake_drain(self) -> None:
        drain, self._drain = self._drain, None
        if drain is not None and not drain.done():
            drain.set_result(None)

    def _fail(self, error: Exception) -> None:
        if self._error is None:
            self._error = error
        self.close()
        self._wake()


def _bounded(
    loop: asyncio.AbstractEventLoop,
    timeout: float | None,
    error: type[Exception],
    deadline: float | None,
) -> tuple[float | None, type[Exception]]:
    """The wait to arm: the phase's own timeout, or what is left before ``deadline``."""
    if deadline is None:
        return timeout, error
    left = max(deadline - loop.time(), 0.0)
    if timeout is None or left < timeout:
        return left, DeadlineExceeded
    return timeout, error


class DeadlineExceeded(TimeoutError, UpstreamError):
    """The whole exchange ran past its deadline (``WireRequest.deadline``)."""


def _expire(future: asyncio.Future[None]) -> None:
    if not future.done():
        future.set_exception(TimeoutError())


class WireRequest(NamedTuple):
    """A request as it goes on the wire: where to, the head bytes and the body bytes."""

    origin: Origin  # (scheme, host, port)
    head: bytes  # request line and headers, ending with the empty line
    body: bytes  # already framed (chunked when the head says so)
    head_only: bool  # a HEAD request: the response has no body whatever it declares
    timeouts: dict[str, float | None]  # httpx's per-phase names: pool, connect, write, read
    # ``loop.time()`` by which the whole response must be in (DeadlineExceeded), or None.
    # Cheaper than wrapping the call in ``asyncio.timeout``: each wait arms one timer anyway.
    deadline: float | None = None


class RawResponse(NamedTuple):
    """A response read whole by :meth:`Http11Transport.fetch` (headers as received)."""

    status: int
    headers: list[tuple[bytes, bytes]]
    content: bytes


class ResponseHeadTooLarge(httpx.RemoteProtocolError, UpstreamError):
    """The response's status lines and headers exceed :data:`MAX_RESPONSE_HEAD` bytes."""

    def __init__(self, limit: int) -> None:
        super().__init__(f"response headers larger than {limit} bytes")
        self.limit = limit


class _Body(httpx.AsyncByteStream):
    """The response body as it arrives; closing it returns the connection to the pool."""

    def __init__(
        self, pool: Http11Transport, origin: Origin, conn: _Connection, read: float | None
    ) -> None:
        self._pool = pool
        self._origin = origin
        self._conn = conn
        self._read = read
        self._closed = False

    async def __aiter__(self) -> AsyncIterator[bytes]:
        conn = self._conn
        while True:
            if conn.chunks:
                yield conn.take()
            elif conn.complete:
                return
            else:
                await conn.wait(self._read)

    async def aclose(self) -> None:
        if not self._closed:
            self._closed = True
            self._pool._release(self._origin, self._conn)


class Http11Transport(httpx.AsyncBaseTransport):
    """Keep-alive HTTP/1.1 to any number of origins, at most ``max_connections`` open.

    The ``timeout`` extension httpx puts on every request is honoured per phase: pool
    (waiting for a free slot), connect (TCP and TLS), write (flushing the request) and
    read (each wait for response bytes).
    """

    def __init__(
        self,
        *,
        max_connections: int = 100,
        max_idle: int = 100,
        keepalive_expiry_s: float = 4.0,  # under the 5 s servers commonly allow
        ssl_context: ssl.SSLContext | None = None,
    ) -> None:
        self._max_connections = max_connections
        self._max_idle = max_idle
        self._expiry = keepalive_expiry_s
        self._ssl = ssl_context
        self._idle: dict[Origin, list[_Connection]] = {}
        self._idle_count = 0
        self._open = 0
        self._slots: asyncio.Semaphore | None = None
        self._closed = False

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        origin, conn, read = await self._exchange(await wire_request(request))
        return httpx.Response(
            conn.status,
            headers=conn.headers,
            stream=_Body(self, origin, conn, read),
            extensions={"http_version": b"HTTP/1.1"},
        )

    async def fetch(
        self, wire: WireRequest, *, limit: int, read_redirects: bool = True
    ) -> RawResponse:
        """The whole response to ``wire``, read in one go: ``upstream.client``'s fast path.

        Why: the same exchange through ``httpx.AsyncClient.send`` and an
        ``httpx.Response`` stream costs several times the CPU per call (bench/). The body
        is cut at ``limit`` bytes (:class:`ResponseTooLarge`, checked against
        ``Content-Length`` first); with ``read_redirects`` false a 3xx other than 304 is
        returned without its body, and its connection is closed. Errors are the httpx
        exceptions ``handle_async_request`` raises. The body is not decoded: a caller
        that gets a ``Content-Encoding`` decodes it.
        """
        origin, conn, read = await self._exchange(wire)
        try:
            status = conn.status
            if not read_redirects and 300 <= status < 400 and status != 304:
                return RawResponse(status, conn.headers, b"")
            for name, value in conn.headers:
                declared = len(name) == 14 and name.lower() == b"content-length"
                if declared and value.strip().isdigit() and int(value) > limit:
                    raise ResponseTooLarge(limit, status)
            chunks: list[bytes] = []
            size = 0
            while True:
                if conn.chunks:
                    chunk = conn.take()
                    size += len(chunk)
                    if size > limit:
                        raise ResponseTooLarge(limit, status)
                    chunks.append(chunk)
                elif conn.complete:
                    break
                else:
                    await conn.wait(read, wire.deadline)
            return RawResponse(status, conn.headers, b"".join(chunks))
        finally:
            self._release(origin, conn)  # an incomplete exchange closes its connection

    async def _exchange(self, wire: WireRequest) -> tuple[Origin, _Connection, float | None]:
        """Write ``wire`` on a pooled connection and wait for the response head."""
        if self._closed:
            raise RuntimeError("the transport is closed")
        origin, timeouts, deadline = wire.origin, wire.timeouts, wire.deadline
        await self._acquire(timeouts.get("pool"), deadline)
        conn: _Connection | None = None
        try:
            conn = self._take_idle(origin)
            if conn is not None:
                try:
                    return origin, conn, await self._send(conn, wire)
                except (httpx.RemoteProtocolError, httpx.ReadError) as exc:
                    # The peer closed the kept-alive connection as the request went out,
                    # before a byte of answer: most likely it never processed it, but it
                    # may have. Replayed once, on a fresh connection, only when sending it
                    # twice does no harm (a POST is not). A head too large is an answer.
                    answered = conn.status or isinstance(exc, ResponseHeadTooLarge)
                    if answered or wire.head.split(b" ", 1)[0] not in _IDEMPOTENT:
                        raise
                    conn.close()
                    self._forget(conn)
                    conn = None
            conn = await self._connect(origin, timeouts.get("connect"), deadline)
            return origin, conn, await self._send(conn, wire)
        except BaseException:
            if conn is not None:
                conn.close()
                self._forget(conn)
            self._release_slot()
            raise

    @staticmethod
    async def _send(conn: _Connection, wire: WireRequest) -> float | None:
        """Write ``wire`` on ``conn`` and wait for the response head; the read timeout."""
        timeouts, deadline = wire.timeouts, wire.deadline
        conn.start(head=wire.head_only)
        conn.write(wire.head + wire.body)
        await conn.drained(timeouts.get("write"), deadline)
        read = timeouts.get("read")
        while not conn.headers_done:
            await conn.wait(read, deadline)
        return read

    async def aclose(self) -> None:
        self._closed = True
        for conns in self._idle.values():
            for conn in conns:
                conn.close()
                self._open -= 1
        self._idle.clear()
        self._idle_count = 0

    # -- pool
    async def _acquire(self, timeout: float | None, deadline: float | None = None) -> None:
        if self._slots is None:
            self._slots = asyncio.Semaphore(self._max_connections)
        if not self._slots.locked():
            await self._slots.acquire()  # free slot: no suspension, no timer
            return
        timeout, error = _bounded(asyncio.get_running_loop(), timeout, httpx.PoolTimeout, deadline)
        try:
            async with asyncio.timeout(timeout):
                await self._slots.acquire()
        except TimeoutError:
            raise error("no free connection in the pool") from None

    def _release_slot(self) -> None:
        assert self._slots is not None
        self._slots.release()

    def _take_idle(self, origin: Origin) -> _Connection | None:
        conns = self._idle.get(origin)
        now = time.monotonic()
        while conns:
            conn = conns.pop()  # most recently used first: warmest, least likely expired
            self._idle_count -= 1
            if now - conn.idle_since < self._expiry and not conn.stale():
                return conn
            conn.close()
            self._open -= 1
        return None

    async def _connect(
        self, origin: Origin, timeout: float | None, deadline: float | None = None
    ) -> _Connection:
        if self._open >= self._max_connections:
            self._evict_one()
        scheme, host, port = origin
        loop = asyncio.get_running_loop()
        timeout, error = _bounded(loop, timeout, httpx.ConnectTimeout, deadline)
        context = self._ssl_context() if scheme == b"https" else None
        try:
            async with asyncio.timeout(timeout):
                _, conn = await loop.create_connection(
                    lambda: _Connection(loop),
                    host,
                    port,
                    ssl=context,
                    server_hostname=host if context is not None else None,
                )
        except TimeoutError:
            raise error("connect timed out") from None
        except (OSError, ssl.SSLError) as exc:
            raise httpx.ConnectError(f"connect failed ({type(exc).__name__})") from None
        self._open += 1
        return conn

    def _evict_one(self) -> None:
        """At the connection limit with a free slot, some origin holds an idle one: drop it."""
        for conns in self._idle.values():
            if conns:
                conns.pop(0).close()
                self._idle_count -= 1
                self._open -= 1
                return

    def _release(self, origin: Origin, conn: _Connection) -> None:
        conn.finish()
        reusable = conn.complete and conn.keep_alive and not conn.closed and not self._closed
        if reusable and self._idle_count < self._max_idle:
            self._idle.setdefault(origin, []).append(conn)
            self._idle_count += 1
        else:
            conn.close()
            self._open -= 1
        self._release_slot()

    def _forget(self, conn: _Connection) -> None:
        self._open -= 1

    def _ssl_context(self) -> ssl.SSLContext:
        if self._ssl is None:  # built on first use: loading the CA bundle takes a while
            self._ssl = trust_context()
        return self._ssl


async def wire_request(request: httpx.Request) -> WireRequest:
    """The bytes httpx's ``request`` stands for (its ``timeout`` extension included)."""
    url = request.url
    scheme = url.raw_scheme
    port = DEFAULT_PORTS.get(scheme)
    if port is None:
        raise httpx.UnsupportedProtocol("the URL has no supported scheme", request=request)
    origin: Origin = (scheme, url.raw_host.decode("ascii"), url.port or port)
    raw = request.headers.raw
    head = checked_head(
        b"".join(
            [b"%b %b HTTP/1.1\r\n" % (request.method.encode("ascii"), url.raw_path)]
            + [b"%b: %b\r\n" % (name, value) for name, value in raw]
            + [b"\r\n"]
        ),
        len(raw),
    )
    body = await request.aread()
    if request.headers.get("transfer-encoding", "").lower() == "chunked":
        body = (b"%x\r\n%b\r\n0\r\n\r\n" % (len(body), body)) if body else b"0\r\n\r\n"
    timeouts: dict[str, float | None] = request.extensions.get("timeout", {})
    return WireRequest(origin, head, body, request.method == "HEAD", timeouts)


def checked_head(head: bytes, header_count: int) -> bytes:
    """``head`` when no CR, LF or NUL sits inside its request line or a header.

    Each line we write ends in exactly one CR LF, so any other CR or LF shows up in the
    counts: one check over the whole head instead of one per header.
    """
    lines = header_count + 2
    if head.count(b"\n") != lines or head.count(b"\r") != lines or b"\0" in head:
        raise httpx.LocalProtocolError("illegal character in the request line or a header")
    return head
