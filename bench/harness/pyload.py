"""Fallback load generator when wrk is missing: asyncio + httpx, one process.

Each of ``connections`` workers owns one keep-alive connection and loops for
``duration_s`` (pausing a jittered ``delay_ms`` between requests when asked, like the
wrk script). A Python client tops out at a few thousand requests per second, so this
is for ``--quick`` smoke runs, not for ratios; results carry ``tool: python-httpx``.

Usage: python pyload.py '<json spec>'  ->  prints one JSON line.
"""

from __future__ import annotations

import asyncio
import json
import random
import sys
import time

import httpx


def percentile(sorted_values: list[float], pct: float) -> float:
    if not sorted_values:
        return 0.0
    index = min(len(sorted_values) - 1, max(0, round(pct / 100 * len(sorted_values)) - 1))
    return sorted_values[index]


async def worker(spec: dict, deadline: float, latencies: list[float], errors: list[int]) -> None:
    limits = httpx.Limits(max_connections=1, max_keepalive_connections=1)
    content = spec["body"].encode() if spec["body"] else None
    async with httpx.AsyncClient(limits=limits, timeout=10.0) as client:
        while time.perf_counter() < deadline:
            started = time.perf_counter()
            try:
                response = await client.request(
                    spec["method"], spec["url"], content=content, headers=spec["headers"]
                )
                await response.aread()
                if response.status_code >= 400:
                    errors[0] += 1
            except httpx.HTTPError:
                errors[0] += 1
            latencies.append((time.perf_counter() - started) * 1000.0)
            if spec["delay_ms"] > 0:
                await asyncio.sleep(spec["delay_ms"] * (0.5 + random.random()) / 1000.0)


async def main(spec: dict) -> dict:
    latencies: list[float] = []
    errors = [0]
    started = time.perf_counter()
    deadline = started + spec["duration_s"]
    await asyncio.gather(
        *(worker(spec, deadline, latencies, errors) for _ in range(spec["connections"]))
    )
    duration = time.perf_counter() - started
    latencies.sort()
    return {
        "duration_s": duration,
        "requests": len(latencies),
        "errors": errors[0],
        "rps": len(latencies) / duration,
        "p50_ms": percentile(latencies, 50),
        "p90_ms": percentile(latencies, 90),
        "p99_ms": percentile(latencies, 99),
        "max_ms": latencies[-1] if latencies else 0.0,
    }


if __name__ == "__main__":
    print(json.dumps(asyncio.run(main(json.loads(sys.argv[1])))))
