"""Upstream resilience end to end: retries, circuit breaker and bulkhead per namespace.

A flapping upstream on loopback (``fakes.faults`` ``/flaky``: fails N times with a
status, a reset or a close, then answers) behind the REST and MCP adapters of
flapping.yaml, on real uvicorn servers. Every scenario runs through REST and through MCP
and must take the same decisions: the same number of upstream requests, the same
success or refusal. Backoffs are shortened by the policy so that a run takes seconds.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any
from uuid import uuid4

import httpx
import pytest
from hardening_kit import CAPABILITIES, CLIENT_TIMEOUT, RuntimeProcess, mcp_call, serve_capability

from fakes.faults import FaultState
from naftiko.engine.invoke import Engine
from naftiko.engine.types import PROBLEM_MEDIA_TYPE
from naftiko.upstream.resilience import ResiliencePolicy, ResilienceSettings
from naftiko.upstream.settings import UpstreamSettings
from support.servers import LiveFake

FLAPPING = CAPABILITIES / "flapping.yaml"
REST, MCP = "flap-rest", "flap-mcp"
FAST = ResiliencePolicy(backoff_base_s=0.01, backoff_max_s=0.05)
ADAPTERS = ("rest", "mcp")


@dataclass(frozen=True)
class Answer:
    """One call's outcome, in the terms both adapters share."""

    ok: bool
    status: int  # REST: the HTTP status; MCP: the status the error text ends with
    retry_after: int | None
    text: str
    media_type: str  # REST only


@dataclass
class Flap:
    rest: httpx.AsyncClient
    mcp_url: str
    http: httpx.AsyncClient
    engine: Engine
    upstream: FaultState

    async def call(
        self,
        adapter: str,
        tool: str,
        key: str,
        fails: int = 0,
        fault: str = "503",
        *,
        retry_after: str | None = None,
        delay: str | None = None,
    ) -> Answer:
        query = {"retry_after": retry_after, "delay": delay}
        query = {name: value for name, value in query.items() if value is not None}
        if adapter == "rest":
            return await self._rest(tool, key, fails, fault, query)
        args: dict[str, Any] = {"key": key, "fails": str(fails), "fault": fault, **query}
        reply = await mcp_call(self.http, self.mcp_url, tool, args)
        assert reply.status == 200, reply.text
        if not reply.is_error:
            return Answer(True, 200, None, reply.error_text, "")
        text = reply.error_text
        status = int(text.rsplit("[", 1)[1].rstrip("]")) if text.endswith("]") else 0
        if text.startswith("HTTP "):
            status = int(text.split()[1])
        after = None
        if "retry after " in text:
            after = int(text.split("retry after ", 1)[1].split()[0])
        return Answer(False, status, after, text, "")

    async def _rest(
        self, tool: str, key: str, fails: int, fault: str, query: dict[str, str]
    ) -> Answer:
        method = {"read": "GET", "create": "POST"}[tool]
        response = await self.rest.request(method, f"/{tool}/{key}/{fails}/{fault}", params=query)
        after = response.headers.get("retry-after")
        return Answer(
            response.status_code < 400,
            response.status_code,
            int(after) if after is not None else None,
            response.text,
            response.headers.get("content-type", ""),
        )

    def hits(self, key: str) -> int:
        return len(self.upstream.hits(key))


@contextlib.asynccontextmanager
async def flapping(
    upstream: LiveFake[FaultState], policy: ResiliencePolicy = FAST, **engine: Any
) -> AsyncIterator[Flap]:
    settings = UpstreamSettings(
        base_uri_overrides={"flappy": upstream.url},
        resilience=ResilienceSettings(namespaces={"flappy": policy}),
        **engine,
    )
    async with (
        serve_capability(FLAPPING, engine_settings=settings) as served,
        httpx.AsyncClient(base_url=served.rest[REST], timeout=CLIENT_TIMEOUT) as rest,
        httpx.AsyncClient(timeout=CLIENT_TIMEOUT) as http,
    ):
        assert served.engine is not None
        yield Flap(rest, served.mcp[MCP], http, served.engine, upstream.state)


def key() -> str:
    return uuid4().hex[:12]


# --------------------------------------------------------------------------- retries


