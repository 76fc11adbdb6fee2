"""Worker processes (``--workers N``): N forked copies of the runtime share every listener;
the parent loads, binds and supervises.

Sockets are bound once, in the parent, and inherited across ``fork`` (not bound again by
each worker with ``SO_REUSEPORT``). Why: a port in use or a port 0 is settled once,
before any worker exists (exit 1 as with one process, and every worker serves the same
ephemeral port); all workers accept from one kernel queue, so a connection waiting there
is taken by whichever worker is free, and one that a dying or draining worker never
accepted is left to the others -- with ``SO_REUSEPORT`` each socket has its own queue,
and the connections queued on a closing worker's socket are reset; and no other process
of the same user can join the port group and receive a share of the connections.

The parent loads and checks every document and builds every app before forking (a bad
document fails with exit 2, an unenforceable authentication block too, nothing forked),
then forks the workers; each runs :class:`~naftiko.runtime.process.Runtime.serve` on an
event loop of its own. The parent runs no event loop and no thread (``fork`` copies only
the calling thread): it waits on a self-pipe fed by ``signal.set_wakeup_fd`` and on a
pipe where each worker says it is ready.

- SIGTERM or SIGINT to the parent: it closes its copies of the listeners and sends
  SIGTERM to every worker; each stops accepting and finishes its in-flight requests
  within the grace period, as one process does; the parent exits 0 once all have
  exited cleanly. A second signal to the parent kills the workers at once (exit 1).
  Workers ignore SIGINT and a repeated SIGTERM, so a Ctrl-C or a SIGTERM sent to the
  whole process group (a terminal, systemd) does not count twice.
- A worker that ends while the pool is serving (killed, crashed) is logged with its
  exit status and forked again from the parent after a delay that doubles with each
  quick failure of that worker slot (from ``RESTART_DELAY_S`` to ``MAX_RESTART_DELAY_S``;
  back to the first once a worker has lived ``STABLE_S``). A worker that fails before
  it is first ready stops the start (exit 1), as a failed start does with one process.
- A worker whose parent is gone (killed outright) stops by itself.

Metrics. Each worker keeps its own families (the lock-free loop series) and publishes a
snapshot of its samples to a private directory every ``PUBLISH_INTERVAL_S`` and when it
stops. ``/metrics`` answers with the answering worker's live samples plus the others'
latest snapshots: counters and histograms summed over workers, gauges as the answering
worker has them (every worker serves the same documents). When a worker ends, the parent
folds its last snapshot into the retired totals, so counters never go back (a worker
killed outright loses what it counted after its last snapshot). prometheus_client's own
multiprocess mode is not used: it would route every increment through a locked,
memory-mapped value and does not cover the loop families. ``/status`` lists each live
worker (pid, up since, requests served) and which one answered.

``--reload``: each worker watches the files and swaps the new version in itself (the
same no-drop swap as one process); a worker forked again after a crash starts from the
parent's load-time view of the files and reloads what changed since.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import os
import select
import shutil
import signal
import struct
import tempfile
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from prometheus_client import CollectorRegistry, Metric, generate_latest

from naftiko.runtime import heap
from naftiko.runtime.logs import flush_logs
from naftiko.runtime.process import EXIT_FAILURE, EXIT_OK, Runtime
from naftiko.runtime.reload import FileWatcher, FolderWatcher
from naftiko.runtime.traces import stop_tracing
from naftiko.spec.loader import discover

log = logging.getLogger("naftiko.runtime")

PUBLISH_INTERVAL_S = 1.0
RESTART_DELAY_S = 0.5
MAX_RESTART_DELAY_S = 30.0
STABLE_S = 30.0
# Beyond the grace period: the time a draining worker gets before it is killed.
KILL_MARGIN_S = 5.0
SUMMED_TYPES = frozenset({"counter", "histogram", "summary"})
RETIRED = "retired.json"
_READY = struct.Struct("=ii")  # (slot index, pid): one atomic pipe write

Families = list[dict[str, Any]]


# ---------------------------------------------------------------------------- metrics


def snapshot_families(registry: CollectorRegistry) -> Families:
    """The registry's samples as JSON-ready families."""
    return [
        {
            "name": m.name,
            "type": m.type,
            "help": m.documentation,
            "unit": m.unit,
            "samples": [[s.name, s.labels, s.value] for s in m.samples],
        }
        for m in registry.collect()
    ]


