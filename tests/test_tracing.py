"""The tracing seam in-process: what goes into attributes, what goes upstream, which
variables turn it on, and the traced request line. The spans themselves are tested end
to end against a real OTLP receiver (tests/runtime/test_traces_e2e.py)."""

from __future__ import annotations

import json
import logging
import subprocess
import sys
from collections.abc import Iterator

import pytest

from naftiko import tracing
from naftiko.runtime.config import ConfigError
from naftiko.runtime.logs import JsonFormatter, Redactor, TextFormatter, log_request
from naftiko.runtime.traces import tracing_wanted


@pytest.mark.parametrize(
    ("url", "shown"),
    [
        ("https://api.example.com/v1/ships/IMO-1", "https://api.example.com/v1/ships/IMO-1"),
        (
            "https://api.example.com/v1/s?api_key=s3cret&limit=5",
            "https://api.example.com/v1/s?api_key=REDACTED&limit=REDACTED",
        ),
        ("http://user:pa55@host:8080/p?x", "http://REDACTED:REDACTED@host:8080/p?x=REDACTED"),
        ("http://host/p?a=1&&b=%20two#frag", "http://host/p?a=REDACTED&&b=REDACTED"),
        ("http://[::1]:99999/p", "http://[::1]:99999/p"),
    ],
)
def test_url_full_keeps_no_query_value_nor_credential(url: str, shown: str) -> None:
    assert tracing.redacted_url(url) == shown


@pytest.fixture
def tracer() -> Iterator[None]:
    from opentelemetry.sdk.trace import TracerProvider

    provider = TracerProvider()
    tracing.enable(provider.get_tracer("test"))
    try:
        yield
    finally:
        tracing.disable()
        provider.shutdown()


def test_off_the_app_is_served_as_it_is() -> None:
    assert not tracing.ENABLED
    app = object()
    assert tracing.server_spans(app, "rest", "ns") is app
    assert tracing.current_ids() is None


def test_upstream_headers_carry_our_context_not_the_callers(tracer: None) -> None:
    """A forwarded caller header, in any spelling, is replaced by our span's context."""
    headers = {"Traceparent": "00-" + "1" * 32 + "-" + "2" * 16 + "-01", "accept": "x"}
    span = tracing.upstream_started("GET", "http://h/p?k=v", headers, "ns", "GET /p")
    ids = span.get_span_context()
    ours = f"00-{ids.trace_id:032x}-{ids.span_id:016x}-{ids.trace_flags:02x}"
    assert headers == {"accept": "x", "traceparent": ours}
    tracing.upstream_ended(span, 503, None)
    assert span.attributes["error.type"] == "503"  # type: ignore[attr-defined]
    assert span.attributes["url.full"] == "http://h/p?k=REDACTED"  # type: ignore[attr-defined]
    assert span.attributes["server.port"] == 80  # type: ignore[attr-defined]


@pytest.mark.parametrize(
    ("env", "wanted"),
    [
        ({}, False),
        ({"OTEL_SERVICE_NAME": "x", "OTEL_TRACES_SAMPLER": "always_on"}, False),
        ({"OTEL_EXPORTER_OTLP_ENDPOINT": "http://c:4318"}, True),
        ({"OTEL_EXPORTER_OTLP_TRACES_ENDPOINT": "http://c:4318/v1/traces"}, True),
        ({"OTEL_TRACES_EXPORTER": "otlp"}, True),
        ({"OTEL_TRACES_EXPORTER": "console"}, True),
        ({"OTEL_TRACES_EXPORTER": "none", "OTEL_EXPORTER_OTLP_ENDPOINT": "http://c"}, False),
        ({"OTEL_EXPORTER_OTLP_ENDPOINT": "http://c", "OTEL_SDK_DISABLED": "true"}, False),
    ],
)
def test_which_variables_turn_tracing_on(env: dict[str, str], wanted: bool) -> None:
    assert tracing_wanted(env) is wanted


def test_an_unknown_exporter_is_refused() -> None:
    with pytest.raises(ConfigError, match="unknown exporter 'jaeger'"):
        tracing_wanted({"OTEL_TRACES_EXPORTER": "otlp,jaeger"})


def test_the_seam_imports_no_opentelemetry() -> None:
    code = "import sys, naftiko.tracing; print([m for m in sys.modules if 'opentelemetry' in m])"
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert done.stdout.strip() == "[]"


# --------------------------------------------------------------------------- request lines

TRACE = ("4bf92f3577b34da6a3ce929d0e0e4736", "00f067aa0ba902b7")
SECRET = "b1nd-secret-value"


class _Keep(logging.Handler):
    def __init__(self) -> None:
        super().__init__()
        self.records: list[logging.LogRecord] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.records.append(record)


def _record(**overrides: object) -> logging.LogRecord:
    logger = logging.getLogger("naftiko.test.traced")
    keep = _Keep()
    logger.addHandler(keep)
    logger.setLevel(logging.INFO)
    logger.propagate = False
    fields: dict[str, object] = {
        "adapter_type": "rest",
        "adapter": "fleet",
        "unit": "ship",
        "status": 200,
        "is_error": False,
        "duration_ms": 1.5,
        "request_id": "r-1",
        "upstream_status": 200,
        "trace": TRACE,
    }
    fields.update(overrides)
    try:
        log_request(logger, **fields)  # type: ignore[arg-type]
    finally:
        logger.removeHandler(keep)
    (record,) = keep.records
    return record


def test_a_traced_request_line_carries_the_ids_in_both_formats() -> None:
    record = _record()
    redactor = Redactor([SECRET])
    text = TextFormatter(redactor).format(record)
    assert text.endswith(
        f"rest fleet ship -> 200 (upstream 200) 1.5 ms [r-1] trace_id={TRACE[0]} span_id={TRACE[1]}"
    )
    event = json.loads(JsonFormatter(redactor).format(record))
    assert (event["trace_id"], event["span_id"]) == TRACE
    assert event["request_id"] == "r-1" and event["status"] == 200
    assert list(event)[4:7] == ["event", "request_id", "trace_id"]


def test_a_traced_request_line_is_still_redacted() -> None:
    record = _record(unit=SECRET)
    redactor = Redactor([SECRET])
    assert SECRET not in TextFormatter(redactor).format(record)
    assert SECRET not in JsonFormatter(redactor).format(record)


def test_an_untraced_line_has_no_ids() -> None:
    record = _record(trace=None)
    line = JsonFormatter(Redactor()).format(record)
    assert "trace_id" not in line and "trace_id" not in TextFormatter(Redactor()).format(record)
