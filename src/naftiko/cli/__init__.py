"""Command-line entry points (``naftiko``, ``naftiko-run`` in ``main``), one module per command."""
