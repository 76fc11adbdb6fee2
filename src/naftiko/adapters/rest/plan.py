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
from dataclasses import dataclass

from naftiko.adapters.rest.routes import normalize_route_path, shadowing_reserved_path
from naftiko.compile.capability import Compiler, UnitSource, UnitSpec
from naftiko.compile.consumes import compile_path
from naftiko.compile.context import CompileContext, PathT
from naftiko.compile.inputs import declared_inputs, merge_declared
from naftiko.compile.units import BODILESS_METHODS
from naftiko.engine.types import AdapterPlan, ForwardPlan, Unit
from naftiko.spec.models import ExposesRest

__all__ = ["RestAdapterPlan", "RestRoute", "compile_rest_plan"]


@dataclass(frozen=True, slots=True)
class RestRoute:
    """One exposed resource path. ``path`` uses ``{x}`` (``{{x}}`` is normalised)."""

    path: str
    name: str | None
    description: str | None
    operations: Mapping[str, Unit]  # upper-case HTTP method -> unit
    forward: ForwardPlan | None = None


@dataclass(frozen=True, slots=True)
class RestAdapterPlan(AdapterPlan):
    routes: tuple[RestRoute, ...] = ()


def compile_rest_plan(spec: ExposesRest, path: PathT, compiler: Compiler) -> RestAdapterPlan:
    """The REST adapter's plan of ``spec``: its routes, each operation a unit."""
    ns = spec.namespace
    namespaces = frozenset({"rest", ns})
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
                )
            )
            operations[method] = unit
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
