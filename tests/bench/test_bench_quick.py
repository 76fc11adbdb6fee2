"""The benchmark harness must not rot: ``bench/run.py --quick`` runs end to end here.

It uses nginx, wrk and FastMCP when this machine has them and otherwise falls back to
the Python upstream and load loop, so it passes on a clean checkout too. Nothing here
asserts on speed: only that every scenario ran, its requests succeeded, and the results
files have the shape the README documents. (The subprocess timeout is a hang guard.)
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

REPO_ROOT = Path(__file__).resolve().parents[2]
BENCH_DIR = REPO_ROOT / "bench"
HANG_GUARD_S = 300


@pytest.fixture(scope="module")
def quick_run(
    tmp_path_factory: pytest.TempPathFactory,
) -> tuple[subprocess.CompletedProcess[str], Path]:
    results_dir = tmp_path_factory.mktemp("bench-results")
    proc = subprocess.run(
        [
            sys.executable,
            str(BENCH_DIR / "run.py"),
            "--quick",
            "--results-dir",
            str(results_dir),
            "--verbose",
        ],
        capture_output=True,
        text=True,
        timeout=HANG_GUARD_S,
        cwd=REPO_ROOT,
    )
    return proc, results_dir


@pytest.fixture(scope="module")
def results(quick_run: tuple[subprocess.CompletedProcess[str], Path]) -> dict[str, Any]:
    proc, results_dir = quick_run
    assert proc.returncode == 0, proc.stdout[-4000:] + proc.stderr[-4000:]
    return json.loads((results_dir / "results.json").read_text())


def test_quick_run_writes_both_result_files(quick_run, results) -> None:
    _, results_dir = quick_run
    assert results["meta"]["mode"] == "quick"
    assert results["failed"] == []
    markdown = (results_dir / "results.md").read_text()
    assert markdown.startswith("# naftiko benchmark (quick run")
    assert "## Targets" in markdown


def test_naftiko_rows_were_measured_without_errors(results) -> None:
    for shape in ("post", "get"):
        row = results["rest"][shape]["naftiko"]
        assert row["requests"] > 0 and row["errors"] == 0
        assert results["rest"][shape]["upstream"]["errors"] == 0
    half = results["rest"]["latency_at_half_saturation"]
    assert half["naftiko"]["requests"] > 0 and half["naftiko"]["errors"] == 0
    mcp = results["mcp"]["naftiko"]
    assert mcp["requests"] > 0 and mcp["errors"] == 0


def test_startup_and_memory_were_measured(results) -> None:
    assert results["startup"]["tiktok"]["ready_s_median"] > 0
    assert results["startup"]["tiktok"]["peak_rss_mb"] > 0
    memory = results["memory"]
    assert memory["idle_rss_mb"] > 0 and memory["errors"] == 0
    assert memory["requests"] >= 2000


def test_every_target_has_a_verdict_and_every_skip_a_reason(results) -> None:
    keys = {t["key"] for t in results["targets"]}
    assert keys == {
        "rest_throughput_ratio",
        "added_p99_ms",
        "mcp_ratio",
        "startup_largest_s",
        "idle_rss_mb",
        "rss_growth_mb",
    }
    assert all(t["met"] in (True, False, None) for t in results["targets"])
    assert all(s["what"] and s["reason"] for s in results["skipped"])
    # The whole-corpus validation and the profile are full-run only.
    assert any("validate" in s["what"] for s in results["skipped"])


def test_targets_are_judged_only_on_comparable_measurements() -> None:
    """Ratios from the Python fallbacks (no wrk, no nginx) are reported, never judged."""
    sys.path.insert(0, str(BENCH_DIR))
    try:
        from harness import report
    finally:
        sys.path.remove(str(BENCH_DIR))
    row = {"rps": 100.0, "cpu_us_per_request": 1000.0}
    fast = {"rps": 1000.0, "cpu_us_per_request": 10.0}
    measured: dict[str, Any] = {
        "rest": {
            "post": {"naftiko": row, "nginx_proxy": fast},
            "get": {"naftiko": row, "nginx_proxy": fast},
            "latency_at_half_saturation": {"added_p99_ms": 1.5},
        },
        "mcp": {"naftiko": {"rps": 300.0}, "fastmcp": {"rps": 100.0}},
        "startup": {"largest": {"ready_s_median": 0.4}},
        "memory": {"idle_rss_mb": 90.0, "growth_mb": 0.5, "requests": 100_000},
    }
    comparable = {
        t["key"]: t["met"]
        for t in report.evaluate_targets(
            {**measured, "meta": {"load_generator": "wrk", "upstream": "nginx"}}
        )
    }
    assert comparable == {
        "rest_throughput_ratio": True,
        "added_p99_ms": True,
        "mcp_ratio": True,
        "startup_largest_s": True,
        "idle_rss_mb": False,
        "rss_growth_mb": True,
    }
    fallback = {
        t["key"]: t["met"]
        for t in report.evaluate_targets(
            {**measured, "meta": {"load_generator": "python-httpx", "upstream": "python"}}
        )
    }
    assert fallback["rest_throughput_ratio"] is None and fallback["mcp_ratio"] is None
    assert fallback["idle_rss_mb"] is False
