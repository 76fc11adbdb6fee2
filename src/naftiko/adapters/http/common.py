"""HTTP plumbing shared by the REST, control, skill and MCP adapters.

* :func:`request_id_of` — one request id per request: the caller's ``X-Request-Id`` when
  it is sane (short, printable, no separators that could forge a log line), else a new
  one (:func:`new_request_id`). Stored in the scope so every layer sees the same id.
* :func:`problem_response` — RFC 9457 ``application/problem+json`` responses. Bodies are
  built only from :class:`Problem` fields or the fields given: never an exception text.
* :class:`RequestObserverMiddleware` — the outermost layer of an adapter: stamps
  ``X-Request-Id`` on *every* response (401s of the auth middleware, 404s, 413s
  included) and reports each request once through :func:`report_finished`. Handlers
  tell it what they did through :func:`outcome_of`.
* :func:`report_finished` — the one report of a finished request to the observer (logs
  and metrics): the middleware's, the REST endpoint's (which stamps the id itself, to
  save the layers on its hot path) and each MCP handler's (MCP counts tool calls,
  resource reads and prompts, not protocol requests).
* :func:`read_body` — reads a request body under a byte limit (Content-Length first,
  then counting), so a huge upload is refused before it is buffered. Both it and the MCP
  fast path read through :func:`receive_body`, the one size-limited body reader.
* :func:`traced` — an adapter's app as it is served: wrapped in a server span per request
  when tracing is on (``naftiko.tracing``), else the app itself; :func:`tracing_layers`,
  the same as Starlette middleware.
"""

from __future__ import annotations

import os
import re
import time
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from starlette.middleware import Middleware
from starlette.requests import ClientDisconnect, Request
from starlette.responses import Response
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from naftiko import json_codec, tracing
from naftiko.engine.types import JSON_MEDIA_TYPE, PROBLEM_MEDIA_TYPE, Problem
from naftiko.errors import CallerError
from naftiko.observability import get_observer

__all__ = [
    "REQUEST_ID_BYTES",
    "REQUEST_ID_HEADER",
    "BodyTooLarge",
    "Outcome",
    "RequestObserverMiddleware",
    "UnfinishedBody",
    "finished",
    "json_bytes",
    "json_response",
    "new_request_id",
    "outcome_of",
    "problem_fields",
    "problem_response",
    "read_asgi_body",
    "read_body",
    "receive_body",
    "report_finished",
    "request_id_of",
    "sane_request_id",
    "traced",
    "tracing_layers",
]

REQUEST_ID_HEADER = "X-Request-Id"
_REQUEST_ID_KEY = "naftiko.request_id"
REQUEST_ID_BYTES = REQUEST_ID_HEADER.lower().encode()  # as ASGI header names come
_OUTCOME_KEY = "naftiko.outcome"
# Letters, digits and a few punctuation marks; no spaces, quotes or control characters,
# so an echoed id can neither split a header nor forge a log line.
_SANE_REQUEST_ID = re.compile(r"[A-Za-z0-9][A-Za-z0-9._:@+=/-]{0,127}", re.ASCII)


def request_id_of(scope: Scope) -> str:
    """The request's id: assigned once, then the same for every caller of this function."""
    existing = scope.get(_REQUEST_ID_KEY)
    if isinstance(existing, str):
        return existing
    request_id = None
    for name, value in scope.get("headers", ()):
        # The length test first: it skips ``lower()`` for nearly every header.
        if len(name) == len(REQUEST_ID_BYTES) and name.lower() == REQUEST_ID_BYTES:
            request_id = sane_request_id(value.decode("latin-1"))
            break
    request_id = request_id or new_request_id()
    scope[_REQUEST_ID_KEY] = request_id
    return request_id


def new_request_id() -> str:
    """32 random hex digits (the length of a uuid4 hex), without building a ``UUID`` object.

    128 bits from the OS generator: unique and unguessable without a counter to share.
    """
    return os.urandom(16).hex()


