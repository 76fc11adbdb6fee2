"""Gateway at scale: start to ready and idle memory of ``--gateway`` over 1,000 documents.

Usage: ``python bench/gateway_scale.py [--documents N] [--rounds R] [--keep DIR] [--src DIR]
[--against DIR] [--sample DIR]`` (``--src``: serve with another checkout's ``src``, e.g.
``git archive`` of a base commit; ``--against``: serve that one too, in the same rounds,
for a side-by-side ratio; ``--sample``: reuse a folder ``--keep`` wrote).

The sample is generated into a temporary folder, the same on every run: the published
documents of ``../shared/corpus`` (every ``*.yaml`` that loads on its own, in path
order), then copies of them, each file's exposed namespaces suffixed with its index so
that no two adapters claim one prefix. The Stripe document ``gateway_ab.py`` calls is
included verbatim, so ``python bench/gateway_ab.py DIR`` measures the per-request cost
against this folder (``--keep DIR`` leaves it there).

Figures, each the median of ``--rounds`` runs:
- *parse floor*: a bare ``python`` process that imports PyYAML and parses every file
  with ``yaml.load(text, Loader=yaml.CSafeLoader)``, from spawn to exit;
- *start to ready*: from spawning ``naftiko run DIR --gateway 0`` to its ``ready`` line;
- *idle RSS*: the server's resident memory once ready and idle;
- beside each wall time, the process's CPU seconds (user + system) to that point: on a
  shared machine the wall clock moves with other work, CPU time much less.
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

import yaml

ROOT = Path(__file__).resolve().parents[1]
CORPUS = ROOT.parent / "shared" / "corpus"
KEPT = CORPUS / "api-evangelist-stripe" / "capabilities" / "balance-identifiers.yaml"

FLOOR = """
import sys, yaml
for name in sys.argv[1:]:
    with open(name, encoding="utf-8") as f:
        yaml.load(f.read(), Loader=yaml.CSafeLoader)
