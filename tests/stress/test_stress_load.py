"""Soak: mixed REST + MCP load with 5% injected faults for 10 minutes (configurable).

``NAFTIKO_STRESS=1 .venv/bin/python -m pytest tests/stress -s``; the duration is
``NAFTIKO_STRESS_SECONDS`` (default 600) and the concurrency
``NAFTIKO_STRESS_CONCURRENCY`` (default 32). Same checks as the CI version in
tests/hardening: no lost or mis-routed answers, errors == injected, flat RSS and fds.
Besides the 5% faults that must come back as errors, 5% transient faults (the first
attempt fails, the retry succeeds) must come back as successes: the runtime's
``naftiko_upstream_retries_total{outcome="recovered"}`` counts them apart from errors.
"""

from __future__ import annotations

import os

import httpx
import pytest
from hardening_kit import (
    CAPABILITIES,
    RuntimeProcess,
    assert_load_report,
    load_args,
    mixed_load,
    retry_counts,
)

from fakes.faults import FaultState
from support.servers import LiveFake

DURATION_S = float(os.environ.get("NAFTIKO_STRESS_SECONDS", "600"))
CONCURRENCY = int(os.environ.get("NAFTIKO_STRESS_CONCURRENCY", "32"))
CONTROL = "control"  # the namespace of the adapter --control-port adds


@pytest.mark.slow
async def test_soak_mixed_load_with_injected_faults(
    fault_upstream: LiveFake[FaultState],
) -> None:
    args = load_args(CAPABILITIES / "faults.yaml", fault_upstream.url, "--control-port", "0")
    with RuntimeProcess(args) as run:
        urls = run.wait_ready()
        report = await mixed_load(
            urls["faults-rest"],
            urls["faults-mcp"],
            run.pid,
            duration_s=DURATION_S,
            concurrency=CONCURRENCY,
        )
        async with httpx.AsyncClient() as http:
            metrics = (await http.get(urls[CONTROL] + "/metrics")).text
        retries = retry_counts(metrics)
        print(report.summary())
        print(
            f"  retries: {retries.get('recovered', 0):.0f} recovered (counted apart from "
            f"errors), {retries.get('failed', 0):.0f} failed again"
        )
        for seconds, rss, fds in report.samples[:: max(1, len(report.samples) // 20)]:
            print(f"  t={seconds:6.0f}s rss={rss / 2**20:7.1f} MiB fds={fds}")
        assert run.proc is not None and run.proc.poll() is None, run.output
        run.terminate()
        assert run.wait(120) == 0, run.output
    assert_load_report(report)
    # Every transient fault was recovered by a retry (a healthy call may have been too);
    # injected faults that can be retried were, and failed again.
    assert retries.get("recovered", 0) >= report.transient, retries
    assert retries.get("failed", 0) > 0, retries
