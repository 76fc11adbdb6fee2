"""The REST adapter's replies: a ``Result`` or a problem encoded as the status,
headers and body of its two ASGI messages."""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Any

from starlette.responses import Response

from naftiko.adapters.http.common import json_bytes, problem_fields
from naftiko.adapters.rest.plan import ResponseContract
from naftiko.engine.types import JSON_MEDIA_TYPE, PROBLEM_MEDIA_TYPE, ErrorKind, Problem, Result
from naftiko.media_types import is_json

__all__ = [
    "INTERNAL",
    "JSON_TYPE",
    "NOT_FOUND",
    "RawHeaders",
    "Reply",
    "kept_headers",
    "not_allowed",
    "problem_reply",
    "reply",
    "response_reply",
    "result_reply",
]

# Upstream headers that describe the upstream's own framing, never ours.
_DROPPED_RESULT_HEADERS = frozenset(
    {
        "content-length",
        "content-type",
        "transfer-encoding",
        "connection",
        "keep-alive",
        "content-encoding",
        "x-request-id",
    }
)


RawHeaders = list[tuple[bytes, bytes]]
# A response as its two ASGI messages carry it: status, headers (lower-case names,
# Content-Length included, X-Request-Id added when sending; never mutated), body. Sent
# as is, it skips Starlette's ``Response`` and leaves uvicorn few headers to validate.
Reply = tuple[int, RawHeaders, bytes]

JSON_TYPE = (b"content-type", JSON_MEDIA_TYPE.encode())
_PROBLEM_TYPE = (b"content-type", PROBLEM_MEDIA_TYPE.encode())


def reply(status: int, headers: RawHeaders, body: bytes = b"") -> Reply:
    """As Starlette's ``Response``: a Content-Length unless the status has no body."""
    if status >= 200 and status not in (204, 304):
        headers.append((b"content-length", b"%d" % len(body)))
    return status, headers, body


def problem_reply(fields: Mapping[str, Any], headers: RawHeaders | None = None) -> Reply:
    """``application/problem+json`` with the problem's status (``problem_response``'s)."""
    content = json_bytes(fields)
    return reply(int(fields.get("status", 500)), [_PROBLEM_TYPE, *(headers or ())], content)


def response_reply(response: Response) -> Reply:
    """A Starlette response built elsewhere (the auth refusals)."""
    return response.status_code, list(response.raw_headers), bytes(response.body)


def kept_headers(headers: Mapping[str, str]) -> RawHeaders:
    """The result's headers, encoded, without any that describe the upstream's framing
    or that cannot be written (a control character: the server would refuse the reply)."""
    kept = []
    for name, value in headers.items():
        lower = name.lower()
        if lower in _DROPPED_RESULT_HEADERS:
            continue
        encoded = _header_value(value)
        if not _CONTROL.search(encoded):
            kept.append((_header_value(lower), encoded))
    return kept


# What uvicorn refuses in a header value (its HEADER_VALUE_RE): CR, LF and the rest.
_CONTROL = re.compile(rb"[\x00-\x08\x0a-\x1f\x7f]")


def _header_value(text: str) -> bytes:
    """Latin-1, as ASGI carries headers; text that is not Latin-1 came from an upstream
    header httpx read as UTF-8, so it goes on as those same UTF-8 bytes, never a 500."""
    try:
        return text.encode("latin-1")
    except UnicodeEncodeError:
        return text.encode("utf-8")


def result_reply(result: Result, contract: ResponseContract | None = None) -> Reply:
    problem = result.problem
    if problem is not None and problem.kind != ErrorKind.UPSTREAM:
        if problem.retry_after is not None:
            return problem_reply(problem.as_json(), [(b"retry-after", b"%d" % problem.retry_after)])
        return problem_reply(problem.as_json())
    headers = kept_headers(result.headers) if result.headers else []
    if problem is not None and problem.step is not None:
        return _step_failure(problem, result.body, headers)
    body = result.body
    status = result.status
    if contract is not None and body is not None:
        return _declared_reply(result, contract, headers)
    if body is None or status in (204, 304) or status < 200:
        return reply(status, headers)
    if isinstance(body, bytes | bytearray):
        media_type = result.media_type or "application/octet-stream"
        headers.append((b"content-type", _header_value(media_type)))
        return reply(status, headers, bytes(body))
    try:
        content = json_bytes(body)
    except (ValueError, RecursionError):  # NaN/Infinity, or nested beyond the encoder
        return problem_reply(_UNREPRESENTABLE)
    media_type = result.media_type
    if media_type == JSON_MEDIA_TYPE or "json" not in (media_type or ""):
        headers.append(JSON_TYPE)
    else:
        headers.append((b"content-type", _header_value(media_type)))
    return reply(status, headers, content)


def _declared_reply(result: Result, contract: ResponseContract, headers: RawHeaders) -> Reply:
    """An answer the operation's ``responses`` declare: bytes go out unchanged with the
    declared binary media type (and a ``responseBinary``'s status); a JSON body takes
    the declared JSON media type. What is not declared is answered as any result."""
    declared = contract.declared(result.status)
    body = result.body
    if declared is not None and isinstance(body, bytes | bytearray):
        chosen = next((c for c in declared.content if c.binary), None)
        if chosen is not None:
            status = result.status
            if contract.success_status is not None and 200 <= status < 300:
                status = contract.success_status
            headers.append((b"content-type", _header_value(chosen.media_type)))
            return reply(status, headers, bytes(body))
    elif declared is not None:
        chosen = next((c for c in declared.content if not c.binary and is_json(c.media_type)), None)
        if chosen is not None:
            try:
                content = json_bytes(body)
            except (ValueError, RecursionError):
                return problem_reply(_UNREPRESENTABLE)
            headers.append((b"content-type", _header_value(chosen.media_type)))
            return reply(result.status, headers, content)
    return result_reply(result)


def _step_failure(problem: Problem, upstream: Any, headers: RawHeaders) -> Reply:
    """A failed orchestration step: the problem naming it, the upstream body embedded."""
    fields = problem.as_json()
    if isinstance(upstream, bytes | bytearray):
        upstream = bytes(upstream).decode("utf-8", errors="replace")
    if upstream is not None:
        fields["upstream"] = upstream
    try:
        return problem_reply(fields, headers)
    except ValueError:  # NaN/Infinity parsed from the upstream body: the problem alone
        return problem_reply(problem.as_json(), headers)


def not_allowed(method: str, allow: str) -> Reply:
    fields = problem_fields(
        405,
        "Method not allowed",
        f"This resource does not accept {method}; it accepts {allow}.",
        "method-not-allowed",
    )
    return problem_reply(fields, [(b"allow", allow.encode("latin-1"))])


INTERNAL = Problem(
    ErrorKind.INTERNAL, "Internal error", "The request could not be processed.", 500
).as_json()
_UNREPRESENTABLE = Problem(
    ErrorKind.BAD_UPSTREAM_RESPONSE,
    "Bad upstream response",
    "The upstream response cannot be written as JSON (numbers JSON cannot represent, or "
    "nesting too deep).",
    502,
).as_json()
NOT_FOUND = problem_fields(
    404, "Not found", "No resource of this API matches the path.", "not-found"
)
