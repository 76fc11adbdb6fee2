"""The container image, built from the Dockerfile and run for real with podman (opt-in).

``NAFTIKO_CONTAINER=1`` turns it on: building and running take minutes cold, longer than
the suite's CI budget allows (README, "Container image"). It needs a working ``podman``
and the base image (``python:3.11-slim``, pulled or made locally); it is skipped, with
the reason, where podman cannot run. Settings (environment):

- ``NAFTIKO_CONTAINER_STORAGE=DIR``: podman's storage under ``DIR/storage`` and
  ``DIR/runroot`` instead of the default, e.g. the private storage of the shared
  ``tools/container/build-and-run.sh`` (its ``$WORK``), where its stand-in base lives;
- ``NAFTIKO_CONTAINER_RUNTIME=runc``: the OCI runtime (crun refuses some cgroup modes);
- ``NAFTIKO_CONTAINER_BUILD_CA=FILE``: a CA bundle bind-mounted during the build, for a
  package index reached through a TLS-intercepting proxy.

The image is built with ``--format docker`` (the OCI format drops ``HEALTHCHECK``) and
kept, so the next run reuses its layers; every container is removed. What it checks: the
image's size and contents (no pip, setuptools or pkg_resources in the venv; the standard
library compiled; ``HOME`` exists), then one container run as Kubernetes would (read-only
root filesystem, every capability dropped) with an upstream signed by a private CA whose
certificate is added through ``SSL_CERT_FILE``: non-root, REST, MCP and control answer
from the host, the HEALTHCHECK passes, start-to-ready, and ``podman stop`` (default 10 s)
with a slow call in flight completes the call and exits 0; arguments add to the default
folder (``--check``, and ``--grace-period`` for a drain longer than the default stop).
"""

from __future__ import annotations

import contextlib
import json
import os
import resource
import shutil
import subprocess
import threading
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest

from support.tls import private_ca

REPO = Path(__file__).resolve().parents[2]
IMAGE = "localhost/naftiko:suite"
NS = "tiktok-login-kit-oauth"
# What the image adds to its base (the venv, the compiled standard library): the issue's
# aim of 150 MB in all is out of reach on python:3.11-slim, itself about 130 MB. Traces
# (the OpenTelemetry SDK, its OTLP exporter with protobuf and requests) and shared rate
# limits (redis-py) added ~17 MB to the ~78 MB before them.
ADDED_BUDGET_BYTES = 100 * 1000 * 1000
BASE = "python:3.11-slim"
BUILD_TIMEOUT_S = 1200

# The upstream, inside the container (so no host networking is needed): HTTPS with a
# certificate the private CA signed; each answer waits the "delay" its JSON body asks.
UPSTREAM = """\
import json, ssl, time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

class Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"

    def do_POST(self):
        body = json.loads(self.rfile.read(int(self.headers["content-length"])) or b"{}")
        time.sleep(float(body.get("delay", 0)))
        answer = json.dumps({"access_token": "act.container", "delay": body.get("delay", 0)})
        self.send_response(200)
        self.send_header("content-type", "application/json")
        self.send_header("content-length", str(len(answer)))
        self.end_headers()
        self.wfile.write(answer.encode())

server = ThreadingHTTPServer(("127.0.0.1", 8443), Handler)
context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
context.load_cert_chain("/fixtures/server.pem", "/fixtures/server.key")
server.socket = context.wrap_socket(server.socket, server_side=True)
server.serve_forever()
"""


@dataclass
class Podman:
    """The podman command line with this run's storage, OCI runtime and rlimits."""

    base: list[str]
    run_flags: list[str]

    def __call__(
        self, *args: str, timeout: float = 120, check: bool = True
    ) -> subprocess.CompletedProcess[str]:
        result = subprocess.run(
            [*self.base, *args], capture_output=True, text=True, timeout=timeout, check=False
        )
        if check and result.returncode != 0:
            raise AssertionError(f"podman {' '.join(args[:2])}: {result.stderr[-3000:]}")
        return result


