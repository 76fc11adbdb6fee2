"""Command-line entry points (``naftiko``, ``naftiko-run``), one module per command."""

from naftiko.cli.entry import main, run_main

__all__ = ["main", "run_main"]
