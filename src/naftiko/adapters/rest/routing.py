"""The REST adapter's routing: each route and operation with what its requests need
decided when the app is built, and the match of a request path and method."""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any
from urllib.parse import quote, unquote

from starlette.types import Scope

from naftiko.adapters.http.common import problem_fields
from naftiko.adapters.rest.coerce import schema_type
from naftiko.adapters.rest.openapi import is_whole_body
from naftiko.adapters.rest.plan import ResponseContract, RestRoute
from naftiko.adapters.rest.routes import route_pattern
from naftiko.engine.types import JSON_MEDIA_TYPE, InputField, Unit

__all__ = ["Operation", "Route", "match_route", "raw_path_of"]


@dataclass(frozen=True, slots=True)
class Operation:
    """A unit as this adapter calls it, with what its requests need decided at build time."""

    unit: Unit
    reads_fields: bool  # declares fields of a JSON or form body
    reads_body: bool  # some input is in the body (fields or the whole body)
    declared: frozenset[str]  # the names of its inputs
    # Each input, and whether its declared type takes one text value as it is (string or
    # untyped): ``coerce_text`` would return it unchanged.
    inputs: tuple[tuple[InputField, bool], ...]
    # The 415 answered to a body of any media type besides JSON and ``unit.body_media``.
    unsupported: Mapping[str, Any]
    contract: ResponseContract | None = None  # the declared responses (beta1)

    @classmethod
    def of(cls, unit: Unit, contract: ResponseContract | None = None) -> Operation:
        reads_fields = any(
            f.location == "body" and not f.derived and not is_whole_body(f) for f in unit.inputs
        )
        reads_body = any(f.location == "body" for f in unit.inputs)
        declared = frozenset(f.name for f in unit.inputs)
        inputs = tuple((f, schema_type(f.schema) not in _CONVERTED_TYPES) for f in unit.inputs)
        unsupported = unsupported_media(unit)
        return cls(unit, reads_fields, reads_body, declared, inputs, unsupported, contract)


# The declared types ``coerce_text`` converts text to (any other passes through).
_CONVERTED_TYPES = frozenset({"array", "integer", "number", "boolean", "object", "null"})


@dataclass(frozen=True, slots=True)
class Route:
    route: RestRoute
    pattern: re.Pattern[str]
    groups: tuple[tuple[str, str], ...]  # (variable name, regex group name)
    operations: Mapping[str, Operation]  # by method; HEAD is answered by GET

    @classmethod
    def of(cls, route: RestRoute) -> Route:
        pattern, names = route_pattern(route.path)
        groups = tuple((name, f"v{index}") for index, name in enumerate(names))
        operations = {
            method: Operation.of(unit, route.contracts.get(method))
            for method, unit in route.operations.items()
        }
        if "GET" in operations:
            operations.setdefault("HEAD", operations["GET"])
        return cls(route, pattern, groups, operations)

    def match(self, raw_path: str) -> dict[str, str] | None:
        found = self.pattern.fullmatch(raw_path)
        if found is None:
            return None
        params: dict[str, str] = {}
        for name, group in self.groups:
            value = found.group(group)
            params.setdefault(name, unquote(value) if value is not None else "")
        return params


def raw_path_of(scope: Scope) -> str:
    """The request path as sent (percent-encoded), without the mount's root path."""
    raw = scope.get("raw_path")
    path = raw.decode("latin-1") if isinstance(raw, bytes) else quote(scope["path"])
    root = scope.get("root_path", "")
    if root and path.startswith(quote(root)):
        path = path[len(quote(root)) :] or "/"
    return path


def unsupported_media(unit: Unit) -> dict[str, Any]:
    """The 415 problem of ``unit``, naming the media types it takes."""
    taken = ", ".join([JSON_MEDIA_TYPE, *sorted(unit.body_media)])
    return problem_fields(
        415,
        "Unsupported media type",
        f"This operation takes a request body of type {taken} (or application/*+json).",
        "unsupported-media-type",
    )


def match_route(
    routes: Sequence[Route], raw_path: str, method: str
) -> tuple[Route, dict[str, str]] | str | None:
    """The first route whose path matches and that serves ``method`` (an operation or
    a forward), with its path variables; else the ``Allow`` value of the routes whose
    path matched (a 405), or None (a 404).

    Published documents often give each operation a resource of its own, so several
    resources share a path and split its methods; a route that matches the path but
    not the method must not end the search. The OpenAPI document merges them the
    same way: first declared wins.
    """
    allowed: set[str] | None = None
    for route in routes:
        params = route.match(raw_path)
        if params is None:
            continue
        if method in route.operations or route.route.forward is not None:
            return route, params
        allowed = (allowed or set()) | route.operations.keys()
    return None if allowed is None else ", ".join(sorted(allowed))
