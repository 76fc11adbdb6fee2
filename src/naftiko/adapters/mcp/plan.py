"""The MCP adapter's plan: its tools, resources and prompts, compiled at load time.

``compile_mcp_plan`` is the MCP entry of the plan compilers (``naftiko.adapters.exposes``):
the core compiler (``naftiko.compile.capability``) calls it for each ``type: mcp``
``exposes`` entry, in document order, and it calls back ``Compiler.exposed`` with a
``UnitSpec`` for each tool and each ``call``/``steps`` resource. A static resource's
directory and a file prompt are checked here (missing, or outside the capability
directory: a load error), rather than on the first ``resources/read`` or ``prompts/get``.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

from naftiko.compile.capability import Compiler, UnitSource, UnitSpec
from naftiko.compile.consumes import compile_path, size_limit
from naftiko.compile.context import CompileContext, PathT
from naftiko.compile.inputs import declared_inputs
from naftiko.engine.static_files import StaticFileError, resolve_file_location
from naftiko.engine.types import AdapterPlan, InputField, Unit
from naftiko.spec.models import ExposesMcp, McpPrompt, McpResource
from naftiko.upstream.plans import BinaryLimit

__all__ = [
    "DynamicResourcePlan",
    "McpAdapterPlan",
    "StaticResourcePlan",
    "compile_mcp_plan",
]


@dataclass(frozen=True, slots=True)
class StaticResourcePlan:
    """An MCP resource served from a ``file://`` directory."""

    name: str
    uri: str
    title: str | None
    description: str | None
    mime_type: str | None
    directory: str  # absolute path


@dataclass(frozen=True, slots=True)
class DynamicResourcePlan:
    """An MCP resource backed by ``call``/``steps``; ``uri`` may hold ``{var}`` templates."""

    name: str
    uri: str
    title: str | None
    description: str | None
    mime_type: str | None
    unit: Unit
    is_template: bool
    binary: bool = False  # beta1 ``binary: true``: read as a blob (base64), never text


@dataclass(frozen=True, slots=True)
class McpAdapterPlan(AdapterPlan):
    transport: Literal["http", "stdio"] = "http"
    tools: tuple[Unit, ...] = ()
    resources: tuple[StaticResourcePlan | DynamicResourcePlan, ...] = ()
    prompts: tuple[McpPrompt, ...] = ()
    base_dir: str = "."  # directory of the capability file, for file:// prompts
    version: str | None = None  # the document's ``info.version`` (serverInfo.version)
    # beta4 caching hints, on the results the MCP 2026-07-28 revision makes cacheable
    # (lists and resource reads); None: not declared.
    ttl_ms: int | None = None
    cache_scope: Literal["public", "private"] | None = None


def compile_mcp_plan(spec: ExposesMcp, path: PathT, compiler: Compiler) -> McpAdapterPlan:
    """The MCP adapter's plan of ``spec``: tools and dynamic resources as units, static
    resources and prompts checked against the capability directory."""
    ns = spec.namespace
    namespaces = frozenset({"tools", ns})
    max_binary = size_limit(compiler.ctx, spec.max_binary_size, (*path, "maxBinarySize"))
    tools = []
    for t_index, tool in enumerate(spec.tools):
        t_path = (*path, "tools", t_index)
        source = UnitSource.of(tool)
        name = compiler.labels(source).name
        unit_id = f"{ns}.{name}"
        if unit_id in compiler.units:
            compiler.ctx.warning(t_path, f"duplicate tool '{name}': the first wins")
            continue
        unit = compiler.exposed(
            UnitSpec(
                source=source,
                kind="tool",
                unit_id=unit_id,
                adapter_ns=ns,
                namespaces=namespaces,
                declared=tuple(declared_inputs(tool.input_parameters, located=False)),
                path=t_path,
                located=False,
                max_binary=max_binary,
            )
        )
        tools.append(unit)
    resources: list[StaticResourcePlan | DynamicResourcePlan] = []
    for r_index, resource in enumerate(spec.resources):
        r_path = (*path, "resources", r_index)
        plan = _resource(compiler, resource, ns, namespaces, r_path, max_binary)
        if plan is not None:
            resources.append(plan)
    for p_index, prompt in enumerate(spec.prompts):
        _check_prompt(compiler.ctx, prompt, (*path, "prompts", p_index))
    transport = (spec.transport or "http").strip().lower()
    ttl_ms, cache_scope = _cache_hints(compiler.ctx, spec, path)
    info = getattr(getattr(compiler.ctx.loaded, "document", None), "info", None)
    version = getattr(info, "version", None)
    return McpAdapterPlan(
        type="mcp",
        namespace=ns,
        address=spec.address,
        port=spec.port,
        description=spec.description,
        authentication=spec.authentication,
        transport="stdio" if transport == "stdio" else "http",
        tools=tuple(tools),
        resources=tuple(resources),
        prompts=tuple(spec.prompts),
        base_dir=compiler.ctx.base_dir,
        version=str(version) if version is not None else None,
        ttl_ms=ttl_ms,
        cache_scope=cache_scope,
    )


