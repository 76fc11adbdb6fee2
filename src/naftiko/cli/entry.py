"""Command-line entry points: ``naftiko <command>`` and ``naftiko-run``.

Each command lives in its own module exposing ``add_arguments(parser)`` and
``run(args) -> int``; this file only wires them. Exit codes: 0 ok, 1 runtime failure,
2 usage or invalid capability.
"""

from __future__ import annotations

import argparse
import importlib
import sys
from collections.abc import Sequence

from naftiko import __version__

# What ``naftiko --help`` says: plain text (the module docstring is reStructuredText).
DESCRIPTION = (
    "Serve declarative API capability documents as REST APIs and MCP servers, "
    "validate them, or export their OpenAPI documents."
)
# command name -> (module, one-line help)
COMMANDS: dict[str, tuple[str, str]] = {
    "run": ("naftiko.cli.run", "serve capability documents (same as naftiko-run)"),
    "validate": ("naftiko.cli.validate", "load capability documents and report problems"),
    "export": ("naftiko.cli.export", "export a REST adapter as an OpenAPI document"),
    "convert": (
        "naftiko.cli.convert",
        "rewrite a document as Ikanos 1.0.0-beta4 or as Naftiko 1.0.0-alpha2",
    ),
}


def _chosen(argv: Sequence[str]) -> str | None:
    """The subcommand argparse will pick: the first argument that is not an option.

    The top-level options (``--help``, ``--version``) take no value, so this is exact.
    """
    return next((arg for arg in argv if not arg.startswith("-")), None)


def _parser(command: str | None) -> argparse.ArgumentParser:
    """The parser, with the arguments of ``command`` only.

    Every command is listed (``naftiko --help`` shows them all), but only the chosen
    one's module is imported: ``naftiko run`` should not pay for the exporter's imports,
    and ``naftiko --help`` needs none of them.
    """
    parser = argparse.ArgumentParser(prog="naftiko", description=DESCRIPTION)
    parser.add_argument("--version", action="version", version=f"naftiko {__version__}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    for name, (module_name, help_text) in COMMANDS.items():
        command_parser = sub.add_parser(name, help=help_text, description=help_text)
        if name != command:
            continue  # argparse will not select it for this command line
        module = importlib.import_module(module_name)
        module.add_arguments(command_parser)
        command_parser.set_defaults(_run=module.run)
    return parser


def _prepare_server_process() -> None:
    """Process-wide settings for ``naftiko run``, applied before anything is imported.

    - No cyclic GC until the adapters are ready (``naftiko.runtime.heap``): loading
      creates many objects and none of them is garbage, so collections are pure cost.
    - httpx's command-line client is never imported (``skip_httpx_command_line``).
    """
    from naftiko.runtime import heap
    from naftiko.upstream import skip_httpx_command_line

    heap.defer_collection()
    skip_httpx_command_line()


def main(argv: Sequence[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    command = _chosen(argv)
    if command == "run":
        _prepare_server_process()
    try:
        parser = _parser(command)
        args = parser.parse_args(argv)
        if getattr(args, "_run", None) is None:
            parser.print_help(sys.stderr)
            return 2
        return int(args._run(args))
    except BrokenPipeError:
        # `naftiko validate dir | head`: the reader left; stop quietly like other CLI tools.
        sys.stderr.close()
        return 0
    except KeyboardInterrupt:
        return 130
    finally:
        if command == "run":  # --check, a failed start, or an in-process caller
            from naftiko.runtime import heap

            heap.resume()


def run_main(argv: Sequence[str] | None = None) -> int:
    """``naftiko-run FILE|DIR ...`` is ``naftiko run FILE|DIR ...``."""
    return main(["run", *(sys.argv[1:] if argv is None else argv)])
