"""OpenAPI 3.1 description of a REST adapter, built from its compiled plan.

The same function feeds the adapter's ``/.well-known/openapi.json`` and ``naftiko export
openapi``, so the served and exported documents cannot drift. The document is honest about
what the adapter does rather than what an upstream might promise:

* success is ``2XX`` (the upstream's status is kept) with the unit's output schema when the
  operation maps its output, otherwise any JSON or any passthrough media type;
* request bodies are JSON, plus form and multipart where the document declares them
  (what the adapter takes; anything else is a 415);
* errors of ours are ``application/problem+json`` (400 invalid input, 413, 415, 502, 504...);
  an upstream's own error status and body pass through, so error responses also allow
  JSON and ``*/*``;
* ``forward`` resources are documented as the common methods with opaque bodies;
* inbound ``oauth2`` is an ``http`` bearer scheme with ``bearerFormat: JWT``: the
  adapter is a resource server that validates JWTs, and the document does not know the
  authorization server's endpoints that an ``oauth2`` flow object would require.
"""

from __future__ import annotations

import re
from typing import Any

from naftiko.adapters.rest.plan import ResponseContract, RestAdapterPlan, RestRoute
from naftiko.adapters.rest.routes import OPENAPI_PATH
from naftiko.engine.types import (
    JSON_MEDIA_TYPE,
    PROBLEM_MEDIA_TYPE,
    InputField,
    Unit,
    thaw,
)
from naftiko.spec.models import Authentication, Info
from naftiko.template_syntax import PATH_VARIABLE

__all__ = ["OPENAPI_PATH", "build_openapi", "is_whole_body", "openapi_info", "openapi_path"]

SECURITY_SCHEME = "inbound"
FORWARD_METHODS = ("GET", "POST", "PUT", "PATCH", "DELETE")
_BODY_METHODS = frozenset({"POST", "PUT", "PATCH", "DELETE"})
_PROBLEM_REF = {"$ref": "#/components/schemas/Problem"}

PROBLEM_SCHEMA: dict[str, Any] = {
    "type": "object",
    "description": "An RFC 9457 problem: an error of the adapter, never of the upstream.",
    "required": ["type", "title", "status", "detail"],
    "properties": {
        "type": {"type": "string", "format": "uri"},
        "title": {"type": "string"},
        "status": {"type": "integer", "minimum": 100, "maximum": 599},
        "detail": {"type": "string"},
        "parameter": {"type": "string", "description": "The offending input."},
        "step": {"type": "string", "description": "The orchestration step that failed."},
    },
}


def openapi_info(plan: RestAdapterPlan, info: Info | None) -> tuple[str, str, str | None]:
    """``(title, version, description)`` from the document's ``info`` and the adapter.

    ``info.version`` (Ikanos beta4; also read from alpha documents that carry it) when
    present, else the ``modified``/``created`` date, else ``0.0.0``.
    """
    title = (info.label if info else None) or plan.namespace or "Naftiko REST adapter"
    extra = (info.model_extra or {}) if info else {}
    version = (info.version if info else None) or extra.get("version")
    version = version or (info.modified or info.created if info else None)
    description = plan.description or (info.description if info else None)
    return title, str(version or "0.0.0"), description


def openapi_path(path: str) -> str:
    """The OpenAPI path key: ``{{x}}`` normalised to ``{x}``, leading slash ensured."""
    normalised = PATH_VARIABLE.sub(lambda m: "{" + m.group(1) + "}", path)
    return normalised if normalised.startswith("/") else "/" + normalised


def _error_content() -> dict[str, Any]:
    return {
        PROBLEM_MEDIA_TYPE: {"schema": _PROBLEM_REF},
        JSON_MEDIA_TYPE: {"schema": {}},
        "*/*": {"schema": {}},
    }


def _error_responses(*, body: bool, secured: bool) -> dict[str, Any]:
    responses: dict[str, Any] = {
        "400": {
            "description": "Invalid input (problem), or the upstream's 400 passed through.",
            "content": _error_content(),
        },
    }
    if secured:
        responses["401"] = {
            "description": "Missing or invalid credentials.",
            "content": _error_content(),
        }
    if body:
        responses["413"] = {"description": "Request body too large.", "content": _error_content()}
        responses["415"] = {
            "description": "Unsupported request media type.",
            "content": _error_content(),
        }
    responses["502"] = {
        "description": "The upstream is unreachable or sent an unreadable response.",
        "content": _error_content(),
    }
    responses["504"] = {"description": "The upstream timed out.", "content": _error_content()}
    responses["default"] = {
        "description": "Any other upstream status and body, passed through unchanged.",
        "content": _error_content(),
    }
    return responses


