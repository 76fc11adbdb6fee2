"""The request line: one INFO line per finished request, on the cheapest road to its bytes.

:func:`log_request` logs what ``logger.info(REQUEST_MESSAGE, *args, extra=...)`` would,
without ``findCaller``. Its fast path is :func:`_write_without_record`: when our handler
is the only one that would see the record, as in ``naftiko-run``, the handler is given
the line the formatter would have written and no record is made. The standard library
way (a record per line, a redaction filter running the patterns over every message and
field) costs several times as much CPU per line, a sizeable share of a small request's
(``bench/deps.py``, part 4, measures both). Whenever something else could see the
record, one is made with ``Logger.makeRecord`` and marked for the formatters' cheap line.
"""

from __future__ import annotations

import logging
import math
import re
import time
from typing import Any

from naftiko.runtime.logs.formatters import (
    REQUEST_MARK,
    REQUEST_MESSAGE,
    TRACED_REQUEST_MESSAGE,
    JsonFormatter,
    TextFormatter,
    _Formatter,
)
from naftiko.runtime.logs.handler import BatchingStreamHandler, CancelledRequestFilter

# Request ids the fast path writes as they are: none of the redaction patterns can match
# inside them (each needs ``:``/``=``, a quote or a space) and JSON has nothing to escape.
_PLAIN_ID = re.compile(r"[A-Za-z0-9._@+/-]*", re.ASCII)
# Trace and span ids as the fast path writes them: W3C lower-case hex.
_HEX_IDS = re.compile(r"[0-9a-f]{32} [0-9a-f]{16}", re.ASCII)


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
    trace: tuple[str, str] | None = None,
) -> None:
    """Log the request line at INFO: the same record ``logger.info(...)`` would make
    (message, ``extra`` fields), built without ``findCaller`` and marked for the fast
    path of the formatters when its values are of the expected types. When the only
    handler that would see it is ours, no record is made (:func:`_write_without_record`).

    ``trace`` is ``(trace_id, span_id)`` when the request was traced: the message is
    :data:`TRACED_REQUEST_MESSAGE` (the line ends with ``trace_id=... span_id=...``) and
    the record has ``trace_id`` and ``span_id`` fields after ``request_id``."""
    if not logger.isEnabledFor(logging.INFO):
        return
    upstream = "-" if upstream_status is None else str(upstream_status)
    args: tuple[Any, ...] = (
        adapter_type,
        adapter,
        unit or "-",
        status,
        upstream,
        duration_ms,
        request_id or "-",
    )
    message = REQUEST_MESSAGE
    if trace is not None:
        args += trace
        message = TRACED_REQUEST_MESSAGE
    fields = None
    # Values of the types the adapters pass get the fast path; anything else (a bool
    # status, an int duration, an id with ``=``...) is formatted the generic way.
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
        and (trace is None or _HEX_IDS.fullmatch(f"{trace[0]} {trace[1]}") is not None)
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
            trace,
        )
        if _write_without_record(logger, fields):
            return
    extra: dict[str, Any] = {"event": "request", "request_id": request_id}
    if trace is not None:
        extra["trace_id"], extra["span_id"] = trace
    extra.update(
        adapter_type=adapter_type,
        adapter=adapter,
        unit=unit,
        status=status,
        error=is_error,
        upstream_status=upstream_status,
        duration_ms=duration_ms,
    )
    if fields is not None:
        extra[REQUEST_MARK] = fields
    record = logger.makeRecord(
        logger.name,
        logging.INFO,
        __file__,
        _LINENO,
        message,
        args,
        None,
        "log_request",
        extra,
    )
    logger.handle(record)


def _write_without_record(logger: logging.Logger, fields: tuple[Any, ...]) -> bool:
    """The request line's fast path: queue the line on our handler as its ``emit`` would,
    when that handler is the only reader of ``logger``'s request records; False when a
    record must be made (another reader, or the formatter declined the cheap line)."""
    handler = _sole_reader(logger)
    if handler is None:
        return False
    formatter: _Formatter = handler.formatter  # type: ignore[assignment]
    line = formatter.request_line(
        logging.getLevelName(logging.INFO), logger.name, time.time(), fields
    )
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


_LINENO = log_request.__code__.co_firstlineno
