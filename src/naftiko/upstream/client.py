"""Upstream client: the pooled connections of each consumed API and the one ``send`` to them.

``send`` has two branches. The fast path writes a request ``wire_of`` can write (no
multi-step auth, no redirects to follow) straight on our ``Http11Transport``. The
general path (multipart, unusual URLs, digest or OAuth2 auth, an API key in a cookie,
redirects followed, a test transport) goes through ``httpx.AsyncClient.send`` over the
same pooled transport. Both put the same bytes on the wire (tests/engine/test_wire.py).

One client and transport per consumes namespace keeps connection pools (and their
limits) apart, so one slow upstream cannot starve another. Besides httpx's per-phase
timeouts, ``UpstreamSettings.total_timeout_s`` bounds the whole exchange. An unfollowed
redirect is a bad upstream response: its body is never read and its ``Location`` never
shown. One client serves every caller, so it keeps no cookie.

Every failure becomes a :class:`~naftiko.errors.Problem` whose text we write
ourselves: httpx exception messages can hold the full URL, and URLs can hold API keys.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable, Iterable, Mapping
from dataclasses import dataclass
from http.cookiejar import Cookie, CookieJar, DefaultCookiePolicy

import httpx

from naftiko import tracing
from naftiko.errors import ErrorKind, Problem, ResponseTooLarge, UpstreamError
from naftiko.media_types import essence
from naftiko.observability import get_observer
from naftiko.upstream.decoding import (
    CODINGS_EXTENSION,
    BodyDecoder,
    LimitedStream,
    TooManyCodings,
    read_limited,
)
from naftiko.upstream.outbound_auth import OutboundAuthError
from naftiko.upstream.request import UpstreamRequest
from naftiko.upstream.settings import UpstreamSettings
from naftiko.upstream.transport import Http11Transport, ResponseHeadTooLarge, WireRequest
from naftiko.upstream.wire import ResponseHeaders, wire_of

__all__ = ["Upstream", "UpstreamClients", "UpstreamResponse", "send"]


# Made on every request: not ``frozen`` (its ``__init__`` would set each field through
# ``object.__setattr__``, ~5x the cost). Never mutated after construction.
@dataclass(slots=True)
class UpstreamResponse:
    """A complete upstream answer, body read into memory (within the size limit)."""

    status: int
    headers: Mapping[str, str]  # case-insensitive; repeated headers joined with ", "
    content: bytes

    @property
    def media_type(self) -> str | None:
        """The Content-Type without parameters, lower-cased; None when absent."""
        raw = self.headers.get("content-type")
        if not raw:
            return None
        return essence(raw) or None

    @property
    def content_type(self) -> str | None:
        """The Content-Type as sent (with charset), for passthrough bodies."""
        return self.headers.get("content-type")


class Upstream:
    """The client of one consumes namespace, and our transport under it (the fast path).

    ``direct`` is None when a test double stands in for our transport
    (``UpstreamSettings.transport``): every call then goes through ``client``.
    """

    __slots__ = ("client", "direct")

    def __init__(self, client: httpx.AsyncClient, direct: Http11Transport | None) -> None:
        self.client = client
        self.direct = direct


class UpstreamClients:
    """The pooled clients of one engine, keyed by consumes namespace, created lazily."""

    def __init__(self, settings: UpstreamSettings) -> None:
        self._settings = settings
        self._clients: dict[str, Upstream] = {}

    def start(self, namespaces: Iterable[str]) -> None:
        """Create the clients now (the runtime calls this before serving)."""
        for namespace in namespaces:
            self.get(namespace)

    def get(self, namespace: str) -> Upstream:
        upstream = self._clients.get(namespace)
        if upstream is None or upstream.client.is_closed:
            upstream = self._make()
            self._clients[namespace] = upstream
        return upstream

    def _make(self) -> Upstream:
        s = self._settings
        timeout = httpx.Timeout(
            connect=s.connect_timeout_s,
            read=s.read_timeout_s,
            write=s.read_timeout_s,
            pool=s.connect_timeout_s,
        )
        if s.transport is not None:
            transport = s.transport()
        else:
            # Our own HTTP/1.1 transport: httpcore costs several times more CPU per call
            # (see its module). Every pooled connection may stay idle: closing the ones
            # above a smaller keep-alive cap made each burst reconnect.
            transport = Http11Transport(
                max_connections=s.max_connections, max_idle=s.max_connections
            )
        client = _Client(
            timeout=timeout,
            transport=transport,
            follow_redirects=s.follow_redirects,
            headers={"User-Agent": s.user_agent},
            # Proxies from the environment would silently re-route upstream calls.
            trust_env=False,
            # One client serves every caller: a cookie set for one must never reach another.
            cookies=_NoCookies(),
            event_hooks={"response": [_bounded_by(s.max_response_bytes)]},
        )
        return Upstream(client, transport if isinstance(transport, Http11Transport) else None)

    async def aclose(self) -> None:
        upstreams, self._clients = list(self._clients.values()), {}
        for upstream in upstreams:
            await upstream.client.aclose()

    def __len__(self) -> int:
        return len(self._clients)


class _NoCookies(CookieJar):
    """A cookie jar that keeps nothing: ``Set-Cookie`` is never read, nothing is stored,
    so no request ever carries a cookie. (Its policy refuses every domain as well.)"""

    def __init__(self) -> None:
        super().__init__(DefaultCookiePolicy(allowed_domains=[]))

    def extract_cookies(self, response: object, request: object) -> None:
        return None

    def set_cookie(self, cookie: Cookie) -> None:
        return None


class _RefusedCookies(httpx.Cookies):
    """httpx's cookie store over :class:`_NoCookies`, which skips reading a response at
    all: httpx would wrap each response and its request in urllib objects only to have
    the jar ignore them, a tenth of the general path's CPU."""

    def extract_cookies(self, response: httpx.Response) -> None:
        return None


