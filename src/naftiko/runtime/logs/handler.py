"""The log handler: lines written in batches, and the filter that shortens cancelled requests.

:class:`BatchingStreamHandler` is the one handler every logger propagates to (see
:func:`naftiko.runtime.logs.configure_logging`); :func:`flush_logs` empties it before
a way out that skips ``logging.shutdown``.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from typing import TextIO


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
    batch instead of one per line (a system call each, paid on the request's thread).

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
        try:
            loop: asyncio.AbstractEventLoop | None = asyncio.get_running_loop()
        except RuntimeError:  # off the loop's thread: start-up, tests, other threads
            loop = None
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
