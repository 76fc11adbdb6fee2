"""Soak: mixed REST + MCP load with 5% injected faults for 10 minutes (configurable).

``NAFTIKO_STRESS=1 .venv/bin/python -m pytest tests/stress -s``; the duration is
``NAFTIKO_STRESS_SECONDS`` (default 600) and the concurrency
``NAFTIKO_STRESS_CONCURRENCY`` (default 32). Same checks as the CI version in
tests/hardening: no lost or mis-routed answers, errors == injected, flat RSS and fds.
"""

from __future__ import annotations

import os

import pytest
from hardening_kit import (
    CAPABILITIES,
    RuntimeProcess,
    assert_load_report,
    load_args,
    mixed_load,
)

from fakes.faults import FaultState
from support.servers import LiveFake

DURATION_S = float(os.environ.get("NAFTIKO_STRESS_SECONDS", "600"))
CONCURRENCY = int(os.environ.get("NAFTIKO_STRESS_CONCURRENCY", "32"))


@pytest.mark.slow
async def test_soak_mixed_load_with_injected_faults(
    fault_upstream: LiveFake[FaultState],
) -> None:
    args = load_args(CAPABILITIES / "faults.yaml", fault_upstream.url)
    with RuntimeProcess(args) as run:
        urls = run.wait_ready()
        report = await mixed_load(
            urls["faults-rest"],
            urls["faults-mcp"],
            run.pid,
            duration_s=DURATION_S,
            concurrency=CONCURRENCY,
        )
        print(report.summary())
        for seconds, rss, fds in report.samples[:: max(1, len(report.samples) // 20)]:
            print(f"  t={seconds:6.0f}s rss={rss / 2**20:7.1f} MiB fds={fds}")
        assert run.proc is not None and run.proc.poll() is None, run.output
        run.terminate()
        assert run.wait(120) == 0, run.output
    assert_load_report(report)
