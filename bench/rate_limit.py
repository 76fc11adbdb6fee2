"""What a caller rate limit costs a REST request: off, local buckets, Redis (issue 21).

The REST app of ``tests/adapters/capabilities/rate-limits.yaml`` (a mock unit: no
upstream, so the limiter's share is as large as it can be) is called in-process through
ASGI, in interleaved rounds of the three settings, in one run; the table gives the
median time per request of each and its ratio to "off". Redis is Debian's
``redis-server`` on an ephemeral loopback port (skipped when absent). The limit is high
enough that every call is accepted (the accepted path is the one every request pays).

    PYTHONPATH=src .venv/bin/python bench/rate_limit.py [--requests N] [--rounds R]
"""

from __future__ import annotations

import argparse
import asyncio
import shutil
import socket
import statistics
import subprocess
import tempfile
import time
from pathlib import Path
from typing import Any

from naftiko.adapters.exposes import compile_capability
from naftiko.adapters.http.rate_limit import RateLimitConfig, RateLimiter, parse_policy
from naftiko.adapters.http.settings import AdapterSettings
from naftiko.adapters.rest.app import build_rest_app
from naftiko.engine.invoke import Engine
from naftiko.spec.loader import load_capability
from naftiko.upstream.settings import UpstreamSettings

ROOT = Path(__file__).resolve().parents[1]
CAPABILITY = ROOT / "tests/adapters/capabilities/rate-limits.yaml"
POLICY = "1000000000/second"  # never refuses: the accepted path is what is measured


async def call(app: Any, scope: dict[str, Any]) -> int:
    status = 0

    async def receive() -> dict[str, Any]:
        return {"type": "http.request", "body": b"", "more_body": False}

    async def send(message: dict[str, Any]) -> None:
        nonlocal status
        if message["type"] == "http.response.start":
            status = message["status"]

    await app(dict(scope), receive, send)
    return status


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


async def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--requests", type=int, default=2000)
    parser.add_argument("--rounds", type=int, default=7)
    options = parser.parse_args()
    env = {"RL_AS_URI": "http://127.0.0.1:9", "RL_API_KEY": "k"}
    loaded = load_capability(CAPABILITY, env=env)
    compiled = compile_capability(loaded, UpstreamSettings())
    plan = next(p for p in compiled.adapters if p.namespace == "rl-rest")
    policy = parse_policy(POLICY, "bench")
    redis_bin = shutil.which("redis-server")
    redis_proc = None
    with tempfile.TemporaryDirectory() as tmp:
        limiters: dict[str, RateLimiter | None] = {
            "off": None,
            "local": RateLimiter(RateLimitConfig(policy)),
        }
        if redis_bin:
            port = free_port()
            command = [redis_bin, "--port", str(port), "--bind", "127.0.0.1", "--dir", tmp]
            command += ["--save", "", "--appendonly", "no"]
            redis_proc = subprocess.Popen(command, stdout=subprocess.DEVNULL)
            limiters["redis"] = RateLimiter(
                RateLimitConfig(policy, redis_url=f"redis://127.0.0.1:{port}/0")
            )
        try:
            async with Engine(compiled, UpstreamSettings()) as engine:
                apps = {}
                for name, limiter in limiters.items():
                    if limiter is not None:
                        for _ in range(100):  # wait for redis-server to listen
                            await limiter.start()
                            if limiter.redis is None or limiter.redis_up:
                                break
                            limiter.redis_up = True
                            await asyncio.sleep(0.05)
                    settings = AdapterSettings(rate_limiter=limiter)
                    apps[name] = build_rest_app(engine, plan, settings)
                scope = {
                    "type": "http",
                    "method": "GET",
                    "path": "/hello",
                    "raw_path": b"/hello",
                    "query_string": b"",
                    "headers": [(b"host", b"127.0.0.1")],
                    "client": ("127.0.0.1", 50000),
                    "server": ("127.0.0.1", 8161),
                    "scheme": "http",
                    "root_path": "",
                }
                times: dict[str, list[float]] = {name: [] for name in apps}
                for _ in range(options.rounds):
                    for name, app in apps.items():
                        started = time.perf_counter()
                        for _ in range(options.requests):
                            assert await call(app, scope) == 200
                        elapsed = time.perf_counter() - started
                        times[name].append(elapsed / options.requests * 1e6)
                for limiter in limiters.values():
                    if limiter is not None:
                        await limiter.aclose()
        finally:
            if redis_proc is not None:
                redis_proc.kill()
                redis_proc.wait()
    base = statistics.median(times["off"])
    print(f"{'rate limit':<10} {'us/request':>11} {'vs off':>7}")
    for name, values in times.items():
        median = statistics.median(values)
        print(f"{name:<10} {median:>11.1f} {median / base:>7.2f}")
    if "redis" not in times:
        print("redis: skipped (no redis-server on PATH)")


if __name__ == "__main__":
    asyncio.run(main())
