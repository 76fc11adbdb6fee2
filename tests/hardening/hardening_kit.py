"""Shared tools of the hardening and stress suites (not a test module).

* :func:`serve_capability` runs every REST and MCP adapter of one document on real
  uvicorn servers in the test's loop, with the real loader, compiler and engine.
* :class:`RawRecorder` is an upstream that records requests *as they arrived on the
  wire* (raw path, raw query, every header), which injection tests assert on.
* :func:`mcp_call` speaks JSON-RPC to a stateless streamable-HTTP MCP endpoint with
  plain httpx, so a test sees the HTTP status, the JSON-RPC error or the tool result.
* :class:`RuntimeProcess` runs ``python -m naftiko run`` and reads its ready line;
  :func:`rss_bytes` and :func:`fd_count` read ``/proc`` for leak checks.
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import json
import os
import queue
import signal
import subprocess
import sys
import threading
import time
from collections.abc import AsyncIterator, Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx

from naftiko.adapters.exposes import compile_capability
from naftiko.adapters.http.settings import AdapterSettings
from naftiko.adapters.mcp.plan import McpAdapterPlan
from naftiko.adapters.mcp.server import build_mcp_app
from naftiko.adapters.rest.app import build_rest_app
from naftiko.adapters.rest.plan import RestAdapterPlan
from naftiko.engine.invoke import Engine
from naftiko.spec.loader import load_capability
from naftiko.upstream.settings import UpstreamSettings
from support.servers import ServerThread, serve_asgi

HERE = Path(__file__).resolve().parent
CAPABILITIES = HERE / "capabilities"
REPO_ROOT = HERE.parents[1]
# Guards against a wedged server hanging the suite; never expectations about speed.
CLIENT_TIMEOUT = httpx.Timeout(30.0)
READY_TIMEOUT_S = 60.0
MCP_HEADERS = {
    "Accept": "application/json, text/event-stream",
    "MCP-Protocol-Version": "2025-06-18",
}
INTERNAL_ERROR = -32603


# --------------------------------------------------------------------------- in-process


@dataclass
class Served:
    """Base URLs of the adapters of one served capability, by namespace."""

    rest: dict[str, str] = field(default_factory=dict)
    mcp: dict[str, str] = field(default_factory=dict)
    engine: Engine | None = None


@contextlib.asynccontextmanager
async def serve_capability(
    path: Path,
    *,
    env: Mapping[str, str] | None = None,
    engine_settings: UpstreamSettings | None = None,
    adapter_settings: AdapterSettings | None = None,
    only: Sequence[str] | None = None,
) -> AsyncIterator[Served]:
    """Load, compile and serve the REST and MCP adapters of ``path`` (or ``only`` those)."""
    settings = engine_settings or UpstreamSettings()
    adapters = adapter_settings or AdapterSettings()
    loaded = load_capability(path, env=dict(env or {}))
    compiled = compile_capability(loaded, settings)
    served = Served()
    async with Engine(compiled, settings) as engine, contextlib.AsyncExitStack() as stack:
        served.engine = engine
        for plan in compiled.adapters:
            if only is not None and plan.namespace not in only:
                continue
            if isinstance(plan, RestAdapterPlan):
                app = build_rest_app(
                    engine, plan, adapters, bindings=loaded.bindings, info=loaded.document.info
                )
                served.rest[plan.namespace] = await stack.enter_async_context(serve_asgi(app))
            elif isinstance(plan, McpAdapterPlan) and plan.transport == "http":
                app = build_mcp_app(engine, plan, adapters, bindings=loaded.bindings)
                url = await stack.enter_async_context(serve_asgi(app))
                served.mcp[plan.namespace] = url + "/mcp"
        yield served


# --------------------------------------------------------------------------- MCP


_ids = itertools.count(1)


@dataclass(frozen=True)
class McpReply:
    """One JSON-RPC exchange: HTTP status, the decoded message (None if not JSON)."""

    status: int
    message: dict[str, Any] | None
    text: str

    @property
    def result(self) -> dict[str, Any]:
        assert self.message is not None and "result" in self.message, self.text
        return self.message["result"]

    @property
    def is_error(self) -> bool:
        return bool(self.result.get("isError"))

    @property
    def error_text(self) -> str:
        """The text of a tool result (all text blocks joined)."""
        return "\n".join(c.get("text", "") for c in self.result.get("content", []))

    @property
    def structured(self) -> Any:
        return self.result.get("structuredContent")


def _decode_rpc(response: httpx.Response) -> dict[str, Any] | None:
    text = response.text
    if response.headers.get("content-type", "").startswith("text/event-stream"):
        for line in text.splitlines():
            if line.startswith("data:"):
                text = line[5:].strip()
                break
    try:
        value = json.loads(text)
    except ValueError:
        return None
    return value if isinstance(value, dict) else None


async def mcp_rpc(
    http: httpx.AsyncClient,
    url: str,
    method: str,
    params: Any,
    *,
    headers: Mapping[str, str] | None = None,
) -> McpReply:
    """POST one JSON-RPC request (no session: the adapter is stateless by default)."""
    payload = {"jsonrpc": "2.0", "id": next(_ids), "method": method, "params": params}
    response = await http.post(url, json=payload, headers={**MCP_HEADERS, **(headers or {})})
    return McpReply(response.status_code, _decode_rpc(response), response.text)


async def mcp_call(
    http: httpx.AsyncClient,
    url: str,
    tool: str,
    arguments: Any,
    *,
    headers: Mapping[str, str] | None = None,
) -> McpReply:
    """``tools/call`` of ``tool`` with ``arguments`` (sent as given, even when not a dict)."""
    return await mcp_rpc(
        http, url, "tools/call", {"name": tool, "arguments": arguments}, headers=headers
    )


# --------------------------------------------------------------------------- recorder


@dataclass(frozen=True)
class RawRequest:
    """A request exactly as it reached the upstream's socket (as far as ASGI shows it)."""

    method: str
    raw_path: str  # percent-encoding kept
    query_string: str  # raw, undecoded
    headers: tuple[tuple[str, str], ...]  # lower-case names, every occurrence, in order
    body: bytes

    def header(self, name: str) -> list[str]:
        return [v for k, v in self.headers if k == name.lower()]

    @classmethod
    async def received(cls, scope: Any, receive: Any) -> RawRequest:
        """The ASGI request ``scope`` with its whole body read from ``receive``."""
        body = b""
        while True:
            message = await receive()
            body += message.get("body", b"")
            if not message.get("more_body"):
                break
        return cls(
            method=scope["method"],
            raw_path=scope.get("raw_path", scope["path"].encode()).decode("latin-1"),
            query_string=scope.get("query_string", b"").decode("latin-1"),
            headers=tuple((k.decode("latin-1"), v.decode("latin-1")) for k, v in scope["headers"]),
            body=body,
        )


