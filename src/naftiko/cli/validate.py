"""``naftiko validate FILE|DIR ...``: load documents and report every problem.

One line per problem (``FILE:LINE:COL: severity: message (at path)``), then a summary.
Exit 0 when every capability document loads, 2 when one does not. Shared consumes
files and other YAML/JSON that is not a capability are skipped, not failed. Validation
never needs the bind values: missing ones are warnings here. The engine's compilation
runs too, with its warnings (units that will answer 501, and why); ``--strict`` makes
those errors.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import TextIO

from naftiko.spec.diagnostics import Diagnostic, LoadError
from naftiko.spec.loader import (
    LoadedCapability,
    discover,
    is_capability_document,
    load_source,
)
from naftiko.spec.source import SourceError, read_source


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("paths", nargs="+", metavar="FILE|DIR", help="documents or directories")
    parser.add_argument(
        "--strict",
        action="store_true",
        help="also validate against the official JSON schema; unresolved references fail",
    )
    parser.add_argument("--quiet", "-q", action="store_true", help="print errors only")


def run(args: argparse.Namespace) -> int:
    out: TextIO = sys.stdout
    counts = {"ok": 0, "warnings": 0, "failed": 0, "skipped": 0}
    for path in discover(args.paths):
        status, diagnostics = validate_file(path, strict=args.strict)
        counts[status] += 1
        for diagnostic in sorted(diagnostics, key=_order):
            if not (args.quiet and diagnostic.severity != "error"):
                print(diagnostic.format(), file=out)
    documents = counts["ok"] + counts["warnings"] + counts["failed"]
    summary = (
        f"{documents} document{'s' if documents != 1 else ''}: {counts['ok']} ok, "
        f"{counts['warnings']} with warnings, {counts['failed']} failed"
    )
    if counts["skipped"]:
        summary += f", {counts['skipped']} skipped"
    print(summary, file=out)
    return 2 if counts["failed"] or documents == 0 else 0


def validate_file(path: Path, *, strict: bool = False) -> tuple[str, tuple[Diagnostic, ...]]:
    """``(status, diagnostics)`` with status ``ok``, ``warnings``, ``failed`` or ``skipped``."""
    name = str(path)
    try:
        source = read_source(path, name)
    except SourceError as exc:
        return "failed", (Diagnostic("error", name, exc.message, line=exc.line, column=exc.column),)
    if not is_capability_document(source.data):
        return "skipped", ()
    try:
        loaded = load_source(path, source, strict=strict, require_binds=False)
        warnings = _compile(loaded, strict=strict)
    except LoadError as exc:
        return "failed", exc.diagnostics
    except Exception as exc:  # a defect of ours must not hide the other files' results
        message = f"internal error while loading ({type(exc).__name__}); please report it"
        return "failed", (Diagnostic("error", name, message),)
    diagnostics = (*loaded.diagnostics, *warnings)
    return ("warnings" if diagnostics else "ok"), diagnostics


def _compile(loaded: LoadedCapability, *, strict: bool) -> tuple[Diagnostic, ...]:
    """Run the engine's load-time compilation, which ``naftiko run`` also does: what it
    refuses (a ``script`` step, a template or JSONPath that does not parse, a missing
    prompt file) must fail here too; what it confines to some units is a warning.
    Imported late: ``spec`` does not need the engine."""
    from naftiko.adapters.exposes import compile_capability

    return compile_capability(loaded, strict=strict).warnings


def _order(diagnostic: Diagnostic) -> tuple[str, int, int]:
    return (diagnostic.file, diagnostic.line or 0, diagnostic.column or 0)
