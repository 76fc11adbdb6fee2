"""Log formatters: one line per record, text or JSON, redacted, with a cheap request line.

Redaction happens here, in the formatter of the one handler every logger propagates to,
so it covers our records, uvicorn's and the SDK's alike, after ``%`` arguments have been
merged into the message (a secret passed as an argument is caught too).

The request line (one per request, the hot path at ``info``) has a cheaper road to the
same bytes: it is written from a per-(adapter, unit) prefix checked once against the
redactor instead of running the patterns on every line (:class:`_RequestLines`). A
record takes that road when :func:`~naftiko.runtime.logs.requests.log_request` marked
it (``REQUEST_MARK``) and nothing changed it since.
"""

from __future__ import annotations

import json
import logging
import time
from typing import Any

from naftiko.runtime.logs.redaction import Redactor

REQUEST_MESSAGE = "%s %s %s -> %s (upstream %s) %.1f ms [%s]"
# The request line of a traced request: the W3C ids of its server span appended.
TRACED_REQUEST_MESSAGE = REQUEST_MESSAGE + " trace_id=%s span_id=%s"
# The ``extra`` fields of a request record, in the order the JSON line writes them.
REQUEST_EXTRAS = (
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
# The record attribute marking a request record: (args, adapter_type, adapter, unit,
# status, is_error, upstream_status, duration_ms, request_id, trace), set by
# ``log_request`` only when every value has the type the fast path expects. ``trace`` is
# None or (trace_id, span_id), in hex. Never written out.
REQUEST_MARK = "_naftiko_request"
# How many attributes a request record has as ``log_request`` makes it: a standard
# record's, the ``extra`` fields and the mark (a traced one: two more, the ids). More
# means a filter added some.
_REQUEST_RECORD_SIZE = len(vars(logging.makeLogRecord({}))) + len(REQUEST_EXTRAS) + 1
# Attributes every LogRecord has; anything else was passed through ``extra=``.
_STANDARD_ATTRS = frozenset(vars(logging.makeLogRecord({}))) | {
    "message",
    "asctime",
    "color_message",
    "taskName",
    REQUEST_MARK,
}
_CACHE_LIMIT = 4096  # (level, logger, adapter type, adapter, unit) keys; bounded anyway


def _extras(record: logging.LogRecord) -> dict[str, Any]:
    return {k: v for k, v in vars(record).items() if k not in _STANDARD_ATTRS}


def record_msecs(created: float) -> int:
    """``LogRecord.msecs`` of a record made at ``created`` (as a whole number): the record
    way and the record-free way of the request line must write the same milliseconds."""
    return int((created - int(created)) * 1000)


class _RequestLines:
    """Request lines written from parts checked once instead of redacted line by line.

    A line is ``head + prefix + tail``. Head (level, logger) and prefix (adapter type,
    adapter, unit) are checked once per (key, redactor generation): redacting them
    must change nothing, else the record goes the generic way. The tail holds numbers,
    fixed words and a plain request id: no pattern can match in it (each needs ``:``
    or ``=``, a quote or a space) nor run into it from the prefix, which ends in
    ``" -> "``. Only a bind value could still appear across the parts, so the whole
    text is searched for them, with one literal alternation rather than the patterns.
    The result is the generic formatter's output, byte for byte.
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
        fields = attrs.get(REQUEST_MARK)
        if fields is None:
            return None
        traced = fields[9] is not None
        if (
            record.args is not fields[0]
            or record.msg is not (TRACED_REQUEST_MESSAGE if traced else REQUEST_MESSAGE)
            or record.exc_info
            or record.exc_text
        ):
            return None
        expected = _REQUEST_RECORD_SIZE + 2 * traced
        size = len(attrs)
        if size != expected:  # set by a handler's Formatter before ours:
            size -= ("message" in attrs) + ("asctime" in attrs)  # not in the line
            if size != expected:  # a filter added attributes: they must show
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
        if fields[9] is not None:
            line += f" trace_id={args[7]} span_id={args[8]}"
        return None if self.redactor.holds_secret_value(line) else line

    def json_line(
        self, levelname: str, name: str, msecs: int, stamp: str, fields: tuple[Any, ...]
    ) -> str | None:
        """The JSON line of a request record with these attributes; None: the generic way."""
        args, adapter_type, adapter, unit, status, is_error, upstream, duration, rid, trace = fields
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
        ids = ""
        if trace is not None:  # hex: nothing to escape, and the message holds them too
            tail += f" trace_id={trace[0]} span_id={trace[1]}"
            ids = f', "trace_id": "{trace[0]}", "span_id": "{trace[1]}"'
        if self.redactor.holds_secret_value(parts[1] + tail):
            return None
        rid_json = "null" if rid is None else f'"{rid}"'
        return (
            f'{{"time": "{stamp}.{msecs:03d}{parts[0]}{parts[2]}{tail}", '
            f'"event": "request", "request_id": {rid_json}{ids}{parts[3]}{status}, '
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
        return self._requests.text_line(levelname, name, record_msecs(created), stamp, fields)

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
        return self._requests.json_line(levelname, name, record_msecs(created), stamp, fields)

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