_NO_COOKIES = _RefusedCookies(_NoCookies())


class _Client(httpx.AsyncClient):
    """httpx's client whose cookie store (the public ``cookies`` property) is
    :data:`_NO_COOKIES`. Should httpx stop reading cookies through that property, the
    jar it was given (``cookies=_NoCookies()``) still stores nothing."""

    @property  # type: ignore[override]
    def cookies(self) -> httpx.Cookies:
        return _NO_COOKIES


def _bounded_by(limit: int) -> Callable[[httpx.Response], Awaitable[None]]:
    """A response hook: every response httpx receives (redirects it follows and the 401
    an auth flow answers included, whose bodies httpx reads itself) is cut at ``limit``
    bytes, and its Content-Encoding is taken away from httpx's decoders, which inflate a
    whole chunk before anything can count it. ``read_limited`` decodes it, bounded."""

    async def hook(response: httpx.Response) -> None:
        codings = response.headers.get("content-encoding")
        if codings is not None:
            del response.headers["content-encoding"]
            response.extensions = {**response.extensions, CODINGS_EXTENSION: codings}
        if not response.is_stream_consumed and isinstance(response.stream, httpx.AsyncByteStream):
            response.stream = LimitedStream(response.stream, limit, response.status_code)

    return hook


def _classify(exc: Exception, settings: UpstreamSettings) -> tuple[ErrorKind, str]:
    """Our own words for an httpx failure (never ``str(exc)``: it may hold the URL)."""
    if isinstance(exc, ResponseHeadTooLarge):  # its message is ours: the limit only
        return ErrorKind.BAD_UPSTREAM_RESPONSE, str(exc)
    if isinstance(exc, httpx.ConnectTimeout):
        return ErrorKind.TIMEOUT, f"no connection within {settings.connect_timeout_s:g}s"
    if isinstance(exc, httpx.ReadTimeout):
        return ErrorKind.TIMEOUT, f"no response within {settings.read_timeout_s:g}s"
    if isinstance(exc, httpx.WriteTimeout):
        return ErrorKind.TIMEOUT, f"request not sent within {settings.read_timeout_s:g}s"
    if isinstance(exc, httpx.PoolTimeout):
        return ErrorKind.TIMEOUT, "no free connection in the pool"
    if isinstance(exc, httpx.TimeoutException):
        return ErrorKind.TIMEOUT, "timed out"
    if isinstance(exc, httpx.ConnectError):
        return ErrorKind.UNREACHABLE, "connection failed (refused, reset or name not resolved)"
    if isinstance(exc, httpx.RemoteProtocolError):
        return ErrorKind.UNREACHABLE, "the upstream closed the connection or broke the protocol"
    if isinstance(exc, httpx.ReadError):
        return ErrorKind.UNREACHABLE, "reading the response failed"
    if isinstance(exc, httpx.WriteError):
        return ErrorKind.UNREACHABLE, "sending the request failed"
    if isinstance(exc, httpx.UnsupportedProtocol):
        return ErrorKind.UNREACHABLE, "the base URI has no supported scheme (http or https)"
    if isinstance(exc, httpx.DecodingError):
        return ErrorKind.BAD_UPSTREAM_RESPONSE, "the response content encoding is invalid"
    if isinstance(exc, httpx.TooManyRedirects):
        return ErrorKind.BAD_UPSTREAM_RESPONSE, "too many redirects"
    return ErrorKind.UNREACHABLE, f"transport failure ({type(exc).__name__})"


