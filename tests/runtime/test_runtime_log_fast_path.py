"""The cheap request line: same bytes as the generic formatters, never a secret, no line lost.

``log_request`` marks its records and the formatters write them from parts checked once;
the reference below is the formatting code as it was before that fast path (records made
by ``logger.info(...)``, every line run through the redactor), kept verbatim to compare.
``BatchingStreamHandler`` writes lines in batches; the subprocess tests check that what
is pending reaches the output on every way out: normal exit, SIGTERM, ``flush_logs()``.
"""

from __future__ import annotations

import asyncio
import io
import json
import logging
import signal
import subprocess
import sys
import textwrap
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from naftiko_process import REPO_ROOT, NaftikoProcess, clean_env

from naftiko.runtime.logs import (
    REDACTED,
    BatchingStreamHandler,
    CancelledRequestFilter,
    JsonFormatter,
    Redactor,
    TextFormatter,
    configure_logging,
    flush_logs,
    log_request,
)
from naftiko.runtime.metrics import REQUEST_LOGGER, Metrics, RuntimeObserver

BIND_SECRET = "bind-S3cret/value+1"  # only characters a sane request id may hold
TRACE = ("4bf92f3577b34da6a3ce929d0e0e4736", "00f067aa0ba902b7")


# --------------------------------------------------------------------------- reference


def _reference_record(**fields: Any) -> logging.LogRecord:
    """The record the observer made before: ``REQUEST_LOGGER.info(msg, *args, extra=...)``;
    a traced request's (``trace``): the ids appended to the message, fields after the id."""
    trace = fields.get("trace")
    upstream = fields["upstream_status"]
    args = (
        fields["adapter_type"],
        fields["adapter"],
        fields["unit"] or "-",
        fields["status"],
        "-" if upstream is None else str(upstream),
        fields["duration_ms"],
        fields["request_id"] or "-",
    )
    extra = {
        "event": "request",
        "request_id": fields["request_id"],
        **({"trace_id": trace[0], "span_id": trace[1]} if trace else {}),
        "adapter_type": fields["adapter_type"],
        "adapter": fields["adapter"],
        "unit": fields["unit"],
        "status": fields["status"],
        "error": fields["is_error"],
        "upstream_status": upstream,
        "duration_ms": fields["duration_ms"],
    }
    return REQUEST_LOGGER.makeRecord(
        REQUEST_LOGGER.name,
        logging.INFO,
        __file__,
        1,
        "%s %s %s -> %s (upstream %s) %.1f ms [%s]" + (" trace_id=%s span_id=%s" * bool(trace)),
        (*args, *(trace or ())),
        None,
        "request_finished",
        extra,
    )


_STANDARD = frozenset(vars(logging.LogRecord("", 0, "", 0, "", None, None))) | {
    "message",
    "asctime",
    "color_message",
    "taskName",
}


def _reference_text(record: logging.LogRecord, redactor: Redactor) -> str:
    stamp = time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(record.created))
    line = f"{stamp}.{int(record.msecs):03d}Z {record.levelname} {record.name}: "
    return redactor.redact(line + record.getMessage())


def _reference_json(record: logging.LogRecord, redactor: Redactor) -> str:
    stamp = time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(record.created))
    event: dict[str, Any] = {
        "time": f"{stamp}.{int(record.msecs):03d}Z",
        "level": record.levelname.lower(),
        "logger": record.name,
        "message": redactor.redact(record.getMessage()),
    }
    for key, value in vars(record).items():
        if key not in _STANDARD:
            event.setdefault(key, redactor.redact_value(value, key))
    return json.dumps(event, ensure_ascii=False, default=str)


class _Capture(logging.Handler):
    def __init__(self) -> None:
        super().__init__()
        self.records: list[logging.LogRecord] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.records.append(record)


