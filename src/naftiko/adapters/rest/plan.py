"""The REST adapter's plan: its routes and the units they serve, compiled at load time.

``compile_rest_plan`` is the REST entry of the plan compilers (``naftiko.adapters.exposes``):
the core compiler (``naftiko.compile.capability``) calls it for each ``type: rest``
``exposes`` entry, in document order, and it calls back ``Compiler.exposed`` with a
``UnitSpec`` for each operation. Its diagnostics (a second method on a path, a shadowed
operation, a forward to an unknown namespace, a reserved path) go through the compile
context with the units'.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from naftiko.adapters.rest.routes import normalize_route_path, shadowing_reserved_path
from naftiko.compile.capability import Compiler, UnitSource, UnitSpec
from naftiko.compile.consumes import compile_path, size_limit
from naftiko.compile.context import CompileContext, PathT
from naftiko.compile.inputs import declared_inputs, merge_declared
from naftiko.compile.units import BODILESS_METHODS
from naftiko.engine.types import AdapterPlan, ForwardPlan, Unit
from naftiko.media_types import essence
from naftiko.spec.models import ExposedOperation, ExposesRest

__all__ = [
    "DeclaredContent",
    "DeclaredResponse",
    "ResponseContract",
    "RestAdapterPlan",
    "RestRoute",
    "compile_rest_plan",
]


@dataclass(frozen=True, slots=True)
class DeclaredContent:
    """One media type a declared response carries: raw bytes (``binary``) or a schema."""

    media_type: str
    binary: bool
    schema: Mapping[str, Any] | None = None


@dataclass(frozen=True, slots=True)
class DeclaredResponse:
    description: str | None
    content: tuple[DeclaredContent, ...]


@dataclass(frozen=True, slots=True)
class ResponseContract:
    """An operation's ``responses`` (``responseBinary`` is normalised into them): which
    content an upstream status is answered with. ``success_status``: a ``responseBinary``
    answers every upstream success with its status."""

    statuses: Mapping[str, DeclaredResponse]  # "200", or a class such as "2XX"
    success_status: int | None = None

    def declared(self, status: int) -> DeclaredResponse | None:
        if self.success_status is not None and 200 <= status < 300:
            status = self.success_status
        found = self.statuses.get(str(status))
        return found if found is not None else self.statuses.get(f"{status // 100}XX")


@dataclass(frozen=True, slots=True)
class RestRoute:
    """One exposed resource path. ``path`` uses ``{x}`` (``{{x}}`` is normalised)."""

    path: str
    name: str | None
    description: str | None
    operations: Mapping[str, Unit]  # upper-case HTTP method -> unit
    forward: ForwardPlan | None = None
    # Upper-case HTTP method -> the operation's declared responses (beta1), if any.
    contracts: Mapping[str, ResponseContract] = field(default_factory=dict)


@dataclass(frozen=True, slots=True)
class RestAdapterPlan(AdapterPlan):
    routes: tuple[RestRoute, ...] = ()


def compile_rest_plan(spec: ExposesRest, path: PathT, compiler: Compiler) -> RestAdapterPlan:
    """The REST adapter's plan of ``spec``: its routes, each operation a unit."""
    ns = spec.namespace
    namespaces = frozenset({"rest", ns})
    max_binary = size_limit(compiler.ctx, spec.max_binary_size, (*path, "maxBinarySize"))
    routes = []
    # Resources may share a path and split its methods (the router and the OpenAPI
    # document serve them together); what an earlier resource already serves there
    # shadows a later operation: path -> method -> resource index ("*": a forward).
    served: dict[str, dict[str, int]] = {}
    for r_index, resource in enumerate(spec.resources):
        r_path = (*path, "resources", r_index)
        route_path = normalize_route_path(resource.path or "/")
        earlier = served.setdefault(route_path, {})
        _check_reserved(compiler.ctx, route_path, r_path)
        route_vars = compile_path(route_path).variables
        operations: dict[str, Unit] = {}
        contracts: dict[str, ResponseContract] = {}
        for o_index, op in enumerate(resource.operations):
            o_path = (*r_path, "operations", o_index)
            method = (op.method or "GET").upper()
            if method in operations:
                compiler.ctx.warning(o_path, f"a second {method} on {route_path}: the first wins")
                continue
            shadow = earlier.get(method, earlier.get("*"))
            if shadow is not None:
                what = "forwards" if method not in earlier else f"serves {method} on"
                compiler.ctx.warning(
                    o_path,
                    f"resources[{shadow}] already {what} {route_path}: the first declared "
                    "wins, so this operation is never called",
                )
            # Inputs without a usable ``in`` are read from the body, which the caller
            # of a GET, HEAD, DELETE or OPTIONS does not send: the query string there.
            unplaced = "query" if method in BODILESS_METHODS else "body"
            source = UnitSource.of(op)
            name = compiler.labels(source).name
            unit_id = f"{ns}.{name}" if name else f"{ns}.{method} {route_path}"
            if unit_id in compiler.units:
                unit_id = f"{ns}.{method} {route_path}"
            declared = merge_declared(
                *(
                    declared_inputs(params, located=True, unplaced=unplaced)
                    for params in (
                        spec.input_parameters,
                        resource.input_parameters,
                        op.input_parameters,
                    )
                )
            )
            unit = compiler.exposed(
                UnitSpec(
                    source=source,
                    kind="operation",
                    unit_id=unit_id,
                    adapter_ns=ns,
                    namespaces=namespaces,
                    declared=tuple(declared),
                    path=o_path,
                    route_vars=tuple(route_vars),
                    located=True,
                    fallback_name=f"{method} {route_path}",
                    max_binary=max_binary,
                )
            )
            operations[method] = unit
            contract = _contract(compiler.ctx, op, unit, o_path)
            if contract is not None:
                contracts[method] = contract
        for method in operations:
            earlier.setdefault(method, r_index)
        forward = None
        if resource.forward is not None:
            earlier.setdefault("*", r_index)
            target = resource.forward.target_namespace
            if target not in compiler.consumes:
                compiler.ctx.warning(
                    (*r_path, "forward", "targetNamespace"),
                    f"forward target '{target}' is not a consumed namespace: answers 501",
                )
            forward = ForwardPlan(
                target_namespace=target,
                trusted_headers=tuple(resource.forward.trusted_headers),
                path=route_path,
            )
        routes.append(
            RestRoute(
                path=route_path,
                name=resource.name,
                description=resource.description,
                operations=operations,
                forward=forward,
                contracts=contracts,
            )
        )
    return RestAdapterPlan(
        type="rest",
        namespace=ns,
        address=spec.address,
        port=spec.port,
        description=spec.description,
        authentication=spec.authentication,
        routes=tuple(routes),
    )


