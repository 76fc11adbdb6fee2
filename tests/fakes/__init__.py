"""Fake upstream APIs for end-to-end tests, and the request record they all share."""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import parse_qsl

from starlette.requests import Request

# Starlette routes default to GET only; fakes route every method and answer 405 or 404
# themselves, so that nothing escapes the request record.
ALL_METHODS = ["GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS"]


@dataclass(frozen=True)
class RecordedRequest:
    """One request as the upstream saw it, for assertions on what the runtime sent.

    ``headers`` keys are lower-case; ``form`` is set for form-urlencoded bodies and
    ``json`` for JSON bodies that parse (``None`` otherwise).
    """

    method: str
    path: str
    query: dict[str, str]
    headers: dict[str, str]
    body: bytes
    form: dict[str, str] | None = None
    json: Any = None
    extra: dict[str, Any] = field(default_factory=dict)

    @property
    def content_type(self) -> str:
        return self.headers.get("content-type", "")


def parse_form(body: bytes) -> dict[str, str]:
    """Decode an ``application/x-www-form-urlencoded`` body (last value wins)."""
    return dict(parse_qsl(body.decode("utf-8", "replace"), keep_blank_values=True))


def parse_json(body: bytes) -> Any:
    """The parsed JSON body, or ``None`` when it is empty or not JSON."""
    try:
        return json.loads(body) if body else None
    except ValueError:
        return None


async def record(request: Request) -> RecordedRequest:
    """Read the whole body and describe the request; the body stays readable afterwards."""
    body = await request.body()
    content_type = request.headers.get("content-type", "").split(";")[0].strip().lower()
    form = parse_form(body) if content_type == "application/x-www-form-urlencoded" else None
    parsed = parse_json(body) if content_type.endswith("json") else None
    return RecordedRequest(
        method=request.method,
        path=request.url.path,
        query=dict(request.query_params),
        headers={k.lower(): v for k, v in request.headers.items()},
        body=body,
        form=form,
        json=parsed,
    )
