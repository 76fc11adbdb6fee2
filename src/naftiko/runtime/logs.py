"""Logging for the process: one line per event, text or JSON, and never a secret.

Redaction happens in the formatter of the one handler every logger propagates to, so
it covers our records, uvicorn's and the SDK's alike, after ``%`` arguments have been
merged into the message (a secret passed as an argument is caught too). Two layers:
the exact values of every bind (``Bindings.secret_values()``), and patterns for
credentials that never went through a bind (Authorization headers, bearer tokens,
``client_secret=...`` in a form body echoed by an error message).

The request line (one per request, the hot path at ``info``) has a cheaper road to the
same bytes: the formatters write it from a per-(adapter, unit) prefix checked once
against the redactor instead of running the patterns on every line (see
``_RequestLines``). When our handler is the only one that would see the record, as in
``naftiko-run``, :func:`log_request` hands it the line without making a record at all;
otherwise it builds the record without ``findCaller`` and marks it for the formatters.
Lines are written in batches by :class:`BatchingStreamHandler`; :func:`flush_logs`
empties it.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import math
import os
import re
import sys
import threading
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

# The record attribute marking a request record: (args, adapter_type, adapter, unit,
# status, is_error, upstream_status, duration_ms, request_id), set by ``log_request``
# only when every value has the type the fast path expects. Never written out.
_REQUEST_KEY = "_naftiko_request"
# Attributes every LogRecord has; anything else was passed through ``extra=``.
_STANDARD_ATTRS = frozenset(vars(logging.LogRecord("", 0, "", 0, "", None, None)).keys()) | {
    "message",
    "asctime",
    "color_message",
    "taskName",
    _REQUEST_KEY,
}


class Redactor:
    """Replaces secrets in text. Bind values can be added at reload time."""

    def __init__(self, secrets: Iterable[str] = ()) -> None:
        self._secrets: set[str] = set()
        self._pattern: re.Pattern[str] | None = None
        # Bumped whenever the secrets change: verdicts cached on text ("this prefix
        # is clean") are only valid for the generation they were made in.
        self.generation = 0
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
        self.generation += 1

    def holds_secret_value(self, text: str) -> bool:
        """Whether ``text`` contains a bind value (any spelling); the patterns are not run."""
        return self._pattern is not None and self._pattern.search(text) is not None

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


# --------------------------------------------------------------------------- request line

REQUEST_MESSAGE = "%s %s %s -> %s (upstream %s) %.1f ms [%s]"
# Request ids the fast path writes as they are: none of the patterns can match inside
# them (each needs ``:``/``=``, a quote or a space) and JSON has nothing to escape.
_PLAIN_ID = re.compile(r"[A-Za-z0-9._@+/-]*", re.ASCII)
_CACHE_LIMIT = 4096  # (level, logger, adapter type, adapter, unit) keys; bounded anyway
_REQUEST_EXTRAS = (
    "event",
    "request_id",
    "adapter_type",
    "adapter",
    "unit",
    "status",
    "error",
    "upstream_status",
    "duration_ms",
)


def _record_template() -> tuple[dict[str, Any], int]:
    """The constant attributes of a request record, and how many attributes it has.

    A record is built from this template when ``LogRecord`` has exactly the attributes
    this module knows how to fill (Python 3.11's); otherwise ``makeRecord`` builds it.
    """
    probe = logging.LogRecord("", logging.INFO, __file__, 0, REQUEST_MESSAGE, (), None, "")
    size = len(vars(probe)) + len(_REQUEST_EXTRAS) + 1
    known = {
        "name",
        "msg",
        "args",
        "levelname",
        "levelno",
        "pathname",
        "filename",
        "module",
        "exc_info",
        "exc_text",
        "stack_info",
        "lineno",
        "funcName",
        "created",
        "msecs",
        "relativeCreated",
        "thread",
        "threadName",
        "processName",
        "process",
    }
    if set(vars(probe)) != known:
        return {}, size
    constant = (
        "msg",
        "levelname",
        "levelno",
        "pathname",
        "filename",
        "module",
        "exc_info",
        "exc_text",
        "stack_info",
    )
    return {k: vars(probe)[k] for k in constant}, size


def log_request(
    logger: logging.Logger,
    *,
    adapter_type: str,
    adapter: str,
    unit: str,
    status: int,
    is_error: bool,
    duration_ms: float,
    request_id: str | None,
    upstream_status: int | None,
) -> None:
    """Log the request line at INFO: the same record ``logger.info(...)`` would make
    (message, ``extra`` fields), built without ``findCaller`` and marked for the fast
    path of the formatters when its values are of the expected types. When the only
    handler that would see it is ours (:func:`_sole_reader`), no record is made: the
    handler gets the line that formatting the record would have given."""
    if not logger.isEnabledFor(logging.INFO):
        return
    upstream = "-" if upstream_status is None else str(upstream_status)
    args = (adapter_type, adapter, unit or "-", status, upstream, duration_ms, request_id or "-")
    # Values of the types the adapters pass get the fast path; anything else (a bool
    # status, an int duration, an id with ``=``...) is formatted the generic way.
    fields = None
    if (
        type(status) is int
        and type(is_error) is bool
        and (upstream_status is None or type(upstream_status) is int)
        and type(duration_ms) is float
        and math.isfinite(duration_ms)
        and type(adapter_type) is str
        and type(adapter) is str
        and type(unit) is str
        and (
            request_id is None
            or (type(request_id) is str and _PLAIN_ID.fullmatch(request_id) is not None)
        )
    ):
        fields = (
            args,
            adapter_type,
            adapter,
            unit,
            status,
            is_error,
            upstream_status,
            duration_ms,
            request_id,
        )
        handler = _sole_reader(logger)
        if handler is not None and _write_directly(handler, logger.name, fields):
            return
    extra = {
        "event": "request",
        "request_id": request_id,
        "adapter_type": adapter_type,
        "adapter": adapter,
        "unit": unit,
        "status": status,
        "error": is_error,
        "upstream_status": upstream_status,
        "duration_ms": duration_ms,
    }
    if _TEMPLATE and logging.getLogRecordFactory() is logging.LogRecord:
        record = logging.LogRecord.__new__(logging.LogRecord)
        attrs = record.__dict__
        attrs.update(_TEMPLATE)
        now = time.time()
        attrs["name"] = logger.name
        attrs["args"] = args
        attrs["lineno"] = _LINENO
        attrs["funcName"] = "log_request"
        attrs["created"] = now
        attrs["msecs"] = _msecs(now) + 0.0
        attrs["relativeCreated"] = (now - logging._startTime) * 1000
        if logging.logThreads:
            attrs["thread"] = threading.get_ident()
            attrs["threadName"] = threading.current_thread().name
        else:
            attrs["thread"] = attrs["threadName"] = None
        attrs["processName"] = _process_name()
        attrs["process"] = os.getpid() if logging.logProcesses else None
        attrs.update(extra)
    else:
        record = logger.makeRecord(
            logger.name,
            logging.INFO,
            __file__,
            _LINENO,
            REQUEST_MESSAGE,
            args,
            None,
            "log_request",
            extra,
        )
    if fields is not None:
        record.__dict__[_REQUEST_KEY] = fields
    logger.handle(record)


def _sole_reader(logger: logging.Logger) -> BatchingStreamHandler | None:
    """The one handler a request record of ``logger`` would reach, when nothing else
    would see the record: then the line can go to it without a record.

    As ``Logger.handle``/``callHandlers`` deliver: the logger itself must not be
    disabled nor filter; along the propagation chain there must be exactly one handler,
    ours, at INFO or below, with our formatter and no filter but the pass-through one
    (request records carry no exception). A custom record factory could add fields
    that the line would show: then records are made as usual.
    """
    if logger.disabled or logger.filters:
        return None
    if logging.getLogRecordFactory() is not logging.LogRecord:
        return None
    found: logging.Handler | None = None
    current: logging.Logger | None = logger
    while current is not None:
        for handler in current.handlers:
            if found is not None:
                return None
            found = handler
        if not current.propagate:
            break
        current = current.parent  # type: ignore[assignment]
    if (
        type(found) is not BatchingStreamHandler
        or found.level > logging.INFO
        or type(found.formatter) not in (JsonFormatter, TextFormatter)
        or any(type(f) is not CancelledRequestFilter for f in found.filters)
    ):
        return None
    return found


def _write_directly(handler: BatchingStreamHandler, name: str, fields: tuple[Any, ...]) -> bool:
    """Queue the request line on ``handler`` as its ``emit`` would; False when the line
    must be made the generic way (the formatter's fast path declined it)."""
    formatter: _Formatter = handler.formatter  # type: ignore[assignment]
    line = formatter.request_line(logging.getLevelName(logging.INFO), name, time.time(), fields)
    if line is None:
        return False
    handler.acquire()
    try:
        handler.queue(line + handler.terminator, logging.INFO)
    except Exception:  # as ``emit``: the handler reports it, the request goes on
        handler.handleError(logging.makeLogRecord({"msg": "(request line)"}))
    finally:
        handler.release()
    return True


def _msecs(created: float) -> int:
    """``LogRecord.msecs`` of a record made at ``created`` (as a whole number): the record
    way and the record-free way of the request line must write the same milliseconds."""
    return int((created - int(created)) * 1000)


def _process_name() -> str | None:
    """``LogRecord.processName``, worked out as ``LogRecord`` does."""
    if not logging.logMultiprocessing:
        return None
    mp = sys.modules.get("multiprocessing")
    if mp is None:
        return "MainProcess"
    try:
        return str(mp.current_process().name)
    except Exception:  # as LogRecord: multiprocessing may be half-imported
        return "MainProcess"


_LINENO = log_request.__code__.co_firstlineno
_TEMPLATE, _REQUEST_RECORD_SIZE = _record_template()


class _RequestLines:
    """Request lines written from parts checked once instead of redacted line by line.

    A line is ``head + prefix + tail``. Head (level, logger) and prefix (adapter type,
    adapter, unit) are checked once per (key, redactor generation): redacting them
    must change nothing, else the record goes the generic way. The tail holds numbers,
    fixed words and a plain request id: no pattern can match in it (each needs ``:``
    or ``=``, a quote or a space) nor run into it from the prefix, which ends in
    ``" -> "``. Only a bind value could still appear across the parts, so the whole
    text is searched for them: one literal alternation, ~0.1 µs. The result is the
    generic formatter's output, byte for byte.
    """

    def __init__(self, redactor: Redactor) -> None:
        self.redactor = redactor
        self._generation = redactor.generation
        # key -> the line's constant parts, or () when the generic way must be taken
        self._text: dict[tuple[str, ...], tuple[str, ...]] = {}
        self._json: dict[tuple[str, ...], tuple[str, ...]] = {}

    @staticmethod
    def fields(record: logging.LogRecord) -> tuple[Any, ...] | None:
        """The marked fields, if the record is still as ``log_request`` made it."""
        attrs = record.__dict__
        fields = attrs.get(_REQUEST_KEY)
        if (
            fields is None
            or record.args is not fields[0]
            or record.msg is not REQUEST_MESSAGE
            or record.exc_info
            or record.exc_text
        ):
            return None
        size = len(attrs)
        if size != _REQUEST_RECORD_SIZE:  # set by a handler's Formatter before ours:
            size -= ("message" in attrs) + ("asctime" in attrs)  # not in the line
            if size != _REQUEST_RECORD_SIZE:  # a filter added attributes: they must show
                return None
        return fields

    def _cache(self, table: dict[Any, Any]) -> dict[Any, Any]:
        if self._generation != self.redactor.generation:
            self._text.clear()
            self._json.clear()
            self._generation = self.redactor.generation
        elif len(table) >= _CACHE_LIMIT:
            table.clear()
        return table

    def _clean(self, *texts: str) -> bool:
        """Whether redaction leaves every text as it is."""
        return all(self.redactor.redact(t) == t for t in texts)

    def text(self, record: logging.LogRecord, stamp: str) -> str | None:
        fields = self.fields(record)
        if fields is None:
            return None
        return self.text_line(record.levelname, record.name, int(record.msecs), stamp, fields)

    def json(self, record: logging.LogRecord, stamp: str) -> str | None:
        fields = self.fields(record)
        if fields is None:
            return None
        return self.json_line(record.levelname, record.name, int(record.msecs), stamp, fields)

    def text_line(
        self, levelname: str, name: str, msecs: int, stamp: str, fields: tuple[Any, ...]
    ) -> str | None:
        """The text line of a request record with these attributes; None: the generic way."""
        args = fields[0]
        key = (levelname, name, args[0], args[1], args[2])
        table = self._cache(self._text)
        parts = table.get(key)
        if parts is None:
            head = f"Z {levelname} {name}: {args[0]} {args[1]} {args[2]} -> "
            parts = (head,) if self._clean(head) else ()
            table[key] = parts
        if not parts:
            return None
        line = (
            f"{stamp}.{msecs:03d}{parts[0]}"
            f"{args[3]} (upstream {args[4]}) {args[5]:.1f} ms [{args[6]}]"
        )
        return None if self.redactor.holds_secret_value(line) else line

    def json_line(
        self, levelname: str, name: str, msecs: int, stamp: str, fields: tuple[Any, ...]
    ) -> str | None:
        """The JSON line of a request record with these attributes; None: the generic way."""
        args, adapter_type, adapter, unit, status, is_error, upstream, duration, rid = fields
        key = (levelname, name, adapter_type, adapter, unit)
        table = self._cache(self._json)
        parts = table.get(key)
        if parts is None:
            prefix = f"{args[0]} {args[1]} {args[2]} -> "
            if self._clean(prefix, adapter_type, adapter, unit, "request"):
                dumps = json.dumps
                head = (
                    f'Z", "level": {dumps(levelname.lower(), ensure_ascii=False)}'
                    f', "logger": {dumps(name, ensure_ascii=False)}, "message": "'
                )
                middle = (
                    f', "adapter_type": {dumps(adapter_type, ensure_ascii=False)}'
                    f', "adapter": {dumps(adapter, ensure_ascii=False)}'
                    f', "unit": {dumps(unit, ensure_ascii=False)}, "status": '
                )
                parts = (head, prefix, dumps(prefix, ensure_ascii=False)[1:-1], middle)
            else:
                parts = ()
            table[key] = parts
        if not parts:
            return None
        tail = f"{args[3]} (upstream {args[4]}) {duration:.1f} ms [{args[6]}]"
        if self.redactor.holds_secret_value(parts[1] + tail):
            return None
        rid_json = "null" if rid is None else f'"{rid}"'
        return (
            f'{{"time": "{stamp}.{msecs:03d}{parts[0]}{parts[2]}{tail}", '
            f'"event": "request", "request_id": {rid_json}{parts[3]}{status}, '
            f'"error": {"true" if is_error else "false"}, '
            f'"upstream_status": {"null" if upstream is None else upstream}, '
            f'"duration_ms": {duration!r}}}'
        )


class _Formatter(logging.Formatter):
    """Shared by both formats: the redactor, the request fast path, a per-second stamp."""

    def __init__(self, redactor: Redactor) -> None:
        super().__init__()
        self.redactor = redactor
        self._requests = _RequestLines(redactor)
        self._second: tuple[int, str] = (-1, "")

    def request_line(
        self, levelname: str, name: str, created: float, fields: tuple[Any, ...]
    ) -> str | None:
        """What ``format`` writes for a request record with these attributes, or None
        when that record would be formatted the generic way."""
        raise NotImplementedError

    def _stamp(self, created: float) -> str:
        """``2026-01-01T10:00:00`` for ``created``; ``strftime`` runs once per second."""
        second, text = self._second
        if second != int(created):
            text = time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(created))
            self._second = (int(created), text)
        return text


class TextFormatter(_Formatter):
    """``2026-01-01T10:00:00.123Z INFO naftiko.request: message`` — redacted."""

    def request_line(
        self, levelname: str, name: str, created: float, fields: tuple[Any, ...]
    ) -> str | None:
        stamp = self._stamp(created)
        return self._requests.text_line(levelname, name, _msecs(created), stamp, fields)

    def format(self, record: logging.LogRecord) -> str:
        stamp = self._stamp(record.created)
        fast = self._requests.text(record, stamp)
        if fast is not None:
            return fast
        line = f"{stamp}.{int(record.msecs):03d}Z {record.levelname} {record.name}: "
        line += record.getMessage()
        if record.exc_info:
            line += "\n" + self.formatException(record.exc_info)
        elif record.exc_text:
            line += "\n" + record.exc_text
        return self.redactor.redact(line)


class JsonFormatter(_Formatter):
    """One JSON object per line: time, level, logger, message, then the ``extra`` fields."""

    def request_line(
        self, levelname: str, name: str, created: float, fields: tuple[Any, ...]
    ) -> str | None:
        stamp = self._stamp(created)
        return self._requests.json_line(levelname, name, _msecs(created), stamp, fields)

    def format(self, record: logging.LogRecord) -> str:
        stamp = self._stamp(record.created)
        fast = self._requests.json(record, stamp)
        if fast is not None:
            return fast
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


class BatchingStreamHandler(logging.StreamHandler[TextIO]):
    """A ``StreamHandler`` writing its lines in batches: one ``write`` + ``flush`` per
    batch instead of one per line (a syscall each, the largest cost per request left).

    Lines logged on a thread running an event loop wait at most ``max_delay`` seconds
    (a timer on that loop) or until ``max_bytes`` are pending. Everything else is
    written at once, after what is pending, so the order holds: WARNING and above (a
    problem is seen when it happens, and the line before ``os._exit`` is out), and any
    line logged without a running loop (start-up, tests, other threads). ``flush()``
    writes what is pending; ``logging.shutdown`` calls it at exit, and
    :func:`flush_logs` calls it for every handler of the root logger.
    """

    def __init__(
        self, stream: TextIO | None = None, *, max_delay: float = 0.05, max_bytes: int = 65536
    ) -> None:
        super().__init__(stream)
        self.max_delay = max_delay
        self.max_bytes = max_bytes
        self._pending: list[str] = []
        self._size = 0
        self._timer_loop: asyncio.AbstractEventLoop | None = None  # loop of the timer set

    def emit(self, record: logging.LogRecord) -> None:
        try:
            self.queue(self.format(record) + self.terminator, record.levelno)
        except RecursionError:  # as logging.StreamHandler
            raise
        except Exception:
            self.handleError(record)

    def queue(self, line: str, levelno: int) -> None:
        """Add a formatted line (terminator included); write now or arm the timer.
        Called with the handler's lock held."""
        pending = self._pending
        pending.append(line)
        self._size += len(line)
        loop = asyncio._get_running_loop()  # None off the loop's thread; no exception
        if loop is None or levelno >= logging.WARNING or self._size >= self.max_bytes:
            self._write_pending()
        elif self._timer_loop is not loop:
            if self._timer_loop is not None:  # set on a loop that may never run again
                self._write_pending(keep=line)
            loop.call_later(self.max_delay, self._on_timer)
            self._timer_loop = loop

    def _write_pending(self, keep: str | None = None) -> None:
        """Write the pending lines (all, or all but the last one, ``keep``), then flush
        the stream as ``StreamHandler.flush`` does. Called with the handler's lock held."""
        lines = self._pending
        if keep is not None:
            lines.pop()
        stream = self.stream
        if lines:
            data = "".join(lines)
            lines.clear()
            self._size = 0
            stream.write(data)
        if stream and hasattr(stream, "flush"):
            stream.flush()
        if keep is not None:
            lines.append(keep)
            self._size = len(keep)

    def _on_timer(self) -> None:
        self.acquire()
        try:
            self._timer_loop = None
            self._write_pending()
        except Exception:
            self.handleError(logging.makeLogRecord({"msg": "(batched log lines)"}))
        finally:
            self.release()

    def flush(self) -> None:
        self.acquire()
        try:
            self._write_pending()
        finally:
            self.release()


def flush_logs() -> None:
    """Write every line still pending in the root logger's handlers.

    For the end of a graceful shutdown: exit also flushes (``logging.shutdown``), but
    not ``os._exit`` nor a fatal signal; call this before either."""
    for handler in logging.getLogger().handlers:
        with contextlib.suppress(Exception):  # a closed stream must not stop the shutdown
            handler.flush()


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