def _check_reserved(ctx: CompileContext, route_path: str, path: PathT) -> None:
    """A resource on a reserved path never answers: an error when it is exactly the
    reserved path, a warning when only its variables also match it."""
    reserved = shadowing_reserved_path(route_path)
    if reserved is None:
        return
    if not compile_path(route_path).variables:
        message = f"resource path {route_path} is reserved: {reserved} serves the OpenAPI"
        ctx.error((*path, "path"), message + " document of the adapter")
    else:
        ctx.warning(
            (*path, "path"),
            f"resource path {route_path} also matches {reserved}, which serves the OpenAPI "
            "document instead",
        )


def _contract(
    ctx: CompileContext, op: ExposedOperation, unit: Unit, path: PathT
) -> ResponseContract | None:
    """The operation's declared responses, checked against what its unit answers."""
    if op.responses is not None and op.response_binary is not None:
        ctx.error(path, "'responses' and 'responseBinary' cannot both be declared")
        return None
    if op.response_binary is not None:
        shorthand = op.response_binary
        status = shorthand.status or 200
        media = shorthand.media_type or "application/octet-stream"
        content = (DeclaredContent(media, binary=True),)
        statuses = {str(status): DeclaredResponse(shorthand.description, content)}
        contract = ResponseContract(statuses, success_status=status)
        where: PathT = (*path, "responseBinary")
    elif op.responses:
        statuses = {}
        for code, entry in op.responses.items():
            entry = entry if isinstance(entry, Mapping) else {}
            declared = []
            for media, body in (entry.get("content") or {}).items():
                body = body if isinstance(body, Mapping) else {}
                schema = body.get("schema")
                declared.append(
                    DeclaredContent(
                        str(media),
                        binary=body.get("binary") is True,
                        schema=schema if isinstance(schema, Mapping) else None,
                    )
                )
            statuses[str(code).upper()] = DeclaredResponse(
                entry.get("description"), tuple(declared)
            )
        contract = ResponseContract(statuses)
        where = (*path, "responses")
    else:
        return None
    binary = any(c.binary for r in contract.statuses.values() for c in r.content)
    if binary and unit.binary is None:
        ctx.error(
            where,
            f"'{unit.id}' declares a binary response, but the operation it calls does not "
            "read 'outputRawFormat: binary'",
        )
    if any("/" not in essence(c.media_type) for r in contract.statuses.values() for c in r.content):
        ctx.error(where, "a declared response media type is not a media type")
    return contract
