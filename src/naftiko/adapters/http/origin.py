"""The Host and Origin checks every HTTP adapter makes first (DNS rebinding, issue 15 item 6).

A web page cannot read a cross-origin answer, but it can *send* a request to a local
server, and with DNS rebinding (``evil.example`` first resolving to the attacker, then to
127.0.0.1) it can make a local server its own origin. Two checks close that, before
authentication and before anything runs:

* **Host.** A rebound request carries ``Host: evil.example:PORT``. Loopback spellings
  (``localhost``, ``127.x.x.x``, ``[::1]``) are always accepted: only a local page sends
  them. Other hosts must be in ``allowed_hosts`` (a bare name accepts any port,
  ``name:port`` that port only) unless it holds ``"*"`` (any host: a container reached
  by its service name). Refused with 421, as the MCP SDK's own check does.
* **Origin.** Browsers send ``Origin`` on cross-origin requests and on every POST. A
  request with an ``Origin`` must come from the origin it reached: the same host and
  port as its ``Host`` header (any loopback spelling counts as the same host when the
  port matches the Host's or the listener's), or an origin in ``allowed_origins``
  (``"*"`` accepts any). Refused with 403, as the MCP transport specification requires.
  A request without ``Origin`` (curl, SDKs, agents: not a browser) is not affected.
  ``Origin: null`` (sandboxed frames, file pages) is refused.

The scheme of the Origin is not compared: we serve plain HTTP, often behind a proxy that
terminates TLS, and a rebinding page cannot get a TLS connection to us anyway. Ports
are (an origin without one has its scheme's default).

Lists are compiled once (:class:`HostOriginPolicy`); a request costs one pass over its
headers. REST calls :meth:`HostOriginPolicy.refusal` from its endpoint; the other
adapters use :class:`HostOriginMiddleware`.
"""

from __future__ import annotations

import functools
import ipaddress
from collections.abc import Iterable
from typing import Literal

from starlette.types import ASGIApp, Receive, Scope, Send

from naftiko.adapters.http.common import json_bytes, problem_fields
from naftiko.engine.types import JSON_MEDIA_TYPE, PROBLEM_MEDIA_TYPE

__all__ = [
    "HostOriginMiddleware",
    "HostOriginPolicy",
    "Refusal",
    "is_loopback",
    "normalize_origin",
]

ANY = "*"
DEFAULT_PORTS = {"http": 80, "https": 443}
VERDICT_CACHE_SIZE = 1024
Refusal = tuple[int, str]  # status and the reason given to the client
HOST_REFUSED: Refusal = (421, "The Host header names a host this server does not answer for.")
ORIGIN_REFUSED: Refusal = (403, "Requests from this Origin are not allowed (see --allowed-origin).")


def is_loopback(host: str) -> bool:
    """``localhost`` (and ``*.localhost``), 127.0.0.0/8, ``::1`` (bracketed or not)."""
    host = host.strip("[]").lower()
    if host == "localhost" or host.endswith(".localhost"):
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def split_host(value: str) -> tuple[str, int | None]:
    """``"Example.COM:8080"`` -> ``("example.com", 8080)``; ``"[::1]"`` -> ``("[::1]", None)``.

    Raises ``ValueError`` for something that is not ``host[:port]``.
    """
    value = value.strip().lower()
    if value.startswith("["):
        end = value.find("]")
        if end < 0:
            raise ValueError(value)
        host, rest = value[: end + 1], value[end + 1 :]
        if rest and not rest.startswith(":"):
            raise ValueError(value)
        port_text = rest[1:] if rest else None
    else:
        host, sep, port_text = value.partition(":")
        port_text = port_text if sep else None
    if not host or any(c in host for c in "/?#@ \t"):
        raise ValueError(value)
    if port_text is None:
        return host, None
    if not port_text.isdigit() or not 0 < int(port_text) < 65536:
        raise ValueError(value)
    return host, int(port_text)


def parse_origin(value: str) -> tuple[str, str, int]:
    """``"http://Localhost:8080"`` -> ``("http", "localhost", 8080)`` (default port filled).

    Raises ``ValueError`` for anything but ``scheme://host[:port]``, ``null`` included.
    """
    scheme, sep, rest = value.strip().partition("://")
    scheme = scheme.lower()
    if not sep or scheme not in DEFAULT_PORTS:
        raise ValueError(value)
    host, port = split_host(rest)
    return scheme, host, DEFAULT_PORTS[scheme] if port is None else port


def normalize_origin(value: str) -> str:
    """An ``--allowed-origin`` as compared: ``scheme://host:port`` lower-case; ``*`` as is.

    Raises ``ValueError`` when ``value`` is not an origin (a path or a query is not).
    """
    if value.strip() == ANY:
        return ANY
    scheme, host, port = parse_origin(value)
    return f"{scheme}://{host}:{port}"


