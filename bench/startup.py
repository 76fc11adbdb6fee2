#!/usr/bin/env python3
"""Start-up A/B: time to ``naftiko ready`` and idle RSS of several source trees, interleaved.

``bench/run --only startup`` measures one tree; this compares trees side by side in one
run, so the shared machine's load hits every variant alike and only the ratios are read::

    git worktree add /tmp/naftiko-before HEAD          # or: cp -r src /tmp/before/
    .venv/bin/python bench/startup.py --tree before=/tmp/naftiko-before/src --tree after=src

Every start is the bench's own (``harness.servers.start_naftiko``: the venv's
``naftiko-run``, JSON logs, ``--port NS=0``, dummy bind values, pinned to the server
core); a tree is selected by putting its ``src`` first on ``PYTHONPATH``. Rounds
rotate the order of the trees so neither always runs first (warm page cache, CPU
frequency). Besides wall time, the process's own CPU time at ready is reported: on a
shared machine it moves much less than the wall clock. Idle RSS is read ``--settle``
seconds after ready, as the memory scenario does.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

BENCH_DIR = Path(__file__).resolve().parent
REPO = BENCH_DIR.parent
sys.path.insert(0, str(BENCH_DIR))

from harness.servers import document_namespaces_and_binds, start_naftiko  # noqa: E402
from harness.system import Cores, cpu_seconds  # noqa: E402

TIKTOK = REPO / "capabilities" / "tiktok-login-kit-oauth.yaml"
DEFAULT_CORPUS = REPO.parent / "shared" / "corpus"


def parse_tree(text: str) -> tuple[str, Path]:
    label, sep, path = text.partition("=")
    if not sep or not label or not Path(path).is_dir():
        raise argparse.ArgumentTypeError(f"expected LABEL=SRC_DIR (an existing dir), got {text!r}")
    return label, Path(path).resolve()


def tree_env(src: Path) -> dict[str, str]:
    """The environment that makes ``naftiko-run`` import naftiko from ``src``."""
    env = dict(os.environ, PYTHONPATH=str(src), PYTHONUNBUFFERED="1")
    env.pop("PYTHONDONTWRITEBYTECODE", None)  # compiled bytecode is part of a real start
    return env


def imported_from(python: str, env: dict[str, str]) -> str:
    """Where a tree's interpreter really finds naftiko (guards against a wrong path)."""
    proc = subprocess.run(
        [python, "-c", "import naftiko; print(naftiko.__file__)"],
        capture_output=True,
        text=True,
        env=env,
        check=True,
    )
    return proc.stdout.strip()


def measure_once(
    naftiko_run: str,
    document: Path,
    env: dict[str, str],
    *,
    cpu: str,
    log_dir: Path,
    settle_s: float,
    name: str,
) -> dict[str, float]:
    namespaces, keys = document_namespaces_and_binds(document)
    env = dict(env, **{key: "bench-dummy" for key in keys})
    server = start_naftiko(
        naftiko_run, document, name=name, log_dir=log_dir, cpu=cpu, env=env, namespaces=namespaces
    )
    try:
        row = {
            "ready_s": server.ready_s,
            "cpu_s": cpu_seconds([server.service.pid]),
            "peak_rss_mb": server.peak_rss_mb(),
        }
        if settle_s > 0:
            time.sleep(settle_s)
            row["idle_rss_mb"] = server.rss_mb()
        return row
    finally:
        server.service.stop()


def summarize(samples: list[dict[str, float]]) -> dict[str, Any]:
    out: dict[str, Any] = {"n": len(samples)}
    for key in ("ready_s", "cpu_s", "peak_rss_mb", "idle_rss_mb"):
        values = [s[key] for s in samples if key in s]
        if values:
            out[f"{key}_median"] = round(statistics.median(values), 3)
            out[f"{key}_min"] = round(min(values), 3)
    return out


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument(
        "--tree",
        action="append",
        type=parse_tree,
        metavar="LABEL=SRC_DIR",
        help="a source tree to start naftiko from (repeatable; default: this "
        "repo's src); the first one is the baseline of the ratios",
    )
    parser.add_argument(
        "--document",
        action="append",
        type=Path,
        help="capability documents (default: TikTok and the largest corpus document)",
    )
    parser.add_argument("--corpus", type=Path, default=DEFAULT_CORPUS)
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument(
        "--settle",
        type=float,
        default=1.0,
        help="seconds after ready before idle RSS is read (0: skip)",
    )
    parser.add_argument("--no-pin", action="store_true")
    parser.add_argument("--json", type=Path, help="write all samples and medians here")
    args = parser.parse_args(argv)

    trees = args.tree or [("current", REPO / "src")]
    documents = args.document
    if not documents:
        documents = [TIKTOK]
        if args.corpus.is_dir():
            from run import largest_document  # the bench's own choice of "largest"

            documents.append(largest_document(args.corpus)[0])
    naftiko_run = str(Path(sys.executable).parent / "naftiko-run")
    cpu = Cores.detect(enabled=not args.no_pin).server
    envs = {label: tree_env(src) for label, src in trees}
    for label, _ in trees:
        print(f"{label}: naftiko from {imported_from(sys.executable, envs[label])}", flush=True)

    samples: dict[str, dict[str, list[dict[str, float]]]] = {
        str(d): {label: [] for label, _ in trees} for d in documents
    }
    with tempfile.TemporaryDirectory(prefix="naftiko-startup-") as scratch:
        for round_no in range(args.rounds):
            shift = round_no % len(trees)
            order = trees[shift:] + trees[:shift]
            for document in documents:
                for label, _ in order:
                    row = measure_once(
                        naftiko_run,
                        document,
                        envs[label],
                        cpu=cpu,
                        log_dir=Path(scratch),
                        settle_s=args.settle,
                        name=f"{label}-{round_no}",
                    )
                    samples[str(document)][label].append(row)
            print(f"round {round_no + 1}/{args.rounds} done", flush=True)

    baseline = trees[0][0]
    result: dict[str, Any] = {
        "trees": {label: str(src) for label, src in trees},
        "rounds": args.rounds,
        "documents": {},
    }
    print(
        f"\n| document | tree | ready s (median) | min | CPU s to ready | idle RSS MB "
        f"| peak RSS MB | ready vs {baseline} | CPU vs {baseline} |"
    )
    print("|---|---|---:|---:|---:|---:|---:|---:|---:|")
    for document, by_tree in samples.items():
        stats = {label: summarize(rows) for label, rows in by_tree.items()}
        base, base_cpu = stats[baseline]["ready_s_median"], stats[baseline]["cpu_s_median"]
        for label, s in stats.items():
            s["ready_ratio"] = round(s["ready_s_median"] / base, 3) if base else None
            s["cpu_ratio"] = round(s["cpu_s_median"] / base_cpu, 3) if base_cpu else None
            print(
                f"| {Path(document).name} | {label} | {s['ready_s_median']:.3f} "
                f"| {s['ready_s_min']:.3f} | {s['cpu_s_median']:.2f} "
                f"| {s.get('idle_rss_mb_median', float('nan')):.1f} "
                f"| {s['peak_rss_mb_median']:.1f} | {s['ready_ratio']:.2f}x "
                f"| {s['cpu_ratio']:.2f}x |"
            )
        result["documents"][document] = {"stats": stats, "samples": by_tree}
    if args.json:
        args.json.write_text(json.dumps(result, indent=2) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
