"""Logging for the process: one line per event, text or JSON, and never a secret.

Redaction happens in the formatter of the one handler every logger propagates to, so
it covers our records, uvicorn's and the SDK's alike, after ``%`` arguments have been
merged into the message (a secret passed as an argument is caught too). Two layers:
the exact values of every bind (``Bindings.secret_values()``), and patterns for
credentials that never went through a bind (Authorization headers, bearer tokens,
``client_secret=...`` in a form body echoed by an error message).
"""

from __future__ import annotations

import asyncio
import json
import logging
import re
import sys
import time
from collections.abc import Iterable
from typing import Any, TextIO
from urllib.parse import quote, quote_plus

REDACTED = "[REDACTED]"
MIN_SECRET_LENGTH = 4  # shorter bind values would blank out ordinary words and numbers

# Field names whose value is a credential, in forms, JSON, query strings and headers.
SECRET_NAMES = (
    "client_secret",
    "client_assertion",
    "access_token",
    "refresh_token",
    "id_token",
    "code_verifier",
    "code",
    "password",
    "passwd",
    "secret",
    "token",
    "api_key",
    "apikey",
    "api-key",
    "x-api-key",
    "authorization",
    "proxy-authorization",
    "cookie",
    "set-cookie",
)
_NAMES = "|".join(re.escape(n) for n in sorted(SECRET_NAMES, key=len, reverse=True))
# "name": "value"  /  'name': 'value'  (JSON, Python reprs); the value may hold spaces.
_QUOTED = re.compile(
    rf"""(?ix)(?<![\w-])(["']?)({_NAMES})\1(\s*[:=]\s*)(["'])((?:\\.|(?!\4).)*)\4"""
)
# name=value / name: value (forms, query strings, headers); value runs to a delimiter.
# ``Authorization: Bearer xyz`` keeps the scheme word out of the value.
_BARE = re.compile(
    rf"""(?ix)(?<![\w-])({_NAMES})(\s*[:=]\s*)(?!["'\s])((?:bearer|basic|digest)\s+)?([^\s&,;"'}}\]]+)"""
)
_BEARER = re.compile(r"(?i)\b(bearer|basic|digest)(\s+)([A-Za-z0-9._~+/=-]{6,})")

# Attributes every LogRecord has; anything else was passed through ``extra=``.
_STANDARD_ATTRS = frozenset(
    vars(logging.LogRecord("", 0, "", 0, "", None, None)).keys()
) | {"message", "asctime", "color_message", "taskName"}


class Redactor:
    """Replaces secrets in text. Bind values can be added at reload time."""

    def __init__(self, secrets: Iterable[str] = ()) -> None:
        self._secrets: set[str] = set()
        self._pattern: re.Pattern[str] | None = None
        self.add(secrets)

    def add(self, secrets: Iterable[str]) -> None:
        fresh = {s for s in secrets if isinstance(s, str) and len(s) >= MIN_SECRET_LENGTH}
        if not fresh - self._secrets:
            return
        self._secrets |= fresh
        # Longest first, so a secret containing another is replaced whole; also match
        # the URL-encoded and JSON-escaped spellings a value takes inside messages.
        spellings: set[str] = set()
        for secret in self._secrets:
            spellings.add(secret)
            spellings.add(json.dumps(secret)[1:-1])
            spellings.add(quote(secret, safe=""))
            spellings.add(quote_plus(secret))
        ordered = sorted(spellings, key=len, reverse=True)
        self._pattern = re.compile("|".join(re.escape(s) for s in ordered))

    def redact(self, text: str) -> str:
        if not text:
            return text
        if self._pattern is not None:
            text = self._pattern.sub(REDACTED, text)
        text = _QUOTED.sub(lambda m: f"{m[1]}{m[2]}{m[1]}{m[3]}{m[4]}{REDACTED}{m[4]}", text)
        text = _BARE.sub(lambda m: f"{m[1]}{m[2]}{m[3] or ''}{REDACTED}", text)
        return _BEARER.sub(lambda m: f"{m[1]}{m[2]}{REDACTED}", text)

    def redact_value(self, value: Any, key: str | None = None) -> Any:
        """Redact a structured ``extra`` value: secret-named keys lose their value."""
        if key is not None and key.lower() in SECRET_NAMES and value not in (None, ""):
            return REDACTED
        if isinstance(value, str):
            return self.redact(value)
        if isinstance(value, dict):
            return {str(k): self.redact_value(v, str(k)) for k, v in value.items()}
        if isinstance(value, list | tuple):
            return [self.redact_value(v) for v in value]
        if isinstance(value, int | float | bool) or value is None:
            return value
        return self.redact(str(value))


def _extras(record: logging.LogRecord) -> dict[str, Any]:
    return {k: v for k, v in vars(record).items() if k not in _STANDARD_ATTRS}


class TextFormatter(logging.Formatter):
    """``2026-01-01T10:00:00.123Z INFO naftiko.request: message`` — redacted."""

    def __init__(self, redactor: Redactor) -> None:
        super().__init__()
        self.redactor = redactor

    def format(self, record: logging.LogRecord) -> str:
        stamp = time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(record.created))
        line = f"{stamp}.{int(record.msecs):03d}Z {record.levelname} {record.name}: "
        line += record.getMessage()
        if record.exc_info:
            line += "\n" + self.formatException(record.exc_info)
        elif record.exc_text:
            line += "\n" + record.exc_text
        return self.redactor.redact(line)


class JsonFormatter(logging.Formatter):
    """One JSON object per line: time, level, logger, message, then the ``extra`` fields."""

    def __init__(self, redactor: Redactor) -> None:
        super().__init__()
        self.redactor = redactor

    def format(self, record: logging.LogRecord) -> str:
        stamp = time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(record.created))
        event: dict[str, Any] = {
            "time": f"{stamp}.{int(record.msecs):03d}Z",
            "level": record.levelname.lower(),
            "logger": record.name,
            "message": self.redactor.redact(record.getMessage()),
        }
        for key, value in _extras(record).items():
            event.setdefault(key, self.redactor.redact_value(value, key))
        if record.exc_info:
            event["exception"] = self.redactor.redact(self.formatException(record.exc_info))
        return json.dumps(event, ensure_ascii=False, default=str)


class CancelledRequestFilter(logging.Filter):
    """uvicorn logs a full traceback for each request it cancels when the grace period
    runs out; that is expected, so keep one line and drop the traceback."""

    def filter(self, record: logging.LogRecord) -> bool:
        exc = record.exc_info[1] if record.exc_info else None
        if isinstance(exc, asyncio.CancelledError):
            record.msg, record.args = "request cancelled: %s", (str(exc) or "shutting down",)
            record.exc_info, record.exc_text = None, None
        return True


QUIET_LOGGERS = ("httpx", "httpcore", "httpx2", "httpcore2", "mcp", "uvicorn.access")


def configure_logging(
    *, log_format: str, level: str, redactor: Redactor, stream: TextIO | None = None
) -> logging.Handler:
    """Route every logger to one redacting handler on stdout (stderr under stdio MCP).

    HTTP client libraries log request URLs and headers at INFO/DEBUG; they stay at
    WARNING so an upstream URL carrying a key never reaches the log, whatever the level.
    """
    handler = logging.StreamHandler(stream or sys.stdout)
    handler.addFilter(CancelledRequestFilter())
    handler.setFormatter(
        JsonFormatter(redactor) if log_format == "json" else TextFormatter(redactor)
    )
    root = logging.getLogger()
    for old in list(root.handlers):
        root.removeHandler(old)
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