class HostOriginPolicy:
    """The compiled lists; :meth:`refusal` says whether a request may go on."""

    __slots__ = ("_verdict", "any_host", "any_origin", "host_names", "host_ports", "origins")

    def __init__(self, allowed_hosts: Iterable[str], allowed_origins: Iterable[str] = ()) -> None:
        hosts = [h.strip() for h in allowed_hosts if h.strip()]
        self.any_host = ANY in hosts
        names: set[str] = set()  # bare: any port
        ports: set[tuple[str, int]] = set()
        for entry in hosts:
            if entry == ANY:
                continue
            host, port = split_host(entry)
            if port is None:
                names.add(host)
            else:
                ports.add((host, port))
        self.host_names, self.host_ports = frozenset(names), frozenset(ports)
        origins = {normalize_origin(o) for o in allowed_origins if o.strip()}
        self.any_origin = ANY in origins
        self.origins = frozenset(parse_origin(o) for o in origins if o != ANY)
        # Parsing a Host (and an address) costs microseconds; a client sends the same
        # headers on every request. Bounded, so varied headers cost only the parse.
        self._verdict = functools.lru_cache(maxsize=VERDICT_CACHE_SIZE)(self._decide)

    def refusal(self, scope: Scope) -> Refusal | None:
        """``None`` when the request may go on, else the status and the reason."""
        host = origin = None
        for name, value in scope.get("headers", ()):
            if name == b"host":
                host = value
            elif name == b"origin":
                origin = value
        if origin is None and self.any_host:
            return None  # the common case of a non-browser client: nothing to decide
        server = scope.get("server")
        port = server[1] if server and len(server) > 1 else None
        return self._verdict(host, origin, port)

    def _decide(
        self, host_header: bytes | None, origin_header: bytes | None, listener_port: int | None
    ) -> Refusal | None:
        """:meth:`refusal` on the raw header values (cached: clients repeat them)."""
        try:
            host = split_host(host_header.decode("latin-1")) if host_header is not None else None
        except ValueError:
            host = None
        if not self.any_host and not self._host_allowed(host):
            return HOST_REFUSED
        if origin_header is None or self.any_origin:
            return None
        try:
            origin = parse_origin(origin_header.decode("latin-1"))
        except ValueError:
            return ORIGIN_REFUSED
        if origin in self.origins or _same_origin(origin, host, listener_port):
            return None
        return ORIGIN_REFUSED

    def _host_allowed(self, host: tuple[str, int | None] | None) -> bool:
        if host is None:
            return False
        name, port = host
        return (
            is_loopback(name)
            or name in self.host_names
            or (port is not None and (name, port) in self.host_ports)
        )


def _same_origin(
    origin: tuple[str, str, int], host: tuple[str, int | None] | None, listener_port: int | None
) -> bool:
    """The origin the request reached: its Host's name and port (any loopback spelling
    for a loopback Host, or the listener's port for a loopback origin)."""
    scheme, name, port = origin
    if host is not None:
        host_name, host_port = host
        if host_port is None:
            host_port = DEFAULT_PORTS[scheme]
        if port == host_port and (
            name == host_name or (is_loopback(name) and is_loopback(host_name))
        ):
            return True
    return is_loopback(name) and port == listener_port


class HostOriginMiddleware:
    """Outermost ASGI layer refusing what :class:`HostOriginPolicy` refuses.

    ``reply="problem"``: ``application/problem+json`` (REST, skill, control);
    ``reply="jsonrpc"``: a JSON-RPC error with ``id: null`` (MCP clients read those).
    """

    def __init__(
        self,
        app: ASGIApp,
        *,
        policy: HostOriginPolicy,
        reply: Literal["problem", "jsonrpc"] = "problem",
    ) -> None:
        self.app = app
        self.policy = policy
        self.reply = reply

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http":
            refused = self.policy.refusal(scope)
            if refused is not None:
                await self._refuse(refused, send)
                return
        await self.app(scope, receive, send)

    async def _refuse(self, refused: Refusal, send: Send) -> None:
        status, reason = refused
        if self.reply == "jsonrpc":
            # -32600: the request is invalid for this server, as the MCP SDK answers.
            body = json_bytes(
                {"jsonrpc": "2.0", "id": None, "error": {"code": -32600, "message": reason}}
            )
            media = JSON_MEDIA_TYPE
        else:
            body = json_bytes(refusal_fields(refused))
            media = PROBLEM_MEDIA_TYPE
        headers = [(b"content-type", media.encode()), (b"content-length", str(len(body)).encode())]
        await send({"type": "http.response.start", "status": status, "headers": headers})
        await send({"type": "http.response.body", "body": body})


def refusal_fields(refused: Refusal) -> dict[str, object]:
    """The problem document of a refusal."""
    status, reason = refused
    if status == 421:
        return problem_fields(421, "Misdirected request", reason, "host-not-allowed")
    return problem_fields(403, "Origin not allowed", reason, "origin-not-allowed")
