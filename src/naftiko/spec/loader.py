"""Load a capability document: parse, normalise, import, validate, check, bind.

``load_capability`` is the one entry point of the runtime and of ``naftiko validate``.
It returns a :class:`LoadedCapability` whose diagnostics are warnings only, or raises
:class:`LoadError` carrying every diagnostic when the document cannot run. Lenient by
default (the published corpus bends the schema everywhere); ``strict=True`` adds the
official JSON schema and turns unresolved references into errors.
"""

from __future__ import annotations

import os
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from pydantic import ValidationError

from naftiko.spec.binds import Bindings, referenced_names, resolve_binds
from naftiko.spec.checks import check_document
from naftiko.spec.diagnostics import Diagnostic, LoadError, Severity
from naftiko.spec.imports import SECTIONS, ImportContext, resolve_imports
from naftiko.spec.models import Document
from naftiko.spec.normalize import (
    ACCEPTED_VERSIONS,
    CURRENT_VERSION,
    IKANOS_VERSIONS,
    LATEST_IKANOS,
    NAFTIKO_VERSIONS,
    is_ikanos,
    merge_consumes,
    normalize,
)
from naftiko.spec.source import PathT, Reporter, SourceError, SourceFile, SourceMap, read_source

EXTENSIONS = (".yaml", ".yml", ".json")
_SKIP_DIRS = frozenset({"node_modules", "__pycache__", "venv"})
_SHARED_ROOTS = ("consumes", "exposes", "aggregates", "binds")


@dataclass(frozen=True)
class LoadedCapability:
    """A document that can run, with its resolved binds and the warnings it raised."""

    path: Path
    base_dir: Path
    document: Document
    bindings: Bindings
    diagnostics: tuple[Diagnostic, ...]
    source_map: SourceMap
    strict: bool = False  # loaded with --strict: later layers turn their warnings into errors
    # Loaded with ``require_binds=False``: the errors a load requiring them would have
    # raised (binds the document uses that are not set), for gateway mode's degraded state.
    unset_binds: tuple[Diagnostic, ...] = ()

    def diagnostic_at(self, path: PathT, severity: Severity, message: str) -> Diagnostic:
        """A diagnostic positioned in this document (for compile errors of later layers)."""
        return self.source_map.diagnostic_at(path, severity, message)


def is_capability_document(data: Any) -> bool:
    """A mapping with a ``naftiko`` (or ``ikanos``) key that is not a shared consumes file."""
    if not isinstance(data, dict) or not ("naftiko" in data or "ikanos" in data):
        return False
    return "capability" in data or not any(key in data for key in _SHARED_ROOTS)


def is_shared_document(data: Any) -> bool:
    """A file of shared ``consumes`` (or Ikanos standalone parts) that others import."""
    return (
        isinstance(data, dict)
        and "capability" not in data
        and any(isinstance(data.get(key), list | dict) for key in _SHARED_ROOTS)
    )


def discover(paths: Iterable[str | Path]) -> list[Path]:
    """Files named explicitly, plus ``*.yaml``/``*.yml``/``*.json`` under directories."""
    found: list[Path] = []
    for item in paths:
        path = Path(item)
        if not path.is_dir():
            found.append(path)
            continue
        for root, dirs, files in os.walk(path):
            dirs[:] = sorted(d for d in dirs if not d.startswith(".") and d not in _SKIP_DIRS)
            found.extend(
                Path(root, name) for name in sorted(files) if name.lower().endswith(EXTENSIONS)
            )
    return found


def load_capability(
    path: str | Path,
    *,
    env: Mapping[str, str] | None = None,
    strict: bool = False,
    require_binds: bool = True,
) -> LoadedCapability:
    """Load ``path`` or raise :class:`LoadError` with every diagnostic found."""
    path = Path(path)
    try:
        source = read_source(path, str(path))
    except SourceError as exc:
        raise LoadError([_source_diagnostic(str(path), exc)]) from None
    return load_source(path, source, env=env, strict=strict, require_binds=require_binds)


