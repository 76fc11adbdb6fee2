"""The REST adapter's caller inputs: a request's headers and query read once, and the
operation's inputs gathered from path, query, header, cookie and body."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any
from urllib.parse import parse_qsl

from starlette.requests import cookie_parser
from starlette.types import Scope

from naftiko.adapters.rest.bodies import bad_request
from naftiko.adapters.rest.coerce import coerce_text
from naftiko.adapters.rest.openapi import is_whole_body
from naftiko.adapters.rest.routing import Operation
from naftiko.engine.types import InputField

__all__ = ["Incoming", "gather_values", "parse_query"]


@dataclass(slots=True)
class Incoming:
    """What the adapter reads of a request, from one pass over the raw ASGI headers.

    Starlette's ``Request`` re-decodes the header list on every lookup; this decodes
    each header once (latin-1, names lower-case as ASGI sends them).
    """

    headers: dict[str, str]  # every header once; repeated ones joined with ", " (RFC 9110)
    raw_headers: list[tuple[bytes, bytes]]
    repeated: bool  # some header came more than once: ask ``raw_headers`` for its values
    query_string: str
    _query: list[tuple[str, str]] | None = None

    @classmethod
    def of(cls, scope: Scope) -> Incoming:
        headers: dict[str, str] = {}
        repeated = False
        raw_headers = scope["headers"]
        for key, value in raw_headers:
            name = key.decode("latin-1")
            if name in headers:
                headers[name] += ", " + value.decode("latin-1")
                repeated = True
            else:
                headers[name] = value.decode("latin-1")
        query_string = scope.get("query_string", b"").decode("latin-1")
        return cls(headers, raw_headers, repeated, query_string)

    def header(self, name: str) -> str | None:
        """The first value, as ``Headers.get``."""
        if not self.repeated:
            return self.headers.get(name)
        values = self.header_values(name)
        return values[0] if values else None

    def header_values(self, name: str) -> list[str]:
        """Every value of one header, in order."""
        if not self.repeated:
            value = self.headers.get(name)
            return [] if value is None else [value]
        key = name.encode("latin-1")
        return [v.decode("latin-1") for k, v in self.raw_headers if k == key]

    @property
    def query(self) -> list[tuple[str, str]]:
        """Query pairs in order, parsed as Starlette's ``QueryParams`` does (once)."""
        if self._query is None:
            self._query = parse_query(self.query_string)
        return self._query

    def query_list(self, name: str) -> list[str]:
        return [v for k, v in self.query if k == name] if self.query_string else []

    def cookies(self) -> dict[str, str]:
        return cookie_parser(self.header("cookie") or "")


def parse_query(text: str) -> list[tuple[str, str]]:
    """``parse_qsl(text, keep_blank_values=True)``; without ``%`` or ``+`` nothing needs
    unquoting, and splitting is all it does, far more cheaply."""
    if "%" in text or "+" in text:
        return parse_qsl(text, keep_blank_values=True)
    pairs = []
    for item in text.split("&"):
        if item:
            name, _, value = item.partition("=")
            pairs.append((name, value))
    return pairs


def _coerce(field: InputField, text: str | list[str], as_is: bool = False) -> Any:
    if as_is and type(text) is str:
        return text
    try:
        return coerce_text(field, text)
    except ValueError as exc:
        raise bad_request(
            "Invalid parameter",
            f"The {field.location} parameter '{field.name}' {exc}.",
            parameter=field.name,
        ) from None


def _one_or_many(values: list[str]) -> str | list[str]:
    return values[0] if len(values) == 1 else values


def gather_values(
    operation: Operation, request: Incoming, params: Mapping[str, str], body: Any, kind: str
) -> dict[str, Any]:
    """Declared inputs from their locations, then lenient undeclared ones (declared win)."""
    values: dict[str, Any] = {}
    declared = operation.declared
    text_body = kind in ("form", "multipart")
    for field, as_is in operation.inputs:
        if field.location == "path":
            if field.name in params:
                values[field.name] = _coerce(field, params[field.name], as_is)
        elif field.location == "query":
            found = request.query_list(field.name)
            if found:
                values[field.name] = _coerce(field, _one_or_many(found), as_is)
        elif field.location == "header":
            found = request.header_values(field.name.lower())
            if found:
                values[field.name] = _coerce(field, _one_or_many(found), as_is)
        elif field.location == "cookie":
            cookie = request.cookies().get(field.name)
            if cookie is not None:
                values[field.name] = _coerce(field, cookie, as_is)
        elif is_whole_body(field):
            if body is not None:
                values[field.name] = body
        elif field.location == "body" and isinstance(body, dict) and field.name in body:
            value = body[field.name]
            is_text = isinstance(value, str) or (
                isinstance(value, list) and all(isinstance(v, str) for v in value)
            )
            values[field.name] = _coerce(field, value, as_is) if text_body and is_text else value
    lenient: list[tuple[str, Any]] = list(params.items())
    lenient += request.query if request.query_string else []  # setdefault keeps the first
    if isinstance(body, dict):
        lenient += list(body.items())
    for name, value in lenient:
        if name not in declared:
            values.setdefault(name, value)
    return values