def sane_request_id(text: str | None) -> str | None:
    """A caller's request id when it is safe to echo, log and forward; else ``None``."""
    if text is None:
        return None
    text = text.strip()
    return text if _SANE_REQUEST_ID.fullmatch(text) else None


def json_bytes(value: Any) -> bytes:
    """Compact UTF-8 JSON (raises ``ValueError``/``TypeError`` for non-JSON values)."""
    return json_codec.dumps(value)


def json_response(
    value: Any,
    status: int = 200,
    *,
    media_type: str = JSON_MEDIA_TYPE,
    headers: Mapping[str, str] | None = None,
) -> Response:
    return Response(json_bytes(value), status_code=status, media_type=media_type, headers=headers)


def problem_fields(status: int, title: str, detail: str, kind: str, **extra: Any) -> dict[str, Any]:
    """A problem document for errors that are not engine :class:`Problem` s (404, 405...)."""
    body: dict[str, Any] = {
        "type": f"https://naftiko.dev/problems/{kind}",
        "title": title,
        "status": status,
        "detail": detail,
    }
    body.update({k: v for k, v in extra.items() if v is not None})
    return body


def problem_response(
    problem_or_fields: Problem | Mapping[str, Any],
    request_id: str | None,
    *,
    headers: Mapping[str, str] | None = None,
) -> Response:
    """``application/problem+json`` with the problem's status and the request id header."""
    if isinstance(problem_or_fields, Problem):
        body = problem_or_fields.as_json()
        status = problem_or_fields.status
    else:
        body = dict(problem_or_fields)
        status = int(body.get("status", 500))
    all_headers = dict(headers or {})
    if request_id:
        all_headers[REQUEST_ID_HEADER] = request_id
    return json_response(body, status, media_type=PROBLEM_MEDIA_TYPE, headers=all_headers)


# --------------------------------------------------------------------------- observation


@dataclass(slots=True)
class Outcome:
    """What a handler reports about its request (:func:`report_finished`)."""

    unit: str = ""
    is_error: bool | None = None  # None: decided from the status (>= 400)
    upstream_status: int | None = None


def outcome_of(scope: Scope) -> Outcome:
    """The request's mutable outcome record (created on first use)."""
    outcome = scope.get(_OUTCOME_KEY)
    if not isinstance(outcome, Outcome):
        outcome = Outcome()
        scope[_OUTCOME_KEY] = outcome
    return outcome