def _parameter(field: InputField) -> dict[str, Any]:
    parameter: dict[str, Any] = {
        "name": field.name,
        "in": field.location,
        "required": True if field.location == "path" else field.required,
        "schema": thaw(field.schema) or {"type": "string"},
    }
    description = field.description or field.schema.get("description")
    if description:
        parameter["description"] = description
    return parameter


def _path_parameters(path: str, declared: set[str]) -> list[dict[str, Any]]:
    """Template variables the unit does not declare: still required strings in OpenAPI."""
    return [
        {"name": name, "in": "path", "required": True, "schema": {"type": "string"}}
        for name in dict.fromkeys(m.group(1) for m in PATH_VARIABLE.finditer(path))
        if name not in declared
    ]


def is_whole_body(field: InputField) -> bool:
    """``rest.body`` without a declaration: the compiler derives a ``body`` input for it.

    It stands for the whole request body, whatever its media type (a missing body field
    is null, never the whole body: ``rest.body`` is the way to get that); a
    *declared* ``body`` field is an ordinary top-level field of a JSON body.
    """
    return field.derived and field.location == "body" and field.name == "body"


def _body_content(unit: Unit, schema: dict[str, Any], form_schema: Any = None) -> dict[str, Any]:
    """JSON, plus the form and multipart types the document declares (what the adapter
    takes; anything else is a 415)."""
    content = {JSON_MEDIA_TYPE: {"schema": schema}}
    for media in sorted(unit.body_media):
        content[media] = {"schema": schema if form_schema is None else form_schema}
    return content


def _request_body(unit: Unit, method: str) -> dict[str, Any] | None:
    whole = [f for f in unit.inputs if is_whole_body(f)]
    fields = [f for f in unit.inputs if f.location == "body" and not is_whole_body(f)]
    if whole and not fields:
        # ``rest.body``: the request body is the value, sent on as JSON or as a form.
        schema = thaw(whole[0].schema) or {}
        if whole[0].description and "description" not in schema:
            schema["description"] = whole[0].description
        return {"required": whole[0].required, "content": _body_content(unit, schema)}
    if fields:
        schema: dict[str, Any] = {
            "type": "object",
            "properties": {f.name: thaw(f.schema) or {} for f in fields},
        }
        required = [f.name for f in fields if f.required]
        if required:
            schema["required"] = required
        return {"required": bool(required), "content": _body_content(unit, schema)}
    # No input reads the body: advertising one would promise what is never sent on (a
    # caller's body is refused instead, ``rest._check_unread_body``).
    return None


_BINARY_SCHEMA = {"type": "string", "format": "binary"}


def _success(unit: Unit) -> dict[str, Any]:
    if unit.binary is not None:
        media = unit.binary.media_type or "*/*"
        return {
            "description": "Success: the upstream's bytes, unchanged.",
            "content": {media: {"schema": dict(_BINARY_SCHEMA)}},
        }
    if unit.output_schema:
        content = {JSON_MEDIA_TYPE: {"schema": thaw(unit.output_schema)}}
    else:
        content = {JSON_MEDIA_TYPE: {"schema": {}}, "*/*": {"schema": {}}}
    return {
        "description": "Success; the upstream's status is kept (204 has no content).",
        "content": content,
    }


class _OperationIds:
    """operationIds must be unique in a document; unit names need only be per resource."""

    def __init__(self) -> None:
        self.used: set[str] = set()

    def take(self, wanted: str) -> str:
        base = re.sub(r"[^A-Za-z0-9_.-]", "_", wanted) or "operation"
        candidate, n = base, 2
        while candidate in self.used:
            candidate, n = f"{base}_{n}", n + 1
        self.used.add(candidate)
        return candidate


def _declared_responses(contract: ResponseContract) -> dict[str, Any]:
    """The operation's own ``responses`` (beta1), as the reference exports them."""
    responses: dict[str, Any] = {}
    for code, declared in contract.statuses.items():
        content = {
            c.media_type: {"schema": dict(_BINARY_SCHEMA) if c.binary else thaw(c.schema or {})}
            for c in declared.content
        }
        responses[code] = {"description": declared.description or f"HTTP {code}"}
        if content:
            responses[code]["content"] = content
    return responses


def _operation(
    unit: Unit,
    method: str,
    path: str,
    ids: _OperationIds,
    secured: bool,
    contract: ResponseContract | None = None,
) -> dict[str, Any]:
    declared = [f for f in unit.inputs if f.location in ("path", "query", "header", "cookie")]
    seen: set[tuple[str, str]] = set()
    parameters = []
    for field in declared:
        if (field.name, field.location) not in seen:
            seen.add((field.name, field.location))
            parameters.append(_parameter(field))
    parameters += _path_parameters(path, {f.name for f in declared if f.location == "path"})
    operation: dict[str, Any] = {"operationId": ids.take(unit.name)}
    if unit.title:
        operation["summary"] = unit.title
    if unit.description:
        operation["description"] = unit.description
    if parameters:
        operation["parameters"] = parameters
    body = _request_body(unit, method)
    if body is not None:
        operation["requestBody"] = body
    declared = _declared_responses(contract) if contract is not None else {}
    success = {} if any(code.startswith("2") for code in declared) else {"2XX": _success(unit)}
    operation["responses"] = {
        **success,
        **_error_responses(body=body is not None, secured=secured),
        **declared,
    }
    return operation


