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
from naftiko.upstream.outbound_auth import BasicOutboundAuth, DigestOutboundAuth
from naftiko.upstream.request import UpstreamRequest
from naftiko.upstream.settings import UpstreamSettings
from naftiko.upstream.transport import Http11Transport
from naftiko.upstream.wire import ResponseHeaders
from support.servers import LiveFake, closed_port, serve_asgi

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
    # Every attempt is reported: a GET is tried three times (two retries by default).
    assert [(s["namespace"], s["method"], s["status"], s["outcome"]) for s in seen] == [
        *[("up", "GET", 503, "upstream")] * 3,
        *[("up", "GET", None, "unreachable")] * 3,
    ]


async def test_clients_are_pooled_per_namespace_and_closed() -> None:
    clients = UpstreamClients(UpstreamSettings(connect_timeout_s=1.5, read_timeout_s=7))
    clients.start(["a", "b"])
    first = clients.get("a")
    assert clients.get("a") is first and clients.get("b") is not first
    assert first.client.timeout.connect == 1.5 and first.client.timeout.read == 7
    assert first.client.follow_redirects is False
    assert isinstance(first.direct, Http11Transport)
    await clients.aclose()
    assert first.client.is_closed and len(clients) == 0


class CookieSetter:
    """A loopback upstream that sets a cookie on every answer and records the ``Cookie``
    header of every request: ``/start`` redirects to ``/land``; ``/digest`` challenges."""

    def __init__(self) -> None:
        self.seen: list[tuple[str, str | None]] = []

    async def __call__(self, scope: dict[str, Any], receive: Any, send: Any) -> None:
        if scope["type"] != "http":
            return
        headers = {k.decode().lower(): v.decode() for k, v in scope["headers"]}
        path = scope["path"]
        self.seen.append((path, headers.get("cookie")))
        reply = [(b"set-cookie", f"sid={path.strip('/')}-{len(self.seen)}; Path=/".encode())]
        status = 200
        if path == "/start":
            status = 302
            reply.append((b"location", b"/land"))
        elif path == "/digest" and "authorization" not in headers:
            status = 401
            reply.append((b"www-authenticate", b'Digest realm="r", nonce="n1", qop="auth"'))
        reply.append((b"content-length", b"2"))
        await send({"type": "http.response.start", "status": status, "headers": reply})
        await send({"type": "http.response.body", "body": b"ok"})


@pytest.mark.parametrize("route", ["redirect", "digest"])
async def test_no_upstream_cookie_reaches_another_caller_on_the_general_path(route: str) -> None:
    """One client serves every caller: a cookie an upstream sets (on a redirect it
    follows, or on a digest challenge) is neither stored nor sent with any later call.
    (httpx's digest flow returns the challenge's cookie with its answer, in the same call.)"""
    upstream = CookieSetter()
    follow = route == "redirect"
    settings = UpstreamSettings(follow_redirects=follow)
    clients = UpstreamClients(settings)
    calls = clients.get("up")
    async with serve_asgi(upstream) as url:
        for _ in range(3):
            outcome = await send(
                calls,
                UpstreamRequest("GET", f"{url}/{'start' if follow else 'digest'}", {}),
                auth=None if follow else DigestOutboundAuth("user", "pass"),
                settings=settings,
                namespace="up",
                operation="GET /x",
            )
            assert outcome.status == 200  # type: ignore[union-attr]
    await clients.aclose()
    assert len(upstream.seen) == 6  # each call took two exchanges
    for first in (0, 2, 4):  # the first exchange of each call, then its second
        assert upstream.seen[first][1] is None
        assert upstream.seen[first + 1][1] in (None, f"sid=digest-{first + 1}")
    assert len(calls.client.cookies.jar) == 0  # nothing stored either


async def test_plain_calls_take_the_fast_path_and_the_rest_the_general_path(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """A request ``wire_of`` writes, with single-pass auth, never builds httpx's request
    or goes through its client; a multi-step auth flow does, over the same transport."""
    upstream = CookieSetter()
    settings = UpstreamSettings()
    clients = UpstreamClients(settings)
    calls = clients.get("up")
    through_client: list[str] = []
    original = calls.client.send

    async def spy(request: httpx.Request, **kwargs: Any) -> httpx.Response:
        through_client.append(request.url.path)
        return await original(request, **kwargs)

    monkeypatch.setattr(calls.client, "send", spy)
    async with serve_asgi(upstream) as url:
        for path, auth in [
            ("/plain", BasicOutboundAuth("u", "p")),
            ("/digest", DigestOutboundAuth("u", "p")),
        ]:
            outcome = await send(
                calls,
                UpstreamRequest("GET", f"{url}{path}", {}),
                auth=auth,
                settings=settings,
                namespace="up",
                operation="GET /x",
            )
            assert outcome.status == 200  # type: ignore[union-attr]
    await clients.aclose()
    assert through_client == ["/digest"]
    assert [path for path, _ in upstream.seen] == ["/plain", "/digest", "/digest"]


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
