"""Upstream faults through the REST and MCP adapters, on real uvicorn and real sockets.

Each fault of ``fakes.faults`` must give the documented error (REST: 502/504
``application/problem+json``; MCP: an ``isError`` result naming the reason; upstream
>= 400: status and body passed through), and the same process must serve a healthy call
right afterwards on both adapters. Timeouts are set short so that a stall costs ~1 s.
"""

from __future__ import annotations

import contextlib
import threading
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from uuid import uuid4

import httpx
import pytest
from hardening_kit import CAPABILITIES, CLIENT_TIMEOUT, mcp_call, serve_capability

from fakes.faults import INVALID_JSON, FaultState
from naftiko.engine.types import PROBLEM_MEDIA_TYPE
from naftiko.upstream.settings import UpstreamSettings
from support.servers import LiveFake, closed_port

FAULTS_CAPABILITY = CAPABILITIES / "faults.yaml"
REST, MCP = "faults-rest", "faults-mcp"
READ_TIMEOUT_S = 0.5
LIMIT = 1024 * 1024
FIFTY_MB = 50 * 1024 * 1024


@dataclass
class Gateway:
    rest: httpx.AsyncClient
    mcp_url: str
    http: httpx.AsyncClient


@contextlib.asynccontextmanager
async def gateway(base_uri: str, **engine: Any) -> AsyncIterator[Gateway]:
    settings = UpstreamSettings(
        read_timeout_s=READ_TIMEOUT_S,
        connect_timeout_s=READ_TIMEOUT_S,
        max_response_bytes=LIMIT,
        base_uri_overrides={"faulty": base_uri},
        **engine,
    )
    async with (
        serve_capability(FAULTS_CAPABILITY, engine_settings=settings) as served,
        httpx.AsyncClient(base_url=served.rest[REST], timeout=CLIENT_TIMEOUT) as rest,
        httpx.AsyncClient(timeout=CLIENT_TIMEOUT) as http,
    ):
        yield Gateway(rest, served.mcp[MCP], http)


async def assert_still_serving(gw: Gateway) -> None:
    """A healthy call on each adapter gets its own token back."""
    token = uuid4().hex
    response = await gw.rest.get("/echo", params={"token": token})
    assert response.status_code == 200, response.text
    assert response.json()["query"] == {"token": token}
    token = uuid4().hex
    reply = await mcp_call(gw.http, gw.mcp_url, "echo", {"token": token})
    assert reply.status == 200 and not reply.is_error, reply.text
    assert reply.structured["query"] == {"token": token}


def assert_problem(response: httpx.Response, status: int, kind: str) -> None:
    assert response.status_code == status, response.text
    assert response.headers["content-type"] == PROBLEM_MEDIA_TYPE
    body = response.json()
    assert body["type"] == f"https://naftiko.dev/problems/{kind}"
    assert body["status"] == status
    assert body["detail"]  # a reason, in our words


# (id, exposed kind, query, status, problem kind, words of the reason)
FAULTS = [
    ("reset-mid-response", "raw", {"mode": "reset"}, 502, "unreachable", "reading"),
    ("reset-before-response", "raw", {"mode": "reset-before-response"}, 502, "unreachable", ""),
    ("close-before-response", "raw", {"mode": "close-before-response"}, 502, "unreachable", ""),
    ("slow-headers", "raw", {"mode": "slow-headers", "delay": "30"}, 504, "timeout", "within"),
    (
        "slow-body-stall",
        "raw",
        {"mode": "slow-body", "chunks": "3", "interval": "30"},
        504,
        "timeout",
        "within",
    ),
    ("truncated-json", "mapped", {"mode": "truncated-json"}, 502, "unreachable", ""),
    ("invalid-json", "mapped", {"mode": "invalid-json"}, 502, "bad-upstream-response", "json"),
    ("invalid-xml", "xml", {"mode": "invalid-xml"}, 502, "bad-upstream-response", "xml"),
    (
        "fifty-mb-with-length",
        "raw",
        {"mode": "big", "size": str(FIFTY_MB)},
        502,
        "bad-upstream-response",
        "larger than",
    ),
    (
        "fifty-mb-chunked",
        "raw",
        {"mode": "big", "size": str(FIFTY_MB), "chunked": "1"},
        502,
        "bad-upstream-response",
        "larger than",
    ),
]