@pytest.fixture
def request_records() -> Iterator[list[logging.LogRecord]]:
    """Records reaching ``naftiko.request``'s own handler (root's are left alone)."""
    capture = _Capture()
    saved = (REQUEST_LOGGER.level, REQUEST_LOGGER.propagate)
    REQUEST_LOGGER.addHandler(capture)
    REQUEST_LOGGER.setLevel(logging.INFO)
    REQUEST_LOGGER.propagate = False
    try:
        yield capture.records
    finally:
        REQUEST_LOGGER.removeHandler(capture)
        REQUEST_LOGGER.setLevel(saved[0])
        REQUEST_LOGGER.propagate = saved[1]


def _fields(**overrides: Any) -> dict[str, Any]:
    fields: dict[str, Any] = {
        "adapter_type": "rest",
        "adapter": "shop-rest",
        "unit": "list",
        "status": 200,
        "is_error": False,
        "duration_ms": 12.3,
        "request_id": "3f2a9c1e0b7d4e6a",
        "upstream_status": 200,
    }
    fields.update(overrides)
    return fields


CASES = [
    _fields(),
    _fields(unit="", request_id=None, upstream_status=None, status=404, is_error=True),
    _fields(adapter_type="mcp", adapter="shop-mcp", unit="(unknown)", duration_ms=0.0),
    _fields(request_id="r-1.a@b+c/d_e", duration_ms=123456.7),
    _fields(adapter='ünïcode "quoted" a\\b', unit="tab\there"),
    _fields(request_id="token=abc"),  # a pattern matches: redacted, the generic way
    _fields(request_id="code:xyz"),
    _fields(request_id=f"x{BIND_SECRET}"),  # a bind value inside a sane id
    _fields(unit=BIND_SECRET),
    _fields(adapter="basic", unit="abcdefgh"),  # "basic abcdefgh" reads as a credential
    _fields(unit="client_secret=s3"),
    _fields(duration_ms=5000.0, request_id="5000"),
    _fields(status=True, duration_ms=1),  # odd types: the generic way, same output
    # Traced requests (naftiko.tracing): the ids of the server span.
    TRACED := _fields(trace=TRACE),
    _fields(trace=TRACE, request_id=None, upstream_status=None, unit=""),
    _fields(trace=TRACE, unit=BIND_SECRET),
    _fields(trace=("4BF92F3577B34DA6A3CE929D0E0E4736", "00f067aa0ba902b7")),  # not ours
    _fields(trace=("4bf92f3577b34da6a3ce929d0e0e4736", "5000aa0ba902b700")),  # a bind inside
]


@pytest.mark.parametrize("fields", CASES, ids=[str(i) for i in range(len(CASES))])
def test_fast_path_writes_what_the_old_formatter_wrote(
    request_records: list[logging.LogRecord], fields: dict[str, Any]
) -> None:
    redactor = Redactor([BIND_SECRET, "5000"])
    log_request(REQUEST_LOGGER, **fields)
    (record,) = request_records
    old = _reference_record(**fields)
    old.created, old.msecs = record.created, record.msecs
    assert record.getMessage() == old.getMessage()  # what caplog and other handlers see
    ignored = {"_naftiko_request", "message", "asctime"}  # the last two: pytest's handlers
    assert vars(record).keys() - ignored == vars(old).keys() - ignored
    for _ in range(2):  # the second time from the cached parts
        assert TextFormatter(redactor).format(record) == _reference_text(old, redactor)
        assert JsonFormatter(redactor).format(record) == _reference_json(old, redactor)


