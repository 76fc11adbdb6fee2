"""Checks on the validated document: cross references, clashes and tolerated deviations.

Errors are what cannot run (two adapters on one port, a namespace declared twice).
A ``call``/``ref`` that matches nothing is a warning in lenient mode, because the unit
can still answer with a clear error at request time, and an error in strict mode.
Everything else here is a warning: the document runs, but not as its author may think.
"""

from __future__ import annotations

import difflib
import re
from collections.abc import Iterator
from typing import Any

from pydantic import BaseModel

from naftiko.spec.models import (
    Aggregate,
    AggregateFunction,
    Authentication,
    CallSpec,
    ConsumedOperation,
    ConsumesHttp,
    Document,
    ExposedOperation,
    ExposesMcp,
    ExposesRest,
    ExposesSkill,
    ExposesUnknown,
    InputParameter,
    McpResource,
    McpTool,
    OutputParameter,
    SpecModel,
    Step,
)
from naftiko.spec.source import PathT, Reporter

METHODS = frozenset({"GET", "POST", "PUT", "PATCH", "DELETE", "HEAD", "OPTIONS"})
RAW_FORMATS = frozenset(
    {"json", "xml", "avro", "protobuf", "csv", "tsv", "psv", "yaml", "html", "markdown", "binary"}
)
AUTH_TYPES = frozenset({"basic", "apikey", "bearer", "digest", "oauth2"})
PARAM_LOCATIONS = frozenset({"query", "header", "path", "cookie", "body", "environment"})
TRANSPORTS = frozenset({"http", "stdio"})
BODY_TYPES = frozenset({"json", "text", "formUrlEncoded", "multipartForm", "xml", "sparql"})
_KEBAB = re.compile(r"^[a-zA-Z0-9-]+$")
# ``ns.x`` in a ``with`` value; ``v1.2`` and ``a b.c`` are literals, not references
_REFERENCE = re.compile(r"^(\$this\.)?([A-Za-z_][\w-]*)\.[A-Za-z_][\w.-]*$")
# prefixes that always name the caller's inputs (``rest.x``, ``tools.x``, ``$this.<ns>.x``
# resolve like ``<exposeNamespace>.x``) or the environment
_BUILTIN_PREFIXES = frozenset({"rest", "tools", "mcp", "skill", "env", "$this", "inputs"})

Unit = ExposedOperation | McpTool | McpResource | AggregateFunction


def iter_models(model: Any, path: PathT = ()) -> Iterator[tuple[PathT, SpecModel]]:
    """Every spec object under ``model`` with its document path (YAML keys), parents first."""
    found: list[tuple[PathT, SpecModel]] = []
    _collect_models(model, path, found)
    return iter(found)


_FIELD_KEYS: dict[type[SpecModel], tuple[tuple[str, str], ...]] = {}


def _collect_models(model: Any, path: PathT, found: list[tuple[PathT, SpecModel]]) -> None:
    """Appends to one list (nested generators re-yield every item at every level) and
    descends only into values that can hold models, so a large document's thousands of
    objects are listed without walking every scalar."""
    if isinstance(model, SpecModel):
        found.append((path, model))
        cls = type(model)
        keys = _FIELD_KEYS.get(cls)
        if keys is None:
            keys = tuple((name, info.alias or name) for name, info in cls.model_fields.items())
            _FIELD_KEYS[cls] = keys
        for name, key in keys:
            value = getattr(model, name)
            if isinstance(value, SpecModel) or (value and isinstance(value, tuple | dict)):
                _collect_models(value, (*path, key), found)
    elif isinstance(model, tuple):
        for i, item in enumerate(model):
            if isinstance(item, BaseModel):
                _collect_models(item, (*path, i), found)
    elif isinstance(model, dict):
        for key, item in model.items():
            if isinstance(item, BaseModel):
                _collect_models(item, (*path, key), found)


def check_document(doc: Document, report: Reporter, *, strict: bool = False) -> None:
    """Report every problem of ``doc`` (its imports already resolved)."""
    models = list(iter_models(doc))
    _unknown_keys(models, report)
    _tolerated(models, report)
    if doc.info is None:
        report(("info",), "no 'info' block (label, description)")
    elif not doc.info.description:
        report(("info",), "'info.description' is missing")
    cap = doc.capability
    if cap is None:
        return
    _namespaces(doc, report)
    _ports(doc, report)
    if not cap.exposes:
        report(("capability", "exposes"), "the capability exposes nothing: add an exposes entry")
    _references(doc, models, report, strict=strict)


