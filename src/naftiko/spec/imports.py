"""Resolve ``consumes`` imports (``location`` + ``import`` + ``as``) in place.

Works on plain data before validation, so the models only ever see inline ``http``
entries. A location is a path relative to the importing file (``file://`` forms are
accepted too). Imported files may import in turn; a cycle is reported with the chain of
files. Each imported entry is deep-copied, so one source can be imported under two
aliases, and its later diagnostics point into the file it came from.
"""

from __future__ import annotations

import copy
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from naftiko.spec.binds import BindLookupError, bind_file_path
from naftiko.spec.normalize import normalize
from naftiko.spec.source import PathT, Reporter, SourceError, read_source


@dataclass
class ImportContext:
    """State shared by one load: parsed files (each parsed and reported once)."""

    reporter: Reporter
    files: dict[Path, tuple[list[Any], PathT, Reporter]] = field(default_factory=dict)
    texts: list[str] = field(default_factory=list)  # for bind reference detection
    imported_files: list[Path] = field(default_factory=list)


def resolve_imports(
    consumes: list[Any],
    path: PathT,
    *,
    file: Path,
    reporter: Reporter,
    context: ImportContext,
    chain: tuple[Path, ...] = (),
) -> None:
    """Replace each import entry of ``consumes`` (at ``path`` in ``file``) by its target."""
    chain = (*chain, file)
    for i, entry in enumerate(consumes):
        if not (isinstance(entry, dict) and "location" in entry):
            continue
        entry_path = (*path, i)
        resolved = _resolve_one(entry, entry_path, file, reporter, context, chain)
        if resolved is not None:
            consumes[i], source_reporter, source_path = resolved
            reporter.remap(entry_path, source_reporter, source_path)


def _resolve_one(
    entry: dict[str, Any],
    entry_path: PathT,
    file: Path,
    reporter: Reporter,
    context: ImportContext,
    chain: tuple[Path, ...],
) -> tuple[dict[str, Any], Reporter, PathT] | None:
    location, namespace, alias = entry.get("location"), entry.get("import"), entry.get("as")
    if not isinstance(location, str) or not location:
        reporter.error((*entry_path, "location"), "import 'location' is required")
        return None
    if "openapi" in entry and not namespace:
        reporter.error(
            entry_path,
            "importing an OpenAPI description ('openapi:') is not supported: import a "
            "Naftiko consumes file with 'import: <namespace>'",
        )
        return None
    if not isinstance(namespace, str) or not namespace:
        reporter.error(entry_path, "import 'import' (the namespace to import) is required")
        return None
    try:
        target = bind_file_path(location, file.parent)
    except BindLookupError as exc:
        reporter.error((*entry_path, "location"), str(exc))
        return None
    if target in chain:
        cycle = " -> ".join(str(p) for p in (*chain[chain.index(target) :], target))
        reporter.error((*entry_path, "location"), f"import cycle: {cycle}")
        return None
    loaded = _load_source(target, file, entry_path, reporter, context, chain)
    if loaded is None:
        return None
    candidates, where, source_reporter = loaded
    named = [(j, c) for j, c in enumerate(candidates) if isinstance(c, dict) and c.get("namespace")]
    found = [(j, c) for j, c in named if c["namespace"] == namespace]
    if not found and len(named) == 1 and "location" not in named[0][1]:
        found = named
        reporter(
            (*entry_path, "import"),
            f"namespace {namespace!r} not found in {target}: imported its only consumes "
            f"entry {named[0][1]['namespace']!r}",
        )
    if found:
        j, candidate = found[0]
        if "location" in candidate:  # an import re-exported by name: already reported
            return None
        resolved = copy.deepcopy(candidate)
        if isinstance(alias, str) and alias:
            resolved["namespace"] = alias
        return resolved, source_reporter, (*where, j)
    if any(isinstance(c, dict) and "location" in c for c in candidates):
        return None  # an import of that file failed and was reported there
    known = sorted(str(c["namespace"]) for _, c in named)
    reporter.error(
        (*entry_path, "import"),
        f"namespace {namespace!r} not found in {target} (imported by {file}); "
        f"it has: {', '.join(known) or 'no namespaces'}",
    )
    return None


def _load_source(
    target: Path,
    file: Path,
    entry_path: PathT,
    reporter: Reporter,
    context: ImportContext,
    chain: tuple[Path, ...],
) -> tuple[list[Any], PathT, Reporter] | None:
    if target in context.files:
        return context.files[target]
    try:
        source = read_source(target, str(target))
    except SourceError as exc:
        where = f":{exc.line}:{exc.column or 1}" if exc.line else ""
        reporter.error(
            (*entry_path, "location"),
            f"cannot import {target}{where} (imported by {file}): {exc.message}",
        )
        return None
    data = source.data
    capability = data.get("capability") if isinstance(data, dict) else None
    if isinstance(data, dict) and isinstance(data.get("consumes"), list):
        where: PathT = ("consumes",)
        consumes = data["consumes"]
    elif isinstance(capability, dict) and isinstance(capability.get("consumes"), list):
        where = ("capability", "consumes")
        consumes = capability["consumes"]
        reporter(
            (*entry_path, "location"),
            f"{target} has no root 'consumes': importing from its capability.consumes",
        )
    else:
        reporter.error(
            (*entry_path, "location"),
            f"{target} (imported by {file}) has no root 'consumes' list to import from",
        )
        return None
    source_reporter = reporter.for_file(source.source_map)
    normalize(data, source_reporter)
    context.texts.append(source.text)
    context.imported_files.append(target)
    context.files[target] = (consumes, where, source_reporter)
    resolve_imports(
        consumes, where, file=target, reporter=source_reporter, context=context, chain=chain
    )
    return consumes, where, source_reporter