def test_plain_request_lines_take_the_fast_path(
    request_records: list[logging.LogRecord], monkeypatch: pytest.MonkeyPatch
) -> None:
    redactor = Redactor([BIND_SECRET])
    text, as_json = TextFormatter(redactor), JsonFormatter(redactor)
    log_request(REQUEST_LOGGER, **_fields())
    log_request(REQUEST_LOGGER, **_fields(request_id=None, upstream_status=None))
    first, second = request_records
    text.format(first), as_json.format(first)  # parts checked once, per key

    calls = []
    monkeypatch.setattr(Redactor, "redact", lambda self, t: calls.append(t) or t)
    line = as_json.format(second)
    assert text.format(second).endswith(
        "Z INFO naftiko.request: rest shop-rest list -> 200 (upstream -) 12.3 ms [-]"
    )
    assert calls == []  # no pattern ran on either line
    assert line.endswith(
        '"level": "info", "logger": "naftiko.request", "message": "rest shop-rest list -> 200 '
        '(upstream -) 12.3 ms [-]", "event": "request", "request_id": null, "adapter_type": '
        '"rest", "adapter": "shop-rest", "unit": "list", "status": 200, "error": false, '
        '"upstream_status": null, "duration_ms": 12.3}'
    )


def test_a_changed_record_goes_the_generic_way(
    request_records: list[logging.LogRecord],
) -> None:
    redactor = Redactor()
    log_request(REQUEST_LOGGER, **_fields())
    (record,) = request_records
    record.trace = "t-1"  # a filter added a field: it must show, as it did before
    assert json.loads(JsonFormatter(redactor).format(record))["trace"] == "t-1"
    record.msg, record.args = "rewritten %s", ("token=abc",)
    assert TextFormatter(redactor).format(record).endswith(f"rewritten token={REDACTED}")


def test_secrets_never_reach_the_request_line() -> None:
    for log_format in ("json", "text"):
        redactor = Redactor([BIND_SECRET])
        stream = io.StringIO()
        handler = BatchingStreamHandler(stream)
        handler.setFormatter(
            JsonFormatter(redactor) if log_format == "json" else TextFormatter(redactor)
        )
        logger = logging.getLogger(f"naftiko.test.fast.{log_format}")
        logger.handlers[:] = [handler]
        logger.setLevel(logging.INFO)
        logger.propagate = False
        for fields in (
            _fields(request_id=BIND_SECRET),
            _fields(request_id=f"pre-{BIND_SECRET}-post"),
            _fields(request_id="access_token=act.1234"),
            _fields(request_id="password:hunter22"),
            _fields(unit=f"u-{BIND_SECRET}"),
            _fields(adapter="Bearer eyJhbGciOi.payload.sig"),
            _fields(adapter="late-secret-adapter"),
        ):
            log_request(logger, **fields)
        redactor.add(["late-secret"])  # a reload brings a new bind value
        log_request(logger, **_fields(adapter="late-secret-adapter"))
        output = stream.getvalue()
        lines = output.splitlines()
        assert len(lines) == 8
        for secret in ("S3cret", "act.1234", "hunter22", "eyJhbGciOi"):
            assert secret not in output, (log_format, output)
        assert "late-secret" in lines[6] and "late-secret" not in lines[7]


# --------------------------------------------------------------------------- the observer


def test_observer_caches_children_and_counts_like_labels() -> None:
    metrics = Metrics()
    observer = RuntimeObserver(metrics)
    for status, error in ((200, False), (200, False), (502, True)):
        observer.request_finished(
            adapter_type="rest",
            adapter="a",
            unit="u",
            status=status,
            is_error=error,
            duration_s=0.01,
            request_id="r",
        )
    observer.request_finished(
        adapter_type="rest", adapter="a", unit="ok", status=200, is_error=False, duration_s=0.01
    )
    for _ in range(3):
        observer.upstream_finished(
            namespace="ns", method="GET", status=200, outcome="ok", duration_s=0.02
        )
    text = metrics.exposition().decode()
    requests = 'naftiko_requests_total{adapter="a",adapter_type="rest",status="%s",unit="u"} %s'
    assert requests % (200, "2.0") in text and requests % (502, "1.0") in text
    assert 'naftiko_request_errors_total{adapter="a",adapter_type="rest",unit="u"} 1.0' in text
    # an error series appears with the first error, as with labels() before
    assert 'naftiko_request_errors_total{adapter="a",adapter_type="rest",unit="ok"}' not in text
    assert (
        'naftiko_request_duration_seconds_count{adapter="a",adapter_type="rest",unit="u"} 3.0'
    ) in text
    assert (
        'naftiko_upstream_requests_total{method="GET",namespace="ns",outcome="ok",status="200"} 3.0'
    ) in text
    assert 'naftiko_upstream_duration_seconds_count{method="GET",namespace="ns"} 3.0' in text


