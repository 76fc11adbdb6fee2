"""``naftiko export openapi FILE [-o OUT] [--adapter NAMESPACE] [--format json|yaml]``.

Writes the same OpenAPI 3.1 document a running REST adapter serves at
``/.well-known/openapi.json`` (one builder, so they cannot drift), with the adapter's
``address:port`` as the server URL. Binds are not required: exporting describes the
API and needs no secret. Exit codes: 0 written, 2 unusable document or arguments
(diagnostics on stderr, never a traceback), 1 the output could not be written.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Any

import yaml

from naftiko.adapters.exposes import compile_capability
from naftiko.adapters.rest.openapi import build_openapi, openapi_info
from naftiko.adapters.rest.plan import RestAdapterPlan
from naftiko.spec.diagnostics import LoadError
from naftiko.spec.loader import load_capability
from naftiko.upstream.settings import UpstreamSettings

__all__ = ["add_arguments", "export_openapi", "run"]


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("kind", choices=["openapi"], help="what to export (openapi)")
    parser.add_argument("file", type=Path, metavar="FILE", help="a capability document")
    parser.add_argument(
        "-o", "--output", type=Path, metavar="OUT", help="write here instead of stdout"
    )
    parser.add_argument(
        "--adapter",
        metavar="NAMESPACE",
        help="the REST adapter to export (needed when the document exposes several)",
    )
    parser.add_argument(
        "--format",
        choices=["json", "yaml"],
        help="output format (default: from OUT's extension, else json)",
    )


class _PlainDumper(yaml.SafeDumper):
    """No ``&id001`` anchors: shared sub-objects are written out in full for readers."""

    def ignore_aliases(self, data: Any) -> bool:
        return True


def _server_url(plan: RestAdapterPlan) -> str | None:
    if plan.port is None:
        return None
    host = plan.address if plan.address and plan.address not in ("0.0.0.0", "::") else "localhost"
    host = f"[{host}]" if ":" in host else host
    return f"http://{host}:{plan.port}"


def _fail(message: str) -> int:
    print(f"naftiko export: {message}", file=sys.stderr)
    return 2


def export_openapi(path: Path, adapter: str | None = None) -> dict[str, Any]:
    """The OpenAPI document of one REST adapter of ``path``.

    Raises ``LoadError`` for an unusable document and ``LookupError`` (with a message
    naming the choices) when the adapter is missing or ambiguous.
    """
    loaded = load_capability(path, require_binds=False)
    compiled = compile_capability(loaded, UpstreamSettings())
    plans = [a for a in compiled.adapters if isinstance(a, RestAdapterPlan)]
    names = ", ".join(p.namespace for p in plans) or "none"
    if adapter is not None:
        plans = [p for p in plans if p.namespace == adapter]
        if not plans:
            raise LookupError(f"no REST adapter {adapter!r} (REST adapters: {names})")
    if not plans:
        raise LookupError("the document exposes no REST adapter")
    if len(plans) > 1:
        raise LookupError(f"several REST adapters ({names}); choose one with --adapter")
    plan = plans[0]
    title, version, description = openapi_info(plan, loaded.document.info)
    return build_openapi(
        plan,
        title=title,
        version=version,
        description=description,
        server_url=_server_url(plan),
    )


def run(args: argparse.Namespace) -> int:
    try:
        document = export_openapi(args.file, args.adapter)
    except LoadError as exc:
        for diagnostic in exc.diagnostics:
            print(diagnostic.format(), file=sys.stderr)
        return 2
    except LookupError as exc:
        return _fail(str(exc))
    fmt = args.format
    if fmt is None:
        suffix = args.output.suffix.lower() if args.output else ""
        fmt = "yaml" if suffix in (".yaml", ".yml") else "json"
    if fmt == "yaml":
        text = yaml.dump(document, Dumper=_PlainDumper, sort_keys=False, allow_unicode=True)
    else:
        text = json.dumps(document, indent=2, ensure_ascii=False) + "\n"
    if args.output is None:
        sys.stdout.write(text)
        return 0
    try:
        args.output.write_text(text, encoding="utf-8")
    except OSError as exc:
        print(f"naftiko export: cannot write {args.output}: {exc.strerror}", file=sys.stderr)
        return 1
    return 0
