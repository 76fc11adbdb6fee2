#!/usr/bin/env python3
"""naftiko benchmark harness: ``bench/run`` (or ``python bench/run.py``), one command.

Measures, side by side in one run against the same static upstream (nginx ``return
200``), with the load generator and the server under test pinned to different cores:

1. REST throughput and latency: upstream direct, nginx reverse proxy, naftiko-run
   (JSON POST token exchange; GET with path + query parameters and output mapping),
   and naftiko's added p99 at 50% of its own saturation rate.
2. MCP ``tools/call`` throughput: naftiko's MCP adapter vs FastMCP ``from_openapi``,
   both stateless JSON, legacy 2025-06-18 POSTs.
3. Start-up time and peak RSS (TikTok capability, the largest corpus document) and
   ``naftiko validate`` over the corpus.
4. Idle RSS and RSS after N requests (leak check).

Writes ``bench/results/results.json`` and ``results.md`` (or ``--results-dir``).
``--quick`` runs seconds-long versions, installs nothing and skips what is missing;
the test suite runs it. See bench/README.md for the method and how to read results.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import re
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
import traceback
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

BENCH_DIR = Path(__file__).resolve().parent
REPO = BENCH_DIR.parent
sys.path.insert(0, str(BENCH_DIR))

import httpx  # noqa: E402  (the runtime venv has it; bench/run makes sure we run there)
from harness import profiling, report, tools  # noqa: E402
from harness.load import LoadGenerator, LoadResult, Request, run_at_rate  # noqa: E402
from harness.servers import (  # noqa: E402
    Started,
    document_namespaces_and_binds,
    settle,
    start_fastmcp,
    start_naftiko,
    start_stack_floor,
)
from harness.system import Cores, free_port, pinned  # noqa: E402
from harness.upstream import (  # noqa: E402
    TOKEN_PATH,
    Upstream,
    proxy_conf,
    start_nginx,
    start_upstream,
)

BENCH_CAPABILITY = BENCH_DIR / "capabilities" / "bench.yaml"
TIKTOK_CAPABILITY = REPO / "capabilities" / "tiktok-login-kit-oauth.yaml"
DEFAULT_CORPUS = REPO.parent / "shared" / "corpus"

TOKEN_JSON = json.dumps({"code": "abc123", "redirect_uri": "https://example.com/callback"})
TOKEN_FORM = (
    "client_key=bench-key&client_secret=bench-secret&grant_type=authorization_code"
    "&code=abc123&redirect_uri=https%3A%2F%2Fexample.com%2Fcallback"
)
VIDEOS_QUERY = "max_count=5&cursor=0"
# Start-up floors: what a start pays before reading a document (``startup_floors``),
# imported as naftiko-run imports (cyclic GC off: runtime/heap.py).
FLOOR_IMPORTS = {
    "interpreter": "pass",
    "import mcp_types": "import gc; gc.disable(); import mcp_types",
}
FLOOR_IMPORTS.update(
    (f"import {module}", f"import gc; gc.disable(); import {module}")
    for module in ("naftiko.adapters.mcp.sdk", "naftiko.adapters.mcp.server")
)
MCP_HEADERS = {
    "Content-Type": "application/json",
    "Accept": "application/json, text/event-stream",
    "MCP-Protocol-Version": "2025-06-18",
}


@dataclass(frozen=True)
class Profile:
    """Run lengths for one mode; ``--quick`` keeps the whole run well under a minute."""

    duration_s: float
    warmup_s: float
    rounds: int  # REST servers are measured in interleaved rounds of duration_s / rounds
    connections: int
    rate_connections: int
    calibrate_s: float
    startup_repeats: int
    memory_requests: int
    memory_warm_requests: int
    profile_s: int

    @classmethod
    def for_mode(cls, quick: bool) -> Profile:
        if quick:
            return cls(
                duration_s=1,
                warmup_s=1,
                rounds=1,
                connections=16,
                rate_connections=4,
                calibrate_s=1,
                startup_repeats=1,
                memory_requests=2000,
                memory_warm_requests=400,
                profile_s=0,
            )
        return cls(
            duration_s=12,
            warmup_s=2,
            rounds=4,
            connections=32,
            rate_connections=8,
            calibrate_s=3,
            startup_repeats=3,
            memory_requests=100_000,
            memory_warm_requests=10_000,
            profile_s=8,
        )


def mcp_call(tool: str, arguments: dict[str, Any]) -> str:
    return json.dumps(
        {
            "jsonrpc": "2.0",
            "id": 1,
            "method": "tools/call",
            "params": {"name": tool, "arguments": arguments},
        }
    )


class Bench:
    """Runs every scenario, collecting results and skip reasons; never raises."""

    def __init__(self, args: argparse.Namespace, found: tools.Tools) -> None:
        self.args = args
        self.quick: bool = args.quick
        self.p = Profile.for_mode(args.quick)
        self.tools = found
        self.cores = Cores.detect(enabled=not args.no_pin)
        self.python = sys.executable
        self.naftiko_run = str(Path(sys.executable).with_name("naftiko-run"))
        self.naftiko = str(Path(sys.executable).with_name("naftiko"))
        self.scratch = Path(tempfile.mkdtemp(prefix="naftiko-bench-"))
        self.gen = LoadGenerator(self.cores.load, self.python, prefer_wrk=found.wrk is not None)
        self.results: dict[str, Any] = {
            "rest": {},
            "mcp": {},
            "startup": {},
            "memory": {},
            "profile": {},
        }
        self.skipped: list[dict[str, str]] = []
        self.failed: list[dict[str, str]] = []
        self.upstream: Upstream | None = None
        self.saturation: dict[str, float] = {}
        self.env = {k: v for k, v in os.environ.items() if not k.startswith("NAFTIKO_")}
        self.env.update(
            PYTHONUNBUFFERED="1", BENCH_CLIENT_KEY="bench-key", BENCH_CLIENT_SECRET="bench-secret"
        )
        # A/B experiments on the runtime without touching its venv, e.g.
        # --server-env PYTHONPATH=/tmp/extra-site (recorded in the results' meta).
        self.env.update(dict(item.split("=", 1) for item in args.server_env or []))

    # ------------------------------------------------------------------ plumbing
    def skip(self, what: str, reason: str) -> None:
        self.skipped.append({"what": what, "reason": reason})
        print(f"  skipped {what}: {reason}", flush=True)

    def scenario(self, name: str, fn: Callable[[], None]) -> None:
        print(f"[{time.strftime('%H:%M:%S')}] {name}", flush=True)
        try:
            fn()
        except Exception as exc:
            self.failed.append({"what": name, "error": f"{type(exc).__name__}: {exc}"})
            print(f"  FAILED {name}: {exc}", flush=True)
            if self.args.verbose:
                traceback.print_exc()

    def measure(
        self,
        request: Request,
        pids: Callable[[], list[int]] | None = None,
        connections: int | None = None,
    ) -> LoadResult:
        """Warm up (connection pools, lazy imports), then the measured saturation run."""
        conns = connections or self.p.connections
        if self.p.warmup_s:
            self.gen.run(request, connections=conns, duration_s=self.p.warmup_s)
        result = self.gen.run(
            request, connections=conns, duration_s=self.p.duration_s, server_pids=pids
        )
        print(
            f"    {request.method} {request.url}: {result.rps:,.0f} req/s, "
            f"p50 {result.p50_ms:.2f} ms, p99 {result.p99_ms:.2f} ms, "
            f"errors {result.errors}",
            flush=True,
        )
        return result

    def start_bench_naftiko(self, log_level: str = "info", *, baseline: bool = False) -> Started:
        """naftiko-run on the bench capability; ``baseline``: the ``--baseline-src`` tree's."""
        assert self.upstream is not None
        namespaces, _ = document_namespaces_and_binds(BENCH_CAPABILITY)
        env = self.env
        if baseline:
            env = dict(self.env, PYTHONPATH=str(Path(self.args.baseline_src).resolve()))
        return start_naftiko(
            self.naftiko_run,
            BENCH_CAPABILITY,
            name=f"naftiko-{log_level}" + ("-baseline" if baseline else ""),
            log_dir=self.scratch,
            cpu=self.cores.server,
            env=env,
            namespaces=namespaces,
            base_uris={"bench-upstream": self.upstream.url},
            log_level=log_level,
        )

    @staticmethod
    def check(
        url: str,
        *,
        method: str = "GET",
        body: str = "",
        headers: dict | None = None,
        expect: str = "access_token",
    ) -> None:
        """One request before loading: a benchmark of error responses is worthless."""
        response = httpx.request(
            method, url, content=body or None, headers=headers or {}, timeout=10
        )
        if (
            response.status_code != 200
            or expect not in response.text
            or '"isError":true' in response.text
        ):
            raise RuntimeError(f"{method} {url} -> {response.status_code}: {response.text[:300]}")

    # ------------------------------------------------------------------ scenarios
    def start_upstream(self) -> None:
        self.upstream = start_upstream(
            self.scratch,
            free_port(),
            self.cores.upstream,
            self.python,
            prefer_nginx=self.tools.nginx is not None,
        )
        if self.upstream.kind != "nginx":
            self.skip(
                "nginx upstream",
                "nginx not available: Python stand-in upstream used "
                "(it may be the bottleneck; ratios are not comparable)",
            )
        self.check(
            self.upstream.url + TOKEN_PATH,
            method="POST",
            body=TOKEN_FORM,
            headers={"Content-Type": "application/x-www-form-urlencoded"},
        )

    def rest(self) -> None:
        """Every REST server at once, each measured in interleaved rounds.

        The machine is shared and drifts by ±10% over a minute; measured one after the
        other, a server that happens to run in a slow minute loses. All servers start
        first (idle ones cost nothing on their shared core); then each round measures
        every (server, shape) once, in a rotated order, and each row is the median of
        its rounds.
        """
        assert self.upstream is not None
        up = self.upstream
        form = {"Content-Type": "application/x-www-form-urlencoded"}
        # Filled as it goes, so rows measured before a failure are still reported.
        shapes: dict[str, dict[str, Any]] = {"post": {}, "get": {}}
        self.results["rest"].update(shapes)

        def upstream_requests(base: str) -> dict[str, Request]:
            return {
                "post": Request(base + TOKEN_PATH, "POST", TOKEN_FORM, form),
                "get": Request(f"{base}/v2/users/u123/videos/?{VIDEOS_QUERY}"),
            }

        def naftiko_requests(server: Started) -> dict[str, Request]:
            rest = server.urls["bench-rest"]
            requests = {
                "post": Request(
                    rest + "/v1/oauth/token",
                    "POST",
                    TOKEN_JSON,
                    {"Content-Type": "application/json"},
                ),
                "get": Request(f"{rest}/v1/users/u123/videos?{VIDEOS_QUERY}"),
            }
            post, get = requests["post"], requests["get"]
            self.check(post.url, method="POST", body=post.body, headers=dict(post.headers))
            self.check(get.url, expect="has_more")
            return requests

        for shape, request in upstream_requests(up.url).items():
            shapes[shape]["upstream"] = self.measure(request, up.service.pids).to_dict()

        # label -> (requests by shape, server pids, how to stop it)
        servers: dict[str, tuple[dict[str, Request], Callable[[], list[int]], Any]] = {}
        ours: Started | None = None
        try:
            if self.tools.nginx:
                port = free_port()
                proxy = start_nginx(
                    self.scratch,
                    "proxy",
                    proxy_conf(self.scratch, port, int(up.url.rsplit(":", 1)[1])),
                    port,
                    self.cores.server,
                )
                servers["nginx_proxy"] = (
                    upstream_requests(f"http://127.0.0.1:{port}"),
                    proxy.pids,
                    proxy.stop,
                )
            else:
                self.skip("REST nginx reverse proxy", "nginx not available")
            floor = start_stack_floor(
                self.python,
                up.url,
                free_port(),
                log_dir=self.scratch,
                cpu=self.cores.server,
                env=self.env,
            )
            servers["stack_floor"] = (
                upstream_requests(floor.urls["rest"]),
                floor.service.pids,
                floor.service.stop,
            )
            variants = [("naftiko", "info")] + (
                [] if self.quick else [("naftiko_log_warning", "warning")]
            )
            for label, level in variants:
                server = self.start_bench_naftiko(level)
                servers[label] = (
                    naftiko_requests(server),
                    server.service.pids,
                    server.service.stop,
                )
                if label == "naftiko":
                    ours = server
            if self.args.baseline_src:
                server = self.start_bench_naftiko(baseline=True)
                servers["naftiko_baseline"] = (
                    naftiko_requests(server),
                    server.service.pids,
                    server.service.stop,
                )
            for label, result in self.measure_rounds(servers).items():
                for shape in shapes:
                    shapes[shape][label] = result[shape].to_dict()
            assert ours is not None
            self.saturation["rest"] = shapes["post"]["naftiko"]["rps"]
            self.latency_at_half(servers["naftiko"][0]["post"], ours, self.saturation["rest"])
        finally:
            for _, _, stop in servers.values():
                stop()

    def measure_rounds(
        self, servers: dict[str, tuple[dict[str, Request], Callable[[], list[int]], Any]]
    ) -> dict[str, dict[str, LoadResult]]:
        """Each (server, shape) warmed up once, then measured in ``rounds`` interleaved
        rounds of ``duration_s / rounds``; the median of its rounds per figure."""
        keys = [(label, shape) for label in servers for shape in ("post", "get")]
        if self.p.warmup_s:
            for label, shape in keys:
                self.gen.run(
                    servers[label][0][shape],
                    connections=self.p.connections,
                    duration_s=self.p.warmup_s,
                )
        runs: dict[tuple[str, str], list[LoadResult]] = {key: [] for key in keys}
        seconds = self.p.duration_s / self.p.rounds
        for index in range(self.p.rounds):
            shift = index % len(keys)
            for label, shape in keys[shift:] + keys[:shift]:
                requests, pids, _ = servers[label]
                runs[(label, shape)].append(
                    self.gen.run(
                        requests[shape],
                        connections=self.p.connections,
                        duration_s=seconds,
                        server_pids=pids,
                    )
                )
        merged: dict[str, dict[str, LoadResult]] = {label: {} for label in servers}
        for (label, shape), results in runs.items():
            result = median_of_rounds(results)
            merged[label][shape] = result
            request = servers[label][0][shape]
            print(
                f"    {request.method} {request.url}: {result.rps:,.0f} req/s (median of "
                f"{len(results)}: {', '.join(f'{r.rps:,.0f}' for r in results)}), "
                f"p50 {result.p50_ms:.2f} ms, p99 {result.p99_ms:.2f} ms, "
                f"errors {result.errors}",
                flush=True,
            )
        return merged

    def latency_at_half(self, ours: Request, server: Started, saturation_rps: float) -> None:
        """naftiko's p99 at 50% of its saturation rate minus the upstream's at that rate.

        Both runs use the same connection count and target rate, so the difference is
        what putting naftiko in the path adds for a client, queueing at 50% load included.
        """
        assert self.upstream is not None
        rate = saturation_rps / 2
        conns = self.p.rate_connections
        ours_run = run_at_rate(
            self.gen,
            ours,
            target_rps=rate,
            connections=conns,
            duration_s=self.p.duration_s,
            calibrate_s=self.p.calibrate_s,
            server_pids=server.service.pids,
        )
        direct = Request(
            self.upstream.url + TOKEN_PATH,
            "POST",
            TOKEN_FORM,
            {"Content-Type": "application/x-www-form-urlencoded"},
        )
        base_run = run_at_rate(
            self.gen,
            direct,
            target_rps=rate,
            connections=conns,
            duration_s=self.p.duration_s,
            calibrate_s=self.p.calibrate_s,
        )
        self.results["rest"]["latency_at_half_saturation"] = {
            "saturation_rps": round(rate * 2, 1),
            "target_rps": round(rate, 1),
            "connections": conns,
            "naftiko": ours_run.to_dict(),
            "upstream_direct": base_run.to_dict(),
            "added_p50_ms": round(ours_run.p50_ms - base_run.p50_ms, 3),
            "added_p99_ms": round(ours_run.p99_ms - base_run.p99_ms, 3),
        }
        print(
            f"    at {ours_run.rps:,.0f} req/s (target {rate:,.0f}): naftiko p99 "
            f"{ours_run.p99_ms:.2f} ms, upstream p99 {base_run.p99_ms:.2f} ms",
            flush=True,
        )

    def mcp(self) -> None:
        rows: dict[str, Any] = {}
        server = self.start_bench_naftiko()
        try:
            url = server.urls["bench-mcp"]
            body = mcp_call(
                "exchange-authorization-code",
                {"code": "abc123", "redirect_uri": "https://example.com/callback"},
            )
            self.check(url, method="POST", body=body, headers=MCP_HEADERS)
            ours = self.measure(Request(url, "POST", body, MCP_HEADERS), server.service.pids)
            rows["naftiko"] = ours.to_dict()
            self.saturation["mcp"] = ours.rps
        finally:
            server.service.stop()
        if self.args.baseline_src:
            rows["naftiko_baseline"] = self.mcp_baseline()
        if self.tools.fastmcp_python is None:
            self.skip(
                "MCP FastMCP comparison",
                "bench/.venv-fastmcp missing (run bench/run without --quick to create it)",
            )
        else:
            assert self.upstream is not None
            fast = start_fastmcp(
                self.tools.fastmcp_python,
                self.upstream.url,
                free_port(),
                log_dir=self.scratch,
                cpu=self.cores.server,
            )
            try:
                url = fast.urls["mcp"]
                name = self.fastmcp_tool_name(url)
                body = mcp_call(
                    name,
                    {
                        "client_key": "bench-key",
                        "client_secret": "bench-secret",
                        "grant_type": "authorization_code",
                        "code": "abc123",
                        "redirect_uri": "https://example.com/callback",
                    },
                )
                self.check(url, method="POST", body=body, headers=MCP_HEADERS)
                rows["fastmcp"] = self.measure(
                    Request(url, "POST", body, MCP_HEADERS), fast.service.pids
                ).to_dict()
                rows["fastmcp_ready_s"] = round(fast.ready_s, 3)
                rows["fastmcp_idle_rss_mb"] = round(fast.rss_mb(), 1)
            finally:
                fast.service.stop()
        self.results["mcp"] = rows

    def mcp_baseline(self) -> dict[str, Any]:
        """The ``--baseline-src`` tree's MCP adapter, measured right after ours."""
        server = self.start_bench_naftiko(baseline=True)
        try:
            url = server.urls["bench-mcp"]
            body = mcp_call(
                "exchange-authorization-code",
                {"code": "abc123", "redirect_uri": "https://example.com/callback"},
            )
            self.check(url, method="POST", body=body, headers=MCP_HEADERS)
            request = Request(url, "POST", body, MCP_HEADERS)
            return self.measure(request, server.service.pids).to_dict()
        finally:
            server.service.stop()

    @staticmethod
    def fastmcp_tool_name(url: str) -> str:
        """FastMCP derives tool names from operationIds (dashes become underscores)."""
        response = httpx.post(
            url,
            headers=MCP_HEADERS,
            timeout=10,
            content=json.dumps({"jsonrpc": "2.0", "id": 1, "method": "tools/list"}),
        )
        return response.json()["result"]["tools"][0]["name"]

    def startup(self) -> None:
        self.results["startup"]["floors"] = self.startup_floors()
        self.results["startup"]["tiktok"] = self.time_startup(TIKTOK_CAPABILITY, "tiktok")
        corpus = Path(self.args.corpus)
        if not corpus.is_dir():
            self.skip("start-up of the largest corpus document", f"no corpus at {corpus}")
            self.skip("naftiko validate over the corpus", f"no corpus at {corpus}")
            return
        largest, entries = largest_document(corpus)
        row = self.time_startup(largest, "largest")
        row.update(document=str(largest.relative_to(corpus)), entry_points=entries)
        self.results["startup"]["largest"] = row
        if self.quick:
            self.skip("naftiko validate over the whole corpus", "--quick (takes ~15 s)")
            return
        started = time.perf_counter()
        proc = subprocess.run(
            [self.naftiko, "validate", str(corpus), "--quiet"],
            capture_output=True,
            text=True,
            env=self.env,
        )
        elapsed = time.perf_counter() - started
        summary = (proc.stdout.strip().splitlines() or [""])[-1]
        documents = re.match(r"(\d+) documents", summary)
        self.results["startup"]["validate_corpus"] = {
            "seconds": round(elapsed, 2),
            "exit_code": proc.returncode,
            "summary": summary,
            "documents": int(documents.group(1)) if documents else None,
            "ms_per_document": round(elapsed * 1000 / int(documents.group(1)), 2)
            if documents
            else None,
        }
        print(f"    validate corpus: {elapsed:.2f} s ({summary})", flush=True)

    def startup_floors(self) -> dict[str, float]:
        """What any start pays before a document is even read, on the same core.

        The start-up target is absolute, so the report shows its floor beside it: the
        interpreter alone, the MCP protocol's types (the SDK's pydantic models, which any
        server built on it must import), the SDK's server modules as we import them, and
        our MCP adapter module (all that plus our engine): everything a document exposing
        MCP imports.
        """
        floors = {}
        for label, code in FLOOR_IMPORTS.items():
            times = []
            for _ in range(self.p.startup_repeats):
                started = time.perf_counter()
                subprocess.run(
                    pinned([self.python, "-c", code], self.cores.server),
                    env=self.env,
                    check=True,
                    capture_output=True,
                )
                times.append(time.perf_counter() - started)
            floors[label] = round(statistics.median(times), 3)
            print(f"    floor {label}: {floors[label]:.3f} s", flush=True)
        return floors

    def time_startup(self, document: Path, label: str) -> dict[str, Any]:
        """Median time to the ready line over a few starts, and the peak RSS at ready."""
        namespaces, keys = document_namespaces_and_binds(document)
        env = dict(self.env, **{key: "bench-dummy" for key in keys})
        times, peaks, rss = [], [], []
        for attempt in range(self.p.startup_repeats):
            server = start_naftiko(
                self.naftiko_run,
                document,
                name=f"startup-{label}-{attempt}",
                log_dir=self.scratch,
                cpu=self.cores.server,
                env=env,
                namespaces=namespaces,
            )
            try:
                times.append(server.ready_s)
                peaks.append(server.peak_rss_mb())
                rss.append(server.rss_mb())
            finally:
                server.service.stop()
        result = {
            "ready_s_median": round(statistics.median(times), 3),
            "ready_s_all": [round(t, 3) for t in times],
            "peak_rss_mb": round(max(peaks), 1),
            "rss_at_ready_mb": round(rss[-1], 1),
        }
        print(
            f"    {document.name}: ready in {result['ready_s_median']:.3f} s, "
            f"peak RSS {result['peak_rss_mb']} MB",
            flush=True,
        )
        return result

    def memory(self) -> None:
        """Idle RSS of the TikTok capability, then RSS after warm-up and after N requests.

        Half the requests go through REST and half through MCP, so a leak in either
        adapter shows. Growth is measured from the warmed-up point (pools, caches and
        the allocator's arenas filled) to the end, which is what a leak looks like.
        """
        assert self.upstream is not None
        namespaces, keys = document_namespaces_and_binds(TIKTOK_CAPABILITY)
        env = dict(self.env, **{key: "bench-dummy" for key in keys})
        server = start_naftiko(
            self.naftiko_run,
            TIKTOK_CAPABILITY,
            name="memory",
            log_dir=self.scratch,
            cpu=self.cores.server,
            env=env,
            namespaces=namespaces,
            base_uris={"tiktok-login-kit-oauth": self.upstream.url},
        )
        try:
            settle(1.0)
            idle = server.rss_mb()
            body = json.dumps(
                {
                    "client_key": "k",
                    "client_secret": "s",
                    "code": "abc123",
                    "grant_type": "authorization_code",
                    "redirect_uri": "https://example.com/callback",
                }
            )
            rest = Request(
                server.urls["tiktok-login-kit-oauth-rest"] + "/v1/v2/oauth/token",
                "POST",
                body,
                {"Content-Type": "application/json"},
            )
            mcp = Request(
                server.urls["tiktok-login-kit-oauth-mcp"],
                "POST",
                mcp_call("exchange-authorization-code-token", {"body": json.loads(body)}),
                MCP_HEADERS,
            )
            self.check(rest.url, method="POST", body=rest.body, headers=dict(rest.headers))
            self.check(mcp.url, method="POST", body=mcp.body, headers=MCP_HEADERS)
            done = {"rest": 0, "mcp": 0}
            errors = [0]

            def drive(total: int) -> None:
                for kind, request in (("rest", rest), ("mcp", mcp)):
                    while done[kind] < total // 2:
                        remaining = total // 2 - done[kind]
                        rate = self.saturation.get(kind, 500.0)
                        seconds = max(1.0, min(30.0, remaining / max(rate, 50.0)))
                        run = self.gen.run(
                            request, connections=self.p.connections, duration_s=seconds
                        )
                        if run.rps > 0:
                            self.saturation[kind] = run.rps
                        done[kind] += run.requests
                        errors[0] += run.errors

            drive(self.p.memory_warm_requests)
            warm = server.rss_mb()
            drive(self.p.memory_requests)
            after = server.rss_mb()
        finally:
            server.service.stop()
        total = done["rest"] + done["mcp"]
        self.results["memory"] = {
            "capability": str(TIKTOK_CAPABILITY.relative_to(REPO)),
            "idle_rss_mb": round(idle, 1),
            "warm_rss_mb": round(warm, 1),
            "warm_after_requests": self.p.memory_warm_requests,
            "after_rss_mb": round(after, 1),
            "requests": total,
            "rest_requests": done["rest"],
            "mcp_requests": done["mcp"],
            "errors": errors[0],
            "growth_mb": round(after - warm, 1),
        }
        print(
            f"    idle {idle:.1f} MB, warm {warm:.1f} MB, after {total:,} requests {after:.1f} MB",
            flush=True,
        )

    def profile(self) -> None:
        """py-spy samples of naftiko-run saturated by REST POSTs, then by MCP calls."""
        py_spy = profiling.ensure_py_spy(Path(self.naftiko_run).parent)
        if py_spy is None:
            self.skip("profile", "py-spy could not be installed into the runtime venv")
            return
        out_dir = Path(self.args.results_dir)
        server = self.start_bench_naftiko()
        try:
            rest = server.urls["bench-rest"]
            runs = {
                "rest_post": Request(
                    rest + "/v1/oauth/token",
                    "POST",
                    TOKEN_JSON,
                    {"Content-Type": "application/json"},
                ),
                "mcp_call": Request(
                    server.urls["bench-mcp"],
                    "POST",
                    mcp_call(
                        "exchange-authorization-code",
                        {"code": "abc123", "redirect_uri": "https://example.com/callback"},
                    ),
                    MCP_HEADERS,
                ),
            }
            for label, request in runs.items():
                self.gen.run(request, connections=self.p.connections, duration_s=1)
                collapsed = out_dir / f"profile-{label}.collapsed.txt"
                sampler = profiling.record(py_spy, server.service.pid, self.p.profile_s, collapsed)
                self.gen.run(
                    request, connections=self.p.connections, duration_s=self.p.profile_s + 1
                )
                output, _ = sampler.communicate(timeout=60)
                if not collapsed.exists():
                    self.skip(f"profile {label}", f"py-spy wrote nothing: {output[-300:]}")
                    continue
                self.results["profile"][label] = {
                    "collapsed_stacks": collapsed.name,
                    **profiling.summarise(collapsed),
                }
        finally:
            server.service.stop()
        self.profile_startup(py_spy, out_dir)

    def profile_startup(self, py_spy: str, out_dir: Path) -> None:
        """py-spy over ``naftiko-run LARGEST --check``: imports, load and compile."""
        corpus = Path(self.args.corpus)
        if not corpus.is_dir():
            return
        largest, _ = largest_document(corpus)
        _, keys = document_namespaces_and_binds(largest)
        env = dict(self.env, **{key: "bench-dummy" for key in keys})
        collapsed = out_dir / "profile-startup_largest.collapsed.txt"
        cmd = [
            py_spy,
            "record",
            "--rate",
            "1000",
            "--format",
            "raw",
            "--output",
            str(collapsed),
            "--",
            self.naftiko_run,
            str(largest),
            "--check",
        ]
        proc = subprocess.run(cmd, capture_output=True, text=True, env=env, timeout=120)
        if not collapsed.exists():
            self.skip("profile startup_largest", f"py-spy failed: {proc.stderr[-300:]}")
            return
        self.results["profile"]["startup_largest"] = {
            "collapsed_stacks": collapsed.name,
            **profiling.summarise(collapsed),
        }

    # ------------------------------------------------------------------ driver
    def run(self) -> dict[str, Any]:
        self.scenario("upstream", self.start_upstream)
        if self.upstream is None:
            return self.finish()
        try:
            if not self.args.only or "rest" in self.args.only:
                self.scenario("REST throughput and latency", self.rest)
            if not self.args.only or "mcp" in self.args.only:
                self.scenario("MCP tools/call throughput", self.mcp)
            if not self.args.only or "startup" in self.args.only:
                self.scenario("start-up and validate", self.startup)
            if not self.args.only or "memory" in self.args.only:
                self.scenario("memory", self.memory)
            if self.quick or self.args.no_profile:
                self.skip("profile", "--quick" if self.quick else "--no-profile")
            elif not self.args.only or "profile" in self.args.only:
                self.scenario("profile (py-spy)", self.profile)
        finally:
            self.upstream.service.stop()
        return self.finish()

    def finish(self) -> dict[str, Any]:
        shutil.rmtree(self.scratch, ignore_errors=True)
        meta = {
            "mode": "quick" if self.quick else "full",
            "date": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
            "machine": {
                "cpus": os.cpu_count(),
                "platform": platform.platform(),
                "python": platform.python_version(),
            },
            "cores": self.cores.describe(),
            "load_generator": self.gen.tool,
            "upstream": self.upstream.kind if self.upstream else None,
            "profile": self.p.__dict__,
            "tool_notes": self.tools.notes,
            "server_env": self.args.server_env or [],
            "versions": versions(self.tools),
        }
        results = {"meta": meta, **self.results, "skipped": self.skipped, "failed": self.failed}
        results["targets"] = report.evaluate_targets(results)
        results["ratios"] = report.ratios(results)
        return results


