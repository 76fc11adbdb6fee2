"""Transport failures over real sockets: each class becomes its Problem, safely worded."""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable
from pathlib import Path
from typing import Any

import httpx
import pytest
import yaml

from fakes.faults import FaultState
from naftiko import observability
from naftiko.adapters.exposes import compile_capability
from naftiko.engine.invoke import Engine, kept_headers
from naftiko.engine.types import ErrorKind, Inputs, Result
from naftiko.spec.loader import load_capability
from naftiko.upstream.client import UpstreamClients, send
from naftiko.upstream.settings import UpstreamSettings
from naftiko.upstream.wire import ResponseHeaders
from support.servers import LiveFake, closed_port

SECRET = "sk-live-0123456789"


def document(base: str, path: str, outputs: list[dict[str, Any]] | None = None) -> dict[str, Any]:
    tool: dict[str, Any] = {"name": "t", "description": "d", "call": "up.o"}
    if outputs is not None:
        tool["outputParameters"] = outputs
    return {
        "naftiko": "1.0.0-alpha2",
        "info": {"label": "t", "description": "t"},
        "binds": [{"namespace": "env", "keys": {"API_KEY": "API_KEY"}}],
        "capability": {
            "consumes": [
                {
                    "type": "http",
                    "namespace": "up",
                    "baseUri": base,
                    "authentication": {
                        "type": "apikey",
                        "key": "api_key",
                        "value": "{{API_KEY}}",
                        "placement": "query",
                    },
                    "resources": [
                        {
                            "name": "r",
                            "path": path,
                            "operations": [
                                {"name": "o", "method": "GET", "outputRawFormat": "json"}
                            ],
                        }
                    ],
                }
            ],
            "exposes": [{"type": "mcp", "namespace": "mcp", "tools": [tool]}],
        },
    }


Run = Callable[..., Any]


@pytest.fixture
async def run(tmp_path: Path) -> AsyncIterator[Run]:
    engines: list[Engine] = []

    async def invoke(base: str, path: str, outputs: Any = None, **settings: Any) -> Result:
        file = tmp_path / f"c{len(engines)}.yaml"
        file.write_text(yaml.safe_dump(document(base, path, outputs)))
        engine_settings = UpstreamSettings(**settings)
        loaded = load_capability(file, env={"API_KEY": SECRET})
        engine = Engine(compile_capability(loaded, engine_settings), engine_settings)
        engines.append(engine)
        await engine.start()
        return await engine.invoke(engine.units["mcp.t"], Inputs())

    yield invoke
    for engine in engines:
        await engine.aclose()


MAPPING = [{"type": "object", "properties": {"name": {"type": "string", "mapping": "$.name"}}}]


def assert_safe(result: Result, kind: ErrorKind, status: int) -> None:
    assert result.problem is not None, result
    assert (result.problem.kind, result.status, result.is_error) == (kind, status, True)
    detail = result.problem.detail
    assert SECRET not in detail and "127.0.0.1" not in detail and "http" not in detail
    assert "'up'" in detail and "GET /" in detail
    assert result.body == result.problem.as_json()


async def test_connection_refused_is_502(run: Run) -> None:
    result = await run(f"http://127.0.0.1:{closed_port()}", "/x")
    assert_safe(result, ErrorKind.UNREACHABLE, 502)


async def test_reset_before_response_is_502(run: Run, fault_upstream: LiveFake[FaultState]) -> None:
    result = await run(fault_upstream.url, "/reset-before-response")
    assert_safe(result, ErrorKind.UNREACHABLE, 502)


async def test_read_timeout_is_504(run: Run, fault_upstream: LiveFake[FaultState]) -> None:
    result = await run(fault_upstream.url, "/slow-headers?delay=30", read_timeout_s=0.2)
    assert_safe(result, ErrorKind.TIMEOUT, 504)


@pytest.mark.parametrize("chunked", ["0", "1"])
async def test_oversized_response_is_502(
    run: Run, fault_upstream: LiveFake[FaultState], chunked: str
) -> None:
    result = await run(
        fault_upstream.url, f"/big?size=300000&chunked={chunked}", max_response_bytes=100_000
    )
    assert_safe(result, ErrorKind.BAD_UPSTREAM_RESPONSE, 502)
    assert "larger than 100000 bytes" in result.problem.detail  # type: ignore[union-attr]