_TITLES = {
    ErrorKind.TIMEOUT: "Upstream timeout",
    ErrorKind.UNREACHABLE: "Upstream unreachable",
    ErrorKind.BAD_UPSTREAM_RESPONSE: "Bad upstream response",
}


async def send(
    upstream: Upstream,
    request: UpstreamRequest,
    *,
    auth: httpx.Auth | None,
    settings: UpstreamSettings,
    namespace: str,
    operation: str,
    max_bytes: int | None = None,
    limit: str | None = None,
) -> UpstreamResponse | Problem:
    """Send ``request``; the whole response, or a Problem. Never raises for I/O.

    ``operation`` names the call in messages (``"POST /v2/oauth/token/"`` with the *path
    template*, not the rendered URL). The body is cut at ``settings.max_response_bytes``;
    the whole exchange is cut at ``settings.total_timeout_s``. Each call is reported to
    the observer. ``max_bytes`` replaces that size limit for this call (a binary
    operation's ``maxBinarySize``), and ``limit`` names it when a body passes it. Each
    call is one attempt: with tracing on, one CLIENT span, whose trace context goes out
    in ``request``'s headers.
    """
    started = time.perf_counter()
    size_limit = settings.max_response_bytes if max_bytes is None else max_bytes
    span = None
    if tracing.ENABLED:
        span = tracing.upstream_started(
            request.method, request.url, request.headers, namespace, operation
        )
    try:
        wire = _fast_wire(upstream, request, auth, settings)
        if wire is not None:  # the fast path; the deadline rides on the wire request
            status, headers, content = await _fetch(upstream.direct, wire, size_limit)
        else:  # the general path
            async with asyncio.timeout(settings.total_timeout_s):
                status, headers, content = await _send_with_client(
                    upstream.client, request.to_httpx(), auth, settings, size_limit
                )
    except Exception as exc:
        kind, reason, title, status = _failure(exc, settings)
        if limit is not None and isinstance(exc, ResponseTooLarge) and exc.limit == size_limit:
            reason = f": response larger than {limit}; the rest was not read"
        _report(namespace, request.method, status, kind.value, started)
        if span is not None:
            tracing.upstream_ended(span, status, kind.value)
        detail = f"upstream '{namespace}' ({operation}){reason}"
        return Problem.of(kind, title or _TITLES[kind], detail)
    _report(namespace, request.method, status, "ok" if status < 400 else _UPSTREAM, started)
    if span is not None:
        tracing.upstream_ended(span, status, None)
    return UpstreamResponse(status=status, headers=headers, content=content)


_UPSTREAM = ErrorKind.UPSTREAM.value


def _report(namespace: str, method: str, status: int | None, outcome: str, started: float) -> None:
    get_observer().upstream_finished(
        namespace=namespace,
        method=method,
        status=status,
        outcome=outcome,
        duration_s=time.perf_counter() - started,
    )