def test_request_records_reach_every_handler(caplog: pytest.LogCaptureFixture) -> None:
    observer = RuntimeObserver(Metrics())
    with caplog.at_level(logging.INFO, logger="naftiko.request"):
        observer.request_finished(
            adapter_type="rest",
            adapter="a",
            unit="u",
            status=201,
            is_error=False,
            duration_s=0.002,
            request_id="r-9",
        )
    (record,) = caplog.records
    assert record.getMessage() == "rest a u -> 201 (upstream -) 2.0 ms [r-9]"
    assert record.status == 201 and record.request_id == "r-9"  # type: ignore[attr-defined]
    assert record.filename == "requests.py" and record.process and record.thread


# --------------------------------------------------------------------------- batching


class _Writes(io.StringIO):
    def __init__(self) -> None:
        super().__init__()
        self.writes = 0

    def write(self, text: str) -> int:
        self.writes += 1
        return super().write(text)


def _batching_logger(stream: io.StringIO, **options: Any) -> logging.Logger:
    handler = BatchingStreamHandler(stream, **options)
    handler.setFormatter(logging.Formatter("%(levelname)s %(message)s"))
    logger = logging.getLogger("naftiko.test.batching")
    logger.handlers[:] = [handler]
    logger.setLevel(logging.DEBUG)
    logger.propagate = False
    return logger


async def test_lines_in_a_loop_are_written_in_one_batch() -> None:
    stream = _Writes()
    log = _batching_logger(stream, max_delay=0.02)
    for i in range(100):
        log.info("line %d", i)
    assert stream.writes == 0
    await asyncio.sleep(0.1)
    assert stream.writes == 1
    assert stream.getvalue().splitlines() == [f"INFO line {i}" for i in range(100)]


async def test_warnings_size_and_flush_write_at_once_in_order() -> None:
    stream = _Writes()
    log = _batching_logger(stream, max_delay=3600, max_bytes=200)
    log.info("first")
    log.warning("problem")  # out at once, after what was pending
    assert stream.getvalue() == "INFO first\nWARNING problem\n"
    for i in range(30):  # 200 bytes pending: written without waiting for the timer
        log.info("filler %02d", i)
    assert stream.writes >= 2 and "filler 10" in stream.getvalue()
    log.info("last")
    log.handlers[0].flush()
    assert stream.getvalue().endswith("INFO filler 29\nINFO last\n")


def test_lines_without_a_running_loop_are_written_at_once() -> None:
    stream = _Writes()
    log = _batching_logger(stream)
    log.info("one")
    log.debug("two")
    assert stream.getvalue() == "INFO one\nDEBUG two\n" and stream.writes == 2


def test_a_loop_that_ends_with_lines_pending_does_not_keep_them() -> None:
    stream = io.StringIO()
    log = _batching_logger(stream, max_delay=3600)

    async def some(name: str) -> None:
        log.info(name)

    asyncio.run(some("in the first loop"))  # its timer never fires: that loop is gone
    asyncio.run(some("in the second loop"))
    assert stream.getvalue() == "INFO in the first loop\n"
    log.info("no loop")
    assert stream.getvalue().splitlines() == [
        "INFO in the first loop",
        "INFO in the second loop",
        "INFO no loop",
    ]


async def test_flush_logs_writes_what_the_root_handler_holds() -> None:
    root = logging.getLogger()
    saved = (list(root.handlers), root.level)
    stream = io.StringIO()
    try:
        configure_logging(log_format="text", level="info", redactor=Redactor(), stream=stream)
        logging.getLogger("naftiko.test").info("pending")
        assert stream.getvalue() == ""
        flush_logs()
        assert stream.getvalue().endswith("INFO naftiko.test: pending\n")
    finally:
        root.handlers[:] = saved[0]
        root.setLevel(saved[1])