def _unknown_keys(models: list[tuple[PathT, SpecModel]], report: Reporter) -> None:
    for path, model in models:
        for key in model.unknown_keys:
            if not key.startswith("x-"):
                report((*path, key), f"unknown property {key!r} (kept, not used)")


def _enum(
    report: Reporter, path: PathT, what: str, value: str | None, known: frozenset[str]
) -> None:
    if value is not None and value not in known:
        choices = ", ".join(sorted(known))
        report(path, f"unknown {what} {value!r} (kept; expected one of {choices})")


def _tolerated(models: list[tuple[PathT, SpecModel]], report: Reporter) -> None:
    """Deviations that still run: unknown enum values, untyped outputs, identifiers."""
    for path, model in models:
        if isinstance(model, ConsumedOperation | ExposedOperation):
            _enum(report, (*path, "method"), "method", model.method, METHODS)
        if isinstance(model, ConsumedOperation):
            _enum(
                report,
                (*path, "outputRawFormat"),
                "outputRawFormat",
                model.output_raw_format,
                RAW_FORMATS,
            )
            if isinstance(model.body, BaseModel):
                _enum(report, (*path, "body", "type"), "body type", model.body.type, BODY_TYPES)
        elif isinstance(model, Authentication) and "consumes" not in path[:2]:
            # consumed APIs' authentication and step types: the engine's compiler reports
            # them with what they cause (which units answer 501)
            _enum(report, (*path, "type"), "authentication type", model.type or None, AUTH_TYPES)
        elif isinstance(model, InputParameter) and path[-3:-2] != ("tools",):
            _enum(report, (*path, "in"), "parameter location", model.in_, PARAM_LOCATIONS)
        elif isinstance(model, ExposesMcp):
            _enum(report, (*path, "transport"), "MCP transport", model.transport, TRANSPORTS)
            if model.port is None and (model.transport or "http") == "http":
                report((*path,), "MCP adapter has no port: the default port is used")
        elif isinstance(model, ExposesUnknown):
            report(
                (*path, "type"), f"exposes type {model.type!r} is not served (kept, not started)"
            )
        elif isinstance(model, OutputParameter) and _unshaped(model):
            # ``type: object, mapping: $.`` is the common pass-through and is not reported
            shape = "properties" if model.type == "object" else "items"
            report(path, f"{model.type} output without '{shape}' or a mapping: it stays empty")
        elif isinstance(model, ConsumesHttp):
            if model.base_uri.endswith("/"):
                report((*path, "baseUri"), "baseUri ends with '/': joined with paths by one '/'")
            elif not model.base_uri:
                report(path, "consumes entry has no baseUri: its operations cannot be called")
        if isinstance(model, McpTool) and not model.description:
            report(path, "MCP tool without description: agents cannot tell what it does")
        if isinstance(model, ConsumesHttp | ExposesRest | ExposesMcp | ExposesSkill | Aggregate):
            ns = model.namespace
            if ns and not _KEBAB.match(ns):
                report(
                    (*path, "namespace"),
                    f"namespace {ns!r} is not kebab-case (letters, digits, '-')",
                )


def _unshaped(out: OutputParameter) -> bool:
    if out.mapping or out.value is not None or out.const is not None:
        return False
    if out.type == "object":
        return out.properties is None and out.values is None
    return out.type == "array" and out.items is None


def _namespaces(doc: Document, report: Reporter) -> None:
    cap = doc.capability
    assert cap is not None
    for i, entry in enumerate(cap.consumes):
        if isinstance(entry, ConsumesHttp) and not entry.namespace:
            report(("capability", "consumes", i), "consumes entry has no namespace")
    seen: dict[str, tuple[int, str]] = {}
    for i, entry in enumerate(cap.exposes):
        ns = entry.namespace
        if not ns:
            continue
        if ns not in seen:
            seen[ns] = (i, entry.type)
            continue
        first, kind = seen[ns]
        where = ("capability", "exposes", i, "namespace")
        message = f"exposes namespace {ns!r} is already used by exposes[{first}]"
        if kind == entry.type:
            report.error(where, f"{message}: rename one")
        else:  # a REST and an MCP adapter of one API often share it; only refs are ambiguous
            report(where, f"{message} ({kind}): references to it are ambiguous")
    functions: set[str] = set()
    for a, agg in enumerate(cap.aggregates):
        for f, fn in enumerate(agg.functions):
            ref = f"{agg.namespace}.{fn.name}"
            if ref in functions:
                report.error(
                    ("capability", "aggregates", a, "functions", f, "name"),
                    f"aggregate function {ref!r} is declared twice",
                )
            functions.add(ref)