@pytest.mark.parametrize(
    ("kind", "args", "status", "problem", "words"),
    [pytest.param(*f[1:], id=f[0]) for f in FAULTS],
)
async def test_fault_gives_documented_error_on_both_adapters_then_serving_goes_on(
    fault_upstream: LiveFake[FaultState],
    kind: str,
    args: dict[str, str],
    status: int,
    problem: str,
    words: str,
) -> None:
    async with gateway(fault_upstream.url) as gw:
        query = {k: v for k, v in args.items() if k != "mode"}
        response = await gw.rest.get(f"/{kind}/{args['mode']}", params=query)
        assert_problem(response, status, problem)
        assert words in response.json()["detail"]
        assert "127.0.0.1" not in response.text  # no upstream URL in what callers see

        reply = await mcp_call(gw.http, gw.mcp_url, kind, args)
        assert reply.status == 200, reply.text
        assert reply.is_error, reply.text
        assert f"[{status}]" in reply.error_text
        assert words in reply.error_text
        assert "127.0.0.1" not in reply.error_text

        await assert_still_serving(gw)


@pytest.mark.parametrize("code", [500, 502, 503])
async def test_upstream_5xx_passes_through_with_its_body(
    fault_upstream: LiveFake[FaultState], code: int
) -> None:
    expected = {"error": "upstream failure", "status": code}
    async with gateway(fault_upstream.url) as gw:
        response = await gw.rest.get(f"/status/{code}")
        reply = await mcp_call(gw.http, gw.mcp_url, "status", {"code": str(code)})
        assert response.status_code == code
        assert response.json() == expected
        assert reply.is_error and f"HTTP {code} from upstream" in reply.error_text
        await assert_still_serving(gw)


async def test_connection_refused_is_502_unreachable_then_serving_goes_on() -> None:
    async with gateway(f"http://127.0.0.1:{closed_port()}") as gw:
        response = await gw.rest.get("/raw/anything")
        reply = await mcp_call(gw.http, gw.mcp_url, "raw", {"mode": "anything"})
        for _ in range(3):  # the pool must not be wedged by failed connects
            assert_problem(await gw.rest.get("/raw/anything"), 502, "unreachable")
    assert_problem(response, 502, "unreachable")
    assert reply.is_error and "[502]" in reply.error_text
    assert "Upstream unreachable" in reply.error_text


async def test_slow_body_within_the_timeout_completes(
    fault_upstream: LiveFake[FaultState],
) -> None:
    async with gateway(fault_upstream.url) as gw:
        response = await gw.rest.get(
            "/raw/slow-body", params={"chunks": "4", "interval": str(READ_TIMEOUT_S / 10)}
        )
    assert response.status_code == 200, response.text
    assert response.json() == [0, 1, 2, 3]


async def test_a_body_dripping_under_the_read_timeout_is_cut_by_the_total_deadline(
    fault_upstream: LiveFake[FaultState],
) -> None:
    """Each chunk comes well within the read timeout; the whole exchange never ends in
    time: 504 on both adapters, and the process goes on serving."""
    drip = {"chunks": "200", "interval": str(READ_TIMEOUT_S / 5)}
    async with gateway(fault_upstream.url, total_timeout_s=2 * READ_TIMEOUT_S) as gw:
        response = await gw.rest.get("/raw/slow-body", params=drip)
        reply = await mcp_call(gw.http, gw.mcp_url, "raw", {"mode": "slow-body", **drip})
        await assert_still_serving(gw)
    assert_problem(response, 504, "timeout")
    assert "no complete response within 1s" in response.json()["detail"]
    assert reply.is_error and "[504]" in reply.error_text


