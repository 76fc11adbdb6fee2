"""Consumed APIs compiled into request-ready plans (``consumes:`` -> :class:`ConsumesPlan`).

Base URIs are rendered from binds once; a base URI that needs something unbound keeps
``None`` and its operations answer 501 (inputs never choose the scheme or host).
Outbound authentication is built once when every credential field is a bind or a
literal; otherwise it is built per request from the written-back consumed parameters.
An authentication block no request could use (``oauth1``, an apikey in the body...)
makes the whole namespace unavailable: its operations answer 501 and never go out
unauthenticated (a load error in strict mode). An ``outputRawFormat`` that cannot be
read is recorded on the operation; the compiler decides what it affects.

A body written as one template string is compiled for what it is (issue 15): a JSON,
XML or form body escapes each value for that syntax (``naftiko.templating``). The
kind comes from ``body.type``; for a raw string body from a declared ``Content-Type``
header, else from its first character (``{``/``[``: JSON, ``<``: XML); anything else is
text and escapes nothing.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import httpx

from naftiko.compile.context import CompileContext, PathT
from naftiko.compile.inputs import json_type
from naftiko.media_types import essence
from naftiko.spec.models import Authentication, ConsumesHttp, InputParameter, RequestBody
from naftiko.template_syntax import CONSUMED_PATH_VARIABLE, has_tags
from naftiko.templating import TemplateError, compile_template, render_or_none
from naftiko.upstream.formats import FormatError, check_format
from naftiko.upstream.outbound_auth import (
    OutboundAuthConfigError,
    build_outbound_auth,
    check_outbound_auth,
)
from naftiko.upstream.plans import (
    BinaryLimit,
    BodyPlan,
    ConsumesPlan,
    OperationPlan,
    ParamPlan,
    PartPlan,
    PathTemplate,
    binary_limit,
)
from naftiko.upstream.request import CONNECTION_HEADERS
from naftiko.upstream.wire import fixed_origin_of

__all__ = [
    "compile_consumes",
    "compile_path",
    "compile_tree",
    "credential_fields",
    "size_limit",
]

_BODY_KINDS = {
    "json": "json",
    "text": "text",
    "xml": "xml",
    "sparql": "sparql",
    "formurlencoded": "form",
    "form": "form",
    "multipartform": "multipart",
    "multipart": "multipart",
}


def compile_path(text: str) -> PathTemplate:
    """Split a path into literal text and variables (``{x}`` and ``{{x}}``)."""
    parts: list[str | tuple[str, str]] = []
    last = 0
    for match in CONSUMED_PATH_VARIABLE.finditer(text):
        if match.start() > last:
            parts.append(text[last : match.start()])
        name = (match.group(1) or match.group(2)).strip()
        parts.append((name, name.rsplit(".", 1)[-1]))
        last = match.end()
    if last < len(text):
        parts.append(text[last:])
    return PathTemplate(text=text, parts=tuple(parts))


def compile_tree(raw: Any) -> Any:
    """Data with template leaves: strings holding ``{{`` become :class:`Template`."""
    if isinstance(raw, str):
        if has_tags(raw):
            template = compile_template(raw)
            return raw if template.is_constant else template
        return raw
    if isinstance(raw, Mapping):
        return {key: compile_tree(value) for key, value in raw.items()}
    if isinstance(raw, (list, tuple)):
        return [compile_tree(value) for value in raw]
    return raw


def compile_consumes(
    ctx: CompileContext, entries: Sequence[Any]
) -> tuple[dict[str, ConsumesPlan], dict[str, OperationPlan]]:
    """Plans by namespace, and every operation by ``ns.op`` (the first of a name wins)."""
    consumes: dict[str, ConsumesPlan] = {}
    operations: dict[str, OperationPlan] = {}
    for index, spec in enumerate(entries):
        if isinstance(spec, ConsumesHttp):
            plan = _consumes(ctx, spec, ("capability", "consumes", index))
            consumes[plan.namespace] = plan
            operations.update((op.id, op) for op in plan.operations.values())
    return consumes, operations


def _consumes(ctx: CompileContext, spec: ConsumesHttp, path: PathT) -> ConsumesPlan:
    ns = spec.namespace
    base_uri = _base_uri(ctx, spec, (*path, "baseUri"))
    static_auth, auth_is_static, unavailable = None, False, None
    if spec.authentication is not None:
        a_path = (*path, "authentication")
        try:
            static_auth, auth_is_static = _auth(ctx, spec.authentication, a_path)
        except OutboundAuthConfigError as exc:
            unavailable = f"'{ns}' cannot be called: {exc}"
            ctx.confined(a_path, f"operations of namespace '{ns}' answer 501: {exc}")
    tunnel = spec.tunnel
    if tunnel is not None and unavailable is None:
        # Dialling an overlay (OpenZiti) is not implemented: never connect directly in its
        # place unless the document says that is acceptable.
        kind = tunnel.type or "unknown"
        if tunnel.fallback == "direct":
            ctx.warning(
                (*path, "tunnel"),
                f"tunnel type '{kind}' is not supported: '{ns}' is called directly at its "
                "baseUri (fallback: direct)",
            )
        else:
            unavailable = (
                f"'{ns}' is reached through a '{kind}' tunnel, which this runtime does not "
                "support (declare 'fallback: direct' to call its baseUri directly)"
            )
            ctx.confined(
                (*path, "tunnel"), f"operations of namespace '{ns}' answer 501: {unavailable}"
            )
    common = _params(ctx, spec.input_parameters, (*path, "inputParameters"))
    operations: dict[str, OperationPlan] = {}
    for r_index, resource in enumerate(spec.resources):
        r_path = (*path, "resources", r_index)
        resource_params = _params(ctx, resource.input_parameters, (*r_path, "inputParameters"))
        for o_index, op in enumerate(resource.operations):
            o_path = (*r_path, "operations", o_index)
            if op.name in operations:
                ctx.warning(o_path, f"duplicate operation '{op.name}' in '{ns}': the first wins")
                continue
            own = _params(ctx, op.input_parameters, (*o_path, "inputParameters"))
            op_path = compile_path(op.path if op.path is not None else resource.path)
            params = tuple(common + resource_params + own)
            operations[op.name] = OperationPlan(
                namespace=ns,
                name=op.name,
                method=(op.method or "GET").upper(),
                path=op_path,
                params=params,
                body=_body(ctx, op.body, (*o_path, "body"), params),
                output_raw_format=op.output_raw_format,
                output_schema=op.output_schema,
                base_dir=ctx.base_dir,
                format_problem=_format_problem(ctx, op.output_raw_format, op.output_schema),
                where=o_path,
                fixed_origin=fixed_origin_of(base_uri, op_path) if base_uri else None,
                binary=op.output_raw_format == "binary",
                media_type=op.output_media_type,
                max_binary=size_limit(ctx, op.max_binary_size, (*o_path, "maxBinarySize")),
            )
    return ConsumesPlan(
        namespace=ns,
        base_uri=base_uri,
        params=tuple(common),
        authentication=spec.authentication,
        static_auth=static_auth,
        auth_is_static=auth_is_static,
        operations=operations,
        unavailable=unavailable,
    )


def size_limit(ctx: CompileContext, text: str | None, path: PathT) -> BinaryLimit | None:
    """A declared ``maxBinarySize`` as bytes; a size without its unit is an error (a bare
    number has no scale), never a silent default."""
    if text is None:
        return None
    limit = binary_limit(str(text))
    if limit is None:
        ctx.error(path, f"maxBinarySize {text!r} is not a size such as '512KiB' or '5MiB'")
    return limit


def _format_problem(ctx: CompileContext, fmt: str | None, schema: str | None) -> str | None:
    try:
        check_format(fmt, schema, ctx.base_dir)
    except FormatError as exc:
        return str(exc)
    return None


def _base_uri(ctx: CompileContext, spec: ConsumesHttp, path: PathT) -> str | None:
    ns = spec.namespace
    raw = ctx.settings.base_uri_overrides.get(ns, spec.base_uri)
    if not has_tags(raw):
        return raw
    template = ctx.template(raw, path)
    if template is None:
        return raw
    missing = [r for r in template.references if not ctx.is_bound(r)]
    if missing:
        ctx.warning(
            path,
            f"baseUri of '{ns}' references {', '.join(sorted(missing))}, which is not "
            "bound: its operations will answer 501 (inputs never reach the scheme or host)",
        )
        return None
    return template.render(ctx.bind_scope)


def _params(ctx: CompileContext, params: Sequence[InputParameter], path: PathT) -> list[ParamPlan]:
    plans = []
    for index, param in enumerate(params):
        location = (param.in_ or "query").strip().lower()
        if location == "header" and param.name.strip().lower() in CONNECTION_HEADERS:
            ctx.warning(
                (*path, index, "name"),
                f"header '{param.name}' is written by the HTTP client (from the base URI "
                "and the body): this parameter is ignored",
            )
            continue
        raw = param.value if param.value is not None else param.template
        expr = None
        if raw is not None:
            expr = ctx.value(raw, (), (*path, index, "value"))
        plans.append(
            ParamPlan(
                name=param.name,
                location=location,
                value=expr,
                type=json_type(param.type),
                required=bool(param.required) or location == "path",
                description=param.description,
            )
        )
    return plans


def credential_fields(spec: Authentication) -> list[Any]:
    """The fields of a consumed authentication that may be templates."""
    return [
        spec.username, spec.password, spec.token, spec.key, spec.value,
        spec.token_endpoint, spec.client_id, spec.client_secret, spec.audience,
        spec.resource, *spec.scopes,
    ]  # fmt: skip


def _auth(ctx: CompileContext, spec: Authentication, path: PathT) -> tuple[httpx.Auth | None, bool]:
    """``(auth built once, whether it is)``; raises :class:`OutboundAuthConfigError`."""
    check_outbound_auth(spec)
    references: set[str] = set()
    for text in credential_fields(spec):
        if isinstance(text, str):
            template = ctx.template(text, path)
            if template is None:
                return None, False
            references |= template.references
    if not all(ctx.is_bound(ref) for ref in references):
        return None, False  # fed by request values (written-back consumed params)
    auth = build_outbound_auth(
        spec, lambda text: render_or_none(text, ctx.bind_scope), token_cache=ctx.token_cache
    )
    return auth, True


def _tree(ctx: CompileContext, raw: Any, path: PathT) -> Any:
    try:
        return compile_tree(raw)
    except TemplateError as exc:
        ctx.error(path, str(exc))
        return None


# The escaping context of a body template string, by body kind (others: text).
_KIND_CONTEXTS = {"json": "json", "xml": "xml", "form": "form"}


def _media_context(media_type: str | None) -> str | None:
    """The template context a declared ``Content-Type`` implies, or None."""
    media = essence(media_type)
    if media == "application/x-www-form-urlencoded":
        return "form"
    if media in ("application/json", "text/json") or media.endswith("+json"):
        return "json"
    if media in ("application/xml", "text/xml") or media.endswith("+xml"):
        return "xml"
    return None


def _sniffed_context(text: str) -> str:
    """A raw body's context from its first character: JSON or XML syntax, else text."""
    start = text.lstrip()
    if start.startswith("[") or (start.startswith("{") and not start.startswith("{{")):
        return "json"
    if start.startswith("<"):
        return "xml"
    return "text"


def _declared_media_type(params: Sequence[ParamPlan]) -> str | None:
    """A literal ``Content-Type`` header parameter's value (the last level's), or None."""
    found = None
    for param in params:
        if param.location == "header" and param.name.lower() == "content-type":
            value = param.value
            if value is not None and value.is_constant and isinstance(value.raw, str):
                found = value.raw
    return found


def _body(
    ctx: CompileContext,
    body: RequestBody | str | None,
    path: PathT,
    params: Sequence[ParamPlan] = (),
) -> BodyPlan | None:
    if body is None:
        return None
    if isinstance(body, str):
        context = _media_context(_declared_media_type(params)) or _sniffed_context(body)
        template = _context_template(ctx, body, context, path)
        return BodyPlan(kind="raw", data=template if template is not None else body)
    kind = _BODY_KINDS.get(body.type.replace("_", "").replace("-", "").lower())
    if kind is None:
        ctx.warning((*path, "type"), f"unknown body type {body.type!r}: sent as json")
        kind = "json"
    if kind == "multipart":
        return BodyPlan(kind=kind, data=None, parts=_parts(ctx, body.data, path))
    data_path = (*path, "data")
    if isinstance(body.data, str) and kind in _KIND_CONTEXTS:
        template = _context_template(ctx, body.data, _KIND_CONTEXTS[kind], data_path)
        return BodyPlan(kind=kind, data=template if template is not None else body.data)
    return BodyPlan(kind=kind, data=_tree(ctx, body.data, data_path))


def _context_template(ctx: CompileContext, text: str, context: str, path: PathT) -> Any:
    """A body template string compiled for ``context``; its text when it has no tags;
    None after reporting a syntax error."""
    if not has_tags(text):
        return text
    try:
        template = compile_template(text, context)
    except TemplateError as exc:
        ctx.error(path, str(exc))
        return None
    return text if template.is_constant else template


def _parts(ctx: CompileContext, data: Any, path: PathT) -> tuple[PartPlan, ...]:
    raw_parts: list[Mapping[str, Any]] = []
    if isinstance(data, Mapping):
        raw_parts = [{"name": k, "value": v} for k, v in data.items()]
    elif isinstance(data, (list, tuple)):
        raw_parts = [p for p in data if isinstance(p, Mapping)]
    parts = []
    for index, part in enumerate(raw_parts):
        filename = part.get("filename")
        content_type = part.get("contentType") or part.get("content_type")
        parts.append(
            PartPlan(
                name=str(part.get("name", "")),
                value=_tree(ctx, part.get("value"), (*path, "data", index, "value")),
                filename=ctx.template(str(filename), path) if filename else None,
                content_type=str(content_type) if content_type else None,
            )
        )
    return tuple(parts)
