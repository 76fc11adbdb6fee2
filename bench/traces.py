#!/usr/bin/env python3
"""What tracing costs, side by side in one run: server CPU per request and throughput of

* ``baseline`` — another tree (``--baseline-src``, e.g. main before the traces work),
* ``off`` — this tree with no ``OTEL_*`` variable (the default),
* ``on`` — this tree exporting every span over OTLP/HTTP to a sink on loopback (a
  separate process on the upstream's core: only the server's own work is counted, the
  exporter thread included), sampler ``parentbased_always_on``,
* ``sampled`` (with ``--ratio R``) — on, sampler ``parentbased_traceidratio`` at ``R``.

REST (``POST /v1/oauth/token`` and ``GET /v1/users/{id}/videos``, ``bench.yaml``) in
the harness's interleaved rounds (each row the median of its rounds, every server
measured in every round, so drift on the shared machine hits all of them alike); then
MCP ``tools/call`` on each server, one after the other. Prints a table; writes
``bench/results/traces.json``.

    python bench/traces.py --baseline-src /work/main/src [--ratio 0.1] [--quick]
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
from pathlib import Path
from typing import Any

BENCH_DIR = Path(__file__).resolve().parent
sys.path.insert(0, str(BENCH_DIR))

import run as bench_run  # noqa: E402
from harness import tools  # noqa: E402
from harness.load import Request  # noqa: E402
from harness.servers import Started, document_namespaces_and_binds, start_naftiko  # noqa: E402
from harness.system import free_port, pinned, wait_for_port  # noqa: E402

# An OTLP/HTTP endpoint that accepts every export and keeps nothing.
SINK = """
import sys
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

class Sink(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    def do_POST(self):
        self.rfile.read(int(self.headers.get("Content-Length") or 0))
        self.send_response(200)
        self.send_header("Content-Type", "application/x-protobuf")
        self.send_header("Content-Length", "0")
        self.end_headers()
    def log_message(self, *args):
        pass

ThreadingHTTPServer(("127.0.0.1", int(sys.argv[1])), Sink).serve_forever()
"""


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--baseline-src", required=True, metavar="DIR")
    parser.add_argument("--quick", action="store_true")
    parser.add_argument(
        "--ratio",
        type=float,
        help="also serve 'sampled': on, with parentbased_traceidratio at this ratio",
    )
    parser.add_argument("--results", default=str(BENCH_DIR / "results" / "traces.json"))
    args = parser.parse_args(argv)
    bench_args = bench_run.parse_args(
        ["--no-install", "--no-profile", "--baseline-src", args.baseline_src]
        + (["--quick"] if args.quick else [])
    )
    bench = bench_run.Bench(bench_args, tools.prepare(install=False, use_external=True))
    sink_port = free_port()
    sink = subprocess.Popen(
        pinned([sys.executable, "-c", SINK, str(sink_port)], bench.cores.upstream)
    )
    servers: dict[str, tuple[dict[str, Request], Any, Any]] = {}
    started: dict[str, Started] = {}
    try:
        wait_for_port(sink_port)
        bench.start_upstream()
        assert bench.upstream is not None
        namespaces, _ = document_namespaces_and_binds(bench_run.BENCH_CAPABILITY)
        otel = {
            "OTEL_EXPORTER_OTLP_ENDPOINT": f"http://127.0.0.1:{sink_port}",
            "OTEL_SERVICE_NAME": "naftiko-bench",
        }
        variants = {
            "baseline": {"PYTHONPATH": str(Path(args.baseline_src).resolve())},
            # This tree, whatever the venv's naftiko is installed from.
            "off": {"PYTHONPATH": str(BENCH_DIR.parent / "src")},
            "on": {"PYTHONPATH": str(BENCH_DIR.parent / "src"), **otel},
        }
        if args.ratio is not None:
            variants["sampled"] = {
                **variants["on"],
                "OTEL_TRACES_SAMPLER": "parentbased_traceidratio",
                "OTEL_TRACES_SAMPLER_ARG": str(args.ratio),
            }
        for label, extra in variants.items():
            server = start_naftiko(
                bench.naftiko_run,
                bench_run.BENCH_CAPABILITY,
                name=f"naftiko-traces-{label}",
                log_dir=bench.scratch,
                cpu=bench.cores.server,
                env={**bench.env, **extra},
                namespaces=namespaces,
                base_uris={"bench-upstream": bench.upstream.url},
            )
            started[label] = server
            rest = server.urls["bench-rest"]
            requests = {
                "post": Request(
                    rest + "/v1/oauth/token",
                    "POST",
                    bench_run.TOKEN_JSON,
                    {"Content-Type": "application/json"},
                ),
                "get": Request(f"{rest}/v1/users/u123/videos?{bench_run.VIDEOS_QUERY}"),
            }
            servers[label] = (requests, server.service.pids, server.service.stop)
        print("REST, interleaved rounds", flush=True)
        rows: dict[str, dict[str, Any]] = {label: {} for label in servers}
        for label, shapes in bench.measure_rounds(servers).items():
            for shape, result in shapes.items():
                rows[label][f"rest_{shape}"] = result.to_dict()
        print("MCP tools/call, one server after the other", flush=True)
        body = bench_run.mcp_call(
            "exchange-authorization-code",
            {"code": "abc123", "redirect_uri": "https://example.com/callback"},
        )
        for label, server in started.items():
            url = server.urls["bench-mcp"]
            bench.check(url, method="POST", body=body, headers=bench_run.MCP_HEADERS)
            result = bench.measure(
                Request(url, "POST", body, bench_run.MCP_HEADERS), server.service.pids
            )
            rows[label]["mcp_call"] = result.to_dict()
    finally:
        for _, _, stop in servers.values():
            stop()
        if bench.upstream is not None:
            bench.upstream.service.stop()
        sink.terminate()
        sink.wait(10)
    print(table(rows))
    path = Path(args.results)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(rows, indent=2) + "\n")
    return 0


def table(rows: dict[str, dict[str, Any]]) -> str:
    """Per scenario: CPU per request and req/s of each variant, and the two ratios."""
    labels = list(rows)
    others = [label for label in labels if label not in ("baseline", "off")]
    lines = [
        "| scenario | "
        + " | ".join(f"{label} µs/req" for label in labels)
        + " | off/baseline | "
        + " | ".join(f"{label}/off" for label in others)
        + " | "
        + " | ".join(f"{label} req/s" for label in labels)
        + " |",
        "|---" * (1 + 2 * len(labels) + 1 + len(others)) + "|",
    ]
    for scenario in ("rest_post", "rest_get", "mcp_call"):
        cpu = {label: rows[label][scenario]["cpu_us_per_request"] for label in labels}
        rps = {label: rows[label][scenario]["rps"] for label in labels}
        lines.append(
            f"| {scenario} | "
            + " | ".join(f"{cpu[label]:.0f}" for label in labels)
            + f" | {cpu['off'] / cpu['baseline']:.3f} | "
            + " | ".join(f"{cpu[label] / cpu['off']:.3f}" for label in others)
            + " | "
            + " | ".join(f"{rps[label]:,.0f}" for label in labels)
            + " |"
        )
    return "\n".join(lines)


if __name__ == "__main__":
    sys.exit(main())