def _ports(doc: Document, report: Reporter) -> None:
    cap = doc.capability
    assert cap is not None
    used: dict[int, int] = {}
    for i, entry in enumerate(cap.exposes):
        port = getattr(entry, "port", None)
        if isinstance(entry, ExposesMcp) and entry.transport == "stdio":
            continue
        if port is None or port == 0:
            continue
        if port in used:
            report.error(
                ("capability", "exposes", i, "port"),
                f"port {port} is already used by exposes[{used[port]}]: "
                "give each adapter its own port",
            )
        else:
            used[port] = i


def _call_target(call: str | CallSpec | None) -> tuple[str | None, PathT]:
    if isinstance(call, CallSpec):
        return call.operation, ("call", "operation")
    return call, ("call",)


def _references(
    doc: Document, models: list[tuple[PathT, SpecModel]], report: Reporter, *, strict: bool
) -> None:
    cap = doc.capability
    assert cap is not None
    operations = sorted(
        {
            f"{c.namespace}.{op.name}"
            for c in cap.consumes
            if isinstance(c, ConsumesHttp)
            for r in c.resources
            for op in r.operations
        }
    )
    op_set = frozenset(operations)
    functions = sorted({f"{a.namespace}.{fn.name}" for a in cap.aggregates for fn in a.functions})
    fn_set = frozenset(functions)
    namespaces = {getattr(e, "namespace", None) for e in (*cap.consumes, *cap.exposes)}
    namespaces |= {a.namespace for a in cap.aggregates}
    namespaces |= {b.namespace for b in (*doc.binds, *cap.binds)}
    namespaces |= _BUILTIN_PREFIXES
    severity = "error" if strict else "warning"
    siblings = {
        e.namespace for e in cap.exposes if isinstance(e, ExposesRest | ExposesMcp) and e.namespace
    }

    def missing(path: PathT, what: str, target: str, known: list[str]) -> None:
        close = difflib.get_close_matches(target, known, n=1, cutoff=0.6)
        hint = f"; did you mean {close[0]!r}?" if close else ""
        tail = "" if strict else " (the unit answers with an error)"
        report(path, f"{what} {target!r} matches nothing{hint}{tail}", severity)

    for path, model in models:
        if isinstance(model, ExposedOperation | McpTool | McpResource | AggregateFunction | Step):
            if not (isinstance(model, Step) and model.type == "lookup"):
                target, sub = _call_target(model.call)
                if target and target not in op_set:
                    missing((*path, *sub), "call target", target, operations)
            _with_refs(model, path, namespaces, report)
        if isinstance(model, ExposedOperation | McpTool) and model.ref and model.ref not in fn_set:
            missing((*path, "ref"), "ref", model.ref, functions)
        if isinstance(model, ExposesSkill):
            for s, skill in enumerate(model.skills):
                for t, tool in enumerate(skill.tools):
                    source = tool.from_.source_namespace if tool.from_ else None
                    if source and source not in siblings:
                        missing(
                            (*path, "skills", s, "tools", t, "from", "sourceNamespace"),
                            "skill source namespace",
                            source,
                            sorted(siblings),
                        )


def _with_refs(model: Any, path: PathT, namespaces: set[str | None], report: Reporter) -> None:
    withs: list[tuple[PathT, dict[str, Any]]] = [((*path, "with"), model.with_)]
    if isinstance(model.call, CallSpec):
        withs.append(((*path, "call", "with"), model.call.with_))
    local = {s.name for s in getattr(model, "steps", ())}
    for where, values in withs:
        for key, value in values.items():
            if not isinstance(value, str):
                continue
            match = _REFERENCE.match(value)
            if match and match.group(2) not in namespaces and match.group(2) not in local:
                report(
                    (*where, key),
                    f"'with' value {value!r} names no known namespace {match.group(2)!r}: "
                    "it is passed as literal text",
                )
