"""Load generation: wrk when installed, else a small httpx loop (``pyload.py``).

Both report the same :class:`LoadResult`. Saturation runs are closed loops with a fixed
connection count; fixed-rate runs add a jittered per-connection pause (wrk's ``delay()``
hook) tuned so that connections / (pause + latency) hits the requested rate. That is an
approximation of an open-loop generator such as wrk2: at 50% load queues are short, so
the coordinated-omission error it leaves is small, and the harness records the rate it
actually achieved next to every latency figure.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from collections.abc import Callable, Mapping
from dataclasses import asdict, dataclass, field
from pathlib import Path

from harness.system import cpu_seconds, pinned

BENCH_DIR = Path(__file__).resolve().parents[1]
LUA_SCRIPT = BENCH_DIR / "lua" / "request.lua"
PYLOAD = Path(__file__).with_name("pyload.py")


@dataclass(frozen=True)
class Request:
    """One HTTP request, replayed as fast (or as steadily) as the generator can."""

    url: str
    method: str = "GET"
    body: str = ""
    headers: Mapping[str, str] = field(default_factory=dict)


@dataclass
class LoadResult:
    """What one load run measured; latencies in milliseconds."""

    tool: str
    connections: int
    duration_s: float
    requests: int
    errors: int
    rps: float
    p50_ms: float
    p90_ms: float
    p99_ms: float
    max_ms: float
    delay_ms: float = 0.0
    server_cpu_s: float | None = None
    cpu_us_per_request: float | None = None

    def to_dict(self) -> dict[str, object]:
        return {k: (round(v, 3) if isinstance(v, float) else v) for k, v in asdict(self).items()}


class LoadGenerator:
    """Runs :class:`Request` s against a server, pinned to the load-generator core."""

    def __init__(self, cpu: str, python: str, prefer_wrk: bool = True) -> None:
        self.cpu = cpu
        self.python = python
        self.wrk = shutil.which("wrk") if prefer_wrk else None

    @property
    def tool(self) -> str:
        return "wrk" if self.wrk else "python-httpx"

    def run(
        self,
        request: Request,
        *,
        connections: int,
        duration_s: float,
        delay_ms: float = 0.0,
        server_pids: Callable[[], list[int]] | None = None,
    ) -> LoadResult:
        """One run; with ``server_pids`` also the server's CPU seconds per request.

        CPU per request is the steadiest figure on a shared machine: other work slows the
        server's wall clock but does not add to its own CPU time.
        """
        before = cpu_seconds(server_pids()) if server_pids else None
        result = (
            self._wrk(request, connections, duration_s, delay_ms)
            if self.wrk
            else self._python(request, connections, duration_s, delay_ms)
        )
        if server_pids and before is not None:
            result.server_cpu_s = cpu_seconds(server_pids()) - before
            if result.requests:
                result.cpu_us_per_request = result.server_cpu_s / result.requests * 1e6
        return result

    def _wrk(
        self, request: Request, connections: int, duration_s: float, delay_ms: float
    ) -> LoadResult:
        env = dict(
            os.environ,
            BENCH_METHOD=request.method,
            BENCH_BODY=request.body,
            BENCH_HEADERS="\n".join(f"{k}: {v}" for k, v in request.headers.items()),
            BENCH_DELAY_MS=f"{delay_ms:.3f}",
        )
        assert self.wrk is not None
        cmd = pinned(
            [
                self.wrk,
                "-t1",
                f"-c{connections}",
                f"-d{max(1, round(duration_s))}s",
                "--latency",
                "--timeout",
                "10s",
                "-s",
                str(LUA_SCRIPT),
                request.url,
            ],
            self.cpu,
        )
        proc = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=duration_s + 60)
        line = next((ln for ln in proc.stdout.splitlines() if ln.startswith("BENCH_JSON ")), None)
        if proc.returncode != 0 or line is None:
            raise RuntimeError(f"wrk failed ({proc.returncode}): {proc.stdout}\n{proc.stderr}")
        data = json.loads(line.removeprefix("BENCH_JSON "))
        lat = data["latency_us"]
        duration = data["duration_us"] / 1e6
        return LoadResult(
            tool="wrk",
            connections=connections,
            duration_s=duration,
            requests=data["requests"],
            errors=sum(data["errors"].values()),
            rps=data["requests"] / duration if duration else 0.0,
            p50_ms=lat["p50"] / 1000,
            p90_ms=lat["p90"] / 1000,
            p99_ms=lat["p99"] / 1000,
            max_ms=lat["max"] / 1000,
            delay_ms=delay_ms,
        )

    def _python(
        self, request: Request, connections: int, duration_s: float, delay_ms: float
    ) -> LoadResult:
        spec = json.dumps(
            {
                "url": request.url,
                "method": request.method,
                "body": request.body,
                "headers": dict(request.headers),
                "connections": connections,
                "duration_s": duration_s,
                "delay_ms": delay_ms,
            }
        )
        proc = subprocess.run(
            pinned([self.python, str(PYLOAD), spec], self.cpu),
            capture_output=True,
            text=True,
            timeout=duration_s + 60,
        )
        if proc.returncode != 0:
            raise RuntimeError(f"pyload failed ({proc.returncode}): {proc.stderr[-2000:]}")
        data = json.loads(proc.stdout.strip().splitlines()[-1])
        return LoadResult(tool="python-httpx", connections=connections, delay_ms=delay_ms, **data)


def rate_delay_ms(connections: int, target_rps: float, latency_ms: float) -> float:
    """The per-connection pause that makes ``connections`` closed loops run at ``target_rps``."""
    return max(0.0, connections / target_rps * 1000.0 - latency_ms)


def run_at_rate(
    gen: LoadGenerator,
    request: Request,
    *,
    target_rps: float,
    connections: int,
    duration_s: float,
    calibrate_s: float,
    server_pids: Callable[[], list[int]] | None = None,
) -> LoadResult:
    """A run held near ``target_rps``: one short calibration pass, then the measured one.

    The first guess assumes zero latency; the calibration pass measures the typical (p50)
    latency at about that rate and shortens the pause by it once. The p50 is used rather
    than the cycle time implied by the trial's rate: on a shared machine a slow second
    in the trial would otherwise shrink the pause and overshoot the target.
    """
    delay = rate_delay_ms(connections, target_rps, 0.0)
    if calibrate_s > 0:
        trial = gen.run(request, connections=connections, duration_s=calibrate_s, delay_ms=delay)
        delay = rate_delay_ms(connections, target_rps, trial.p50_ms)
    return gen.run(
        request,
        connections=connections,
        duration_s=duration_s,
        delay_ms=delay,
        server_pids=server_pids,
    )


if __name__ == "__main__":  # smoke: python -m harness.load URL
    print(
        LoadGenerator("", sys.executable)
        .run(Request(sys.argv[1]), connections=4, duration_s=1)
        .to_dict()
    )