async def test_invalid_json_passes_through_unmapped_byte_for_byte(
    fault_upstream: LiveFake[FaultState],
) -> None:
    """Nothing maps it, so it is not ours to judge: same bytes, same media type."""
    async with gateway(fault_upstream.url) as gw:
        response = await gw.rest.get("/raw/invalid-json")
    assert response.status_code == 200, response.text
    assert response.content == INVALID_JSON
    assert response.headers["content-type"] == "application/json"


async def test_redirect_to_another_host_is_not_followed(
    fault_upstream: LiveFake[FaultState],
) -> None:
    async with gateway(fault_upstream.url) as gw:
        await gw.rest.get("/raw/redirect")
        await mcp_call(gw.http, gw.mcp_url, "raw", {"mode": "redirect"})
        await assert_still_serving(gw)
    paths = [r.path for r in fault_upstream.state.requests]
    assert paths.count("/redirect") == 2
    assert paths.count("/echo") == 2  # only assert_still_serving's own calls


@pytest.mark.parametrize("kind", ["raw", "mapped"])
async def test_redirect_is_a_502_bad_upstream_response(
    fault_upstream: LiveFake[FaultState], kind: str
) -> None:
    async with gateway(fault_upstream.url) as gw:
        response = await gw.rest.get(f"/{kind}/redirect")
        reply = await mcp_call(gw.http, gw.mcp_url, kind, {"mode": "redirect"})
    assert_problem(response, 502, "bad-upstream-response")
    assert "localhost" not in response.text  # the Location is not echoed
    assert reply.is_error and "[502]" in reply.error_text


# --------------------------------------------------------------------------- memory


def _peak_rss_reset() -> bool:
    """Reset this process's VmHWM (Linux >= 4.0); False when not permitted."""
    try:
        Path("/proc/self/clear_refs").write_text("5")
    except OSError:
        return False
    return True


def _status_kib(field: str) -> int:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith(field + ":"):
            return int(line.split()[1])
    raise RuntimeError(field)


@contextlib.contextmanager
def peak_rss_growth() -> Iterator[list[int]]:
    """Yields a list that receives the peak RSS growth (bytes) of the block."""
    out: list[int] = []
    base = _status_kib("VmRSS")
    exact = _peak_rss_reset()
    stop = threading.Event()
    samples = [base]

    def sample() -> None:  # fallback when the peak cannot be reset
        while not stop.wait(0.005):
            samples.append(_status_kib("VmRSS"))

    thread = None if exact else threading.Thread(target=sample, daemon=True)
    if thread is not None:
        thread.start()
    try:
        yield out
    finally:
        stop.set()
        if thread is not None:
            thread.join()
        peak = _status_kib("VmHWM") if exact else max(samples)
        out.append((peak - base) * 1024)


@pytest.mark.parametrize("chunked", ["0", "1"])
async def test_fifty_mb_response_is_cut_at_the_limit_with_bounded_memory(
    fault_upstream: LiveFake[FaultState], chunked: str
) -> None:
    """The body is streamed and abandoned at the limit, never buffered whole.

    Loose bound: a buffered body would add >= 50 MB; the server, the client and the
    fake all live in this process, so a few MB of churn are expected.
    """
    async with gateway(fault_upstream.url) as gw:
        await assert_still_serving(gw)  # warm every code path first
        with peak_rss_growth() as growth:
            for _ in range(3):
                response = await gw.rest.get(
                    "/raw/big", params={"size": str(FIFTY_MB), "chunked": chunked}
                )
                assert_problem(response, 502, "bad-upstream-response")
                reply = await mcp_call(
                    gw.http, gw.mcp_url, "raw", {"mode": "big", "size": str(FIFTY_MB)}
                )
                assert reply.is_error and "larger than" in reply.error_text
        await assert_still_serving(gw)
    assert growth[0] < 25 * 1024 * 1024, f"peak RSS grew by {growth[0] / 2**20:.1f} MiB"
