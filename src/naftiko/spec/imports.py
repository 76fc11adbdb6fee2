"""Resolve import entries of ``consumes``, ``exposes``, ``aggregates`` and ``binds`` in place.

Works on plain data before validation, so the models only ever see inline entries. An
import names a file (alpha2 ``location``, Ikanos ``from``), the ``namespace`` of the entry
to take from that file's root section of the same name (``import``) and an optional
local alias (``as``). The path is relative to the importing file (``file://`` forms are
accepted too). alpha2 ``consumes`` imports may chain (a cycle is reported with the chain
of files); Ikanos imports are not transitive, as in the reference: the imported file
must declare its entries itself. Each imported entry is deep-copied, so one source can
be imported under two aliases, and its later diagnostics point into the file it came from.
"""

from __future__ import annotations

import copy
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from naftiko.spec.binds import BindLookupError, bind_file_path
from naftiko.spec.normalize import is_ikanos, normalize
from naftiko.spec.source import PathT, Reporter, SourceError, read_source

SECTIONS = ("consumes", "exposes", "aggregates", "binds")
# What an inline entry of each section has and an import entry does not.
_INLINE_KEYS = frozenset({"type", "namespace", "baseUri", "keys", "flows", "functions"})


@dataclass
class _Parsed:
    data: dict[str, Any]
    reporter: Reporter
    ikanos: bool


@dataclass
class ImportContext:
    """State shared by one load: parsed files (each parsed and reported once)."""

    reporter: Reporter
    files: dict[Path, _Parsed | None] = field(default_factory=dict)
    texts: list[str] = field(default_factory=list)  # for bind reference detection
    imported_files: list[Path] = field(default_factory=list)


def is_import_entry(entry: Any, section: str = "consumes", ikanos: bool = False) -> bool:
    """An import entry: ``from`` (Ikanos), ``location`` on a consumes entry (alpha2), or,
    in an Ikanos document, an ``import`` with nothing of an inline entry (its ``from``
    forgotten; pre-alpha documents wrote ``import: FILE`` and are read as before)."""
    if not isinstance(entry, dict):
        return False
    if "from" in entry:
        return True
    if section == "consumes" and "location" in entry:
        return True
    return ikanos and "import" in entry and not _INLINE_KEYS.intersection(entry)


def resolve_imports(
    entries: list[Any],
    path: PathT,
    *,
    file: Path,
    reporter: Reporter,
    context: ImportContext,
    chain: tuple[Path, ...] = (),
    section: str = "consumes",
    ikanos: bool = False,
) -> None:
    """Replace each import entry of ``entries`` (``section`` at ``path`` in ``file``).

    ``ikanos``: the importing document is Ikanos, whose imports are not transitive."""
    chain = (*chain, file)
    for i, entry in enumerate(entries):
        if not is_import_entry(entry, section, ikanos):
            continue
        entry_path = (*path, i)
        resolved = _resolve_one(entry, entry_path, file, reporter, context, chain, section, ikanos)
        if resolved is not None:
            entries[i], source_reporter, source_path = resolved
            reporter.remap(entry_path, source_reporter, source_path)


def _resolve_one(
    entry: dict[str, Any],
    entry_path: PathT,
    file: Path,
    reporter: Reporter,
    context: ImportContext,
    chain: tuple[Path, ...],
    section: str,
    ikanos: bool,
) -> tuple[dict[str, Any], Reporter, PathT] | None:
    key = "from" if "from" in entry or "location" not in entry else "location"
    location, namespace, alias = entry.get(key), entry.get("import"), entry.get("as")
    if not isinstance(location, str) or not location:
        reporter.error((*entry_path, key), f"import {key!r} (the file to import from) is required")
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
        reporter.error((*entry_path, key), str(exc))
        return None
    if target in chain:
        cycle = " -> ".join(str(p) for p in (*chain[chain.index(target) :], target))
        reporter.error((*entry_path, key), f"import cycle: {cycle}")
        return None
    parsed = _parse(target, file, (*entry_path, key), reporter, context)
    if parsed is None:
        return None
    found = _section(parsed, target, section, (*entry_path, key), reporter)
    if found is None:
        reporter.error(
            (*entry_path, key),
            f"{target} (imported by {file}) has no root {section!r} list to import from",
        )
        return None
    candidates, where = found
    imports = [j for j, c in enumerate(candidates) if is_import_entry(c, section, parsed.ikanos)]
    if imports and ikanos:
        reporter.error(
            (*entry_path, key),
            f"{target} imports in turn ({section}[{imports[0]}]): imports are not "
            "transitive, so the imported file must declare its entries itself",
        )
        return None
    if imports:
        resolve_imports(
            candidates,
            where,
            file=target,
            reporter=parsed.reporter,
            context=context,
            chain=chain,
            section=section,
            ikanos=parsed.ikanos,
        )
    named = [(j, c) for j, c in enumerate(candidates) if isinstance(c, dict) and c.get("namespace")]
    matches = [(j, c) for j, c in named if c["namespace"] == namespace]
    if not matches and len(named) == 1 and not is_import_entry(named[0][1], section):
        matches = named
        reporter(
            (*entry_path, "import"),
            f"namespace {namespace!r} not found in {target}: imported its only {section} "
            f"entry {named[0][1]['namespace']!r}",
        )
    if matches:
        j, candidate = matches[0]
        if is_import_entry(candidate, section):  # an import re-exported: already reported
            return None
        resolved = copy.deepcopy(candidate)
        if isinstance(alias, str) and alias:
            resolved["namespace"] = alias
        return resolved, parsed.reporter, (*where, j)
    if any(is_import_entry(c, section) for c in candidates):
        return None  # an import of that file failed and was reported there
    known = sorted(str(c["namespace"]) for _, c in named)
    reporter.error(
        (*entry_path, "import"),
        f"namespace {namespace!r} not found in {target} (imported by {file}); "
        f"it has: {', '.join(known) or 'no namespaces'}",
    )
    return None


def _parse(
    target: Path, file: Path, at: PathT, reporter: Reporter, context: ImportContext
) -> _Parsed | None:
    if target in context.files:
        return context.files[target]
    context.files[target] = None  # a failure is reported once, at the first import
    try:
        source = read_source(target, str(target))
    except SourceError as exc:
        where = f":{exc.line}:{exc.column or 1}" if exc.line else ""
        reporter.error(at, f"cannot import {target}{where} (imported by {file}): {exc.message}")
        return None
    data = source.data
    if not isinstance(data, dict):
        reporter.error(at, f"{target} (imported by {file}) is not a mapping")
        return None
    ikanos = is_ikanos(data)
    source_reporter = reporter.for_file(source.source_map)
    normalize(data, source_reporter)
    context.texts.append(source.text)
    context.imported_files.append(target)
    parsed = _Parsed(data, source_reporter, ikanos)
    context.files[target] = parsed
    return parsed


def _section(
    parsed: _Parsed, target: Path, section: str, at: PathT, reporter: Reporter
) -> tuple[list[Any], PathT] | None:
    data = parsed.data
    if isinstance(data.get(section), list):
        return data[section], (section,)
    capability = data.get("capability")
    if isinstance(capability, dict) and isinstance(capability.get(section), list):
        reporter(at, f"{target} has no root {section!r}: importing from its capability.{section}")
        return capability[section], ("capability", section)
    return None
