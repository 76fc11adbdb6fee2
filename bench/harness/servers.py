"""Starting the servers under test: naftiko-run and FastMCP, with start-up timing.

Start-up time is wall time from ``Popen`` to the server's own ready line (naftiko-run's
JSON ``"event": "ready"`` log record, the FastMCP wrapper's ``ready``), so it covers
interpreter start, imports, loading and compiling the document and binding the ports.
"""

from __future__ import annotations

import json
import time
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path

import yaml

from harness.system import Service, free_port, memory_kb, pinned, wait_for_port

BENCH_DIR = Path(__file__).resolve().parents[1]
FASTMCP_SERVER = BENCH_DIR / "fastmcp_server.py"
OPENAPI = BENCH_DIR / "openapi" / "upstream.json"
STACK_FLOOR = BENCH_DIR / "stack_floor.py"


@dataclass
class Started:
    """A running server, how long it took to be ready and where its adapters listen."""

    service: Service
    ready_s: float
    urls: dict[str, str] = field(default_factory=dict)  # adapter namespace -> URL

    def rss_mb(self) -> float:
        return memory_kb(self.service.pid).get("VmRSS", 0) / 1024

    def peak_rss_mb(self) -> float:
        return memory_kb(self.service.pid).get("VmHWM", 0) / 1024


def _ready_event(line: str) -> bool:
    if '"ready"' not in line:
        return False
    try:
        return json.loads(line).get("event") == "ready"
    except ValueError:
        return False


def start_naftiko(
    naftiko_run: str,
    document: Path,
    *,
    name: str,
    log_dir: Path,
    cpu: str,
    env: Mapping[str, str],
    namespaces: list[str],
    base_uris: Mapping[str, str] | None = None,
    log_level: str = "info",
    timeout: float = 60.0,
) -> Started:
    """``naftiko-run DOCUMENT`` on ephemeral loopback ports, waited for until ready.

    Every exposed namespace gets ``--port NS=0`` so documents that hard-code ports (the
    corpus does: 8080, 9090...) never collide with each other or with a developer's
    running server.
    """
    # The ready line is an info record: above that level, ports are chosen here and
    # readiness is "every port accepts connections" instead.
    quiet = log_level not in ("debug", "info")
    ports = {namespace: free_port() if quiet else 0 for namespace in namespaces}
    cmd = [
        naftiko_run,
        str(document),
        "--host",
        "127.0.0.1",
        "--log-format",
        "json",
        "--log-level",
        log_level,
    ]
    for namespace, port in ports.items():
        cmd += ["--port", f"{namespace}={port}"]
    for namespace, url in (base_uris or {}).items():
        cmd += ["--base-uri", f"{namespace}={url}"]
    service = Service.start(name, pinned(cmd, cpu), log_dir, env=env)
    try:
        if quiet:
            for port in ports.values():
                wait_for_port(port, timeout=timeout, proc=service.proc)
            ready_s = time.perf_counter() - service.started_at
            return Started(
                service,
                ready_s,
                {
                    ns: f"http://127.0.0.1:{port}" + ("/mcp" if "mcp" in ns else "")
                    for ns, port in ports.items()
                },
            )
        line, ready_s = service.wait_line(_ready_event, timeout=timeout)
    except Exception:
        service.stop()
        raise
    adapters = json.loads(line).get("adapters", [])
    return Started(service, ready_s, {a["namespace"]: a["url"] for a in adapters})


def start_fastmcp(
    python: str, upstream_url: str, port: int, *, log_dir: Path, cpu: str, timeout: float = 60.0
) -> Started:
    """FastMCP ``from_openapi`` on the same upstream operation (its own venv's python)."""
    cmd = [python, str(FASTMCP_SERVER), str(OPENAPI), upstream_url, str(port)]
    service, ready_s = _start_until_ready("fastmcp", pinned(cmd, cpu), log_dir, None, timeout)
    return Started(service, ready_s, {"mcp": f"http://127.0.0.1:{port}/mcp"})


def start_stack_floor(
    python: str,
    upstream_url: str,
    port: int,
    *,
    log_dir: Path,
    cpu: str,
    env: Mapping[str, str],
    timeout: float = 60.0,
) -> Started:
    """``bench/stack_floor.py``: naftiko's server and upstream client, no engine."""
    cmd = [python, str(STACK_FLOOR), upstream_url, str(port)]
    service, ready_s = _start_until_ready("stack-floor", pinned(cmd, cpu), log_dir, env, timeout)
    return Started(service, ready_s, {"rest": f"http://127.0.0.1:{port}"})


def _start_until_ready(
    name: str, cmd: list[str], log_dir: Path, env: Mapping[str, str] | None, timeout: float
) -> tuple[Service, float]:
    """Start a server that prints ``ready`` once listening; stopped again if it never does."""
    service = Service.start(name, cmd, log_dir, env=env)
    try:
        _, ready_s = service.wait_line(lambda line: line.strip() == "ready", timeout=timeout)
    except Exception:
        service.stop()
        raise
    return service, ready_s


def document_namespaces_and_binds(document: Path) -> tuple[list[str], list[str]]:
    """Namespaces of the exposed adapters and the bind key names of one document.

    The harness gives every exposed adapter an ephemeral port and every bind key a dummy
    value, so any corpus document starts without its secrets or its hard-coded ports.
    """
    data = yaml.safe_load(document.read_text()) or {}
    exposes = (data.get("capability") or {}).get("exposes") or []
    namespaces = [e["namespace"] for e in exposes if isinstance(e, dict) and e.get("namespace")]
    keys = [
        key
        for bind in data.get("binds") or []
        if isinstance(bind, dict)
        for key in (bind.get("keys") or {})
    ]
    return namespaces, keys


def settle(seconds: float) -> None:
    """Let a freshly started server finish lazy work before its idle RSS is read."""
    time.sleep(seconds)