def _podman() -> Podman:
    if os.environ.get("NAFTIKO_CONTAINER") != "1":
        pytest.skip("opt-in: NAFTIKO_CONTAINER=1 builds and runs the image with podman")
    executable = shutil.which("podman")
    if executable is None:
        pytest.skip("podman is not installed")
    base = [executable]
    storage = os.environ.get("NAFTIKO_CONTAINER_STORAGE")
    if storage:
        base += ["--root", f"{storage}/storage", "--runroot", f"{storage}/runroot"]
    info = subprocess.run([*base, "info"], capture_output=True, text=True, check=False)
    if info.returncode != 0:
        pytest.skip(f"podman cannot run here: {info.stderr.strip()[-300:]}")
    # rlimits no higher than this process's hard limits: raising them needs a capability
    # the test may not have (podman's defaults are higher).
    flags = []
    if os.environ.get("NAFTIKO_CONTAINER_RUNTIME"):
        flags += ["--runtime", os.environ["NAFTIKO_CONTAINER_RUNTIME"]]
    for name, limit, cap in (
        ("nofile", resource.RLIMIT_NOFILE, 1048576),
        ("nproc", resource.RLIMIT_NPROC, 32768),
    ):
        hard = resource.getrlimit(limit)[1]
        value = cap if hard == resource.RLIM_INFINITY else min(hard, cap)
        flags += ["--ulimit", f"{name}={value}:{value}"]
    return Podman(base, flags)


@dataclass
class Built:
    podman: Podman
    build_s: float
    size: int
    base_size: int
    config: dict

    @property
    def env(self) -> dict[str, str]:
        return dict(item.split("=", 1) for item in self.config["Config"]["Env"])


@pytest.fixture(scope="module")
def built() -> Built:
    podman = _podman()
    ca = os.environ.get("NAFTIKO_CONTAINER_BUILD_CA")
    mounts = ["-v", f"{ca}:/etc/ssl/certs/ca-certificates.crt:ro"] if ca else []
    started = time.monotonic()
    podman(
        "build",
        "--format",
        "docker",
        *podman.run_flags,
        *mounts,
        "-t",
        IMAGE,
        str(REPO),
        timeout=BUILD_TIMEOUT_S,
    )
    build_s = time.monotonic() - started
    (inspect,) = json.loads(podman("image", "inspect", IMAGE).stdout)
    (base,) = json.loads(podman("image", "inspect", BASE).stdout)
    print(
        f"\nimage built in {build_s:.1f}s: {inspect['Size'] / 1e6:.1f} MB, "
        f"of which the base {base['Size'] / 1e6:.1f} MB"
    )
    return Built(podman, build_s, inspect["Size"], base["Size"], inspect)


def in_image(built: Built, *command: str) -> str:
    """``command`` run in a throwaway container of the image; its stdout."""
    return built.podman(
        "run", "--rm", *built.podman.run_flags, "--entrypoint", command[0], IMAGE, *command[1:]
    ).stdout


def test_image_size_and_contents(built: Built) -> None:
    added = built.size - built.base_size
    assert added < ADDED_BUDGET_BYTES, f"the image adds {added / 1e6:.1f} MB to its base"
    config = built.config["Config"]
    assert config["User"] == "10001"
    assert config["Entrypoint"] == ["naftiko-run"] and not config.get("Cmd")
    # Kept because the image is built with --format docker (OCI drops it).
    healthcheck = built.config.get("Healthcheck") or config.get("Healthcheck")
    assert healthcheck["Test"][0] == "CMD" and "/health/ready" in healthcheck["Test"][-1]
    assert built.env["NAFTIKO_CAPABILITIES"] == "/capabilities"
    probe = """
import importlib.util, json, os, sys, sysconfig
stdlib = sysconfig.get_path("stdlib")
print(json.dumps({
    "installers": [m for m in ("pip", "setuptools", "pkg_resources")
                   if importlib.util.find_spec(m)],
    "home": [os.environ["HOME"], os.path.isdir(os.environ["HOME"])],
    "uid": os.getuid(),
    "stdlib_compiled": all(
        os.path.exists(importlib.util.cache_from_source(os.path.join(stdlib, name)))
        for name in ("json/decoder.py", "asyncio/base_events.py", "email/parser.py", "ssl.py")
    ),
}))
"""
    facts = json.loads(in_image(built, "python", "-c", probe))
    assert facts == {
        "installers": [],
        "home": ["/home/naftiko", True],
        "uid": 10001,
        "stdlib_compiled": True,
    }


