"""Drive ``python -m naftiko run`` as a subprocess: start, wait for ``ready``, stop.

The process's own output is the only interface: its ``ready`` event gives the actual
URLs (ports are ephemeral), and its log lines are what tests assert on.
"""

from __future__ import annotations

import json
import os
import queue
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any

REPO_ROOT = Path(__file__).resolve().parents[2]
# Guards against a hung process wedging the suite; not expectations about speed.
READY_TIMEOUT_S = 30.0
EXIT_TIMEOUT_S = 30.0


def clean_env(extra: Mapping[str, str] | None = None) -> dict[str, str]:
    """The test's environment without NAFTIKO_* (a developer's shell must not leak in)."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("NAFTIKO_")}
    env["PYTHONUNBUFFERED"] = "1"
    env.update(extra or {})
    return env


class NaftikoProcess:
    """``naftiko run ARGS`` with stdout/stderr collected line by line in threads."""

    def __init__(
        self, args: Sequence[str], env: Mapping[str, str] | None = None, cwd: Path | None = None
    ) -> None:
        self.args = [sys.executable, "-m", "naftiko", "run", *args]
        self.env = clean_env(env)
        self.cwd = cwd or REPO_ROOT
        self.proc: subprocess.Popen[str] | None = None
        self.stdout: list[str] = []
        self.stderr: list[str] = []
        self._lines: queue.Queue[str] = queue.Queue()
        self._threads: list[threading.Thread] = []

    def start(self) -> NaftikoProcess:
        self.proc = subprocess.Popen(
            self.args,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
            env=self.env,
            cwd=self.cwd,
        )
        for stream, sink in ((self.proc.stdout, self.stdout), (self.proc.stderr, self.stderr)):
            thread = threading.Thread(target=self._pump, args=(stream, sink), daemon=True)
            thread.start()
            self._threads.append(thread)
        return self

    def _pump(self, stream: Any, sink: list[str]) -> None:
        for line in stream:
            sink.append(line.rstrip("\n"))
            self._lines.put(line.rstrip("\n"))

    @property
    def output(self) -> str:
        return "\n".join(self.stdout + self.stderr)

    def events(self) -> list[dict[str, Any]]:
        """Every JSON line of stdout (``--log-format json``)."""
        found = []
        for line in list(self.stdout):
            try:
                value = json.loads(line)
            except ValueError:
                continue
            if isinstance(value, dict):
                found.append(value)
        return found

    def wait_for(self, predicate: Callable[[str], bool], timeout: float = READY_TIMEOUT_S) -> str:
        """The first line (already seen or coming) for which ``predicate`` holds."""
        for line in list(self.stdout) + list(self.stderr):
            if predicate(line):
                return line
        deadline = time.monotonic() + timeout
        while True:
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                raise TimeoutError(f"no matching line within {timeout}s:\n{self.output}")
            try:
                line = self._lines.get(timeout=min(remaining, 0.2))
            except queue.Empty:
                assert self.proc is not None
                if self.proc.poll() is not None and self._lines.empty():
                    for t in self._threads:
                        t.join(1)
                    if not self._lines.empty():
                        continue
                    raise AssertionError(
                        f"naftiko exited ({self.proc.returncode}) first:\n{self.output}"
                    ) from None
                continue
            if predicate(line):
                return line

    def wait_ready(self) -> dict[str, str]:
        """``{namespace: url}`` from the ready line (text) or ready event (JSON)."""
        line = self.wait_for(lambda text: "naftiko ready:" in text)
        try:
            event = json.loads(line)
        except ValueError:
            event = None
        if isinstance(event, dict) and "adapters" in event:
            return {a["namespace"]: a["url"] for a in event["adapters"]}
        urls = {}
        for item in line.split("naftiko ready:", 1)[1].split(","):
            _kind, namespace, url = item.split()
            urls[namespace] = url
        return urls

    def signal(self, signum: int = signal.SIGTERM) -> None:
        assert self.proc is not None
        self.proc.send_signal(signum)

    def wait(self, timeout: float = EXIT_TIMEOUT_S) -> int:
        assert self.proc is not None
        code = self.proc.wait(timeout)
        for t in self._threads:
            t.join(5)
        return code

    def __enter__(self) -> NaftikoProcess:
        return self.start()

    def __exit__(self, *exc_info: object) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait(EXIT_TIMEOUT_S)
        for t in self._threads:
            t.join(5)


def run_to_exit(
    args: Sequence[str], env: Mapping[str, str] | None = None, timeout: float = EXIT_TIMEOUT_S
) -> subprocess.CompletedProcess[str]:
    """``naftiko run ARGS`` for commands that end by themselves (``--check``, errors)."""
    return subprocess.run(
        [sys.executable, "-m", "naftiko", "run", *args],
        capture_output=True,
        text=True,
        env=clean_env(env),
        cwd=REPO_ROOT,
        timeout=timeout,
        check=False,
    )
