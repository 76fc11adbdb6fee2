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

# command name -> (module, one-line help)
COMMANDS: dict[str, tuple[str, str]] = {
    "run": ("naftiko.runtime.command", "serve capability documents (same as naftiko-run)"),
    "validate": ("naftiko.spec.validate_command", "load capability documents and report problems"),
    "export": ("naftiko.adapters.export_command", "export a REST adapter as an OpenAPI document"),
}


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="naftiko", description=__doc__.splitlines()[0])
    parser.add_argument("--version", action="version", version=f"naftiko {__version__}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    for name, (module_name, help_text) in COMMANDS.items():
        command_parser = sub.add_parser(name, help=help_text, description=help_text)
        module = importlib.import_module(module_name)
        module.add_arguments(command_parser)
        command_parser.set_defaults(_run=module.run)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    parser = _parser()
    args = parser.parse_args(argv)
    if getattr(args, "_run", None) is None:
        parser.print_help(sys.stderr)
        return 2
    try:
        return int(args._run(args))
    except BrokenPipeError:
        # `naftiko validate dir | head`: the reader left; stop quietly like other CLI tools.
        sys.stderr.close()
        return 0
    except KeyboardInterrupt:
        return 130


def run_main(argv: Sequence[str] | None = None) -> int:
    """``naftiko-run FILE|DIR ...`` is ``naftiko run FILE|DIR ...``."""
    return main(["run", *(sys.argv[1:] if argv is None else argv)])
