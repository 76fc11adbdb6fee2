"""The running process: every adapter of every capability on one event loop.

Each HTTP adapter gets its own ``uvicorn.Server`` on a socket we bind ourselves (so a
port in use fails before anything starts, and port 0 is known at once); all servers
share the loop. uvicorn's per-server signal capture is off: one SIGTERM handler of ours
stops every server together, in-flight requests finish (bounded by the grace period),
then the upstream clients close. A second signal exits at once.

The app given to each server is a :class:`~naftiko.runtime.reload.SwappableApp`, so
``--reload`` can put a freshly built model in place without dropping a request.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import platform
import resource
import signal
import socket
import time
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import uvicorn
from starlette.types import ASGIApp

from naftiko import __version__
from naftiko.adapters.control.plan import ControlAdapterPlan
from naftiko.adapters.http.rate_limit import RateLimiter
from naftiko.adapters.http.settings import AdapterSettings
from naftiko.adapters.mcp.plan import McpAdapterPlan
from naftiko.adapters.rest.plan import RestAdapterPlan
from naftiko.adapters.skill.plan import SkillAdapterPlan
from naftiko.errors import LoadTimeError
from naftiko.runtime import heap
from naftiko.runtime.config import RuntimeConfig
from naftiko.runtime.http_protocol import (
    LimitedHttpToolsProtocol,
    ListenerConfig,
    ListenerGuard,
    ListenerServer,
)
from naftiko.runtime.logs import Redactor
from naftiko.runtime.metrics import METRICS_CONTENT_TYPE, Metrics
from naftiko.runtime.placement import (
    PlacedDocument,
    PlacementError,
    Slot,
    adapter_path,
    load_one,
    make_slot,
    serves,
    url_of,
)
from naftiko.runtime.reload import AppGeneration, FileWatcher, SwappableApp
from naftiko.spec.diagnostics import LoadError
from naftiko.upstream.resilience import Resilience

log = logging.getLogger("naftiko.runtime")

STARTED, STARTING, STOPPING, STOPPED = "started", "starting", "stopping", "stopped"
NOT_SERVED, STDIO = "not-served", "stdio"
EXIT_OK, EXIT_FAILURE, EXIT_USAGE = 0, 1, 2


class StartupError(LoadTimeError):
    """Something in the documents or the machine prevents serving; ``code`` is the exit."""

    def __init__(self, message: str, code: int = EXIT_FAILURE) -> None:
        super().__init__(message)
        self.code = code


@dataclass
class Served:
    """One adapter at run time: its slot and whatever serves it."""

    slot: Slot
    app: SwappableApp | None = None
    server: ListenerServer | None = None
    sock: socket.socket | None = None
    port: int | None = None
    state: str = STARTING
    task: asyncio.Task[None] | None = None
    # Gateway mode: the listener this adapter is served on, under ``/prefix``.
    via: Served | None = None
    prefix: str | None = None

    @property
    def listens(self) -> bool:
        """Has a socket and a server of its own (not behind the gateway)."""
        return self.app is not None and self.via is None

    @property
    def url(self) -> str | None:
        if self.slot.is_stdio:
            return "stdio"
        if self.via is not None:
            if self.via.port is None:
                return None
            path = f"/{self.prefix}{adapter_path(self.slot.plan)}"
            return url_of(self.via.slot.host, self.via.port, path)
        if self.port is None:
            return None
        return url_of(self.slot.host, self.port, adapter_path(self.slot.plan))

    def describe(self) -> dict[str, Any]:
        return {
            "type": self.slot.type,
            "namespace": self.slot.namespace,
            "url": self.url,
            "port": self.via.port if self.via is not None else self.port,
            "state": self.state,
        }


def bind_socket(host: str, port: int) -> socket.socket:
    """A bound (not yet listening) TCP socket; uvicorn calls ``listen`` on it."""
    infos = socket.getaddrinfo(host or None, port, type=socket.SOCK_STREAM, flags=socket.AI_PASSIVE)
    family, kind, proto, _, address = infos[0]
    sock = socket.socket(family, kind, proto)
    try:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.bind(address)
    except OSError:
        sock.close()
        raise
    sock.setblocking(False)
    return sock


# Descriptors beyond the listeners' connections: upstream sockets, files, the loop's own.
DESCRIPTOR_RESERVE = 256


def ensure_descriptor_room(listeners: int, max_connections: int) -> str | None:
    """Raise the soft open-files limit so every listener can hold its connection cap.

    A flood on one listener then ends at its cap, not at the process's last descriptor
    (when the other listeners, health included, could no longer accept). The soft limit
    is raised up to the hard one, never past it; returns a warning when that is not
    enough, else ``None``.
    """
    needed = listeners * max_connections + DESCRIPTOR_RESERVE
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft == resource.RLIM_INFINITY or soft >= needed:
        return None
    target = needed if hard == resource.RLIM_INFINITY else min(needed, hard)
    if target > soft:
        with contextlib.suppress(ValueError, OSError):
            resource.setrlimit(resource.RLIMIT_NOFILE, (target, hard))
            soft = target
    if soft >= needed:
        return None
    return (
        f"{listeners} listener(s) x {max_connections} connections (--max-connections) "
        f"need about {needed} file descriptors, and the limit is {soft}: a flood on one "
        f"listener could starve the others; lower --max-connections or raise 'ulimit -n'"
    )


def _iso_duration(seconds: float) -> str:
    return f"PT{seconds:.3f}S"


class Runtime:
    """Builds, serves, reloads and stops the adapters of the loaded capabilities."""

    def __init__(
        self,
        config: RuntimeConfig,
        capabilities: Iterable[PlacedDocument],
        slots: Iterable[Slot],
        *,
        redactor: Redactor,
        metrics: Metrics,
    ) -> None:
        self.config = config
        self.capabilities: dict[Path, PlacedDocument] = {c.path: c for c in capabilities}
        self.served = [Served(slot) for slot in slots]
        self.redactor = redactor
        self.metrics = metrics
        self.engine_settings = config.engine_settings()
        # One set of breakers, bulkheads and retry budgets per consumed namespace, shared
        # by every engine (a reloaded document keeps its namespace's circuit).
        self.resilience = Resilience(self.engine_settings.resilience)
        self.engines: dict[Path, Any] = {}
        self.started_at = time.time()
        self._started_mono = time.monotonic()
        self._stop = asyncio.Event()
        self._stopping = False
        self._exit_code = EXIT_OK
        self._background: set[asyncio.Task[Any]] = set()
        self.metrics.capabilities.set(len(self.capabilities))
        self.gateway: Any = None  # naftiko.runtime.gateway.GatewayParts in gateway mode
        # ``--reload`` in gateway mode: files found under a watched folder and not served
        # (they do not load, or their namespace clashes), with why.
        self.refused: dict[Path, str] = {}
        # Set in a worker process (``naftiko.runtime.workers``): the signals it stops on
        # (a repeated one is ignored there: the parent escalates with SIGKILL), a hook
        # told when it is ready, its part of /status and /metrics, and the file stamps
        # its ``--reload`` watcher starts from (the parent's, taken at load time).
        self.stop_signals: tuple[signal.Signals, ...] = (signal.SIGTERM, signal.SIGINT)
        self.exit_on_second_signal = True
        self.on_ready: Any = None
        self.worker: Any = None
        self.watch_baseline: Any = None  # a FileWatcher, or a FolderWatcher (gateway)
        # One limiter for every adapter (and every reload): the buckets outlive documents.
        self.rate_limiter: RateLimiter | None = None
        if config.rate_limits.enabled:
            self.rate_limiter = RateLimiter(
                config.rate_limits,
                on_limited=lambda kind, ns: metrics.rate_limited.labels(kind, ns).inc(),
                on_fallback=metrics.rate_limit_fallbacks.inc,
            )
        elif config.rate_limits.redis_url:
            log.warning("--redis/NAFTIKO_REDIS_URL is set but no rate limit is: it is not used")

    def adapter_settings(self, host: str | None) -> AdapterSettings:
        """The config's adapter settings with this runtime's rate limiter."""
        settings = self.config.adapter_settings(host)
        if self.rate_limiter is None:
            return settings
        return replace(settings, rate_limiter=self.rate_limiter)

    # ------------------------------------------------------------------ ControlState

    def adapter_states(self) -> list[dict[str, Any]]:
        return [s.describe() for s in self.served]

    def is_ready(self) -> bool:
        """Every adapter we serve over HTTP listens, and we are not shutting down."""
        if self._stopping:
            return False
        return all(s.state in (STARTED, NOT_SERVED, STDIO) for s in self.served)

    def status_document(self) -> dict[str, Any]:
        """Names, files, versions and states; never a bind value or a credential."""
        uptime = time.monotonic() - self._started_mono
        return {
            "status": "UP" if self.is_ready() else "DEGRADED",
            "naftiko": {
                "version": __version__,
                "python": platform.python_version(),
                "implementation": platform.python_implementation(),
            },
            "startedAt": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(self.started_at)),
            "uptime": _iso_duration(uptime),
            "uptimeSeconds": round(uptime, 3),
            "capabilities": [
                {
                    "label": c.label,
                    "file": str(c.path),
                    "specVersion": c.spec_version,
                    **({"version": c.version} if c.version is not None else {}),
                    "state": "degraded" if c.problems else "ok",
                    **({"reason": c.problems} if c.problems else {}),
                }
                for c in self.capabilities.values()
            ],
            **(
                {"refused": [{"file": str(p), "reason": r} for p, r in self.refused.items()]}
                if self.refused
                else {}
            ),
            "adapters": self.adapter_states(),
            **(self.worker.status() if self.worker is not None else {}),
            **(
                {"rateLimits": self.rate_limiter.describe()}
                if self.rate_limiter is not None
                else {}
            ),
            "upstreams": self.resilience.states(),
        }

    def metrics_exposition(self) -> tuple[bytes, str]:
        if self.worker is not None:  # summed over the workers
            return self.worker.metrics_exposition(), METRICS_CONTENT_TYPE
        return self.metrics.exposition(), METRICS_CONTENT_TYPE

    # ------------------------------------------------------------------ building

    def _new_engine(self, capability: PlacedDocument) -> Any:
        if capability.degraded:
            from naftiko.runtime.gateway import DegradedEngine

            return DegradedEngine(capability.compiled, self.engine_settings, capability.degraded)
        from naftiko.engine.invoke import Engine

        return Engine(capability.compiled, self.engine_settings, resilience=self.resilience)

    def build_app(self, slot: Slot, engine: Any) -> ASGIApp | None:
        """The ASGI app of one HTTP adapter; ``None`` when this build cannot serve it."""
        plan, settings = slot.plan, self.adapter_settings(slot.host)
        bindings = slot.capability.loaded.bindings if slot.capability else None
        info = slot.capability.loaded.document.info if slot.capability else None
        if isinstance(plan, ControlAdapterPlan):
            from naftiko.adapters.control.app import build_control_app

            return build_control_app(self, plan, settings, bindings=bindings)
        if isinstance(plan, RestAdapterPlan):
            from naftiko.adapters.rest.app import build_rest_app

            return build_rest_app(engine, plan, settings, bindings=bindings, info=info)
        if isinstance(plan, McpAdapterPlan):
            from naftiko.adapters.mcp.server import build_mcp_app

            return build_mcp_app(engine, plan, settings, bindings=bindings)
        if isinstance(plan, SkillAdapterPlan):
            from naftiko.adapters.skill.app import build_skill_app

            return build_skill_app(engine, plan, settings, bindings=bindings)
        return None

    def prepare(self) -> None:
        """Engines and apps for every adapter, before any socket: a document whose
        authentication cannot be enforced fails here, with nothing bound yet."""
        for path, capability in self.capabilities.items():
            self.engines[path] = self._new_engine(capability)
        if self.config.gateway_port is not None:
            from naftiko.runtime.gateway import prepare_gateway

            try:
                self.served.insert(0, prepare_gateway(self, Served))
            except PlacementError as exc:
                raise StartupError("\n".join(exc.lines), exc.code) from None
            return
        for served in self.served:
            slot = served.slot
            if slot.is_stdio:
                served.state = STDIO
                continue
            engine = self.engines.get(slot.capability.path) if slot.capability else None
            try:
                app = self.build_app(slot, engine)
            except ValueError as exc:  # InboundAuthConfigError and friends
                raise StartupError(f"{slot.name()}: {exc}", EXIT_USAGE) from None
            if app is None:
                served.state = NOT_SERVED
                log.warning("%s: %s adapters are not served yet", slot.name(), slot.type)
                continue
            served.app = SwappableApp(AppGeneration(app, slot.name()))

    def bind(self) -> None:
        """Bind every socket up front; the first one in use stops the start (exit 1)."""
        try:
            for served in self.served:
                if not served.listens:
                    continue
                host, port = served.slot.host, int(served.slot.plan.port or 0)
                try:
                    served.sock = bind_socket(host, port)
                except OSError as exc:
                    raise StartupError(
                        f"naftiko-run: cannot listen on {host}:{port} for "
                        f"{served.slot.name()}: {exc.strerror or exc}"
                    ) from None
                served.port = int(served.sock.getsockname()[1])
        except StartupError:
            self.close_sockets()
            raise

    def close_sockets(self) -> None:
        for served in self.served:
            if served.sock is not None and served.state != STARTED:
                served.sock.close()

    # ------------------------------------------------------------------ serving

    def _uvicorn_config(self, app: ASGIApp, name: str = "http") -> uvicorn.Config:
        """uvicorn serving ``app`` as is: no access log, no Server header, no proxy headers.

        ``proxy_headers=False``: uvicorn would otherwise rewrite the scope's client and
        scheme from ``X-Forwarded-For``/``-Proto`` sent by any local peer, on every request.
        Nothing of ours reads either, and trusting a proxy should be configured explicitly.
        The protocol is uvicorn's httptools one enforcing the listener's limits
        (:mod:`naftiko.runtime.http_protocol`): header size and deadline, idle timeout,
        connection cap; the idle timeout is also uvicorn's keep-alive timeout. ``name``
        names the listener in the line logged when it reaches its connection cap.
        """
        return ListenerConfig(
            app,
            guard=ListenerGuard(name, self.config.listener_limits()),
            http=LimitedHttpToolsProtocol,
            lifespan="on",
            log_config=None,
            access_log=False,
            ws="none",
            server_header=False,
            proxy_headers=False,
            timeout_graceful_shutdown=self.config.grace_period_s,
        )

    async def _run_server(self, served: Served) -> None:
        assert served.server is not None and served.sock is not None
        try:
            await served.server.serve(sockets=[served.sock])
        except SystemExit as exc:  # uvicorn exits when lifespan startup fails
            log.error("%s failed to start (uvicorn exit %s)", served.slot.name(), exc.code)
        finally:
            served.state = STOPPED

    def _watch_task(self, task: asyncio.Task[Any], what: str) -> None:
        def done(t: asyncio.Task[Any]) -> None:
            if self._stopping:
                return
            if not t.cancelled() and t.exception() is not None:
                log.error("%s failed: %s", what, t.exception())
            else:
                log.info("%s ended", what)
            self.request_stop(EXIT_FAILURE if what != "stdio MCP session" else EXIT_OK)

        task.add_done_callback(done)

    async def _start_all(self) -> None:
        listeners = sum(1 for s in self.served if s.listens)
        shortage = ensure_descriptor_room(listeners, self.config.max_connections)
        if shortage:
            log.warning("%s", shortage)
        for path, engine in self.engines.items():
            await engine.start()
            log.debug("engine for %s started", path)
        if self.rate_limiter is not None:
            await self.rate_limiter.start()
        for served in self.served:
            if served.listens:
                name = f"{served.slot.type} {served.slot.namespace} (port {served.port})"
                config = self._uvicorn_config(served.app, name)
                served.server = ListenerServer(config)
                served.task = asyncio.create_task(self._run_server(served))
                self._watch_task(served.task, served.slot.name())
            elif served.slot.is_stdio:
                from naftiko.adapters.mcp.server import run_mcp_stdio

                assert served.slot.capability is not None
                engine = self.engines[served.slot.capability.path]
                served.task = asyncio.create_task(run_mcp_stdio(engine, served.slot.plan))
                self._watch_task(served.task, "stdio MCP session")
        while not self._stop.is_set():
            pending = [s for s in self.served if s.server is not None and not s.server.started]
            if not pending:
                break
            for served in pending:
                if served.task is not None and served.task.done():
                    raise StartupError(f"{served.slot.name()} stopped while starting")
            await asyncio.sleep(0.01)
        for served in self.served:
            if served.server is not None and served.server.started:
                served.state = STARTED
        for served in self.served:
            if served.via is not None and served.via.state == STARTED:
                served.state = STARTED

    def request_stop(self, code: int = EXIT_OK) -> None:
        if not self._stop.is_set():
            self._exit_code = code
            self._stop.set()

    def _on_signal(self, signum: int) -> None:
        name = signal.Signals(signum).name
        if self._stopping or self._stop.is_set():
            if not self.exit_on_second_signal:
                return
            log.warning("second %s: exiting now, without waiting for requests", name)
            for handler in logging.getLogger().handlers:
                with contextlib.suppress(Exception):
                    handler.flush()
            os._exit(EXIT_FAILURE)
        log.info(
            "%s received: stopping (in-flight requests get up to %gs)",
            name,
            self.config.grace_period_s,
        )
        self.request_stop(EXIT_OK)

    @contextlib.contextmanager
    def _signals(self) -> Iterator[None]:
        loop = asyncio.get_running_loop()
        installed = []
        for signum in self.stop_signals:
            try:
                loop.add_signal_handler(signum, self._on_signal, signum)
                installed.append(signum)
            except (NotImplementedError, RuntimeError):  # not the main thread
                pass
        try:
            yield
        finally:
            for signum in installed:
                loop.remove_signal_handler(signum)

    def ready_line(self) -> tuple[str, list[dict[str, Any]]]:
        adapters = [
            {"type": s.slot.type, "namespace": s.slot.namespace, "url": s.url}
            for s in self.served
            if s.state in (STARTED, STDIO)
        ]
        text = ", ".join(f"{a['type']} {a['namespace']} {a['url']}" for a in adapters)
        return f"naftiko ready: {text}", adapters

    def log_summary(self, warnings: Iterable[str] = ()) -> None:
        for capability in self.capabilities.values():
            log.info(
                "capability %r from %s (naftiko %s)",
                capability.label,
                capability.path,
                capability.spec_version or "?",
                extra={
                    "event": "capability",
                    "label": capability.label,
                    "file": str(capability.path),
                },
            )
            for diagnostic in capability.warnings:
                log.warning("%s", diagnostic.format(), extra={"event": "diagnostic"})
        for served in self.served:
            items = serves(served.slot.plan)
            log.info(
                "%s %s %s [%s]: %s",
                served.slot.type,
                served.slot.namespace,
                served.url or "-",
                served.state,
                ", ".join(items) or "nothing",
                extra={"event": "adapter", **served.describe(), "serves": items},
            )
        for warning in warnings:
            log.warning("%s", warning)

    async def serve(self, warnings: Iterable[str] = ()) -> int:
        """Run until a signal (or the stdio session ends); return the exit code."""
        with self._signals():
            try:
                await self._start_all()
            except StartupError as exc:
                log.error("%s", exc)
                self.request_stop(exc.code)
            except Exception as exc:  # an engine or adapter that cannot start
                log.error("start failed: %s: %s", type(exc).__name__, exc)
                self.request_stop(EXIT_FAILURE)
            if not self._stop.is_set():
                self.log_summary(warnings)
                text, adapters = self.ready_line()
                log.info("%s", text, extra={"event": "ready", "adapters": adapters})
                if self.on_ready is not None:
                    self.on_ready()
                heap.after_startup()  # GC back on; start-up objects frozen (no-op unless CLI)
                if self.config.reload and self.gateway is not None:
                    from naftiko.runtime.gateway_reload import GatewayReloader

                    reloader = GatewayReloader(self, Served)
                    self._spawn(reloader.watch(self._stop), "folder watcher")
                elif self.config.reload:
                    self._spawn(self._watch_files(), "file watcher")
            await self._stop.wait()
            await self.shutdown()
        return self._exit_code

    async def shutdown(self) -> None:
        """Stop accepting, let requests finish (grace period), then close upstreams."""
        self._stopping = True
        for served in self.served:
            if served.server is not None:
                served.server.should_exit = True
                served.state = STOPPING if served.state == STARTED else served.state
        tasks = [s.task for s in self.served if s.task is not None and s.server is not None]
        stdio = [s.task for s in self.served if s.task is not None and s.server is None]
        started = time.monotonic()
        if tasks:
            await asyncio.gather(*tasks, return_exceptions=True)
        for task in stdio:
            task.cancel()
        for task in list(self._background):
            task.cancel()
        await asyncio.gather(*stdio, *self._background, return_exceptions=True)
        self.close_sockets()
        for engine in self.engines.values():
            with contextlib.suppress(Exception):
                await engine.aclose()
        if self.rate_limiter is not None:
            await self.rate_limiter.aclose()
        log.info(
            "stopped after %.2fs of shutdown",
            time.monotonic() - started,
            extra={"event": "stopped", "exit_code": self._exit_code},
        )

    def _spawn(self, coroutine: Any, what: str) -> asyncio.Task[Any]:
        task = asyncio.create_task(coroutine, name=what)
        self._background.add(task)
        task.add_done_callback(self._background.discard)
        return task

    # ------------------------------------------------------------------ reload

    async def _watch_files(self) -> None:
        watcher = self.watch_baseline or FileWatcher(self.capabilities)
        log.info("watching %d file(s) for changes", len(self.capabilities))
        await watcher.watch(self.reload, self.config.reload_interval_s, self._stop)

    async def reload(self, path: Path) -> bool:
        """Swap in the new version of ``path``; keep the old one when it does not load.

        Returns True when the new model serves. Ports and the set of adapters are fixed
        for the life of the process (sockets are bound): such a change needs a restart.
        """
        old = self.capabilities.get(path)
        if old is None:
            return False
        try:
            new = load_one(path, self.config)
        except LoadError as exc:
            log.error(
                "reload of %s failed; the previous version keeps serving:",
                path,
                extra={"event": "reload", "outcome": "failed"},
            )
            for diagnostic in exc.diagnostics:
                log.error("  %s", diagnostic.format(), extra={"event": "diagnostic"})
            self.metrics.reloads.labels("failed").inc()
            return False
        except Exception as exc:  # a compile defect must not take the old model down
            log.error("reload of %s failed; the previous version keeps serving: %s", path, exc)
            self.metrics.reloads.labels("failed").inc()
            return False
        assert new is not None
        self.redactor.add(new.loaded.bindings.secret_values())
        mine = [s for s in self.served if s.slot.capability is old]
        new_slots = [make_slot(plan, new, self.config) for plan in new.compiled.adapters]

        def shape(slots: Iterable[Slot]) -> list[tuple[Any, ...]]:
            return sorted((s.key, s.declared_port, s.host, s.is_stdio) for s in slots)

        if shape(s.slot for s in mine) != shape(new_slots):
            log.warning(
                "%s changed its adapters or ports; restart naftiko-run to apply (still "
                "serving the previous version)",
                path,
                extra={"event": "reload", "outcome": "restart-needed"},
            )
            self.metrics.reloads.labels("restart-needed").inc()
            return False
        if any(s.slot.is_stdio for s in mine):
            log.warning(
                "%s has a stdio MCP adapter, which cannot be reloaded; restart "
                "naftiko-run to apply",
                path,
            )
            self.metrics.reloads.labels("restart-needed").inc()
            return False
        by_key = {s.key: s for s in new_slots}
        engine = self._new_engine(new)
        generations: dict[int, AppGeneration] = {}
        try:
            await engine.start()
            for index, served in enumerate(self.served):
                if served.slot.capability is old and served.app is not None:
                    app = self.build_app(by_key[served.slot.key], engine)
                    if app is not None:
                        generation = AppGeneration(app, served.slot.name())
                        await generation.start()
                        generations[index] = generation
        except Exception as exc:
            log.error(
                "reload of %s failed while building; the previous version keeps serving: %s",
                path,
                exc,
            )
            for generation in generations.values():
                await generation.stop()
            with contextlib.suppress(Exception):
                await engine.aclose()
            self.metrics.reloads.labels("failed").inc()
            return False
        retired = []
        for index, generation in generations.items():
            served = self.served[index]
            assert served.app is not None
            retired.append(served.app.swap(generation))
            served.slot = by_key[served.slot.key]
        old_engine = self.engines[path]
        self.capabilities[path] = new
        self.engines[path] = engine
        log.info(
            "reloaded %s: %s",
            path,
            "; ".join(
                f"{s.slot.type} {s.slot.namespace}: {', '.join(serves(s.slot.plan))}"
                for s in self.served
                if s.slot.capability is new
            ),
            extra={"event": "reload", "outcome": "ok", "file": str(path)},
        )
        self.metrics.reloads.labels("ok").inc()
        self._spawn(self._retire(retired, old_engine, path), f"retire {path}")
        return True

    async def _retire(self, generations: list[AppGeneration], engine: Any, path: Path) -> None:
        """Close the previous model once its requests are done (or the grace period ends)."""
        try:
            drained = await asyncio.gather(
                *(g.drained(self.config.grace_period_s) for g in generations)
            )
            if not all(drained):
                log.warning(
                    "previous version of %s still had requests after %gs; closing it",
                    path,
                    self.config.grace_period_s,
                )
        finally:
            for generation in generations:
                with contextlib.suppress(Exception):
                    await generation.stop()
            with contextlib.suppress(Exception):
                await engine.aclose()
            del generations, engine
            heap.after_reload()  # the old model's cycles were frozen with it