@pytest.fixture(scope="module")
def fixtures(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Mounted at /fixtures: the private CA, the upstream's certificate and key, its code."""
    directory = tmp_path_factory.mktemp("container-fixtures")
    private_ca(directory)
    (directory / "upstream.py").write_text(UPSTREAM)
    for path in directory.iterdir():
        path.chmod(0o644)  # readable by uid 10001 (a key for a throwaway test server)
    directory.chmod(0o755)
    return directory


@pytest.fixture(scope="module")
def capabilities(tmp_path_factory: pytest.TempPathFactory) -> Path:
    directory = tmp_path_factory.mktemp("container-capabilities")
    shutil.copy(REPO / "capabilities" / f"{NS}.yaml", directory)
    directory.chmod(0o755)
    (directory / f"{NS}.yaml").chmod(0o644)
    return directory


def free_port() -> int:
    import socket

    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@dataclass
class Running:
    name: str
    rest: str
    mcp: str
    control: str
    start_to_ready_s: float


@contextlib.contextmanager
def container(
    built: Built, capabilities: Path, fixtures: Path, *args: str, stop_timeout: int | None = None
) -> Iterator[Running]:
    """The image run as Kubernetes would, ports published on loopback; removed after.

    Without ``NAFTIKO_GATEWAY_PORT`` in the image, each adapter has the port its document
    declares (REST 8080, MCP 9090) and control is on ``NAFTIKO_CONTROL_PORT``; with it,
    all of them share that port, each adapter under ``/NAMESPACE``.
    """
    podman = built.podman
    name = f"naftiko-suite-{uuid.uuid4().hex[:8]}"
    env = built.env
    if env.get("NAFTIKO_GATEWAY_PORT"):
        gateway = int(env["NAFTIKO_GATEWAY_PORT"])
        ports = {gateway: free_port()}
        base = f"http://127.0.0.1:{ports[gateway]}"
        rest, mcp, control = f"{base}/{NS}-rest", f"{base}/{NS}-mcp", base
    else:
        inside = int(env["NAFTIKO_CONTROL_PORT"])
        ports = {8080: free_port(), 9090: free_port(), inside: free_port()}
        rest, mcp = f"http://127.0.0.1:{ports[8080]}", f"http://127.0.0.1:{ports[9090]}"
        control = f"http://127.0.0.1:{ports[inside]}"
    publish = [f"-p=127.0.0.1:{host}:{inside}" for inside, host in ports.items()]
    extra = [f"--stop-timeout={stop_timeout}"] if stop_timeout is not None else []
    started = time.monotonic()
    podman(
        "run",
        "-d",
        f"--name={name}",
        *podman.run_flags,
        "--read-only",
        "--read-only-tmpfs=false",  # docker and Kubernetes give no writable /tmp either
        "--cap-drop=ALL",
        "--security-opt=no-new-privileges",
        *publish,
        *extra,
        f"-v={capabilities}:/capabilities:ro",
        f"-v={fixtures}:/fixtures:ro",
        "-e=TIKTOK_FOR_DEVELOPERS_API_KEY=container-test-key",
        f"-e=NAFTIKO_BASE_URIS={NS}=https://localhost:8443",
        "-e=SSL_CERT_FILE=/fixtures/ca.pem",  # the private CA, added without a rebuild
        IMAGE,
        *args,
    )
    try:
        deadline = started + 60
        while True:
            try:
                if httpx.get(f"{control}/health/ready", timeout=1).status_code == 200:
                    break
            except httpx.TransportError:
                pass
            if time.monotonic() > deadline:
                logs = podman("logs", name, check=False)
                raise AssertionError(f"not ready in 60 s: {logs.stdout[-2000:]}{logs.stderr}")
            time.sleep(0.05)
        ready_s = time.monotonic() - started
        podman("exec", "-d", name, "python", "/fixtures/upstream.py")
        yield Running(name, rest, mcp, control, ready_s)
    finally:
        podman("rm", "-f", "-t", "0", name, check=False)


def call_upstream(running: Running, delay: float = 0, timeout: float = 30) -> httpx.Response:
    """A REST call the engine forwards to the in-container HTTPS upstream."""
    for _ in range(50):  # the upstream was started after readiness: wait for its socket
        response = httpx.post(
            f"{running.rest}/v1/v2/oauth/token", json={"delay": delay}, timeout=timeout
        )
        if response.status_code != 502:
            return response
        time.sleep(0.1)
    return response


def stop_with_a_call_in_flight(
    built: Built, running: Running, delay: float, stop_timeout: int | None = None
) -> tuple[httpx.Response | BaseException, int, float]:
    """``podman stop`` once a ``delay``-second call is in flight: its answer, exit code, time."""
    outcome: list[httpx.Response | BaseException] = []

    def call() -> None:
        try:
            outcome.append(call_upstream(running, delay, timeout=delay + 30))
        except httpx.HTTPError as exc:
            outcome.append(exc)

    caller = threading.Thread(target=call)
    caller.start()
    time.sleep(1.0)  # the call reaches the upstream
    started = time.monotonic()
    timeout = [] if stop_timeout is None else ["-t", str(stop_timeout)]
    built.podman("stop", *timeout, running.name, timeout=120)
    stop_s = time.monotonic() - started
    caller.join(timeout=60)
    inspect = json.loads(built.podman("inspect", running.name).stdout)[0]
    return outcome[0], inspect["State"]["ExitCode"], stop_s


def test_serves_from_the_host_read_only_and_stops_cleanly(
    built: Built, capabilities: Path, fixtures: Path
) -> None:
    with container(built, capabilities, fixtures) as running:
        print(f"\nstart-to-ready (podman run -d to /health/ready): {running.start_to_ready_s:.2f}s")
        uid = built.podman("exec", running.name, "awk", "/^Uid/{print $2}", "/proc/1/status")
        assert uid.stdout.strip() == "10001"

        # REST, through the engine to an upstream signed by the private CA.
        response = call_upstream(running)
        assert response.status_code == 200, response.text
        assert response.json()["access_token"] == "act.container"

        mcp = httpx.post(
            f"{running.mcp}/mcp",
            json={"jsonrpc": "2.0", "id": 1, "method": "tools/list", "params": {}},
            headers={"accept": "application/json, text/event-stream"},
            timeout=10,
        )
        assert mcp.status_code == 200, mcp.text
        tools = {tool["name"] for tool in mcp.json()["result"]["tools"]}
        assert "exchange-authorization-code-token" in tools

        assert httpx.get(f"{running.control}/health/live", timeout=5).json() == {"status": "UP"}
        metrics = httpx.get(f"{running.control}/metrics", timeout=5).text
        assert f'naftiko_upstream_requests_total{{method="POST",namespace="{NS}"' in metrics

        healthcheck = built.podman("healthcheck", "run", running.name, check=False)
        assert healthcheck.returncode == 0, healthcheck.stdout + healthcheck.stderr

        # The default stop (SIGTERM, SIGKILL 10 s later) with a 3 s call in flight.
        answer, code, stop_s = stop_with_a_call_in_flight(built, running, delay=3)
        print(f"podman stop with a 3 s call in flight: {stop_s:.2f}s, exit {code}")
        assert isinstance(answer, httpx.Response) and answer.status_code == 200, answer
        assert answer.json()["delay"] == 3
        assert code == 0
        logs = built.podman("logs", running.name).stdout
        assert '"event": "stopped"' in logs or '"event":"stopped"' in logs, logs[-2000:]
        assert "Traceback" not in logs


def test_arguments_add_to_the_default_folder(
    built: Built, capabilities: Path, fixtures: Path
) -> None:
    check = built.podman(
        "run",
        "--rm",
        *built.podman.run_flags,
        f"-v={capabilities}:/capabilities:ro",
        "-e=TIKTOK_FOR_DEVELOPERS_API_KEY=container-test-key",
        IMAGE,
        "--check",
        check=False,
    )
    assert check.returncode == 0, check.stderr
    assert f"rest {NS}-rest http://0.0.0.0:8080" in check.stdout

    # A drain longer than the default stop: the flag and the engine's timeout together.
    with container(built, capabilities, fixtures, "--grace-period", "20", stop_timeout=25) as r:
        answer, code, stop_s = stop_with_a_call_in_flight(built, r, delay=15)
    print(f"\n--stop-timeout 25, --grace-period 20, a 15 s call: stop {stop_s:.2f}s, exit {code}")
    assert isinstance(answer, httpx.Response) and answer.status_code == 200, answer
    assert code == 0