def _forward_operation(
    route: RestRoute, method: str, path: str, ids: _OperationIds, secured: bool
) -> dict[str, Any]:
    assert route.forward is not None
    operation: dict[str, Any] = {
        "operationId": ids.take(f"{route.name or 'forward'}_{method.lower()}"),
        "summary": f"Forwarded to '{route.forward.target_namespace}'",
        "description": (
            "Forwarded as sent (method, query string, body and trusted headers); the "
            "upstream's status and body come back unchanged."
        ),
        "x-naftiko-forward": route.forward.target_namespace,
    }
    parameters = _path_parameters(path, set())
    if parameters:
        operation["parameters"] = parameters
    if method in ("POST", "PUT", "PATCH"):
        operation["requestBody"] = {"required": False, "content": {"*/*": {"schema": {}}}}
    operation["responses"] = {
        "default": {"description": "The upstream's response.", "content": {"*/*": {"schema": {}}}},
    }
    if secured:
        operation["responses"]["401"] = {
            "description": "Missing or invalid credentials.",
            "content": _error_content(),
        }
    return operation


def security_scheme(auth: Authentication) -> dict[str, Any] | None:
    """The OpenAPI security scheme of an inbound ``authentication`` (None when unknown)."""
    kind = auth.type.strip().lower()
    if kind == "bearer":
        return {"type": "http", "scheme": "bearer"}
    if kind == "basic":
        return {"type": "http", "scheme": "basic"}
    if kind == "digest":
        return {"type": "http", "scheme": "digest"}
    if kind == "apikey":
        placement = (auth.placement or "header").strip().lower()
        # The key name is a document value, never a secret; a template stays as written.
        return {"type": "apiKey", "in": placement, "name": auth.key or "X-API-Key"}
    if kind == "oauth2":
        scheme: dict[str, Any] = {"type": "http", "scheme": "bearer", "bearerFormat": "JWT"}
        notes = []
        if auth.authorization_server_uri:
            notes.append(f"JWTs issued by {auth.authorization_server_uri}")
        if auth.scopes:
            notes.append("with the scopes " + ", ".join(auth.scopes))
        if notes:
            scheme["description"] = " ".join(notes) + "."
        return scheme
    return None


def build_openapi(
    plan: RestAdapterPlan,
    *,
    title: str,
    version: str,
    description: str | None = None,
    server_url: str | None = None,
) -> dict[str, Any]:
    """The OpenAPI 3.1 document of ``plan`` (JSON-compatible; deterministic order)."""
    scheme = security_scheme(plan.authentication) if plan.authentication else None
    secured = scheme is not None
    ids = _OperationIds()
    paths: dict[str, dict[str, Any]] = {}
    for route in plan.routes:
        path = openapi_path(route.path)
        item = paths.setdefault(path, {})
        if route.description:
            item.setdefault("description", route.description)
        for method, unit in route.operations.items():
            if method.lower() in item:
                continue  # first declared wins, as at run time
            contract = route.contracts.get(method)
            item[method.lower()] = _operation(unit, method, path, ids, secured, contract)
        if route.forward is not None:
            for method in FORWARD_METHODS:
                if method.lower() not in item:
                    item[method.lower()] = _forward_operation(route, method, path, ids, secured)
    paths.setdefault(OPENAPI_PATH, {})["get"] = {
        "operationId": ids.take("getOpenApiDocument"),
        "summary": "This OpenAPI document",
        "responses": {
            "200": {
                "description": "The OpenAPI 3.1 document of this adapter.",
                "content": {JSON_MEDIA_TYPE: {"schema": {"type": "object"}}},
            },
            **(
                {
                    "401": {
                        "description": "Missing or invalid credentials.",
                        "content": _error_content(),
                    }
                }
                if secured
                else {}
            ),
        },
    }
    info: dict[str, Any] = {"title": title, "version": version}
    if description:
        info["description"] = description
    document: dict[str, Any] = {"openapi": "3.1.0", "info": info}
    if server_url:
        document["servers"] = [{"url": server_url}]
    document["paths"] = paths
    components: dict[str, Any] = {"schemas": {"Problem": PROBLEM_SCHEMA}}
    if scheme is not None:
        components["securitySchemes"] = {SECURITY_SCHEME: scheme}
        document["security"] = [{SECURITY_SCHEME: []}]
    document["components"] = components
    return document
