"""Upstream: one send path to consumed APIs (request building, outbound auth, client, transport).

This package is the one place that knows httpx's insides; :func:`skip_httpx_command_line`
is the only one of them used outside its modules.
"""

import sys


def skip_httpx_command_line() -> None:
    """Keep ``import httpx`` from importing its command-line tool.

    httpx's package ``__init__`` imports ``httpx._main`` (rich, pygments, click) when they
    are installed, which roughly doubles its import time at every start; it falls back to
    a stub when that import fails, and the runtime never uses the tool. Call before httpx
    is first imported; harmless after, or if httpx stops importing it.
    """
    if "httpx" not in sys.modules:
        sys.modules.setdefault("httpx._main", None)  # type: ignore[arg-type]