def _cache_hints(
    ctx: CompileContext, spec: ExposesMcp, path: PathT
) -> tuple[int | None, Literal["public", "private"] | None]:
    """``ttlMs`` (a count of milliseconds, 0 or more) and ``cacheScope``, checked."""
    ttl_ms = spec.ttl_ms
    if ttl_ms is not None and (isinstance(ttl_ms, bool) or ttl_ms < 0):
        ctx.error(
            (*path, "ttlMs"), f"ttlMs must be a whole number of milliseconds >= 0, got {ttl_ms!r}"
        )
        ttl_ms = None
    scope = spec.cache_scope
    if scope is None:
        return ttl_ms, None
    if scope not in ("public", "private"):
        ctx.error((*path, "cacheScope"), f"cacheScope must be 'public' or 'private', got {scope!r}")
        return ttl_ms, None
    return ttl_ms, "public" if scope == "public" else "private"


def _check_prompt(ctx: CompileContext, prompt: McpPrompt, path: PathT) -> None:
    """A file prompt must name a readable file inside the capability directory (or
    an explicit absolute path): found now rather than on the first ``prompts/get``."""
    if not prompt.location:
        return
    try:
        file = resolve_file_location(prompt.location, ctx.base_dir)
    except StaticFileError as exc:
        ctx.error((*path, "location"), f"prompt '{prompt.name}': {exc}")
        return
    if not file.is_file():
        ctx.error(
            (*path, "location"),
            f"prompt '{prompt.name}': no such file {prompt.location!r} ({file})",
        )


def _resource(
    compiler: Compiler,
    resource: McpResource,
    ns: str,
    namespaces: frozenset[str],
    path: PathT,
    max_binary: BinaryLimit | None = None,
) -> StaticResourcePlan | DynamicResourcePlan | None:
    if resource.location and not (resource.call or resource.steps):
        try:
            directory = resolve_file_location(resource.location, compiler.ctx.base_dir)
        except StaticFileError as exc:
            compiler.ctx.error((*path, "location"), str(exc))
            return None
        return StaticResourcePlan(
            name=resource.name,
            uri=resource.uri,
            title=resource.label,
            description=resource.description,
            mime_type=resource.mime_type,
            directory=str(directory),
        )
    variables = compile_path(resource.uri).variables
    declared = tuple(
        InputField(name=v, location="argument", schema={"type": "string"}, required=True)
        for v in variables
    )
    unit_id = f"{ns}.{resource.name}"
    if unit_id in compiler.units:
        unit_id = f"{ns}.resource:{resource.uri}"
    unit = compiler.exposed(
        UnitSpec(
            source=UnitSource.of(resource),
            kind="resource",
            unit_id=unit_id,
            adapter_ns=ns,
            namespaces=namespaces,
            declared=declared,
            path=path,
            located=False,
            max_binary=max_binary,
        )
    )
    if resource.binary and unit.binary is None:
        compiler.ctx.error(
            (*path, "binary"),
            f"resource '{resource.name}' is binary, but the operation it calls does not read "
            "'outputRawFormat: binary'",
        )
    return DynamicResourcePlan(
        name=resource.name,
        uri=resource.uri,
        title=resource.label,
        description=resource.description,
        mime_type=resource.mime_type,
        unit=unit,
        is_template=bool(variables),
        binary=bool(resource.binary),
    )