@dataclass
class RawRecorder:
    """An upstream that records every request raw and answers 200 with an echo of it."""

    requests: list[RawRequest] = field(default_factory=list)

    async def __call__(self, scope: Any, receive: Any, send: Any) -> None:
        if scope["type"] == "lifespan":
            while True:
                message = await receive()
                if message["type"] == "lifespan.startup":
                    await send({"type": "lifespan.startup.complete"})
                elif message["type"] == "lifespan.shutdown":
                    await send({"type": "lifespan.shutdown.complete"})
                    return
        seen = await RawRequest.received(scope, receive)
        self.requests.append(seen)
        echo = json.dumps(
            {"method": seen.method, "raw_path": seen.raw_path, "query": seen.query_string}
        ).encode()
        await send(
            {
                "type": "http.response.start",
                "status": 200,
                "headers": [(b"content-type", b"application/json")],
            }
        )
        await send({"type": "http.response.body", "body": echo})


@contextlib.contextmanager
def recorder_thread() -> Iterator[tuple[str, RawRecorder]]:
    """A :class:`RawRecorder` on loopback in a thread: ``(url, recorder)``."""
    recorder = RawRecorder()
    with ServerThread(recorder) as server:
        yield server.url, recorder


# --------------------------------------------------------------------------- process


def proc_rss_bytes(pid: int | str = "self") -> int:
    """Resident set size from ``/proc/PID/status`` (VmRSS)."""
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) * 1024
    raise RuntimeError("no VmRSS in /proc status")


def fd_count(pid: int | str = "self") -> int:
    """Open file descriptors of a process (``/proc/PID/fd``)."""
    return len(os.listdir(f"/proc/{pid}/fd"))