def _source_diagnostic(file: str, exc: SourceError) -> Diagnostic:
    return Diagnostic("error", file, exc.message, line=exc.line, column=exc.column)


def load_source(
    path: Path,
    source: SourceFile,
    *,
    env: Mapping[str, str] | None = None,
    strict: bool = False,
    require_binds: bool = True,
) -> LoadedCapability:
    """Load an already parsed file (``naftiko validate`` parses once to sort files)."""
    try:
        return _load_source(path, source, env, strict, require_binds)
    except RecursionError:
        # The parser bounds nesting (1000 levels) and refuses cyclic aliases, but a layer
        # walking the data recursively may still run out of stack: one diagnostic, never
        # a traceback.
        message = "the document is nested too deeply to be checked"
        raise LoadError([source.source_map.diagnostic_at((), "error", message)]) from None


def _load_source(
    path: Path,
    source: SourceFile,
    env: Mapping[str, str] | None,
    strict: bool,
    require_binds: bool,
) -> LoadedCapability:
    sink: list[Diagnostic] = []
    report = Reporter(source.source_map, sink)
    data = source.data
    if not is_capability_document(data):
        report.error((), _not_a_capability(data))
        raise LoadError(sink)
    ikanos = is_ikanos(data)
    if strict:
        from naftiko.spec.strict import check_schema  # jsonschema only when asked

        check_schema(data, report)
    normalize(data, report)
    _check_version(data.get("naftiko"), report, strict=strict, ikanos=ikanos)
    resolved = path.resolve()
    base_dir = resolved.parent
    context = ImportContext(report)
    capability = data.get("capability")
    for owner, prefix in ((data, ()), (capability, ("capability",))):
        for section in SECTIONS if isinstance(owner, dict) else ():
            if isinstance(owner.get(section), list):
                resolve_imports(
                    owner[section],
                    (*prefix, section),
                    file=resolved,
                    reporter=report,
                    context=context,
                    section=section,
                    ikanos=ikanos,
                )
    if isinstance(capability, dict) and isinstance(capability.get("consumes"), list):
        consumes = capability["consumes"]
        where: PathT = ("capability", "consumes")
        clashes, moved = merge_consumes(consumes, where, report)
        report.renumber(moved)
        for ns in clashes:
            report.error(
                where,
                f"consumes namespace {ns!r} is declared twice with different settings: "
                "rename one or merge their resources",
            )
    try:
        document = Document.model_validate(data)
    except ValidationError as exc:
        _report_validation(exc, data, report)
        raise LoadError(sink) from None
    if document.capability is None:
        report.error((), "no 'capability' block: a capability document needs one")
        raise LoadError(sink)
    check_document(document, report, strict=strict)
    if ikanos:
        _check_ikanos_namespaces(document, report)
    unset: list[Diagnostic] = []
    bindings = _bind(document, source, context, report, env, base_dir, require_binds, unset)
    if any(d.severity == "error" for d in sink):
        raise LoadError(sink)
    return LoadedCapability(
        path=path,
        base_dir=base_dir,
        document=document,
        bindings=bindings,
        diagnostics=tuple(sink),
        source_map=source.source_map,
        strict=strict,
        unset_binds=tuple(unset),
    )


def _not_a_capability(data: Any) -> str:
    if data is None:
        return "empty document: a capability needs 'naftiko', 'info' and 'capability'"
    if not isinstance(data, dict):
        kind = {list: "a list", str: "a plain string"}.get(type(data), type(data).__name__)
        return f"the document root is {kind}, not a mapping with 'naftiko' and 'capability'"
    if is_shared_document(data) and ("naftiko" in data or "ikanos" in data):
        return "a shared consumes file (no 'capability'): capabilities import it, it does not run"
    return "not a capability document: no 'naftiko' key at the root"


