"""One upstream-client run for ``bench/deps.py``: a closed loop of keep-alive requests.

The client under test runs in this process alone (on uvloop, as naftiko-run does), with
``connections`` tasks each sending a request and reading its whole body, again and
again. After a warm-up (pools filled, code paths hot) it counts the requests of
``duration_s`` seconds and the process CPU time they took (``time.process_time``, all
threads), so the figure is the client's own CPU per upstream request.

Clients: ``naftiko-fetch`` (the engine's direct path: ``wire_of`` + ``Http11Transport.fetch``,
as ``engine.client`` sends a plain request), ``naftiko-httpx`` (``httpx.AsyncClient`` over
``Http11Transport``), ``httpx`` (httpx's default transport, httpcore), ``aiohttp``.

Usage: python depclient.py '<json spec>'  ->  prints one JSON line.
"""

from __future__ import annotations

import asyncio
import json
import sys
import time
from collections.abc import Awaitable, Callable
from typing import Any

import uvloop

Send = Callable[[], Awaitable[int]]  # one exchange; returns the status


async def _naftiko_fetch(spec: dict[str, Any]) -> tuple[Send, Callable[[], Awaitable[None]]]:
    import httpx

    from naftiko.upstream.request import UpstreamRequest
    from naftiko.upstream.transport import Http11Transport
    from naftiko.upstream.wire import wire_of

    transport = Http11Transport(max_connections=100, max_idle=100)
    timeout = httpx.Timeout(30.0)
    loop = asyncio.get_running_loop()
    body = spec["body"].encode() or None

    async def send() -> int:
        headers = {"User-Agent": "bench", **spec["headers"]}
        request = UpstreamRequest(spec["method"], spec["url"], headers, body)
        wire = wire_of(request, None, timeout, loop.time() + 60)
        assert wire is not None, "the bench's requests are plain"
        raw = await transport.fetch(wire, limit=10 * 1024 * 1024)
        return raw.status

    return send, transport.aclose


async def _httpx(spec: dict[str, Any], ours: bool) -> tuple[Send, Callable[[], Awaitable[None]]]:
    import httpx

    if ours:
        from naftiko.upstream.transport import Http11Transport

        client = httpx.AsyncClient(
            transport=Http11Transport(max_connections=100, max_idle=100),
            timeout=30.0,
            trust_env=False,
        )
    else:
        limits = httpx.Limits(max_connections=100, max_keepalive_connections=100)
        client = httpx.AsyncClient(limits=limits, timeout=30.0, trust_env=False)
    body = spec["body"].encode() or None

    async def send() -> int:
        response = await client.request(
            spec["method"], spec["url"], content=body, headers=spec["headers"]
        )
        return response.status_code  # read whole: not a streamed request

    return send, client.aclose


async def _aiohttp(spec: dict[str, Any]) -> tuple[Send, Callable[[], Awaitable[None]]]:
    import aiohttp

    session = aiohttp.ClientSession(
        connector=aiohttp.TCPConnector(limit=100), timeout=aiohttp.ClientTimeout(total=30.0)
    )
    body = spec["body"].encode() or None

    async def send() -> int:
        async with session.request(
            spec["method"], spec["url"], data=body, headers=spec["headers"]
        ) as response:
            await response.read()
            return response.status

    return send, session.close


async def _client(spec: dict[str, Any]) -> tuple[Send, Callable[[], Awaitable[None]]]:
    kind = spec["client"]
    if kind == "naftiko-fetch":
        return await _naftiko_fetch(spec)
    if kind in ("naftiko-httpx", "httpx"):
        return await _httpx(spec, ours=kind == "naftiko-httpx")
    if kind == "aiohttp":
        return await _aiohttp(spec)
    raise SystemExit(f"unknown client {kind!r}")


async def main(spec: dict[str, Any]) -> dict[str, Any]:
    send, close = await _client(spec)
    counts = {"requests": 0, "errors": 0}
    phase = {"measuring": False, "stop": False}

    async def worker() -> None:
        while not phase["stop"]:
            status = await send()
            if phase["measuring"]:
                counts["requests"] += 1
                counts["errors"] += status != 200

    tasks = [asyncio.create_task(worker()) for _ in range(spec["connections"])]
    await asyncio.sleep(spec["warmup_s"])
    cpu, wall = time.process_time(), time.perf_counter()
    phase["measuring"] = True
    await asyncio.sleep(spec["duration_s"])
    phase["measuring"] = False
    cpu, wall = time.process_time() - cpu, time.perf_counter() - wall
    phase["stop"] = True
    await asyncio.gather(*tasks)
    await close()
    return {
        "requests": counts["requests"],
        "errors": counts["errors"],
        "cpu_s": cpu,
        "wall_s": wall,
    }


if __name__ == "__main__":
    print(json.dumps(uvloop.run(main(json.loads(sys.argv[1])))))
