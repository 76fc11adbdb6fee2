"""Getting the comparison tools onto a fresh machine, from the package registries only.

* nginx and wrk: Debian packages (``apt-get install --no-install-recommends``), as root
  or through passwordless sudo; otherwise reported as skipped with the reason.
* FastMCP: its own virtual environment, ``bench/.venv-fastmcp`` — it pins its own
  ``mcp``/``httpx2`` stack and must never share (or disturb) the runtime's venv.
* py-spy: into the runtime's venv, only when profiling (never a project dependency).
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from dataclasses import dataclass, field
from pathlib import Path

from harness.upstream import nginx_binary

BENCH_DIR = Path(__file__).resolve().parents[1]
FASTMCP_VENV = BENCH_DIR / ".venv-fastmcp"
FASTMCP_REQUIREMENT = "fastmcp>=4.2,<5"


@dataclass
class Tools:
    """What this run can use, and why anything is missing."""

    nginx: str | None = None
    wrk: str | None = None
    fastmcp_python: str | None = None
    notes: list[str] = field(default_factory=list)


def _apt_install(packages: list[str]) -> str | None:
    """Install Debian packages; return a reason when that is not possible."""
    if shutil.which("apt-get") is None:
        return "apt-get not available (not a Debian/Ubuntu machine)"
    prefix: list[str] = []
    if os.geteuid() != 0:
        if (
            shutil.which("sudo") is None
            or subprocess.run(["sudo", "-n", "true"], capture_output=True).returncode != 0
        ):
            return "not root and no passwordless sudo"
        prefix = ["sudo", "-n"]
    env = dict(os.environ, DEBIAN_FRONTEND="noninteractive")
    for cmd in (
        ["apt-get", "update", "-qq"],
        ["apt-get", "install", "-y", "-qq", "--no-install-recommends", *packages],
    ):
        proc = subprocess.run(prefix + cmd, capture_output=True, text=True, env=env)
        if proc.returncode != 0:
            return f"{' '.join(cmd[:2])} failed: {proc.stderr.strip()[-300:]}"
    return None


def _fastmcp_python() -> str | None:
    python = FASTMCP_VENV / "bin" / "python"
    if not python.exists():
        return None
    check = subprocess.run(
        [str(python), "-c", "import fastmcp, httpx2, uvicorn"], capture_output=True
    )
    return str(python) if check.returncode == 0 else None


def _install_fastmcp() -> str | None:
    """Create bench/.venv-fastmcp and install fastmcp; return a reason on failure."""
    steps = [
        [sys.executable, "-m", "venv", "--clear", str(FASTMCP_VENV)],
        [
            str(FASTMCP_VENV / "bin" / "python"),
            "-m",
            "pip",
            "install",
            "--quiet",
            FASTMCP_REQUIREMENT,
        ],
    ]
    for cmd in steps:
        proc = subprocess.run(cmd, capture_output=True, text=True)
        if proc.returncode != 0:
            return f"{' '.join(cmd[:4])} failed: {proc.stderr.strip()[-300:]}"
    return None


def prepare(*, install: bool, use_external: bool) -> Tools:
    """Find (and with ``install``, install) nginx, wrk and FastMCP."""
    tools = Tools()
    if not use_external:
        tools.notes.append("--python-only: nginx, wrk and FastMCP not used")
        return tools
    missing = [
        pkg for pkg, found in (("nginx", nginx_binary()), ("wrk", shutil.which("wrk"))) if not found
    ]
    if missing and install:
        reason = _apt_install(missing)
        if reason:
            tools.notes.append(f"could not install {', '.join(missing)}: {reason}")
    tools.nginx = nginx_binary()
    tools.wrk = shutil.which("wrk")
    tools.fastmcp_python = _fastmcp_python()
    if tools.fastmcp_python is None and install:
        reason = _install_fastmcp()
        if reason:
            tools.notes.append(f"could not install FastMCP: {reason}")
        tools.fastmcp_python = _fastmcp_python()
    return tools