def median_of_rounds(results: list[LoadResult]) -> LoadResult:
    """One row from interleaved rounds: medians of the rates, latencies and CPU per
    request; totals of requests, errors, time and CPU; the worst maximum."""
    cpu = [r.cpu_us_per_request for r in results if r.cpu_us_per_request is not None]
    server_cpu = [r.server_cpu_s for r in results if r.server_cpu_s is not None]
    return LoadResult(
        tool=results[0].tool,
        connections=results[0].connections,
        duration_s=sum(r.duration_s for r in results),
        requests=sum(r.requests for r in results),
        errors=sum(r.errors for r in results),
        rps=statistics.median(r.rps for r in results),
        p50_ms=statistics.median(r.p50_ms for r in results),
        p90_ms=statistics.median(r.p90_ms for r in results),
        p99_ms=statistics.median(r.p99_ms for r in results),
        max_ms=max(r.max_ms for r in results),
        delay_ms=results[0].delay_ms,
        server_cpu_s=sum(server_cpu) if server_cpu else None,
        cpu_us_per_request=statistics.median(cpu) if cpu else None,
    )


def largest_document(corpus: Path) -> tuple[Path, int]:
    """The corpus document with the most entry points (exposed operations and tools).

    Counted as ``call:`` lines (every exposed operation or tool routes to a consumed
    operation through one), a text scan: parsing 3,500 YAML files would take longer
    than the benchmark of the result.
    """
    best, best_count = corpus, -1
    pattern = re.compile(rb"^\s+(?:-\s+)?call:", re.MULTILINE)
    for path in sorted(corpus.rglob("*")):
        if path.suffix not in (".yaml", ".yml") or not path.is_file():
            continue
        count = len(pattern.findall(path.read_bytes()))
        if count > best_count:
            best, best_count = path, count
    return best, best_count