def clean_env(extra: Mapping[str, str] | None = None) -> dict[str, str]:
    """The environment without NAFTIKO_* (a developer's shell must not leak in)."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("NAFTIKO_")}
    env["PYTHONUNBUFFERED"] = "1"
    env.update(extra or {})
    return env


class RuntimeProcess:
    """``python -m naftiko run ARGS`` with its output collected line by line."""

    def __init__(self, args: Sequence[str], env: Mapping[str, str] | None = None) -> None:
        self.args = [sys.executable, "-m", "naftiko", "run", *args]
        self.env = clean_env(env)
        self.proc: subprocess.Popen[str] | None = None
        self.lines: list[str] = []
        self._queue: queue.Queue[str] = queue.Queue()
        self._threads: list[threading.Thread] = []

    @property
    def pid(self) -> int:
        assert self.proc is not None
        return self.proc.pid

    @property
    def output(self) -> str:
        return "\n".join(self.lines)

    def start(self) -> RuntimeProcess:
        self.proc = subprocess.Popen(
            self.args,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
            env=self.env,
            cwd=REPO_ROOT,
        )
        for stream in (self.proc.stdout, self.proc.stderr):
            thread = threading.Thread(target=self._pump, args=(stream,), daemon=True)
            thread.start()
            self._threads.append(thread)
        return self

    def _pump(self, stream: Any) -> None:
        for line in stream:
            self.lines.append(line.rstrip("\n"))
            self._queue.put(line.rstrip("\n"))

    def wait_for(self, predicate: Callable[[str], bool], timeout: float = READY_TIMEOUT_S) -> str:
        deadline = time.monotonic() + timeout
        seen = 0
        while True:
            for line in self.lines[seen:]:
                if predicate(line):
                    return line
            seen = len(self.lines)
            assert self.proc is not None
            if self.proc.poll() is not None:
                for thread in self._threads:
                    thread.join(5)
                if not any(predicate(line) for line in self.lines[seen:]):
                    raise AssertionError(f"naftiko exited ({self.proc.returncode}):\n{self.output}")
            if time.monotonic() > deadline:
                raise TimeoutError(f"no matching line within {timeout}s:\n{self.output}")
            with contextlib.suppress(queue.Empty):
                self._queue.get(timeout=0.1)

    def wait_ready(self) -> dict[str, str]:
        """``{namespace: url}`` from the ready line (text or JSON log format)."""
        line = self.wait_for(lambda text: "naftiko ready:" in text)
        with contextlib.suppress(ValueError):
            event = json.loads(line)
            if isinstance(event, dict) and "adapters" in event:
                return {a["namespace"]: a["url"] for a in event["adapters"]}
            if isinstance(event, dict):
                line = str(event.get("message", line))
        urls: dict[str, str] = {}
        for item in line.split("naftiko ready:", 1)[1].split(","):
            _kind, namespace, url = item.split()
            urls[namespace] = url
        return urls

    def terminate(self) -> None:
        assert self.proc is not None
        self.proc.send_signal(signal.SIGTERM)

    def wait(self, timeout: float) -> int:
        assert self.proc is not None
        code = self.proc.wait(timeout)
        for thread in self._threads:
            thread.join(5)
        return code

    def __enter__(self) -> RuntimeProcess:
        return self.start()

    def __exit__(self, *exc_info: object) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait(30)
        for thread in self._threads:
            thread.join(5)


async def gather_limited(coros: Sequence[Any], limit: int) -> list[Any]:
    """Run awaitables with at most ``limit`` at once; results in order."""
    semaphore = asyncio.Semaphore(limit)

    async def one(coro: Any) -> Any:
        async with semaphore:
            return await coro

    return await asyncio.gather(*(one(c) for c in coros))


class CapabilityThread:
    """:func:`serve_capability` in a thread with its own loop, for sync (hypothesis) tests.

    Hypothesis drives plain functions; the servers must keep answering while it blocks.
    Use as a context manager; ``.served`` has the adapters' URLs.
    """

    def __init__(self, path: Path, **options: Any) -> None:
        self._path = path
        self._options = options
        self._ready = threading.Event()
        self._loop: asyncio.AbstractEventLoop | None = None
        self._stop: asyncio.Event | None = None
        self._error: BaseException | None = None
        self._thread = threading.Thread(target=self._run, name="capability", daemon=True)
        self.served = Served()

    def _run(self) -> None:
        async def main() -> None:
            self._loop = asyncio.get_running_loop()
            self._stop = asyncio.Event()
            async with serve_capability(self._path, **self._options) as served:
                self.served = served
                self._ready.set()
                await self._stop.wait()

        try:
            asyncio.run(main())
        except BaseException as exc:  # reported to the starting thread
            self._error = exc
        finally:
            self._ready.set()

    def __enter__(self) -> CapabilityThread:
        self._thread.start()
        if not self._ready.wait(READY_TIMEOUT_S):
            raise TimeoutError("capability thread did not start")
        if self._error is not None:
            raise RuntimeError("capability thread failed to start") from self._error
        return self

    def __exit__(self, *exc_info: object) -> None:
        if self._loop is not None and self._stop is not None and not self._loop.is_closed():
            with contextlib.suppress(RuntimeError):
                self._loop.call_soon_threadsafe(self._stop.set)
        self._thread.join(READY_TIMEOUT_S)


# --------------------------------------------------------------------------- load

FAULT_MODES = (
    ("raw", {"mode": "reset"}),
    ("raw", {"mode": "close-before-response"}),
    ("status", {"code": "503"}),
    ("mapped", {"mode": "invalid-json"}),
)
# Transient faults: the first request of the call fails this way, the retry succeeds
# (``/flaky`` of fakes.faults); the caller must see a success.
TRANSIENT_MODES = (("503", None), ("reset", None), ("429", "0"), ("close", None), ("502", None))


@dataclass
class LoadReport:
    """What a mixed REST + MCP load run saw; ``samples`` are ``(seconds, rss, fds)``."""

    requests: int = 0
    injected: int = 0
    errors: int = 0
    transient: int = 0  # calls whose first attempt failed on purpose, to be retried
    lost: list[str] = field(default_factory=list)  # no answer at all (transport failure)
    wrong: list[str] = field(default_factory=list)  # answered with someone else's token
    unexpected: list[str] = field(default_factory=list)  # error where none was injected
    samples: list[tuple[float, int, int]] = field(default_factory=list)

    def baseline(self) -> tuple[int, int]:
        """RSS and fds once warm: the median sample of the second fifth of the run."""
        n = len(self.samples)
        window = self.samples[n // 5 : max(n // 5 + 1, 2 * n // 5)] or self.samples
        ordered = sorted(window, key=lambda s: s[1])
        middle = ordered[len(ordered) // 2]
        return middle[1], max(s[2] for s in window)

    def summary(self) -> str:
        rss0, fd0 = self.baseline()
        _, rss1, fd1 = self.samples[-1]
        return (
            f"{self.requests} requests, {self.errors} errors for {self.injected} injected, "
            f"{self.transient} transient faults answered as successes, "
            f"{len(self.lost)} lost, {len(self.wrong)} mis-routed; RSS {rss0 / 2**20:.1f} -> "
            f"{rss1 / 2**20:.1f} MiB, fds {fd0} -> {fd1}"
        )


def retry_counts(metrics: str, namespace: str = "faulty") -> dict[str, float]:
    """``naftiko_upstream_retries_total`` of ``namespace`` by outcome, from /metrics text."""
    prefix = f'naftiko_upstream_retries_total{{namespace="{namespace}",outcome="'
    counts: dict[str, float] = {}
    for line in metrics.splitlines():
        if line.startswith(prefix):
            outcome, _, value = line[len(prefix) :].partition('"} ')
            counts[outcome] = float(value)
    return counts


def load_args(capability: Path, fault_url: str, *extra: str) -> list[str]:
    """``naftiko run`` arguments serving faults.yaml on loopback, ephemeral ports."""
    return [
        str(capability),
        "--host",
        "127.0.0.1",
        "--port",
        "faults-rest=0",
        "--port",
        "faults-mcp=0",
        "--base-uri",
        f"faulty={fault_url}",
        *extra,
    ]


async def mixed_load(
    rest_url: str,
    mcp_url: str,
    pid: int,
    *,
    duration_s: float,
    concurrency: int = 16,
    fault_every: int = 20,
) -> LoadReport:
    """Mixed REST and MCP calls for ``duration_s``; every ``fault_every``-th is a fault.

    Each healthy call carries a unique token the upstream echoes (query and header);
    the answer must carry the same token. Faults must come back as errors, healthy calls
    as successes: the error count then equals the injected count exactly. Halfway
    between two faults, a transient fault (the first attempt fails, a retry succeeds)
    must come back as a success with its own token. RSS and fds of ``pid`` are sampled
    once a second.
    """
    report = LoadReport()
    counter = itertools.count()
    deadline = time.monotonic() + duration_s
    started = time.monotonic()
    limits = httpx.Limits(max_connections=concurrency, max_keepalive_connections=concurrency)

    async def one(http: httpx.AsyncClient, i: int) -> None:
        use_mcp = i % 2 == 1
        faulty = i % fault_every == 0
        token = f"t{i}-{os.urandom(6).hex()}"
        report.requests += 1
        report.injected += faulty
        try:
            if i % fault_every == fault_every // 2:
                await transient(http, i, use_mcp, token)
                return
            if faulty:
                tool, args = FAULT_MODES[(i // fault_every) % len(FAULT_MODES)]
                if use_mcp:
                    reply = await mcp_call(http, mcp_url, tool, args)
                    failed = reply.is_error
                else:
                    path = (
                        f"/status/{args['code']}" if tool == "status" else f"/{tool}/{args['mode']}"
                    )
                    failed = (await http.get(rest_url + path)).status_code >= 500
                report.errors += failed
                if not failed:
                    report.unexpected.append(f"{i}: injected fault answered as a success")
                return
            if use_mcp:
                reply = await mcp_call(http, mcp_url, "echo", {"token": token})
                if reply.status != 200 or reply.is_error:
                    report.errors += 1
                    report.unexpected.append(f"{i}: {reply.text[:200]}")
                    return
                echoed = reply.structured
            else:
                response = await http.get(rest_url + "/echo", params={"token": token})
                if response.status_code != 200:
                    report.errors += 1
                    report.unexpected.append(f"{i}: {response.status_code} {response.text[:200]}")
                    return
                echoed = response.json()
            if echoed["query"] != {"token": token} or echoed["headers"].get("x-token") != token:
                report.wrong.append(f"{i}: sent {token}, got {echoed}")
        except (httpx.HTTPError, OSError, ValueError, KeyError, AssertionError) as exc:
            report.lost.append(f"{i}: {type(exc).__name__}: {exc}")

    async def transient(http: httpx.AsyncClient, i: int, use_mcp: bool, token: str) -> None:
        fault, retry_after = TRANSIENT_MODES[(i // fault_every) % len(TRANSIENT_MODES)]
        report.transient += 1
        args = {"key": token, "fails": "1", "fault": fault}
        if retry_after is not None:
            args["retry_after"] = retry_after
        if use_mcp:
            reply = await mcp_call(http, mcp_url, "flaky", args)
            if reply.status != 200 or reply.is_error:
                report.errors += 1
                report.unexpected.append(f"{i}: transient {fault}: {reply.text[:200]}")
                return
            echoed = reply.structured
        else:
            query = {"retry_after": retry_after} if retry_after is not None else {}
            response = await http.get(f"{rest_url}/flaky/{token}/1/{fault}", params=query)
            if response.status_code != 200:
                report.errors += 1
                report.unexpected.append(f"{i}: transient {fault}: {response.status_code}")
                return
            echoed = response.json()
        if echoed["path"] != f"/flaky/{token}/1/{fault}":
            report.wrong.append(f"{i}: sent {token}, got {echoed}")

    async def worker(http: httpx.AsyncClient) -> None:
        while time.monotonic() < deadline:
            await one(http, next(counter))

    async def sampler() -> None:
        while time.monotonic() < deadline:
            report.samples.append((time.monotonic() - started, proc_rss_bytes(pid), fd_count(pid)))
            await asyncio.sleep(1.0)

    async with httpx.AsyncClient(timeout=CLIENT_TIMEOUT, limits=limits) as http:
        await asyncio.gather(sampler(), *(worker(http) for _ in range(concurrency)))
    await asyncio.sleep(1.0)  # let the server close what the last calls opened
    report.samples.append((time.monotonic() - started, proc_rss_bytes(pid), fd_count(pid)))
    return report


def assert_load_report(report: LoadReport) -> None:
    """Zero lost or mis-routed answers, errors == injected, RSS and fds flat (loosely)."""
    assert not report.lost, report.lost[:5]
    assert not report.wrong, report.wrong[:5]
    assert not report.unexpected, report.unexpected[:5]
    assert report.errors == report.injected, report.summary()
    assert report.injected > 0 and report.requests >= 20 * report.injected - 20
    assert report.transient >= report.injected - 1
    rss0, fd0 = report.baseline()
    _, rss1, fd1 = report.samples[-1]
    # Loose: allocator noise and lazily created pools are fine, steady growth is not.
    assert rss1 <= rss0 * 1.25 + 24 * 2**20, report.summary()
    assert fd1 <= fd0 + 8, report.summary()