# --------------------------------------------------------------------------- no line lost

CHILD = textwrap.dedent("""
    import asyncio, os, signal, sys
    from naftiko.runtime.logs import Redactor, configure_logging, flush_logs
    from naftiko.runtime.metrics import Metrics, RuntimeObserver

    how = sys.argv[1]
    handler = configure_logging(log_format="json", level="info", redactor=Redactor(),
                                stream=sys.stdout)
    handler.max_delay = 3600  # nothing leaves on the timer: only the way out writes
    observer = RuntimeObserver(Metrics())

    async def main():
        for i in range(500):
            observer.request_finished(adapter_type="rest", adapter="a", unit="u",
                                      status=200, is_error=False, duration_s=0.001,
                                      request_id=f"req-{i}")
        if how == "sigterm":  # the runtime's way: a loop handler, then a normal exit
            stop = asyncio.Event()
            asyncio.get_running_loop().add_signal_handler(signal.SIGTERM, stop.set)
            os.kill(os.getpid(), signal.SIGTERM)
            await stop.wait()
        elif how == "os_exit":  # the second signal's way: flush, then os._exit
            flush_logs()
            os._exit(3)

    asyncio.run(main())
    sys.exit(3)
""")


@pytest.mark.parametrize("how", ["exit", "sigterm", "os_exit"])
def test_pending_lines_are_written_on_the_way_out(how: str) -> None:
    done = subprocess.run(
        [sys.executable, "-c", CHILD, how],
        capture_output=True,
        text=True,
        env=clean_env(),
        cwd=REPO_ROOT,
        timeout=60,
        check=False,
    )
    assert done.returncode == 3, done.stderr
    ids = [json.loads(line)["request_id"] for line in done.stdout.splitlines()]
    assert ids == [f"req-{i}" for i in range(500)]


async def test_runtime_writes_every_request_line_before_exiting_on_sigterm(
    tiktok_capability_path: Path,
) -> None:
    ns = "tiktok-login-kit-oauth"
    run_args = [
        str(tiktok_capability_path),
        "--host",
        "127.0.0.1",
        "--base-uri",
        f"{ns}=http://127.0.0.1:9",
        "--port",
        f"{ns}-rest=0",
        "--port",
        f"{ns}-mcp=0",
        "--log-format",
        "json",
    ]
    with NaftikoProcess(run_args) as run:
        url = run.wait_ready()[f"{ns}-rest"]
        async with httpx.AsyncClient(timeout=30) as http:
            for i in range(40):
                response = await http.get(f"{url}/nowhere", headers={"X-Request-Id": f"id-{i}"})
                assert response.status_code == 404
        run.signal(signal.SIGTERM)  # within the batching delay of the last lines
        assert await asyncio.to_thread(run.wait) == 0, run.output
    events = run.events()
    seen = [e["request_id"] for e in events if e.get("event") == "request"]
    assert seen == [f"id-{i}" for i in range(40)]
    assert events[-1].get("event") == "stopped"


# --------------------------------------------------------------------------- no record


def _sole_logger(name: str, log_format: str) -> tuple[logging.Logger, io.StringIO]:
    """A logger whose only reader is our handler, configured as ``configure_logging`` does."""
    stream = io.StringIO()
    handler = BatchingStreamHandler(stream)
    handler.addFilter(CancelledRequestFilter())
    redactor = Redactor([BIND_SECRET, "5000"])
    handler.setFormatter(
        JsonFormatter(redactor) if log_format == "json" else TextFormatter(redactor)
    )
    logger = logging.getLogger(f"naftiko.test.sole.{name}.{log_format}")
    logger.handlers[:] = [handler]
    logger.filters[:] = []
    logger.setLevel(logging.INFO)
    logger.propagate = False
    return logger, stream


