"""uvicorn, where the runtime meets it: the limits every listener enforces before a
request reaches an app, and the server class that serves one pre-bound socket.

This is the one module allowed to rely on uvicorn's internals (anything that is not
``uvicorn.Config``, ``uvicorn.Server(config).serve(sockets=...)``, ``started`` and
``should_exit``). What it relies on, and why:

* ``uvicorn.protocols.http.httptools_impl.HttpToolsProtocol``, subclassed by
  :class:`LimitedHttpToolsProtocol`: its constructor signature, its parser callbacks
  (``on_headers_complete``, ``on_body``, ``on_message_complete``), its ``loop``,
  ``transport``, ``connections``, ``cycle``, ``url``, ``headers``,
  ``timeout_keep_alive_task`` and ``timeout_keep_alive_handler`` attributes, and
  ``_unset_keepalive_if_required``. uvicorn
  has no hook to limit a request head or the number of connections, so the limits can
  only live in the protocol; ``STATUS_LINE`` writes the refusals as uvicorn writes
  its own answers.
* ``uvicorn.server.ServerState``, only as the type of an argument the protocol receives.
* ``uvicorn.Server.capture_signals``, overridden to do nothing by :class:`ListenerServer`
  (``serve`` enters it around the serving): the runtime runs several servers on one loop
  and stops them all from one handler of its own. Left on, each server would replace the
  process's SIGINT/SIGTERM handlers, restore them out of order on exit and raise the
  captured signal again into the process.

Limits (issue 15). uvicorn's httptools protocol has none of its own before a request head
is complete: llhttp accepts a head of any size, a head may take forever to arrive, a
connection that never sends a byte stays open, and every connection is accepted until
the process runs out of file descriptors. :class:`ListenerGuard` holds one listener's
:class:`ListenerLimits` and the protocol enforces them:

* a head (request line and header lines) over ``max_header_bytes`` gets 431 and the
  connection is closed: counted as bytes arrive, so an endless head is cut at the limit,
  not buffered until it ends;
* a head not complete ``header_timeout_s`` after its first bytes gets 408 and is closed;
* a connection that sends nothing for ``idle_timeout_s`` after accept is closed, and one
  kept alive is closed after ``keep_alive_timeout_s`` without a next request (uvicorn's
  keep-alive timer). The second is longer on purpose: a client reuses a pooled
  connection until its own expiry (httpx: 5 s), and a server closing first races the
  client's next request, which then fails without an answer;
* past ``max_connections`` open connections, a new one gets 503 and is closed at once,
  and the listener logs it once per episode.

Refusals are ``application/problem+json`` with ``Connection: close``, written by the
protocol itself: no app, no authentication, nothing else runs.

Responses are written as uvicorn writes them (head and body apart): joining the writes
of one loop tick into one makes no measurable difference (bench/deps.py).
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import uvicorn
from uvicorn.protocols.http.httptools_impl import STATUS_LINE, HttpToolsProtocol
from uvicorn.server import ServerState

__all__ = [
    "LimitedHttpToolsProtocol",
    "ListenerConfig",
    "ListenerGuard",
    "ListenerLimits",
    "ListenerServer",
]

log = logging.getLogger("naftiko.runtime")

DEFAULT_MAX_HEADER_BYTES = 32 * 1024
DEFAULT_HEADER_TIMEOUT_S = 10.0
DEFAULT_IDLE_TIMEOUT_S = 5.0
DEFAULT_KEEP_ALIVE_TIMEOUT_S = 20.0
DEFAULT_MAX_CONNECTIONS = 1000
# What a request line and a header line add to the bytes the parser reports: the method,
# " HTTP/1.1" and CRLF on the first line, ": " and CRLF on each header line.
_REQUEST_LINE_EXTRA = 20
_HEADER_LINE_EXTRA = 4


# --------------------------------------------------------------------------- limits


@dataclass(frozen=True, slots=True)
class ListenerLimits:
    """What one listener allows a client before a request reaches the app."""

    max_header_bytes: int = DEFAULT_MAX_HEADER_BYTES
    header_timeout_s: float = DEFAULT_HEADER_TIMEOUT_S
    idle_timeout_s: float = DEFAULT_IDLE_TIMEOUT_S
    keep_alive_timeout_s: float = DEFAULT_KEEP_ALIVE_TIMEOUT_S
    max_connections: int = DEFAULT_MAX_CONNECTIONS


def _refusal(status: int, title: str, detail: str, kind: str) -> bytes:
    """A complete ``Connection: close`` problem+json response, built once per listener."""
    body = json.dumps(
        {
            "type": f"https://naftiko.dev/problems/{kind}",
            "title": title,
            "status": status,
            "detail": detail,
        },
        separators=(",", ":"),
    ).encode()
    head = (
        b"content-type: application/problem+json\r\n"
        b"content-length: " + str(len(body)).encode() + b"\r\n"
        b"connection: close\r\n\r\n"
    )
    return STATUS_LINE[status] + head + body


class ListenerGuard:
    """One listener's limits, its prepared refusals, and whether it is at its cap.

    Shared by every connection of the listener (one per ``uvicorn.Server``), so the
    "cap reached" line is logged once per episode, not once per refused connection.
    """

    def __init__(self, name: str, limits: ListenerLimits | None = None) -> None:
        self.name = name
        self.limits = limits or ListenerLimits()
        self.at_cap = False
        limits = self.limits
        self.too_large = _refusal(
            431,
            "Request header fields too large",
            f"The request line and headers exceed {limits.max_header_bytes} bytes.",
            "header-too-large",
        )
        self.too_slow = _refusal(
            408,
            "Request timeout",
            f"The request line and headers did not arrive within {limits.header_timeout_s:g}s.",
            "request-timeout",
        )
        self.too_many = _refusal(
            503,
            "Too many connections",
            f"This listener has {limits.max_connections} open connections, its limit.",
            "too-many-connections",
        )

    def admit(self, open_connections: int) -> bool:
        """Whether a new connection may stay, given how many the listener has open."""
        cap = self.limits.max_connections
        if open_connections < cap:
            if self.at_cap:
                self.at_cap = False
                log.info("%s: below %d open connections again; accepting new ones", self.name, cap)
            return True
        if not self.at_cap:
            self.at_cap = True
            log.warning(
                "%s: %d open connections, the limit (--max-connections / "
                "NAFTIKO_MAX_CONNECTIONS); new connections get 503 until some close",
                self.name,
                cap,
                extra={"event": "connection-cap", "limit": cap},
            )
        return False


class ListenerConfig(uvicorn.Config):
    """``uvicorn.Config`` carrying the listener's :class:`ListenerGuard` to its protocol.

    The keep-alive timeout is uvicorn's; the idle timeout before a first request is ours.
    """

    def __init__(self, app: Any, *, guard: ListenerGuard, **kwargs: Any) -> None:
        kwargs.setdefault("timeout_keep_alive", guard.limits.keep_alive_timeout_s)
        super().__init__(app, **kwargs)
        self.listener_guard = guard


class ListenerServer(uvicorn.Server):
    """``uvicorn.Server`` without its own signal capture: the runtime stops all servers
    together. Serve a pre-bound socket with the public ``serve(sockets=[sock])``."""

    @contextlib.contextmanager
    def capture_signals(self) -> Iterator[None]:
        yield


class LimitedHttpToolsProtocol(HttpToolsProtocol):
    """uvicorn's ``httptools`` protocol enforcing its listener's :class:`ListenerLimits`
    (see the module docstring).

    "In the head" is the time from accept, or from the end of the previous request, to
    the end of the next request's headers; ``head_bytes`` counts what arrived in it. The
    header deadline runs from the end of the first chunk of a head that did not complete
    in that chunk (CRLFs before a request line count: they are bytes of no request).
    """

    def __init__(
        self,
        config: uvicorn.Config,
        server_state: ServerState,
        app_state: dict[str, Any],
        _loop: asyncio.AbstractEventLoop | None = None,
    ) -> None:
        super().__init__(config, server_state, app_state, _loop)
        guard = getattr(config, "listener_guard", None)
        self.guard: ListenerGuard = guard if guard is not None else _DEFAULT_GUARD
        self.in_head = True
        self.head_bytes = 0  # raw bytes received while in the head (bounds buffering)
        self.head_timer: asyncio.TimerHandle | None = None
        self.refused = False

    def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]
        if not self.guard.admit(len(self.connections)):
            # Not added to the server's connections: it counts for nothing and is gone.
            self.transport = transport
            self.refused = True
            transport.write(self.guard.too_many)
            transport.close()
            return
        super().connection_made(transport)
        # uvicorn arms its keep-alive timer only after a response; a connection that
        # never sends a request must not stay open forever either.
        self.timeout_keep_alive_task = self.loop.call_later(
            self.guard.limits.idle_timeout_s, self.timeout_keep_alive_handler
        )

    def connection_lost(self, exc: Exception | None) -> None:
        self._cancel_head_timer()
        super().connection_lost(exc)

    def data_received(self, data: bytes) -> None:
        if self.refused:
            return
        if self.in_head:
            self.head_bytes += len(data)
        super().data_received(data)
        if not self.in_head or self.refused or not self.head_bytes:
            return  # a head completed in this chunk (the usual case), or nothing to time
        if self.head_bytes > self.guard.limits.max_header_bytes:
            self._refuse(self.guard.too_large)
        elif self.head_timer is None:
            # Armed only when a head spans chunks: a request arriving whole costs no timer.
            self.head_timer = self.loop.call_later(
                self.guard.limits.header_timeout_s, self._head_timed_out
            )

    # ------------------------------------------------------------------ parser callbacks

    # Only what the limits need is overridden: every override is a call per request.

    def on_headers_complete(self) -> None:
        if self.refused:
            return
        self._cancel_head_timer()
        self.in_head = False
        if self.head_bytes > self.guard.limits.max_header_bytes and self._head_size() > (
            self.guard.limits.max_header_bytes
        ):
            self._refuse(self.guard.too_large)
            return
        super().on_headers_complete()

    def _head_size(self) -> int:
        """The head as parsed; only computed when the bytes received in the head (which
        include any body bytes that came with it) exceed the limit."""
        size = _REQUEST_LINE_EXTRA + len(self.url)
        for name, value in self.headers:
            size += len(name) + len(value) + _HEADER_LINE_EXTRA
        return size

    def on_body(self, body: bytes) -> None:
        if not self.refused:
            super().on_body(body)

    def on_message_complete(self) -> None:
        if self.refused:
            return
        super().on_message_complete()
        self.in_head = True
        self.head_bytes = 0

    # ------------------------------------------------------------------ refusals

    def _cancel_head_timer(self) -> None:
        if self.head_timer is not None:
            self.head_timer.cancel()
            self.head_timer = None

    def _head_timed_out(self) -> None:
        self.head_timer = None
        if self.in_head and not self.refused:
            self._refuse(self.guard.too_slow)

    def _refuse(self, reply: bytes) -> None:
        """Answer ``reply`` and close; nothing more of this connection is parsed.

        While an earlier request of the connection is still being answered (pipelining),
        a reply would interleave with that response: the connection is only closed.
        """
        self.refused = True
        self._cancel_head_timer()
        self._unset_keepalive_if_required()
        if self.transport.is_closing():
            return
        if self.cycle is None or self.cycle.response_complete:
            self.transport.write(reply)
        self.transport.close()


_DEFAULT_GUARD = ListenerGuard("http")
