"""Rate limits in ``naftiko run`` processes (issue 21, part 3): shared through a REAL Redis,
and per member in gateway mode.

Debian's ``redis-server`` runs on an ephemeral loopback port in a temporary directory,
with a password (which must never appear in a log line or ``/status``). Two runtime
processes share one limit: the calls either of them allows add up to the limit. Redis
killed mid-run: each process falls back to its own local buckets with one loud warning
and a metric, and is still limited; Redis back: the limits are shared again.
"""

from __future__ import annotations

import asyncio
import logging
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
import redis
from naftiko_process import NaftikoProcess

from naftiko.adapters.http.rate_limit import RateLimitConfig, RateLimiter, parse_policy
from support.servers import free_port

REDIS_SERVER = Path("/usr/bin/redis-server")
CAPABILITY = Path(__file__).resolve().parents[1] / "adapters/capabilities/rate-limits.yaml"
PASSWORD = "rl-redis-pass-7f3e"
LIMIT = 10
GUARD_S = 20.0  # a server that never comes up fails the test after this, not the suite


class RedisServer:
    """``redis-server`` on loopback, no persistence, in ``directory``."""

    def __init__(self, directory: Path) -> None:
        self.directory = directory
        self.port = free_port()
        self.proc: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"redis://:{PASSWORD}@127.0.0.1:{self.port}/0"

    def start(self) -> None:
        self.proc = subprocess.Popen(
            [
                str(REDIS_SERVER),
                "--port",
                str(self.port),
                "--bind",
                "127.0.0.1",
                "--dir",
                str(self.directory),
                "--save",
                "",
                "--appendonly",
                "no",
                "--requirepass",
                PASSWORD,
                "--logfile",
                str(self.directory / "redis.log"),
            ],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        client = redis.Redis(port=self.port, password=PASSWORD, socket_connect_timeout=0.5)
        deadline = time.monotonic() + GUARD_S
        while True:
            try:
                client.ping()
                break
            except redis.ConnectionError:
                if self.proc.poll() is not None or time.monotonic() > deadline:
                    log = (self.directory / "redis.log").read_text(errors="replace")
                    raise RuntimeError(f"redis-server did not start:\n{log}") from None
                time.sleep(0.05)
        client.close()

    def kill(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait(GUARD_S)


@pytest.fixture
def stopped_redis(tmp_path: Path) -> Iterator[RedisServer]:
    """A Redis server the test starts (and may kill and start again)."""
    if not REDIS_SERVER.exists():
        pytest.skip(f"{REDIS_SERVER} is absent (Debian's redis-server package)")
    server = RedisServer(tmp_path)
    try:
        yield server
    finally:
        server.kill()


@pytest.fixture
def redis_server(stopped_redis: RedisServer) -> RedisServer:
    stopped_redis.start()
    return stopped_redis


def runtime(redis_url: str) -> NaftikoProcess:
    args = [str(CAPABILITY), "--host", "127.0.0.1", "--control-port", "0"]
    for namespace in ("rl-rest", "rl-mcp", "rl-skill", "rl-oauth", "rl-key"):
        args += ["--port", f"{namespace}=0"]
    args += ["--rate-limit", f"rl-rest={LIMIT}/hour", "--redis", redis_url]
    return NaftikoProcess(args, {"RL_AS_URI": "http://127.0.0.1:9", "RL_API_KEY": "k"})


def allowed(http: httpx.Client, urls: list[str], calls: int) -> tuple[int, int]:
    """``calls`` GETs spread over ``urls`` in turn: (200s, 429s); nothing else expected."""
    ok = refused = 0
    for index in range(calls):
        status = http.get(urls[index % len(urls)] + "/hello").status_code
        assert status in (200, 429), status
        ok, refused = ok + (status == 200), refused + (status == 429)
    return ok, refused


def test_two_processes_share_one_limit_and_fall_back_when_redis_dies(
    redis_server: RedisServer,
) -> None:
    with (
        runtime(redis_server.url) as first,
        runtime(redis_server.url) as second,
        httpx.Client(timeout=GUARD_S) as http,
    ):
        a, b = first.wait_ready(), second.wait_ready()
        both = [a["rl-rest"], b["rl-rest"]]
        assert allowed(http, both, 3 * LIMIT) == (LIMIT, 2 * LIMIT)  # one bucket for both
        status = http.get(a["control"] + "/status").json()["rateLimits"]
        assert status == {
            "store": "redis",
            "redis": f"redis://***@127.0.0.1:{redis_server.port}/0",
            "policies": {"rl-rest": f"{LIMIT}/hour"},
        }

        redis_server.kill()
        # Never unlimited: the first process now limits on its own (a fresh local bucket).
        assert allowed(http, [a["rl-rest"]], LIMIT + 3) == (LIMIT, 3)
        warning = first.wait_for(lambda line: "unreachable" in line, GUARD_S)
        assert "RATE LIMITS: Redis at redis://***@127.0.0.1" in warning
        metrics = http.get(a["control"] + "/metrics").text
        assert "naftiko_rate_limit_fallbacks_total 1.0" in metrics
        assert 'naftiko_rate_limited_total{adapter="rl-rest",adapter_type="rest"} ' in metrics
        status = http.get(a["control"] + "/status").json()["rateLimits"]
        assert status["store"] == "local (Redis unreachable)"
        allowed(http, [a["rl-rest"]], 3)  # further failures: still one warning
        assert sum("unreachable" in line for line in first.stdout + first.stderr) == 1

        redis_server.start()  # the same port, empty: shared again once a probe succeeds
        deadline = time.monotonic() + GUARD_S
        while not any("answers again" in line for line in first.stdout + first.stderr):
            assert time.monotonic() < deadline, first.output
            http.get(a["rl-rest"] + "/hello")
            time.sleep(0.2)
        assert allowed(http, both, 3 * LIMIT) == (LIMIT, 2 * LIMIT)

        output = first.output + second.output
        assert PASSWORD not in output
        assert PASSWORD not in http.get(b["control"] + "/status").text


async def test_unreachable_at_start_limits_locally_then_shares_through_redis(
    stopped_redis: RedisServer, caplog: pytest.LogCaptureFixture
) -> None:
    fallbacks: list[int] = []
    config = RateLimitConfig(parse_policy("2/hour", "t"), {}, stopped_redis.url)
    limiter = RateLimiter(config, on_fallback=lambda: fallbacks.append(1), probe_interval_s=0)
    try:
        with caplog.at_level(logging.WARNING, "naftiko.rate_limit"):
            await limiter.start()
        assert fallbacks == [1]
        assert "is unreachable" in caplog.text and PASSWORD not in caplog.text
        limit = limiter.for_adapter("rest", "ns")
        assert limit is not None
        assert [(await limit.take("caller")).allowed for _ in range(3)] == [True, True, False]

        stopped_redis.start()
        deadline = time.monotonic() + GUARD_S
        while not limiter.redis_up:  # a request starts a probe; the probe reconnects
            assert time.monotonic() < deadline
            assert not (await limit.take("caller")).allowed  # meanwhile: the local bucket
            await asyncio.sleep(0.05)
        # Redis is empty: a fresh shared bucket, then refused from Redis's state.
        assert [(await limit.take("caller")).allowed for _ in range(3)] == [True, True, False]
        assert fallbacks == [1]

        client = redis.Redis(port=stopped_redis.port, password=PASSWORD)
        keys = client.keys("*")
        assert len(keys) == 1 and keys[0].startswith(b"naftiko:ratelimit:rest:ns:")
        assert b"caller" not in keys[0]  # a hash of the caller, never the caller
        assert 0 < client.pttl(keys[0]) <= 2 * 3600 * 1000 // 2 + 1000  # refill time + 1 s
        client.close()
    finally:
        await limiter.aclose()


async def test_gateway_members_keep_their_own_limits() -> None:
    """``--gateway``: limits per adapter namespace; the aggregate ``/mcp`` takes from the
    member's bucket, so a tool has one limit whichever endpoint it is called through."""
    from mcp import Client
    from mcp.shared.exceptions import MCPError

    args = [str(CAPABILITY), "--gateway", "0", "--host", "127.0.0.1"]
    args += ["--rate-limit", "rl-mcp=3/hour", "--rate-limit", "rl-rest=1/hour"]
    env = {"RL_AS_URI": "http://127.0.0.1:9", "RL_API_KEY": "k"}
    with NaftikoProcess(args, env) as run:
        gateway = (await asyncio.to_thread(run.wait_ready))["gateway"]
        async with httpx.AsyncClient(timeout=GUARD_S) as http:
            statuses = [(await http.get(f"{gateway}/rl-rest/hello")).status_code for _ in "ab"]
            assert statuses == [200, 429]
            assert (await http.get(f"{gateway}/rl-skill/skills")).status_code == 200
            async with Client(f"{gateway}/rl-mcp/mcp") as own:
                assert not (await own.call_tool("hello", {})).is_error
            async with Client(f"{gateway}/mcp") as aggregate:
                assert not (await aggregate.call_tool("rl-mcp__hello", {})).is_error
                assert not (await aggregate.call_tool("rl-mcp__hello", {})).is_error
                refused = await aggregate.call_tool("rl-mcp__hello", {})
                assert refused.is_error
                assert "Rate limit exceeded for 'rl-mcp'" in refused.content[0].text
                with pytest.raises(MCPError) as read:  # the same bucket for resources
                    await aggregate.read_resource("data://cards/ada")
                assert read.value.message == refused.content[0].text
            async with Client(f"{gateway}/rl-mcp/mcp") as own:
                assert (await own.call_tool("hello", {})).is_error
            metrics = (await http.get(f"{gateway}/metrics")).text
            assert 'naftiko_rate_limited_total{adapter="rl-mcp",adapter_type="mcp"} 3.0' in metrics
