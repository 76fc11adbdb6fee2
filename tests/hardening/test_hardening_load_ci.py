"""Mixed REST + MCP load with 5% injected upstream faults, CI length (~20 s).

A real ``naftiko run`` process serves faults.yaml; the fault upstream runs in this
process. Every answer must carry its own request's token, the error count must equal
the injected count, and the server's RSS and fd count must stay flat. The long
version is tests/stress (``NAFTIKO_STRESS=1``).
"""

from __future__ import annotations

import os

from hardening_kit import (
    CAPABILITIES,
    RuntimeProcess,
    assert_load_report,
    load_args,
    mixed_load,
)

from fakes.faults import FaultState
from support.servers import LiveFake

DURATION_S = float(os.environ.get("NAFTIKO_LOAD_CI_SECONDS", "20"))


async def test_mixed_load_with_injected_faults(fault_upstream: LiveFake[FaultState]) -> None:
    args = load_args(CAPABILITIES / "faults.yaml", fault_upstream.url)
    with RuntimeProcess(args) as run:
        urls = run.wait_ready()
        report = await mixed_load(
            urls["faults-rest"], urls["faults-mcp"], run.pid, duration_s=DURATION_S
        )
        print(report.summary())  # shown with -s, and in the failure message otherwise
        assert run.proc is not None and run.proc.poll() is None, run.output
        run.terminate()
        assert run.wait(60) == 0, run.output
    assert_load_report(report)