def merge_families(own: Families, others: Iterable[Families], *, gauges: bool = True) -> Families:
    """``own`` plus the counters and histograms of ``others`` summed in (``_created``:
    the earliest). Gauges are ``own``'s only; ``gauges=False`` drops them altogether."""
    merged: dict[str, dict[str, Any]] = {}

    def entry(family: dict[str, Any]) -> dict[str, Any]:
        found = merged.get(family["name"])
        if found is None:
            found = {k: family[k] for k in ("name", "type", "help", "unit")}
            found["values"] = {}
            merged[family["name"]] = found
        return found

    def add(family: dict[str, Any]) -> None:
        values = entry(family)["values"]
        for name, labels, value in family["samples"]:
            key = (name, tuple(sorted(labels.items())))
            if key not in values:
                values[key] = value
            elif name.endswith("_created"):
                values[key] = min(values[key], value)
            else:
                values[key] += value

    for family in own:
        if gauges or family["type"] in SUMMED_TYPES:
            add(family)
    for families in others:
        for family in families:
            if family["type"] in SUMMED_TYPES:
                add(family)
    return [
        {
            **{k: e[k] for k in ("name", "type", "help", "unit")},
            "samples": [
                [name, dict(labels), value] for (name, labels), value in e["values"].items()
            ],
        }
        for e in merged.values()
    ]


class _Families:
    """A collector yielding fixed families, for ``generate_latest``."""

    def __init__(self, families: Families) -> None:
        self.families = families

    def collect(self) -> Iterable[Metric]:
        for family in self.families:
            metric = Metric(family["name"], family["help"], family["type"], family["unit"])
            for name, labels, value in family["samples"]:
                metric.add_sample(name, labels, value)
            yield metric


def exposition(families: Families) -> bytes:
    registry = CollectorRegistry(auto_describe=False)
    registry.register(_Families(families))
    return generate_latest(registry)


def _read_json(path: Path) -> Any:
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):  # gone (its worker ended) or being replaced
        return None


def _write_json(path: Path, value: Any) -> None:
    partial = path.with_name(f".{path.name}.{os.getpid()}")
    partial.write_text(json.dumps(value), encoding="utf-8")
    os.replace(partial, path)


def _requests(families: Families) -> int:
    return int(
        sum(
            value
            for family in families
            if family["name"] == "naftiko_requests"
            for name, _labels, value in family["samples"]
            if name == "naftiko_requests_total"
        )
    )


def _iso(seconds: float) -> str:
    return time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(seconds))


class WorkerView:
    """What one worker publishes and what its ``/metrics`` and ``/status`` add."""

    def __init__(self, runtime: Runtime, directory: Path, index: int, parent: int) -> None:
        self.runtime = runtime
        self.directory = directory
        self.index = index
        self.pid = os.getpid()
        self.parent = parent
        self.started_at = time.time()
        self.path = directory / f"w-{self.pid}.json"

    def snapshot(self) -> dict[str, Any]:
        return {
            "pid": self.pid,
            "index": self.index,
            "startedAt": self.started_at,
            "families": snapshot_families(self.runtime.metrics.registry),
        }

    def publish(self) -> None:
        with contextlib.suppress(OSError):  # the directory is gone: the pool is ending
            _write_json(self.path, self.snapshot())

    def _siblings(self) -> list[dict[str, Any]]:
        found = []
        for path in sorted(self.directory.glob("w-*.json")):
            if path != self.path:
                value = _read_json(path)
                if isinstance(value, dict):
                    found.append(value)
        return found

    def metrics_exposition(self) -> bytes:
        own = self.snapshot()["families"]
        others = [s["families"] for s in self._siblings()]
        retired = _read_json(self.directory / RETIRED)
        if isinstance(retired, list):
            others.append(retired)
        return exposition(merge_families(own, others))

    def status(self) -> dict[str, Any]:
        workers = [self.snapshot(), *self._siblings()]
        return {
            "worker": {"index": self.index, "pid": self.pid},
            "workers": [
                {
                    "index": w["index"],
                    "pid": w["pid"],
                    "startedAt": _iso(w["startedAt"]),
                    "requests": _requests(w["families"]),
                }
                for w in sorted(workers, key=lambda w: w["index"])
            ],
        }

    async def run(self, stop: Callable[[], None]) -> None:
        """Publish every interval; stop the runtime if the parent is gone."""
        while True:
            self.publish()
            if os.getppid() != self.parent:
                log.error("worker %d: the supervising process is gone; stopping", self.index)
                stop()
                return
            await asyncio.sleep(PUBLISH_INTERVAL_S)