async def test_within_the_size_limit_passes(run: Run, fault_upstream: LiveFake[FaultState]) -> None:
    result = await run(fault_upstream.url, "/big?size=50000&chunked=1", max_response_bytes=100_000)
    assert (result.status, result.is_error) == (200, False)


async def test_bad_json_with_a_mapping_is_502(
    run: Run, fault_upstream: LiveFake[FaultState]
) -> None:
    result = await run(fault_upstream.url, "/invalid-json", MAPPING)
    assert_safe(result, ErrorKind.BAD_UPSTREAM_RESPONSE, 502)
    assert "json" in result.problem.detail  # type: ignore[union-attr]


async def test_bad_json_without_a_mapping_passes_through_as_bytes(
    run: Run, fault_upstream: LiveFake[FaultState]
) -> None:
    result = await run(fault_upstream.url, "/invalid-json")
    assert (result.status, result.is_error) == (200, False)
    assert isinstance(result.body, bytes) and result.body.startswith(b'{"ships"')


@pytest.mark.parametrize("code", [404, 500, 503])
async def test_upstream_errors_keep_status_and_body(
    run: Run, fault_upstream: LiveFake[FaultState], code: int
) -> None:
    result = await run(fault_upstream.url, f"/status/{code}", MAPPING)
    assert (result.status, result.upstream_status, result.is_error) == (code, code, True)
    assert result.problem is None
    assert result.body["status"] == code  # the upstream body, unmapped


async def test_204_is_a_success_without_body(
    run: Run, fault_upstream: LiveFake[FaultState]
) -> None:
    result = await run(fault_upstream.url, "/no-content", MAPPING)
    assert (result.status, result.body, result.is_error) == (204, None, False)


@pytest.mark.parametrize("code", [300, 301, 302, 303, 307, 308])
async def test_an_unfollowed_redirect_is_a_bad_upstream_response(
    run: Run, fault_upstream: LiveFake[FaultState], code: int
) -> None:
    result = await run(fault_upstream.url, f"/redirect?status={code}")
    assert_safe(result, ErrorKind.BAD_UPSTREAM_RESPONSE, 502)
    assert "redirected (redirects are not followed)" in result.problem.detail  # type: ignore[union-attr]
    assert "localhost" not in str(result.body) and not result.headers  # no Location echoed
    assert len(fault_upstream.state.requests) == 1


async def test_not_modified_is_not_a_redirect(
    run: Run, fault_upstream: LiveFake[FaultState]
) -> None:
    result = await run(fault_upstream.url, "/redirect?status=304")
    assert (result.status, result.body, result.is_error) == (304, None, False)


async def test_redirects_are_followed_when_asked(
    run: Run, fault_upstream: LiveFake[FaultState]
) -> None:
    result = await run(fault_upstream.url, "/redirect", follow_redirects=True)
    assert (result.status, result.is_error) == (200, False)
    assert [r.path for r in fault_upstream.state.requests] == ["/redirect", "/echo"]


async def test_a_body_dripping_under_the_read_timeout_hits_the_total_deadline(
    run: Run, fault_upstream: LiveFake[FaultState]
) -> None:
    """Each chunk arrives well within the read timeout; the whole never completes in time."""
    result = await run(
        fault_upstream.url,
        "/slow-body?chunks=50&interval=0.1",
        read_timeout_s=5,
        total_timeout_s=0.5,
    )
    assert_safe(result, ErrorKind.TIMEOUT, 504)
    assert "no complete response within 0.5s" in result.problem.detail  # type: ignore[union-attr]


async def test_mapping_applies_on_success(run: Run, fault_upstream: LiveFake[FaultState]) -> None:
    outputs = [{"type": "object", "properties": {"m": {"type": "string", "mapping": "$.method"}}}]
    result = await run(fault_upstream.url, "/echo", outputs)
    assert result.body == {"m": "GET"}
    [request] = fault_upstream.state.requests
    assert request.query["api_key"] == SECRET  # the credential did reach the upstream


async def test_each_call_is_reported(
    run: Run, fault_upstream: LiveFake[FaultState], monkeypatch: pytest.MonkeyPatch
) -> None:
    seen: list[dict[str, Any]] = []

    class Recorder(observability.NullObserver):
        def upstream_finished(self, **fields: Any) -> None:
            seen.append(fields)

    monkeypatch.setattr(observability, "_observer", Recorder())
    await run(fault_upstream.url, "/status/503")
    await run(f"http://127.0.0.1:{closed_port()}", "/x")
    assert [(s["namespace"], s["method"], s["status"], s["outcome"]) for s in seen] == [
        ("up", "GET", 503, "upstream"),
        ("up", "GET", None, "unreachable"),
    ]


