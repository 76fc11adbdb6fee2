"""SIGTERM during 100 in-flight slow calls: every call completes, then exit 0.

A real ``naftiko run`` process; 50 REST and 50 MCP calls each wait on an upstream that
answers after a delay. SIGTERM is sent once the upstream holds all 100 requests. Each
caller must get its own answer (the upstream echoes a per-call token) within the grace
period, and the process must exit 0.
"""

from __future__ import annotations

import asyncio
import time

import httpx
from hardening_kit import CAPABILITIES, CLIENT_TIMEOUT, RuntimeProcess, load_args, mcp_call

from fakes.faults import FaultState
from support.servers import LiveFake

IN_FLIGHT = 100
DELAY_S = 2.0  # how long the upstream holds each call
GRACE_S = 30.0  # generous: the guard is that nothing is cut, not how fast it drains


async def test_sigterm_drains_in_flight_calls_and_exits_0(
    fault_upstream: LiveFake[FaultState],
) -> None:
    args = load_args(
        CAPABILITIES / "faults.yaml",
        fault_upstream.url,
        "--grace-period",
        str(GRACE_S),
        "--timeout",
        str(GRACE_S),
    )
    limits = httpx.Limits(max_connections=IN_FLIGHT, max_keepalive_connections=IN_FLIGHT)
    with RuntimeProcess(args) as run:
        urls = run.wait_ready()
        rest, mcp = urls["faults-rest"], urls["faults-mcp"]
        async with httpx.AsyncClient(timeout=CLIENT_TIMEOUT, limits=limits) as http:

            async def rest_call(token: str) -> str:
                query = {"delay": str(DELAY_S), "to": token}
                response = await http.get(f"{rest}/raw/slow-headers", params=query)
                assert response.status_code == 200, response.text
                return response.json()["query"]["to"]

            async def mcp_call_(token: str) -> str:
                args = {"mode": "slow-headers", "delay": str(DELAY_S), "to": token}
                reply = await mcp_call(http, mcp, "raw", args)
                assert reply.status == 200 and not reply.is_error, reply.text
                return reply.structured["query"]["to"]

            tokens = [f"drain-{i}" for i in range(IN_FLIGHT)]
            calls = [
                asyncio.create_task((rest_call if i % 2 else mcp_call_)(token))
                for i, token in enumerate(tokens)
            ]
            deadline = time.monotonic() + 30  # liveness guard only
            while len(fault_upstream.state.requests) < IN_FLIGHT:
                assert time.monotonic() < deadline, len(fault_upstream.state.requests)
                assert not any(c.done() for c in calls), [c for c in calls if c.done()]
                await asyncio.sleep(0.01)
            run.terminate()
            answers = await asyncio.gather(*calls, return_exceptions=True)
        code = await asyncio.to_thread(run.wait, GRACE_S + 30)
    failures = [a for a in answers if isinstance(a, BaseException)]
    assert not failures, failures[:3]
    assert answers == tokens  # each caller got its own answer
    assert code == 0, run.output