@pytest.mark.parametrize("log_format", ["json", "text"])
@pytest.mark.parametrize("fields", CASES, ids=[str(i) for i in range(len(CASES))])
def test_a_line_without_a_record_is_the_line_of_the_record(
    fields: dict[str, Any], log_format: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(time, "time", lambda: 1_764_755_123.987654)
    direct, direct_out = _sole_logger("direct", log_format)
    generic, generic_out = _sole_logger("generic", log_format)
    generic.addFilter(lambda record: True)  # a filter must see a record: the record way
    made = _capture_handle(direct, monkeypatch)
    for _ in range(2):  # the second time from the cached parts
        log_request(direct, **fields)
        log_request(generic, **fields)
    direct.handlers[0].flush()
    generic.handlers[0].flush()
    assert direct_out.getvalue() == generic_out.getvalue().replace(".generic.", ".direct.")
    assert direct_out.getvalue().count("\n") == 2
    if fields is CASES[0] or fields is TRACED:
        assert made == []  # a plain line: no record at all


def _capture_handle(logger: logging.Logger, monkeypatch: pytest.MonkeyPatch) -> list[object]:
    seen: list[object] = []
    real = logger.handle
    monkeypatch.setattr(logger, "handle", lambda record: seen.append(record) or real(record))
    return seen


def test_the_runtime_configuration_writes_request_lines_without_records(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    root = logging.getLogger()
    saved = (list(root.handlers), root.level)
    stream = io.StringIO()
    try:
        configure_logging(log_format="json", level="info", redactor=Redactor(), stream=stream)
        seen = _capture_handle(REQUEST_LOGGER, monkeypatch)
        log_request(REQUEST_LOGGER, **_fields())
        flush_logs()
    finally:
        root.handlers[:] = saved[0]
        root.setLevel(saved[1])
    assert seen == []
    (line,) = stream.getvalue().splitlines()
    assert (
        json.loads(line)["message"] == "rest shop-rest list -> 200 (upstream 200) 12.3 ms "
        "[3f2a9c1e0b7d4e6a]"
    )


@pytest.mark.parametrize(
    "change",
    [
        "logger filter",
        "second handler",
        "handler level",
        "handler filter",
        "foreign formatter",
        "record factory",
        "disabled",
    ],
)
def test_anything_else_that_could_see_the_record_gets_one(
    change: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    logger, stream = _sole_logger(change.replace(" ", "-"), "json")
    handler = logger.handlers[0]
    other = _Capture()
    if change == "logger filter":
        logger.addFilter(lambda record: True)
    elif change == "second handler":
        parent = logging.getLogger("naftiko.test.sole")
        parent.handlers[:] = [other]
        logger.propagate = True
        monkeypatch.setattr(parent, "handlers", [other])
    elif change == "handler level":
        handler.setLevel(logging.WARNING)
    elif change == "handler filter":
        handler.addFilter(lambda record: True)
    elif change == "foreign formatter":
        handler.setFormatter(logging.Formatter("%(message)s %(status)s"))
    elif change == "record factory":
        factory = logging.getLogRecordFactory()

        def traced(*args: Any, **kwargs: Any) -> logging.LogRecord:
            record = factory(*args, **kwargs)
            record.trace = "t-7"
            return record

        monkeypatch.setattr(logging, "_logRecordFactory", traced)
    elif change == "disabled":
        logger.disabled = True
    seen = _capture_handle(logger, monkeypatch)
    log_request(logger, **_fields())
    handler.flush()
    logger.propagate = False
    if change == "disabled":
        assert stream.getvalue() == ""
        return
    assert len(seen) == 1, "a record was made and handed to the logger"
    if change == "second handler":
        assert len(other.records) == 1
    if change == "record factory":
        assert json.loads(stream.getvalue())["trace"] == "t-7"
    if change == "foreign formatter":
        assert stream.getvalue().endswith("[3f2a9c1e0b7d4e6a] 200\n")