# ---------------------------------------------------------------------------- the pool


@dataclass
class WorkerSlot:
    index: int
    pid: int | None = None
    started: float = 0.0
    ready: bool = False
    ever_ready: bool = False
    failures: int = 0
    restart_at: float | None = None


def restart_delay(failures: int) -> float:
    """Seconds before forking again a worker slot that ended ``failures`` times in a row
    (each within ``STABLE_S`` of its start): doubling, capped, so a worker that cannot
    live does not turn into a busy loop of forks and logs."""
    return min(MAX_RESTART_DELAY_S, RESTART_DELAY_S * 2 ** (failures - 1))


def describe_status(status: int) -> str:
    if os.WIFSIGNALED(status):
        signum = os.WTERMSIG(status)
        try:
            return f"killed by {signal.Signals(signum).name}"
        except ValueError:
            return f"killed by signal {signum}"
    return f"exit code {os.waitstatus_to_exitcode(status)}"


class WorkerPool:
    """Forks, supervises and stops the workers of one bound, prepared runtime."""

    SIGNALS = (signal.SIGTERM, signal.SIGINT, signal.SIGCHLD)

    def __init__(
        self,
        runtime: Runtime,
        count: int,
        *,
        warnings: Iterable[str] = (),
        loop_factory: Callable[[], asyncio.AbstractEventLoop] | None = None,
    ) -> None:
        self.runtime = runtime
        self.slots = [WorkerSlot(i + 1) for i in range(count)]
        self.warnings = list(warnings)
        self.loop_factory = loop_factory
        self.directory = Path(tempfile.mkdtemp(prefix="naftiko-workers-"))
        if runtime.config.mcp_stateful:
            log.warning(
                "--mcp-stateful with %d workers: an MCP session lives in the worker that "
                "created it, and a request reaching another worker gets 404 (session not "
                "found); use --workers 1, or a balancer with connection affinity",
                count,
            )
        self.stopping = False
        self.signals_seen = 0
        self._kill_armed = False
        self.exit_code = EXIT_OK
        self._retired: Families = []
        if runtime.config.reload:
            # Taken before any worker exists: one forked again later reloads what
            # changed since the documents were loaded, as its siblings did.
            paths = runtime.config.paths
            runtime.watch_baseline = (
                FileWatcher(runtime.capabilities)
                if runtime.gateway is None
                else FolderWatcher(lambda: discover(paths))
            )

    # -------------------------------------------------------------- parent

    def run(self) -> int:
        """Fork every worker, supervise until stopped; the exit code."""
        wake_r, wake_w = os.pipe()
        ready_r, ready_w = os.pipe()
        for fd in (wake_r, wake_w, ready_r):
            os.set_blocking(fd, False)
        self._fds = (wake_r, wake_w, ready_r, ready_w)
        # The loaded documents and built apps move to the permanent generation before
        # the fork: the workers' collections never walk (and so never copy) those pages.
        heap.after_startup()
        previous = {s: signal.signal(s, lambda *_: None) for s in self.SIGNALS}
        old_wakeup = signal.set_wakeup_fd(wake_w)
        try:
            for slot in self.slots:
                self._fork(slot)
            self._supervise(wake_r, ready_r)
        finally:
            signal.set_wakeup_fd(old_wakeup)
            for signum, handler in previous.items():
                signal.signal(signum, handler)
            for fd in self._fds:
                os.close(fd)
            shutil.rmtree(self.directory, ignore_errors=True)
        log.info("all workers stopped", extra={"event": "stopped", "exit_code": self.exit_code})
        return self.exit_code

    def _supervise(self, wake_r: int, ready_r: int) -> None:
        announced = False
        kill_at: float | None = None
        while any(s.pid is not None for s in self.slots) or (
            not self.stopping and any(s.restart_at is not None for s in self.slots)
        ):
            now = time.monotonic()
            due = [s.restart_at for s in self.slots if s.restart_at is not None]
            timeout = min([1.0, *(max(0.0, d - now) for d in due)])
            if kill_at is not None:
                timeout = min(timeout, max(0.0, kill_at - now))
            readable, _, _ = select.select([wake_r, ready_r], [], [], timeout)
            if wake_r in readable:
                with contextlib.suppress(BlockingIOError):
                    for signum in os.read(wake_r, 64):
                        if signum in (signal.SIGTERM, signal.SIGINT):
                            self._on_stop_signal(signal.Signals(signum))
            if ready_r in readable:
                self._read_ready(ready_r)
            self._reap()
            if self.stopping and kill_at is None and self._kill_armed:
                kill_at = time.monotonic() + self.runtime.config.grace_period_s + KILL_MARGIN_S
                self._kill_armed = False
            if not announced and all(s.ready for s in self.slots) and not self.stopping:
                announced = True
                pids = ", ".join(str(s.pid) for s in self.slots)
                log.info(
                    "%d workers ready (pids %s)",
                    len(self.slots),
                    pids,
                    extra={"event": "workers", "pids": [s.pid for s in self.slots]},
                )
            now = time.monotonic()
            if not self.stopping:
                for slot in self.slots:
                    if slot.restart_at is not None and slot.restart_at <= now:
                        slot.restart_at = None
                        self._fork(slot)
            elif kill_at is not None and now >= kill_at:
                for slot in self.slots:
                    if slot.pid is not None:
                        log.error(
                            "worker %d (pid %d) still running after the grace period; killing",
                            slot.index,
                            slot.pid,
                        )
                        with contextlib.suppress(ProcessLookupError):
                            os.kill(slot.pid, signal.SIGKILL)
                self.exit_code = EXIT_FAILURE
                kill_at = None

    def _on_stop_signal(self, signum: signal.Signals) -> None:
        self.signals_seen += 1
        if self.signals_seen == 1:
            log.info(
                "%s received: stopping %d workers (in-flight requests get up to %gs)",
                signum.name,
                sum(1 for s in self.slots if s.pid is not None),
                self.runtime.config.grace_period_s,
            )
            self._stop_all()
        else:
            log.warning(
                "second %s: the workers exit now, without waiting for requests", signum.name
            )
            self.exit_code = EXIT_FAILURE
            self._signal_all(signal.SIGKILL)

    def _stop_all(self) -> None:
        if self.stopping:
            return
        self.stopping, self._kill_armed = True, True
        for slot in self.slots:
            slot.restart_at = None
        # Our copies closed, each listener ends with the last worker's copy.
        for served in self.runtime.served:
            if served.sock is not None:
                served.sock.close()
        self._signal_all()

    def _signal_all(self, signum: signal.Signals = signal.SIGTERM) -> None:
        for slot in self.slots:
            if slot.pid is not None:
                with contextlib.suppress(ProcessLookupError):
                    os.kill(slot.pid, signum)

    def _read_ready(self, ready_r: int) -> None:
        with contextlib.suppress(BlockingIOError):
            data = os.read(ready_r, _READY.size * 64)
            for offset in range(0, len(data) - len(data) % _READY.size, _READY.size):
                index, pid = _READY.unpack_from(data, offset)
                slot = self.slots[index - 1]
                if slot.pid == pid:
                    slot.ready = slot.ever_ready = True

    def _reap(self) -> None:
        while True:
            try:
                pid, status = os.waitpid(-1, os.WNOHANG)
            except ChildProcessError:
                return
            if pid == 0:
                return
            slot = next((s for s in self.slots if s.pid == pid), None)
            if slot is None:
                continue
            slot.pid, slot.ready = None, False
            self._retire(pid)
            how = describe_status(status)
            if self.stopping:
                if status != 0:
                    self.exit_code = EXIT_FAILURE
                log.info("worker %d (pid %d) stopped: %s", slot.index, pid, how)
                continue
            if not slot.ever_ready:
                log.error("worker %d (pid %d) failed to start: %s; stopping", slot.index, pid, how)
                self.exit_code = EXIT_FAILURE
                self._stop_all()
                continue
            lived = time.monotonic() - slot.started
            slot.failures = 1 if lived >= STABLE_S else slot.failures + 1
            delay = restart_delay(slot.failures)
            log.error(
                "worker %d (pid %d) ended unexpectedly: %s; restarting it in %gs",
                slot.index,
                pid,
                how,
                delay,
                extra={"event": "worker", "worker": slot.index, "pid": pid, "ended": how},
            )
            slot.restart_at = time.monotonic() + delay

    def _retire(self, pid: int) -> None:
        """Fold an ended worker's last snapshot into the retired totals."""
        path = self.directory / f"w-{pid}.json"
        snapshot = _read_json(path)
        if isinstance(snapshot, dict):
            self._retired = merge_families(self._retired, [snapshot["families"]], gauges=False)
            with contextlib.suppress(OSError):
                _write_json(self.directory / RETIRED, self._retired)
        with contextlib.suppress(OSError):
            path.unlink()

    def _fork(self, slot: WorkerSlot) -> None:
        flush_logs()
        parent = os.getpid()
        pid = os.fork()
        if pid == 0:  # pragma: no cover - runs in the worker (measured by the e2e tests)
            self._worker(slot.index, parent)
        slot.pid, slot.started, slot.ready = pid, time.monotonic(), False
        log.info(
            "worker %d started (pid %d)",
            slot.index,
            pid,
            extra={"event": "worker", "worker": slot.index, "pid": pid},
        )

    # -------------------------------------------------------------- worker

    def _worker(self, index: int, parent: int) -> None:  # pragma: no cover - in the worker
        code = EXIT_FAILURE
        try:
            signal.set_wakeup_fd(-1)
            for signum in (signal.SIGTERM, signal.SIGCHLD):
                signal.signal(signum, signal.SIG_DFL)
            signal.signal(signal.SIGINT, signal.SIG_IGN)
            wake_r, wake_w, ready_r, ready_w = self._fds
            for fd in (wake_r, wake_w, ready_r):
                os.close(fd)
            code = self._serve(index, parent, ready_w)
        except BaseException:
            log.exception("worker %d failed", index)
        finally:
            stop_tracing()  # os._exit skips the SDK's exit hook: export what is pending
            flush_logs()
            os._exit(code)

    def _serve(self, index: int, parent: int, ready_w: int) -> int:  # pragma: no cover
        runtime = self.runtime
        runtime.started_at, runtime._started_mono = time.time(), time.monotonic()
        runtime.stop_signals = (signal.SIGTERM,)
        # A process-group SIGTERM (systemd, ``timeout``) reaches a worker besides the
        # one the parent passes on: that must not cut the drain short.
        runtime.exit_on_second_signal = False
        view = WorkerView(runtime, self.directory, index, parent)
        runtime.worker = view

        def ready() -> None:
            view.publish()
            os.write(ready_w, _READY.pack(index, view.pid))

        runtime.on_ready = ready

        async def main() -> int:
            publisher = asyncio.create_task(view.run(runtime.request_stop))
            try:
                return await runtime.serve(self.warnings)
            finally:
                publisher.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await publisher
                view.publish()

        with asyncio.Runner(loop_factory=self.loop_factory) as runner:
            return runner.run(main())


def serve_workers(
    runtime: Runtime,
    count: int,
    *,
    warnings: Iterable[str] = (),
    loop_factory: Callable[[], asyncio.AbstractEventLoop] | None = None,
) -> int:
    """Serve the prepared, bound ``runtime`` with ``count`` worker processes."""
    return WorkerPool(runtime, count, warnings=warnings, loop_factory=loop_factory).run()