def _failure(
    exc: Exception, settings: UpstreamSettings
) -> tuple[ErrorKind, str, str | None, int | None]:
    """``(kind, reason, title or None, upstream status)`` of a failed exchange; re-raises
    what is not a transport failure (a defect: the engine reports it as one)."""
    if isinstance(exc, _Redirected):
        reason = " redirected (redirects are not followed)"
        return ErrorKind.BAD_UPSTREAM_RESPONSE, reason, None, exc.status
    if isinstance(exc, TimeoutError):
        reason = f": no complete response within {settings.total_timeout_s:g}s"
        return ErrorKind.TIMEOUT, reason, None, None
    if isinstance(exc, ResponseTooLarge):  # its message is ours: the limit only
        return ErrorKind.BAD_UPSTREAM_RESPONSE, f": {exc}", None, exc.status
    if isinstance(exc, TooManyCodings):  # its message is ours: a count, no upstream text
        return ErrorKind.BAD_UPSTREAM_RESPONSE, f": {exc}", None, None
    if isinstance(exc, OutboundAuthError):
        # Its message is written to be safe (no secret, no token endpoint body); no
        # upstream status: the credentials were never obtained.
        kind = ErrorKind.UNREACHABLE if exc.status is None else ErrorKind.BAD_UPSTREAM_RESPONSE
        return kind, f": {exc}", "Upstream credentials unavailable", None
    if isinstance(exc, httpx.HTTPError):
        kind, reason = _classify(exc, settings)
        return kind, f": {reason}", None, None
    raise exc


def _fast_wire(
    upstream: Upstream,
    request: UpstreamRequest,
    auth: httpx.Auth | None,
    settings: UpstreamSettings,
) -> WireRequest | None:
    """The bytes to write on our transport when this call needs nothing of httpx's
    client; else None (the general path).

    The client drives multi-step auth flows (digest challenges, OAuth2 refresh on 401)
    and follows redirects; single-pass auth (basic, bearer, API key) is one header or
    query parameter that ``wire_of`` writes itself. ``wire_of`` also refuses what needs
    httpx's own rules (multipart, URLs to escape or normalise, URL credentials).
    """
    if upstream.direct is None or settings.follow_redirects:
        return None
    if auth is not None and not getattr(auth, "single_pass", False):
        return None
    deadline = asyncio.get_running_loop().time() + settings.total_timeout_s
    return wire_of(request, auth, upstream.client.timeout, deadline)


async def _fetch(
    transport: Http11Transport, wire: WireRequest, limit: int
) -> tuple[int, Mapping[str, str], bytes]:
    """The fast path: one exchange straight on our transport, no httpx objects made."""
    raw = await transport.fetch(wire, limit=limit, read_redirects=False)
    if _is_unfollowed_redirect(raw.status, follow=False):
        raise _Redirected(raw.status)
    headers = ResponseHeaders.of(raw.headers)
    content = raw.content
    if "content-encoding" in headers:  # rare: httpx's client asks for gzip and deflate
        decoder = BodyDecoder.of(headers["content-encoding"], limit)
        if decoder is not None:
            try:
                content = decoder.decode(content)
            except ResponseTooLarge as exc:
                exc.status = raw.status
                raise
    return raw.status, headers, content


async def _send_with_client(
    client: httpx.AsyncClient,
    request: httpx.Request,
    auth: httpx.Auth | None,
    settings: UpstreamSettings,
    limit: int,
) -> tuple[int, Mapping[str, str], bytes]:
    """The general path: the exchange through ``httpx.AsyncClient.send`` (auth flows,
    redirects), body streamed within ``limit``."""
    response = await client.send(request, auth=auth or httpx.USE_CLIENT_DEFAULT, stream=True)
    try:
        status = response.status_code
        if _is_unfollowed_redirect(status, follow=settings.follow_redirects):
            raise _Redirected(status)
        declared = response.headers.get("content-length", "")
        if declared.isdigit() and int(declared) > limit:
            raise ResponseTooLarge(limit, status)
        codings = response.extensions.get(CODINGS_EXTENSION)
        return status, response.headers, await read_limited(response, limit, codings)
    finally:
        await response.aclose()


def _is_unfollowed_redirect(status: int, *, follow: bool) -> bool:
    """A 3xx other than 304 that we did not follow: its meaning is somewhere else.

    With ``follow_redirects`` httpx has followed every redirect it could; a 3xx left
    over (no ``Location``) is then passed on as the upstream's answer.
    """
    return 300 <= status < 400 and status != 304 and not follow


class _Redirected(UpstreamError):
    """Internal signal: the upstream answered with a redirect we do not follow."""

    def __init__(self, status: int) -> None:
        self.status = status