@pytest.mark.parametrize("adapter", ADAPTERS)
@pytest.mark.parametrize("fault", ["503", "502", "504", "429", "reset", "close"])
async def test_a_get_is_retried_and_succeeds(
    fault_upstream: LiveFake[FaultState], adapter: str, fault: str
) -> None:
    async with flapping(fault_upstream) as flap:
        k = key()
        answer = await flap.call(adapter, "read", k, 2, fault)
        assert answer.ok, answer
        assert flap.hits(k) == 3  # two failures, then the answer


@pytest.mark.parametrize("adapter", ADAPTERS)
async def test_retries_stop_at_the_policy_count(
    fault_upstream: LiveFake[FaultState], adapter: str
) -> None:
    async with flapping(fault_upstream) as flap:
        k = key()
        answer = await flap.call(adapter, "read", k, 5, "503")
        assert not answer.ok and answer.status == 503, answer  # the upstream's own 503
        assert flap.hits(k) == 3  # the call and two retries (the default)


@pytest.mark.parametrize("adapter", ADAPTERS)
@pytest.mark.parametrize("fault", ["503", "reset"])
async def test_a_post_is_never_retried(
    fault_upstream: LiveFake[FaultState], adapter: str, fault: str
) -> None:
    async with flapping(fault_upstream) as flap:
        k = key()
        answer = await flap.call(adapter, "create", k, 1, fault)
        assert not answer.ok and answer.status in (502, 503), answer
        assert flap.hits(k) == 1


async def test_a_post_declared_idempotent_is_retried(
    fault_upstream: LiveFake[FaultState],
) -> None:
    async with flapping(fault_upstream) as flap:
        k = key()
        answer = await flap.call("mcp", "upsert", k, 1, "503")
        assert answer.ok, answer
        assert [r.method for r in flap.upstream.hits(k)] == ["POST", "POST"]


@pytest.mark.parametrize("adapter", ADAPTERS)
async def test_retry_after_is_honoured(fault_upstream: LiveFake[FaultState], adapter: str) -> None:
    async with flapping(fault_upstream) as flap:
        k = key()
        answer = await flap.call(adapter, "read", k, 1, "429", retry_after="1")
        assert answer.ok, answer
        first, second = flap.upstream.hits(k)
        # The backoff alone would wait at most 0.01 s; the upstream asked for a second.
        assert second.extra["at"] - first.extra["at"] >= 0.9


@pytest.mark.parametrize("adapter", ADAPTERS)
async def test_a_retry_after_beyond_the_cap_is_not_waited_for(
    fault_upstream: LiveFake[FaultState], adapter: str
) -> None:
    async with flapping(fault_upstream, replace(FAST, retry_after_cap_s=5)) as flap:
        k = key()
        answer = await flap.call(adapter, "read", k, 1, "429", retry_after="120")
        assert not answer.ok and answer.status == 429, answer
        assert flap.hits(k) == 1
        if adapter == "rest":  # the upstream's answer, its Retry-After kept
            assert answer.retry_after == 120


@pytest.mark.parametrize("adapter", ADAPTERS)
async def test_no_retry_waits_past_the_deadline(
    fault_upstream: LiveFake[FaultState], adapter: str
) -> None:
    policy = replace(FAST, retries=5)
    async with flapping(fault_upstream, policy, total_timeout_s=1.5) as flap:
        k = key()
        # Each failure asks for a second: the call, one retry at ~1 s, and no third
        # attempt (it would start at ~2 s, past the 1.5 s deadline).
        answer = await flap.call(adapter, "read", k, 5, "503", retry_after="1")
        assert not answer.ok and answer.status == 503, answer
        assert flap.hits(k) == 2


@pytest.mark.parametrize("adapter", ADAPTERS)
async def test_a_retry_is_cut_at_the_deadline(
    fault_upstream: LiveFake[FaultState], adapter: str
) -> None:
    async with flapping(fault_upstream, total_timeout_s=1.0) as flap:
        k = key()
        # A 503, then a retry the upstream would answer after 5 s: cut at the deadline.
        answer = await flap.call(adapter, "read", k, 1, "503", delay="5")
        assert not answer.ok and answer.status == 504, answer
        assert "deadline" in answer.text and flap.hits(k) == 2


