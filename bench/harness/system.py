"""Processes, CPU pinning and /proc readings shared by every scenario.

Everything measured runs as a separate process pinned with ``taskset`` so the load
generator and the server under test do not fight for the same core on a small machine;
CPU time and RSS are read from ``/proc`` so the harness needs no psutil.
"""

from __future__ import annotations

import os
import shutil
import signal
import socket
import subprocess
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

CLOCK_TICKS = os.sysconf("SC_CLK_TCK")
PAGE_KB = os.sysconf("SC_PAGE_SIZE") // 1024


@dataclass(frozen=True)
class Cores:
    """Which CPUs each role gets; empty strings mean "do not pin".

    With two or more CPUs the load generator and the upstream share the first one and
    the server under test has the second to itself: the upstream (nginx ``return 200``)
    costs a few microseconds per request, so the server under test is what saturates.
    """

    load: str = ""
    server: str = ""
    upstream: str = ""

    @classmethod
    def detect(cls, enabled: bool = True) -> Cores:
        cpus = sorted(os.sched_getaffinity(0))
        if not enabled or len(cpus) < 2 or shutil.which("taskset") is None:
            return cls()
        upstream = cpus[2] if len(cpus) > 2 else cpus[0]
        return cls(load=str(cpus[0]), server=str(cpus[1]), upstream=str(upstream))

    def describe(self) -> dict[str, str]:
        if not self.server:
            return {"pinning": "none"}
        return {
            "load_generator": self.load,
            "server_under_test": self.server,
            "upstream": self.upstream,
        }


def pinned(cmd: Sequence[str], cpu: str) -> list[str]:
    """``cmd`` prefixed with ``taskset -c cpu`` (unchanged when ``cpu`` is empty)."""
    return ["taskset", "-c", cpu, *cmd] if cpu else list(cmd)


def free_port() -> int:
    """An ephemeral loopback port that is free right now (the kernel picks it)."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def wait_for_port(port: int, timeout: float = 15.0, proc: subprocess.Popen | None = None) -> None:
    """Block until something accepts TCP connections on 127.0.0.1:port."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc is not None and proc.poll() is not None:
            raise RuntimeError(f"process exited with {proc.returncode} before listening")
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=0.2):
                return
        except OSError:
            time.sleep(0.02)
    raise TimeoutError(f"nothing listening on 127.0.0.1:{port} after {timeout:.0f}s")


def children(pid: int) -> list[int]:
    """Direct and indirect children of ``pid`` (nginx workers, a taskset'd exec...)."""
    parents: dict[int, list[int]] = {}
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            fields = (entry / "stat").read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        parents.setdefault(int(fields[1]), []).append(int(entry.name))
    found, todo = [], [pid]
    while todo:
        for child in parents.get(todo.pop(), []):
            found.append(child)
            todo.append(child)
    return found


def cpu_seconds(pids: Sequence[int]) -> float:
    """User + system CPU time consumed so far by ``pids`` (all threads included)."""
    total = 0
    for pid in pids:
        try:
            fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        total += int(fields[11]) + int(fields[12])  # utime, stime (fields 14, 15)
    return total / CLOCK_TICKS


def memory_kb(pid: int) -> dict[str, int]:
    """``VmRSS`` (now) and ``VmHWM`` (peak) of one process, in kB."""
    values: dict[str, int] = {}
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        key, _, rest = line.partition(":")
        if key in ("VmRSS", "VmHWM"):
            values[key] = int(rest.split()[0])
    return values


@dataclass
class Service:
    """A started server process whose output goes to a file under the scratch dir.

    A file rather than a pipe: a server that logs every request (naftiko-run does, at
    the default level) must never block on a pipe nobody reads, and the harness must
    not spend CPU reading thousands of log lines a second while it measures.
    """

    name: str
    proc: subprocess.Popen[bytes]
    started_at: float
    log_path: Path
    _offset: int = 0
    _pending: str = ""

    @classmethod
    def start(
        cls,
        name: str,
        cmd: Sequence[str],
        log_dir: Path,
        env: Mapping[str, str] | None = None,
        cwd: Path | None = None,
    ) -> Service:
        log_path = log_dir / f"{name}.log"
        with log_path.open("wb") as log:
            started = time.perf_counter()
            proc = subprocess.Popen(
                list(cmd),
                stdout=log,
                stderr=subprocess.STDOUT,
                stdin=subprocess.DEVNULL,
                env=dict(env) if env is not None else None,
                cwd=cwd,
                start_new_session=True,
            )
        return cls(name, proc, started, log_path)

    @property
    def pid(self) -> int:
        """The measured process: the program itself (``taskset`` execs in place)."""
        return self.proc.pid

    def pids(self) -> list[int]:
        return [self.proc.pid, *children(self.proc.pid)]

    def tail(self, lines: int = 20) -> str:
        try:
            return "\n".join(self.log_path.read_text(errors="replace").splitlines()[-lines:])
        except OSError:
            return ""

    def _new_lines(self) -> list[str]:
        with self.log_path.open("rb") as log:
            log.seek(self._offset)
            chunk = log.read()
        self._offset += len(chunk)
        text = self._pending + chunk.decode(errors="replace")
        *complete, self._pending = text.split("\n")
        return complete

    def wait_line(
        self, predicate: Callable[[str], bool], timeout: float = 30.0
    ) -> tuple[str, float]:
        """The first new output line matching ``predicate``, and seconds since start.

        Polled every millisecond, so start-up times are accurate to about that.
        """
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            for line in self._new_lines():
                if predicate(line):
                    return line, time.perf_counter() - self.started_at
            if self.proc.poll() is not None:
                raise RuntimeError(
                    f"{self.name} exited with {self.proc.returncode}:\n" + self.tail()
                )
            time.sleep(0.001)
        raise TimeoutError(f"{self.name}: no ready line after {timeout:.0f}s:\n{self.tail()}")

    def stop(self, timeout: float = 10.0) -> None:
        """SIGTERM (graceful for nginx, uvicorn and naftiko-run), SIGKILL if it hangs."""
        if self.proc.poll() is not None:
            return
        self.proc.send_signal(signal.SIGTERM)
        try:
            self.proc.wait(timeout)
        except subprocess.TimeoutExpired:
            os.killpg(self.proc.pid, signal.SIGKILL)
            self.proc.wait(5)
