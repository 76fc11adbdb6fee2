"""Redaction of secrets in every log line, and the request log line of the observer."""

from __future__ import annotations

import io
import json
import logging
from collections.abc import Iterator

import pytest

from naftiko.runtime.logs import REDACTED, Redactor, configure_logging
from naftiko.runtime.metrics import Metrics, RuntimeObserver

BIND_SECRET = "bind-S3cret/value+1"


@pytest.fixture
def captured() -> Iterator[tuple[io.StringIO, Redactor]]:
    stream = io.StringIO()
    redactor = Redactor([BIND_SECRET])
    root = logging.getLogger()
    saved = (list(root.handlers), root.level)
    configure_logging(log_format="json", level="debug", redactor=redactor, stream=stream)
    try:
        yield stream, redactor
    finally:
        root.handlers[:] = saved[0]
        root.setLevel(saved[1])


@pytest.mark.parametrize(
    ("text", "secret"),
    [
        ("client_secret=abc123&grant_type=authorization_code", "abc123"),
        ('{"client_secret": "has spaces", "status_code": 200}', "has spaces"),
        ("Authorization: Bearer eyJhbGciOi.payload.sig", "eyJhbGciOi.payload.sig"),
        ("headers={'authorization': 'Basic dXNlcjpwYXNz'}", "dXNlcjpwYXNz"),
        ("refresh_token=rft.abc!123.va&x=1", "rft.abc!123.va"),
        ("code=Xy*0!1234.va", "Xy*0!1234.va"),
        ("access_token: act.1234", "act.1234"),
        ("password=hunter22 token=tok-9", "hunter22"),
        ("x-api-key: k-123456", "k-123456"),
        ("api_key=zz-top-99", "zz-top-99"),
        (f"upstream said {BIND_SECRET}", BIND_SECRET),
        ("bind url-encoded bind-S3cret%2Fvalue%2B1", "S3cret%2Fvalue"),
    ],
)
def test_redactor_removes_credentials(text: str, secret: str) -> None:
    redacted = Redactor([BIND_SECRET]).redact(text)
    assert secret not in redacted
    assert REDACTED in redacted


def test_redactor_keeps_ordinary_text() -> None:
    text = "status_code=200 adapter=rest unit=exchangetoken duration_ms=12.5"
    assert Redactor([BIND_SECRET]).redact(text) == text


def test_structured_values_lose_secret_named_fields() -> None:
    value = {
        "client_secret": "x1",
        "nested": {"token": "y2", "ok": "fine"},
        "list": ["Bearer abcdefgh"],
    }
    assert Redactor().redact_value(value) == {
        "client_secret": REDACTED,
        "nested": {"token": REDACTED, "ok": "fine"},
        "list": [f"Bearer {REDACTED}"],
    }


def test_formatter_redacts_arguments_extras_and_tracebacks(captured) -> None:
    stream, redactor = captured
    log = logging.getLogger("naftiko.test")
    log.info(
        "body was %s",
        f"client_secret={BIND_SECRET}&code=abc",
        extra={"form": {"client_secret": "in-extra"}},
    )
    try:
        raise ValueError(f"boom with {BIND_SECRET}")
    except ValueError:
        log.exception("failed")
    output = stream.getvalue()
    assert BIND_SECRET not in output and "in-extra" not in output and "code=abc" not in output
    events = [json.loads(line) for line in output.splitlines()]
    assert events[0]["form"] == {"client_secret": REDACTED}
    assert "exception" in events[1]

    redactor.add(["added-later-secret"])  # a reload brings new bind values
    log.warning("now %s", "added-later-secret")
    assert "added-later-secret" not in stream.getvalue()


def test_http_client_loggers_are_quiet(captured) -> None:
    stream, _ = captured
    logging.getLogger("httpx").info("HTTP Request: POST https://x/?api_key=1")
    logging.getLogger("httpcore2").debug("send_request_headers")
    assert stream.getvalue() == ""


def test_observer_writes_one_request_line_and_counts(captured) -> None:
    stream, _ = captured
    metrics = Metrics()
    observer = RuntimeObserver(metrics)
    observer.request_finished(
        adapter_type="rest",
        adapter="shop-rest",
        unit="list",
        status=502,
        is_error=True,
        duration_s=0.25,
        request_id="r-1",
        upstream_status=None,
    )
    observer.upstream_finished(
        namespace="shop", method="GET", status=None, outcome="unreachable", duration_s=0.1
    )
    (event,) = [
        json.loads(line)
        for line in stream.getvalue().splitlines()
        if json.loads(line)["logger"] == "naftiko.request"
    ]
    assert event["event"] == "request" and event["request_id"] == "r-1"
    assert event["status"] == 502 and event["unit"] == "list" and event["duration_ms"] == 250.0
    text = metrics.exposition().decode()
    assert (
        'naftiko_requests_total{adapter="shop-rest",adapter_type="rest",status="502",'
        'unit="list"} 1.0'
    ) in text
    assert (
        'naftiko_request_errors_total{adapter="shop-rest",adapter_type="rest",unit="list"} 1.0'
    ) in text
    assert (
        'naftiko_upstream_requests_total{method="GET",namespace="shop",outcome="unreachable",'
        'status="none"} 1.0'
    ) in text
    assert "naftiko_request_duration_seconds_bucket" in text
