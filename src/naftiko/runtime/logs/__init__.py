"""Logging for the process: one line per event, text or JSON, and never a secret.

* :mod:`~naftiko.runtime.logs.redaction` — :class:`Redactor`: bind values and credential
  patterns replaced in text;
* :mod:`~naftiko.runtime.logs.formatters` — :class:`TextFormatter`, :class:`JsonFormatter`
  (redacting, with a cheap road for the request line);
* :mod:`~naftiko.runtime.logs.handler` — :class:`BatchingStreamHandler` (lines written in
  batches), :func:`flush_logs`, :class:`CancelledRequestFilter`;
* :mod:`~naftiko.runtime.logs.requests` — :func:`log_request`, the request line and its
  fast path;
* here — :func:`configure_logging`, which puts them together on the root logger.
"""

from __future__ import annotations

import contextlib
import logging
import sys
from typing import TextIO

from naftiko.runtime.logs.formatters import REQUEST_MESSAGE, JsonFormatter, TextFormatter
from naftiko.runtime.logs.handler import BatchingStreamHandler, CancelledRequestFilter, flush_logs
from naftiko.runtime.logs.redaction import MIN_SECRET_LENGTH, REDACTED, SECRET_NAMES, Redactor
from naftiko.runtime.logs.requests import log_request

__all__ = [
    "MIN_SECRET_LENGTH",
    "QUIET_LOGGERS",
    "REDACTED",
    "REQUEST_MESSAGE",
    "SECRET_NAMES",
    "BatchingStreamHandler",
    "CancelledRequestFilter",
    "JsonFormatter",
    "Redactor",
    "TextFormatter",
    "configure_logging",
    "flush_logs",
    "log_request",
]

QUIET_LOGGERS = ("httpx", "httpcore", "httpx2", "httpcore2", "mcp", "uvicorn.access")


def configure_logging(
    *, log_format: str, level: str, redactor: Redactor, stream: TextIO | None = None
) -> logging.Handler:
    """Route every logger to one redacting handler on stdout (stderr under stdio MCP).

    HTTP client libraries log request URLs and headers at INFO/DEBUG; they stay at
    WARNING so an upstream URL carrying a key never reaches the log, whatever the level.
    """
    handler = BatchingStreamHandler(stream or sys.stdout)
    handler.addFilter(CancelledRequestFilter())
    handler.setFormatter(
        JsonFormatter(redactor) if log_format == "json" else TextFormatter(redactor)
    )
    root = logging.getLogger()
    for old in list(root.handlers):
        root.removeHandler(old)
        with contextlib.suppress(Exception):  # a replaced handler must not keep lines back
            old.flush()
    root.addHandler(handler)
    root.setLevel(level.upper())
    for name in QUIET_LOGGERS:
        logging.getLogger(name).setLevel(logging.WARNING)
    for name in ("uvicorn", "uvicorn.error"):
        uv = logging.getLogger(name)
        uv.handlers.clear()
        uv.propagate = True
    # One "Started server process" per adapter says nothing our summary does not.
    if level.lower() != "debug":
        logging.getLogger("uvicorn.error").setLevel(logging.WARNING)
    logging.captureWarnings(True)
    return handler