class RequestObserverMiddleware:
    """Outermost ASGI layer: request id on every response, one observer report per request.

    Being outside the auth middleware is the point: refused requests are counted and
    carry the id too. Non-HTTP scopes pass through untouched.
    """

    def __init__(self, app: ASGIApp, *, adapter_type: str, adapter: str) -> None:
        self.app = app
        self.adapter_type = adapter_type
        self.adapter = adapter

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        started = time.perf_counter()
        request_id = request_id_of(scope)
        id_bytes = request_id.encode("latin-1")
        outcome = outcome_of(scope)
        status = 500

        async def send_with_id(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = int(message["status"])
                headers = message.get("headers") or []
                if not any(name.lower() == REQUEST_ID_BYTES for name, _ in headers):
                    message = {**message, "headers": [*headers, (REQUEST_ID_BYTES, id_bytes)]}
            await send(message)

        try:
            await self.app(scope, receive, send_with_id)
        finally:
            report_finished(self.adapter_type, self.adapter, outcome, status, started, request_id)


def traced(app: ASGIApp, adapter_type: str, adapter: str) -> ASGIApp:
    """``app`` with a server span per HTTP request when tracing is on; else ``app`` itself
    (decided once, when the adapter is built: no per-request work when tracing is off)."""
    wrapped: ASGIApp = tracing.server_spans(app, adapter_type, adapter)
    return wrapped


def tracing_layers(adapter_type: str, adapter: str) -> list[Middleware]:
    """:func:`traced` as the first of a Starlette app's middleware; none when tracing is off."""
    if not tracing.ENABLED:
        return []
    return [Middleware(traced, adapter_type=adapter_type, adapter=adapter)]


def report_finished(
    adapter_type: str,
    adapter: str,
    outcome: Outcome,
    status: int,
    started: float | None,
    request_id: str | None,
) -> None:
    """Tell the observer about one finished request: the one way every adapter does.

    ``started`` is ``perf_counter()`` when the request began; None when it was refused
    before any work (a duration of 0). An error is what the handler said it was, or
    else any status >= 400. With tracing on, the request's server span hears it too.
    """
    is_error = outcome.is_error if outcome.is_error is not None else status >= 400
    if tracing.ENABLED:  # before the observer: its log line reads the current span
        tracing.request_reported(adapter_type, outcome.unit, status, is_error)
    get_observer().request_finished(
        adapter_type=adapter_type,
        adapter=adapter,
        unit=outcome.unit,
        status=status,
        is_error=is_error,
        duration_s=0.0 if started is None else time.perf_counter() - started,
        request_id=request_id,
        upstream_status=outcome.upstream_status,
    )


# --------------------------------------------------------------------------- bodies


class BodyTooLarge(CallerError):
    """The request body exceeds the adapter's limit (answer 413)."""


async def read_body(request: Request, limit: int) -> bytes:
    """The whole body, refusing (``BodyTooLarge``) anything over ``limit`` bytes.

    Content-Length is checked before reading; the count while reading catches chunked
    uploads and lying lengths. ``ClientDisconnect`` propagates (nobody to answer).
    """
    return await read_asgi_body(request.receive, request.headers.get("content-length"), limit)


async def read_asgi_body(receive: Receive, declared: str | None, limit: int) -> bytes:
    """:func:`read_body` on the raw ASGI ``receive`` (no ``Request`` to build)."""
    return finished(await receive_body(receive, limit, declared))


def finished(read: bytes | UnfinishedBody) -> bytes:
    """The body :func:`receive_body` read, or the refusal: :class:`BodyTooLarge` over the
    limit, ``ClientDisconnect`` when another message came first."""
    if isinstance(read, bytes):
        return read
    if read.interrupted_by is None:
        raise BodyTooLarge
    raise ClientDisconnect  # ``http.disconnect``: the only other message HTTP receives


@dataclass(slots=True)
class UnfinishedBody:
    """What :func:`receive_body` read of a body it could not finish, for a replay."""

    data: bytes  # the body bytes read, the one over the limit included
    started: bool  # whether any ``http.request`` message came
    more_body: bool  # the last body message's flag (True when interrupted)
    interrupted_by: Message | None  # the message that came instead; None: over the limit


async def receive_body(
    receive: Receive, limit: int, declared: str | None = None
) -> bytes | UnfinishedBody:
    """The whole body from ASGI ``receive``; :class:`UnfinishedBody` when it passes ``limit``
    bytes or another message (a disconnect) comes before its end. A ``declared``
    Content-Length over the limit is refused before anything is read.

    The one body reader: REST refuses what is unfinished (as :func:`finished` does); the
    MCP fast path replays it to the SDK, which answers. Both await it directly, not
    through a wrapper: on the request path a frame and two calls fewer are measurable.
    """
    if declared is not None and declared.strip().isdigit() and int(declared) > limit:
        return UnfinishedBody(b"", False, False, None)
    chunks: list[bytes] = []
    size = 0
    more: bool | None = None  # None until a body message comes
    while True:
        message = await receive()
        if message["type"] != "http.request":
            return UnfinishedBody(b"".join(chunks), more is not None, True, message)
        chunk = message.get("body", b"")
        more = message.get("more_body", False)
        if chunk:
            size += len(chunk)
            chunks.append(chunk)
            if size > limit:
                return UnfinishedBody(b"".join(chunks), True, bool(more), None)
        if not more:
            return chunks[0] if len(chunks) == 1 else b"".join(chunks)