@pytest.mark.parametrize("adapter", ADAPTERS)
async def test_the_retry_budget_bounds_retries(
    fault_upstream: LiveFake[FaultState], adapter: str
) -> None:
    # One retry per ten seconds at most, whatever the traffic.
    policy = replace(FAST, retry_budget_ratio=0.0, retry_budget_min_per_s=0.1)
    async with flapping(fault_upstream, policy) as flap:
        first, second = key(), key()
        assert (await flap.call(adapter, "read", first, 1, "503")).ok
        answer = await flap.call(adapter, "read", second, 1, "503")
        assert not answer.ok and answer.status == 503, answer
        assert (flap.hits(first), flap.hits(second)) == (2, 1)


# --------------------------------------------------------------------------- breaker


@pytest.mark.parametrize("adapter", ADAPTERS)
async def test_the_breaker_opens_refuses_half_opens_and_closes(
    fault_upstream: LiveFake[FaultState], adapter: str
) -> None:
    policy = replace(FAST, retries=0, breaker_failures=3, breaker_open_s=1.0)
    async with flapping(fault_upstream, policy) as flap:
        k = key()
        for _ in range(3):  # three failures in a row open the circuit
            answer = await flap.call(adapter, "read", k, 4, "503")
            assert answer.status == 503 and answer.retry_after is None, answer
        assert _breaker(flap) == "open"
        refused = await flap.call(adapter, "read", k, 4, "503")
        assert not refused.ok and refused.status == 503, refused
        assert refused.retry_after == 1 and "circuit is open" in refused.text
        if adapter == "rest":
            assert refused.media_type == PROBLEM_MEDIA_TYPE
        assert flap.hits(k) == 3  # refused without calling the upstream
        await asyncio.sleep(1.1)
        # Half-open: one probe goes through; it fails (the 4th failure): open again.
        probe = await flap.call(adapter, "read", k, 4, "503")
        assert probe.status == 503 and probe.retry_after is None and flap.hits(k) == 4
        assert _breaker(flap) == "open"
        await asyncio.sleep(1.1)
        assert (await flap.call(adapter, "read", k, 4, "503")).ok  # the probe succeeds
        assert _breaker(flap) == "closed"
        assert (await flap.call(adapter, "read", key(), 0)).ok


@pytest.mark.parametrize("adapter", ADAPTERS)
async def test_the_breaker_opens_on_a_failure_ratio(
    fault_upstream: LiveFake[FaultState], adapter: str
) -> None:
    policy = replace(
        FAST, retries=0, breaker_failures=0, breaker_failure_ratio=0.5, breaker_min_calls=6
    )
    async with flapping(fault_upstream, policy) as flap:
        for i in range(6):  # alternate: never two failures in a row, half of them failing
            await flap.call(adapter, "read", key(), i % 2, "503")
        assert _breaker(flap) == "open"
        refused = await flap.call(adapter, "read", key(), 0)
        assert refused.status == 503 and refused.retry_after is not None, refused


def _breaker(flap: Flap) -> str:
    (state,) = [s for s in flap.engine.resilience.states() if s["namespace"] == "flappy"]
    return str(state["breaker"])


# --------------------------------------------------------------------------- bulkhead


@pytest.mark.parametrize("adapter", ADAPTERS)
async def test_the_bulkhead_refuses_past_its_cap(
    fault_upstream: LiveFake[FaultState], adapter: str
) -> None:
    policy = replace(FAST, max_concurrent=2, queue_wait_s=0.2)
    async with flapping(fault_upstream, policy) as flap:
        before = len(flap.upstream.requests)

        async def slow() -> Any:
            if adapter == "rest":
                return await flap.rest.get("/slow", params={"delay": "2"})
            return await mcp_call(flap.http, flap.mcp_url, "slow", {"delay": "2"})

        held = [asyncio.create_task(slow()) for _ in range(2)]
        while len(flap.upstream.requests) < before + 2:
            await asyncio.sleep(0.01)
        refused = await flap.call(adapter, "read", key(), 0)
        assert not refused.ok and refused.status == 503 and refused.retry_after == 1, refused
        assert "calls are in flight" in refused.text
        answers = await asyncio.gather(*held)
        if adapter == "rest":
            assert [a.status_code for a in answers] == [200, 200]
        else:
            assert [a.is_error for a in answers] == [False, False]
        assert (await flap.call(adapter, "read", key(), 0)).ok  # slots freed


# --------------------------------------------------------------------------- the process


SETTINGS = """\
[upstream.defaults]
backoff_base = 0.01
backoff_max = 0.05

[upstream.flappy]
retries = 1
breaker_failures = 2
breaker_open = 60
"""