def _check_version(version: Any, report: Reporter, *, strict: bool, ikanos: bool) -> None:
    """Every release of either root key is first-class: only other values are reported."""
    if strict:
        return  # in strict mode the schema reports any other value as an error
    if ikanos:
        if version not in IKANOS_VERSIONS:
            report(("ikanos",), f"unknown ikanos version {version!r}: read as {LATEST_IKANOS}")
        return
    if version in NAFTIKO_VERSIONS:
        return
    if version is None:
        report(("naftiko",), f"no 'naftiko' version: read as {CURRENT_VERSION}")
    elif version in ACCEPTED_VERSIONS:
        report(("naftiko",), f"naftiko {version}: read as {CURRENT_VERSION}")
    else:
        report(("naftiko",), f"unknown naftiko version {version!r}: read as {CURRENT_VERSION}")


def _check_ikanos_namespaces(document: Document, report: Reporter) -> None:
    """What Ikanos requires and alpha2 documents are forgiven: a namespace on every
    served adapter and aggregate (units and flows are addressed as ``namespace.name``)."""
    capability = document.capability
    if capability is None:
        return
    for i, entry in enumerate(capability.exposes):
        if entry.type in ("rest", "mcp", "skill") and not entry.namespace:
            report.error(("capability", "exposes", i), f"{entry.type} adapter has no namespace")
    for i, aggregate in enumerate(capability.aggregates):
        if not aggregate.namespace:
            report.error(
                ("capability", "aggregates", i),
                "aggregate has no namespace: its flows cannot be referenced (namespace.flow)",
            )


def _report_validation(exc: ValidationError, data: Any, report: Reporter) -> None:
    """Pydantic errors as document paths; never quote the input (it may be a secret)."""
    for error in exc.errors(include_url=False, include_input=False, include_context=False):
        path, node, exact = _document_path(error["loc"], data)
        got = f" (got {_kind(node)})" if exact else ""
        report.error(path, f"{error['msg']}{got}: this value cannot be used")


def _document_path(loc: tuple[Any, ...], data: Any) -> tuple[PathT, Any, bool]:
    """Follow a pydantic ``loc`` through ``data``; union tags that are no keys are skipped.

    Returns the path, the value reached and whether the last part of ``loc`` was found.
    """
    path: list[str | int] = []
    node = data
    exact = True
    for part in loc:
        exact = True
        if (isinstance(node, dict) and part in node) or (
            isinstance(node, list) and isinstance(part, int) and 0 <= part < len(node)
        ):
            node = node[part]
        else:
            exact = False
            continue
        path.append(part)
    return tuple(path), node, exact


def _kind(value: Any) -> str:
    return {
        dict: "a mapping",
        list: "a list",
        str: "text",
        bool: "a boolean",
        int: "a number",
        float: "a number",
        type(None): "null",
    }.get(type(value), type(value).__name__)


def _bind(
    document: Document,
    source: SourceFile,
    context: ImportContext,
    report: Reporter,
    env: Mapping[str, str] | None,
    base_dir: Path,
    require_binds: bool,
    unset: list[Diagnostic],
) -> Bindings:
    capability = document.capability
    binds = [(("binds", i), b) for i, b in enumerate(document.binds)]
    if capability is not None:
        binds += [(("capability", "binds", i), b) for i, b in enumerate(capability.binds)]
    if not binds:
        return Bindings.empty()
    refs = referenced_names([source.text, *context.texts])
    namespace_of = {path: bind.namespace for path, bind in binds}
    would_fail = Reporter(source.source_map, unset)

    def missing(path: PathT, var: str, message: str) -> None:
        ns = namespace_of.get(path[:-2])
        used = var in refs or f"env.{var}" in refs or (ns is not None and f"{ns}.{var}" in refs)
        required = f"{message}; the document uses it, so it must be set"
        if require_binds and used:
            report.error(path, required)
        else:
            if used:
                would_fail.error(path, required)
            report.warning(path, message + ("" if used else " (nothing in the document uses it)"))

    return resolve_binds(
        binds, env=os.environ if env is None else env, base_dir=base_dir, missing=missing
    )