async def test_clients_are_pooled_per_namespace_and_closed() -> None:
    clients = UpstreamClients(UpstreamSettings(connect_timeout_s=1.5, read_timeout_s=7))
    clients.start(["a", "b"])
    first = clients.get("a")
    assert clients.get("a") is first and clients.get("b") is not first
    assert first.timeout.connect == 1.5 and first.timeout.read == 7
    assert first.follow_redirects is False
    await clients.aclose()
    assert first.is_closed and len(clients) == 0


async def test_upstream_cookies_are_not_kept_between_callers() -> None:
    calls: list[httpx.Request] = []

    def handler(request: httpx.Request) -> httpx.Response:
        calls.append(request)
        return httpx.Response(200, headers={"set-cookie": "sid=caller-a; Path=/"})

    clients = UpstreamClients(UpstreamSettings())
    client = clients.get("up")
    client._transport = httpx.MockTransport(handler)  # type: ignore[attr-defined]
    for _ in range(2):
        outcome = await send(
            client,
            httpx.Request("GET", "http://up.test/x"),
            auth=None,
            settings=UpstreamSettings(),
            namespace="up",
            operation="GET /x",
        )
        assert outcome.status == 200  # type: ignore[union-attr]
    assert "cookie" not in calls[1].headers
    assert len(client.cookies.jar) == 0  # nothing stored either
    await clients.aclose()


async def test_a_gzip_encoded_response_is_decoded(
    run: Run, fault_upstream: LiveFake[FaultState]
) -> None:
    outputs = [{"type": "object", "properties": {"d": {"type": "string", "mapping": "$.data"}}}]
    result = await run(fault_upstream.url, "/gzip?size=5000", outputs)
    assert (result.status, result.is_error) == (200, False)
    assert result.body == {"d": "a" * 4989}


async def test_the_size_limit_applies_to_the_decoded_body(
    run: Run, fault_upstream: LiveFake[FaultState]
) -> None:
    # ~300 KB of JSON compresses to well under the limit: the decoded size is what counts.
    result = await run(fault_upstream.url, "/gzip?size=300000", max_response_bytes=100_000)
    assert_safe(result, ErrorKind.BAD_UPSTREAM_RESPONSE, 502)
    assert "larger than 100000 bytes" in result.problem.detail  # type: ignore[union-attr]


async def test_plain_calls_bypass_the_httpx_client_layer(
    run: Run, fault_upstream: LiveFake[FaultState], monkeypatch: pytest.MonkeyPatch
) -> None:
    """The engine's direct path: same request on the wire, API key included."""

    async def refuse(*args: Any, **kwargs: Any) -> None:
        raise AssertionError("AsyncClient.send used for a single-pass call")

    monkeypatch.setattr(httpx.AsyncClient, "send", refuse)
    outputs = [{"type": "object", "properties": {"m": {"type": "string", "mapping": "$.method"}}}]
    result = await run(fault_upstream.url, "/echo?x=1", outputs)
    assert result.body == {"m": "GET"}
    [request] = fault_upstream.state.requests
    assert request.query == {"x": "1", "api_key": SECRET}
    assert request.headers["user-agent"].startswith("naftiko/")


def test_kept_headers_never_include_set_cookie() -> None:
    headers = {
        "Set-Cookie": "a=b",
        "Retry-After": "5",
        "X-RateLimit-Remaining": "0",
        "X-Tt-Logid": "L1",
        "Server": "x",
    }
    assert kept_headers(headers) == {
        "retry-after": "5",
        "x-ratelimit-remaining": "0",
        "x-tt-logid": "L1",
    }


def test_kept_headers_of_our_response_headers_are_those_of_httpx_headers() -> None:
    raw = [
        (b"Set-Cookie", b"a=b"),
        (b"RateLimit-Limit", b"10"),
        (b"retry-after", b"5"),
        (b"X-Request-Id", b"r1"),
        (b"X-Request-Id", b"r2"),
        (b"ETag", b'"e"'),
        (b"Server", b"caf\xc3\xa9"),
    ]
    ours = kept_headers(ResponseHeaders.of(raw))
    assert ours == kept_headers(httpx.Headers(raw))
    assert ours == {
        "ratelimit-limit": "10",
        "retry-after": "5",
        "x-request-id": "r1, r2",
        "etag": '"e"',
    }
