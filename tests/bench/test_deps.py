"""The dependency bench (``bench/deps.py``) compares like with like and applies the rule.

Nothing here asserts on speed. The comparison libraries (aiohttp, granian, msgspec) are
in the ``bench`` extra, not in the test venv, so what runs here is what needs none of
them: the request-log comparison end to end (the standard-library variants must write
naftiko's exact line, or the comparison measures different work) and the issue 16 rule
on given figures.
"""

from __future__ import annotations

import importlib.util
import json
import subprocess
import sys
from pathlib import Path
from types import ModuleType
from typing import Any

import pytest

REPO_ROOT = Path(__file__).resolve().parents[2]
BENCH_DIR = REPO_ROOT / "bench"
HANG_GUARD_S = 120


@pytest.fixture(scope="module")
def deps() -> ModuleType:
    spec = importlib.util.spec_from_file_location("bench_deps", BENCH_DIR / "deps.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules["bench_deps"] = module
    spec.loader.exec_module(module)
    return module


def test_log_comparison_runs_and_writes_the_same_line(tmp_path: Path) -> None:
    # deps.py checks that every variant writes naftiko's line before timing any of them
    # (in its own process: configuring logging is global).
    proc = subprocess.run(
        [
            sys.executable,
            str(BENCH_DIR / "deps.py"),
            "--quick",
            "--only",
            "log",
            "--results-dir",
            str(tmp_path),
        ],
        capture_output=True,
        text=True,
        timeout=HANG_GUARD_S,
        cwd=REPO_ROOT,
    )
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    results = json.loads((tmp_path / "deps.json").read_text())
    assert set(results["log"]) == {"naftiko", "stdlib-filter", "stdlib-queue"}
    assert all(v["cpu_us"] > 0 for v in results["log"].values())
    (verdict,) = results["verdicts"]
    assert verdict["stand_in"].startswith("logs/")
    assert "## Request log line" in (tmp_path / "deps.md").read_text()


def _client(
    ours: dict[str, float], httpx: dict[str, float], aiohttp: dict[str, float]
) -> dict[str, Any]:
    figures = {"naftiko-fetch": ours, "httpx": httpx, "aiohttp": aiohttp}
    return {
        shape: {k: {"cpu_us": v[shape]} for k, v in figures.items()} for shape in ("GET", "POST")
    }


def test_rule_keeps_a_stand_in_only_above_15_percent_on_the_worse_shape(deps: ModuleType) -> None:
    # Request CPU 200 µs: the threshold is a saving of 30 µs per request.
    wins_both = _client({"GET": 50, "POST": 60}, {"GET": 900, "POST": 900}, {"GET": 90, "POST": 95})
    (kept,) = deps.verdicts({"client": wins_both}, 200.0)
    assert kept["verdict"] == "keep"
    assert kept["best_alternative"] == "aiohttp"
    assert kept["shape"] == "POST" and kept["saving_us"] == pytest.approx(35)
    assert kept["share"] == pytest.approx(0.175)

    wins_one = _client({"GET": 50, "POST": 70}, {"GET": 900, "POST": 900}, {"GET": 90, "POST": 95})
    (switched,) = deps.verdicts({"client": wins_one}, 200.0)
    assert switched["verdict"] == "switch"
    assert switched["shape"] == "POST" and switched["saving_us"] == pytest.approx(25)


def test_the_measured_request_cpu_is_the_rest_adapter_on_our_server(deps: ModuleType) -> None:
    def server(get: float, post: float) -> dict[str, Any]:
        return {
            "GET": {"naftiko": {"cpu_us_at_max": get}},
            "POST": {"naftiko": {"cpu_us_at_max": post}},
        }

    assert deps.measured_request_cpu_us({"server": {"rest": server(300.0, 500.0)}}) == 400.0
    assert deps.measured_request_cpu_us({"server": {"tiny": server(30.0, 50.0)}}) is None
