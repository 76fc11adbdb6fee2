"""``--workers 1`` vs ``--workers 2``, side by side in one run: throughput and CPU per request.

Usage: ``python bench/workers.py [--rounds R] [--duration S] [--connections C]``
(from the runtime's venv, or ``PYTHONPATH=src``). Both servers run at once on the bench
capability (``bench/capabilities/bench.yaml``, ``GET /v1/users/{id}/videos``), against
one upstream (nginx ``return 200`` when installed, else the Python stand-in); rounds
alternate the two so drift on the shared machine hits both. Nothing is pinned: two
workers need both cores, and the load generator (wrk, one thread) and the upstream share
them. CPU is the server's process tree (parent and workers), from ``/proc``.

Prints a table (medians over rounds; "server cores busy" is the server tree's CPU
seconds per second of load: 1.0 means one core's worth; PSS is the tree's proportional
memory after the runs, pages shared by the fork counted once) and writes
``bench/results/workers.json``.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path

BENCH_DIR = Path(__file__).resolve().parent
sys.path.insert(0, str(BENCH_DIR))

from harness.load import LoadGenerator, Request  # noqa: E402
from harness.servers import document_namespaces_and_binds, start_naftiko  # noqa: E402
from harness.system import free_port  # noqa: E402
from harness.upstream import start_upstream  # noqa: E402

CAPABILITY = BENCH_DIR / "capabilities" / "bench.yaml"
PATH = "/v1/users/u123/videos?max_count=5&cursor=0"


def pss_mb(pids: list[int]) -> float:
    """Proportional set size of the process tree: shared (forked) pages counted once."""
    total_kb = 0
    for pid in pids:
        try:
            text = Path(f"/proc/{pid}/smaps_rollup").read_text()
        except OSError:
            continue
        for line in text.splitlines():
            if line.startswith("Pss:"):
                total_kb += int(line.split()[1])
    return total_kb / 1024


def naftiko_run() -> str:
    beside = Path(sys.executable).with_name("naftiko-run")
    return str(beside) if beside.exists() else "naftiko-run"


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--duration", type=float, default=8.0, help="seconds per run")
    parser.add_argument("--connections", type=int, default=32)
    parser.add_argument("--log-level", default="info", help="the servers' (default info)")
    parser.add_argument("--results", type=Path, default=BENCH_DIR / "results" / "workers.json")
    args = parser.parse_args()

    scratch = Path(tempfile.mkdtemp(prefix="bench-workers-"))
    env = {k: v for k, v in os.environ.items() if not k.startswith("NAFTIKO_")}
    env.update(PYTHONUNBUFFERED="1", BENCH_CLIENT_KEY="bench-key", BENCH_CLIENT_SECRET="bench-x")
    upstream = start_upstream(scratch, free_port(), "", sys.executable)
    namespaces, _ = document_namespaces_and_binds(CAPABILITY)
    servers = {}
    try:
        for count in (1, 2):
            servers[count] = start_naftiko(
                naftiko_run(),
                CAPABILITY,
                name=f"naftiko-workers-{count}",
                log_dir=scratch,
                cpu="",
                env=dict(env, NAFTIKO_WORKERS=str(count)),
                namespaces=namespaces,
                base_uris={"bench-upstream": upstream.url},
                log_level=args.log_level,
            )
        time.sleep(2.0)  # the second worker's ready line may come after the first's
        load = LoadGenerator("", sys.executable)
        runs: dict[int, list[dict[str, float]]] = {1: [], 2: []}
        for round_ in range(args.rounds):
            for count in (1, 2) if round_ % 2 == 0 else (2, 1):
                server = servers[count]
                request = Request(server.urls["bench-rest"] + PATH)
                result = load.run(
                    request,
                    connections=args.connections,
                    duration_s=args.duration,
                    server_pids=server.service.pids,
                )
                if result.errors:
                    raise SystemExit(f"{result.errors} errors with {count} worker(s)")
                cores = (result.server_cpu_s or 0.0) / result.duration_s
                runs[count].append(
                    {"rps": result.rps, "cpu_us": result.cpu_us_per_request or 0.0, "cores": cores}
                )
                print(
                    f"round {round_ + 1} workers={count}: {result.rps:,.0f} req/s, "
                    f"{result.cpu_us_per_request:,.0f} us CPU/request, {cores:.2f} cores busy, "
                    f"p99 {result.p99_ms:.1f} ms",
                    flush=True,
                )
        memory = {count: pss_mb(servers[count].service.pids()) for count in (1, 2)}
    finally:
        for server in servers.values():
            server.service.stop()
        upstream.service.stop()

    summary = {
        count: {
            "rps_median": statistics.median(r["rps"] for r in rows),
            "cpu_us_per_request_median": statistics.median(r["cpu_us"] for r in rows),
            "server_cores_median": statistics.median(r["cores"] for r in rows),
            "pss_mb_after": memory[count],
            "runs": rows,
        }
        for count, rows in runs.items()
    }
    one, two = summary[1], summary[2]
    ratios = {
        "throughput_2_over_1": two["rps_median"] / one["rps_median"],
        "cpu_per_request_2_over_1": two["cpu_us_per_request_median"]
        / one["cpu_us_per_request_median"],
    }
    print()
    print("| workers | req/s | CPU µs/request | server cores busy | PSS MB after |")
    print("|---|---|---|---|---|")
    for count in (1, 2):
        s = summary[count]
        print(
            f"| {count} | {s['rps_median']:,.0f} | {s['cpu_us_per_request_median']:,.0f} "
            f"| {s['server_cores_median']:.2f} | {s['pss_mb_after']:.0f} |"
        )
    print(
        f"\n2 workers / 1: throughput x{ratios['throughput_2_over_1']:.2f}, "
        f"CPU per request x{ratios['cpu_per_request_2_over_1']:.2f} "
        f"({os.cpu_count()} CPUs, load generator {load.tool}, upstream {upstream.kind})"
    )
    args.results.parent.mkdir(parents=True, exist_ok=True)
    args.results.write_text(
        json.dumps(
            {
                "cpus": os.cpu_count(),
                "load_generator": load.tool,
                "upstream": upstream.kind,
                "connections": args.connections,
                "duration_s": args.duration,
                "summary": summary,
                "ratios": ratios,
            },
            indent=2,
        )
    )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