async def test_the_process_reads_its_settings_and_shows_the_state(
    fault_upstream: LiveFake[FaultState], tmp_path: Path
) -> None:
    """``--settings`` and ``--upstream`` reach the engine; the breaker's state and the
    retries show in ``/status`` and ``/metrics``; REST and MCP are refused alike."""
    settings = tmp_path / "settings.toml"
    settings.write_text(SETTINGS)
    args = [str(FLAPPING), "--gateway", "0", "--host", "127.0.0.1"]
    args += ["--base-uri", f"flappy={fault_upstream.url}", "--settings", str(settings)]
    args += ["--upstream", "flappy.max_concurrent=10"]
    with RuntimeProcess(args) as run:
        base = run.wait_ready()["gateway"]
        async with httpx.AsyncClient(base_url=base, timeout=CLIENT_TIMEOUT) as http:
            status = (await http.get("/status")).json()
            assert status["upstreams"] == [
                {"namespace": "flappy", "breaker": "closed", "inFlight": 0}
            ]
            recovered = key()
            assert (await http.get(f"/flap-rest/read/{recovered}/1/503")).status_code == 200
            assert fault_upstream.state.flaky[recovered] == 2
            failing = key()
            for _ in range(2):  # each call is tried twice (retries = 1): the circuit opens
                assert (await http.get(f"/flap-rest/read/{failing}/9/503")).status_code == 503
            assert fault_upstream.state.flaky[failing] == 4
            refused = await http.get(f"/flap-rest/read/{failing}/9/503")
            assert refused.status_code == 503
            assert refused.headers["content-type"] == PROBLEM_MEDIA_TYPE
            assert 55 <= int(refused.headers["retry-after"]) <= 60
            assert refused.json()["type"].endswith("/upstream-unavailable")
            args_ = {"key": failing, "fails": "9", "fault": "503"}
            reply = await mcp_call(http, base + "/flap-mcp/mcp", "read", args_)
            assert reply.is_error and "circuit is open" in reply.error_text
            assert "retry after" in reply.error_text
            assert fault_upstream.state.flaky[failing] == 4  # neither reached the upstream
            (state,) = (await http.get("/status")).json()["upstreams"]
            assert state["breaker"] == "open" and 55 <= state["retryAfter"] <= 60
            metrics = (await http.get("/metrics")).text
        run.terminate()
        assert run.wait(60) == 0, run.output
    assert 'naftiko_upstream_retries_total{namespace="flappy",outcome="recovered"} 1.0' in metrics
    assert 'naftiko_upstream_retries_total{namespace="flappy",outcome="failed"} 2.0' in metrics
    assert 'naftiko_upstream_breaker_state{namespace="flappy"} 2.0' in metrics
    refusals = 'naftiko_upstream_refused_total{namespace="flappy",reason="breaker_open"} 2.0'
    assert refusals in metrics
    assert "circuit open" in run.output


def test_an_unknown_setting_is_refused_with_one_line(tmp_path: Path) -> None:
    settings = tmp_path / "settings.yaml"
    settings.write_text("upstream:\n  flappy:\n    retry: 3\n")
    args = [str(FLAPPING), "--check", "--settings", str(settings)]
    with RuntimeProcess(args) as run:
        assert run.wait(60) == 2
    lines = [line for line in run.lines if line.strip()]
    assert len(lines) == 1, run.output
    assert "upstream.flappy: unknown setting 'retry'; known: retries," in lines[0]


@pytest.mark.parametrize("adapter", ADAPTERS)
async def test_the_bulkhead_queues_briefly(
    fault_upstream: LiveFake[FaultState], adapter: str
) -> None:
    policy = replace(FAST, max_concurrent=1, queue_wait_s=10.0)
    async with flapping(fault_upstream, policy) as flap:
        held, queued = key(), key()
        first = asyncio.create_task(flap.call(adapter, "read", held, 0, delay="0.5"))
        while not flap.hits(held):
            await asyncio.sleep(0.01)
        second = await flap.call(adapter, "read", queued, 0)  # waits for the first
        assert second.ok, second
        assert (await first).ok
        (hold,) = flap.upstream.hits(held)
        (wait,) = flap.upstream.hits(queued)
        assert wait.extra["at"] - hold.extra["at"] >= 0.45  # sent once the first ended