def versions(found: tools.Tools) -> dict[str, str | None]:
    def first_line(cmd: list[str]) -> str | None:
        try:
            proc = subprocess.run(cmd, capture_output=True, text=True, timeout=30)
        except OSError:
            return None
        text = (proc.stdout + proc.stderr).strip().splitlines()
        return text[0] if text else None

    from importlib.metadata import PackageNotFoundError, version

    def pkg(name: str) -> str | None:
        try:
            return version(name)
        except PackageNotFoundError:
            return None

    return {
        "naftiko": pkg("naftiko"),
        "mcp": pkg("mcp"),
        "httpx": pkg("httpx"),
        "uvicorn": pkg("uvicorn"),
        "starlette": pkg("starlette"),
        "nginx": first_line([found.nginx, "-v"]) if found.nginx else None,
        "wrk": first_line([found.wrk, "--version"]) if found.wrk else None,
        "fastmcp": first_line(
            [found.fastmcp_python, "-c", "import fastmcp; print(fastmcp.__version__)"]
        )
        if found.fastmcp_python
        else None,
    }


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="bench/run", description=__doc__.split("\n\n")[0])
    parser.add_argument(
        "--quick",
        action="store_true",
        help="seconds-long runs; install nothing, skip what is missing",
    )
    parser.add_argument(
        "--results-dir",
        default=str(BENCH_DIR / "results"),
        help="where results.json and results.md go (default bench/results)",
    )
    parser.add_argument(
        "--corpus",
        default=str(DEFAULT_CORPUS),
        help="directory of capability documents (default ../shared/corpus)",
    )
    parser.add_argument(
        "--no-install",
        action="store_true",
        help="do not apt-get nginx/wrk or pip-install FastMCP/py-spy",
    )
    parser.add_argument(
        "--python-only",
        action="store_true",
        help="behave as on a clean machine: no nginx, wrk or FastMCP",
    )
    parser.add_argument(
        "--baseline-src",
        metavar="DIR",
        help="another tree's src/ (e.g. a git worktree of main) served as naftiko_baseline "
        "beside this tree's naftiko: REST in the same interleaved rounds, MCP right after",
    )
    parser.add_argument("--no-pin", action="store_true", help="do not taskset processes")
    parser.add_argument("--no-profile", action="store_true", help="skip the py-spy profile")
    parser.add_argument(
        "--only",
        action="append",
        choices=["rest", "mcp", "startup", "memory", "profile"],
        help="run only these scenarios (repeatable)",
    )
    parser.add_argument(
        "--server-env",
        action="append",
        metavar="KEY=VALUE",
        help="extra environment for the naftiko-run processes (A/B runs)",
    )
    parser.add_argument(
        "-v", "--verbose", action="store_true", help="print tracebacks of failed scenarios"
    )
    return parser.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    results_dir = Path(args.results_dir)
    results_dir.mkdir(parents=True, exist_ok=True)
    found = tools.prepare(
        install=not (args.quick or args.no_install), use_external=not args.python_only
    )
    for note in found.notes:
        print(f"note: {note}", flush=True)
    results = Bench(args, found).run()
    (results_dir / "results.json").write_text(json.dumps(results, indent=2) + "\n")
    markdown = report.markdown(results)
    (results_dir / "results.md").write_text(markdown)
    print("\n" + markdown)
    print(f"results: {results_dir / 'results.json'}, {results_dir / 'results.md'}")
    return 1 if results["failed"] else 0


if __name__ == "__main__":
    sys.exit(main())