"""


def _config(folder: Path) -> Any:
    sys.path.insert(0, str(ROOT / "src"))
    from naftiko.cli import run as run_command
    from naftiko.runtime.config import resolve_config

    parser = argparse.ArgumentParser()
    run_command.add_arguments(parser)
    return resolve_config(parser.parse_args([str(folder), "--gateway", "0"]), {})


def _renamed(data: dict, suffix: str) -> dict:
    capability = data.get("capability") or {}
    for adapter in capability.get("exposes") or ():
        if isinstance(adapter, dict) and isinstance(adapter.get("namespace"), str):
            adapter["namespace"] = f"{adapter['namespace']}-{suffix}"
    return data


def make_sample(folder: Path, count: int) -> list[Path]:
    """``count`` documents that load in gateway mode, written into ``folder``."""
    from naftiko.runtime.placement import load_one
    from naftiko.spec.diagnostics import LoadError

    config = _config(folder)
    sources = sorted(p for p in CORPUS.rglob("*.yaml") if p != KEPT)
    kept = folder / "0000-stripe-balance-identifiers.yaml"
    kept.write_bytes(KEPT.read_bytes())
    written = [kept]
    usable: list[dict] = []
    for source in sources:
        if len(written) >= count:
            break
        try:
            data = yaml.load(source.read_text(encoding="utf-8"), Loader=yaml.CSafeLoader)
        except (yaml.YAMLError, UnicodeDecodeError):
            continue
        if not isinstance(data, dict) or "capability" not in data:
            continue
        index = len(written)
        target = folder / f"{index:04d}-{source.stem}.yaml"
        target.write_text(yaml.safe_dump(_renamed(data, f"d{index}"), sort_keys=False))
        try:
            if load_one(target, config) is None:
                raise LoadError([])
        except Exception:  # not servable alone (imports, errors): not in the sample
            target.unlink()
            continue
        written.append(target)
        usable.append(data)
    copy = 0
    while len(written) < count:
        data = usable[copy % len(usable)]
        copy += 1
        index = len(written)
        target = folder / f"{index:04d}-copy.yaml"
        target.write_text(yaml.safe_dump(_renamed(json.loads(json.dumps(data)), f"d{index}")))
        written.append(target)
    return written


def floor(files: list[Path]) -> tuple[float, float]:
    """Wall seconds, spawn to exit, and the CPU seconds of the process."""
    began = time.monotonic()
    before = os.times()
    subprocess.run([sys.executable, "-c", FLOOR, *map(str, files)], check=True)
    after = os.times()
    cpu = (after.children_user - before.children_user) + (
        after.children_system - before.children_system
    )
    return time.monotonic() - began, cpu


def rss_mb(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    raise RuntimeError("no VmRSS")


def cpu_s(pid: int) -> float:
    """User + system CPU seconds of a process so far (``/proc/PID/stat``)."""
    fields = Path(f"/proc/{pid}/stat").read_text().rpartition(")")[2].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def gateway(folder: Path, env: dict[str, str]) -> tuple[float, float, float]:
    began = time.monotonic()
    command = [sys.executable, "-m", "naftiko", "run", str(folder), "--gateway", "0"]
    proc = subprocess.Popen(
        [*command, "--host", "127.0.0.1", "--log-format", "json"],
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        env=env,
    )
    assert proc.stdout is not None
    try:
        for line in proc.stdout:
            if '"ready"' in line and "naftiko ready" in line:
                ready = time.monotonic() - began
                cpu = cpu_s(proc.pid)
                break
        else:
            raise RuntimeError("naftiko exited before ready")
        time.sleep(1.0)
        return ready, rss_mb(proc.pid), cpu
    finally:
        proc.terminate()
        proc.wait(30)


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--documents", type=int, default=1000)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--keep", type=Path)
    parser.add_argument("--src", type=Path, help="serve with another tree's src/ (A/B)")
    parser.add_argument(
        "--against",
        type=Path,
        help="also serve with this tree's src/ in the same rounds (alternating order)",
    )
    parser.add_argument("--sample", type=Path, help="an existing sample folder (--keep's)")
    options = parser.parse_args()
    env = {k: v for k, v in os.environ.items() if not k.startswith("NAFTIKO_")}
    trees = {"this tree": str(options.src or ROOT / "src")}
    if options.against:
        trees["--against"] = str(options.against)
    with tempfile.TemporaryDirectory() as tmp:
        if options.sample:
            folder = options.sample
            files = sorted(folder.glob("*.yaml"))
        else:
            folder = options.keep or Path(tmp)
            folder.mkdir(parents=True, exist_ok=True)
            files = make_sample(folder, options.documents)
        floors: list[float] = []
        floor_cpu: list[float] = []
        readies: dict[str, list[float]] = {name: [] for name in trees}
        cpus: dict[str, list[float]] = {name: [] for name in trees}
        rss: dict[str, list[float]] = {name: [] for name in trees}
        for index in range(options.rounds):
            wall, cpu = floor(files)
            floors.append(wall)
            floor_cpu.append(cpu)
            names = list(trees) if index % 2 == 0 else list(trees)[::-1]
            for name in names:
                ready, memory, cpu = gateway(folder, {**env, "PYTHONPATH": trees[name]})
                readies[name].append(ready)
                cpus[name].append(cpu)
                rss[name].append(memory)
        f, fc = statistics.median(floors), statistics.median(floor_cpu)
        print(f"{len(files)} documents ({sum(p.stat().st_size for p in files) >> 20} MB)")
        print(f"parse floor (python + CSafeLoader): {f:.2f} s, {fc:.2f} s CPU")
        print(f"  rounds: {fmt(floors)} s; {fmt(floor_cpu)} s CPU")
        for name in trees:
            r, c = statistics.median(readies[name]), statistics.median(cpus[name])
            m = statistics.median(rss[name])
            print(
                f"{name}: start to ready {r:.2f} s ({r / f:.2f}x the floor), "
                f"{c:.2f} s CPU ({c / fc:.2f}x the floor's CPU), idle RSS {m:.0f} MB"
            )
            print(f"  rounds: {fmt(readies[name])} s; {fmt(cpus[name])} s CPU; {fmt(rss[name], 0)}")


def fmt(values: list[float], digits: int = 2) -> str:
    return ", ".join(f"{v:.{digits}f}" for v in values)


if __name__ == "__main__":
    main()
