"""Where the server's CPU time goes under load: py-spy samples, summarised.

py-spy attaches to the running naftiko-run (``--nonblocking``: the process is never
paused, so the profile barely perturbs throughput) and writes collapsed stacks. From
them we report the top frames by *self* time (where the CPU actually is) and by
*inclusive* time (which layer the time is spent under), as percentages of all samples.
The collapsed file is kept next to the results for flamegraph.pl or speedscope.
"""

from __future__ import annotations

import re
import shutil
import subprocess
import sys
from collections import Counter
from pathlib import Path

_FRAME = re.compile(r"^(?P<func>.+?) \((?P<file>[^():]+)(?::(?P<line>\d+))?\)$")


def py_spy_path(venv_bin: Path) -> str | None:
    candidate = venv_bin / "py-spy"
    return str(candidate) if candidate.exists() else shutil.which("py-spy")


def ensure_py_spy(venv_bin: Path) -> str | None:
    """py-spy in the runtime's venv (benchmark-only: never a project dependency)."""
    found = py_spy_path(venv_bin)
    if found:
        return found
    pip = [str(venv_bin / "python"), "-m", "pip", "install", "--quiet", "py-spy"]
    if subprocess.run(pip, capture_output=True, text=True).returncode != 0:
        return None
    return py_spy_path(venv_bin)


def record(
    py_spy: str, pid: int, seconds: int, output: Path, rate: int = 200
) -> subprocess.Popen[str]:
    """Start sampling ``pid`` for ``seconds`` in the background (returns the process)."""
    cmd = [
        py_spy,
        "record",
        "--pid",
        str(pid),
        "--duration",
        str(seconds),
        "--rate",
        str(rate),
        "--format",
        "raw",
        "--output",
        str(output),
        "--nonblocking",
    ]
    return subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)


def _short(frame: str) -> str:
    """``func (site-packages/pkg/mod.py:12)`` -> ``func (pkg/mod.py)``: lines add noise."""
    match = _FRAME.match(frame)
    if not match:
        return frame
    return f"{match['func']} ({match['file']})"


def summarise(collapsed: Path, top: int = 15) -> dict[str, object]:
    """Top frames by self and inclusive share of samples, from a py-spy raw file.

    Also by package of the leaf frame, and by the deepest naftiko frame on the stack:
    the latter points at the function of ours to change (or the library call it makes).
    """
    self_counts: Counter[str] = Counter()
    inclusive: Counter[str] = Counter()
    modules: Counter[str] = Counter()
    ours: Counter[str] = Counter()
    total = 0
    for line in collapsed.read_text().splitlines():
        stack, _, count_text = line.rpartition(" ")
        if not stack or not count_text.isdigit():
            continue
        count = int(count_text)
        frames = [_short(f) for f in stack.split(";")]
        total += count
        self_counts[frames[-1]] += count
        for frame in set(frames):
            inclusive[frame] += count
        match = _FRAME.match(frames[-1])
        module = match["file"].split("/")[0] if match else "?"
        modules[module] += count
        # The deepest frame of our own code on the stack: which naftiko function the
        # time (its own plus everything it calls into) is spent under.
        deepest = next((f for f in reversed(frames) if "(naftiko/" in f), "(outside naftiko)")
        ours[deepest] += count

    def share(counter: Counter[str]) -> list[dict[str, object]]:
        return (
            [
                {"frame": f, "percent": round(100 * c / total, 1)}
                for f, c in counter.most_common(top)
            ]
            if total
            else []
        )

    # Inclusive frames that wrap everything (the event loop, main) say nothing: keep the
    # ones under 90% of samples.
    inner = Counter({f: c for f, c in inclusive.items() if total and c / total < 0.9})
    return {
        "samples": total,
        "self": share(self_counts),
        "inclusive": share(inner),
        "by_package": share(modules),
        "under_naftiko_frame": share(ours),
    }


if __name__ == "__main__":  # python -m harness.profiling FILE
    import json

    print(json.dumps(summarise(Path(sys.argv[1])), indent=1))
