"""Swapping the app behind a running server, and noticing that a document changed.

uvicorn keeps the app object it was given for its whole life. :class:`SwappableApp` is
that object: it forwards every request to the current :class:`AppGeneration`, counts
requests in flight per generation, and lets a reload put a new generation in place
while the old one finishes what it started. Each generation's own ASGI lifespan (the
MCP session manager lives there) is driven by :class:`LifespanDriver`, because uvicorn
only ever sends lifespan events to the outer app.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Callable, Iterable, Iterator
from pathlib import Path
from typing import Any

from starlette.types import ASGIApp, Message, Receive, Scope, Send

log = logging.getLogger("naftiko.runtime")


class LifespanDriver:
    """Runs an ASGI app's lifespan protocol outside a server (startup, later shutdown)."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app
        self.state: dict[str, Any] = {}
        self._to_app: asyncio.Queue[Message] = asyncio.Queue()
        self._from_app: asyncio.Queue[Message] = asyncio.Queue()
        self._task: asyncio.Task[None] | None = None
        self._supported = True
        self._answered = False

    async def _send(self, message: Message) -> None:
        if message["type"].startswith("lifespan.startup."):
            self._answered = True
        await self._from_app.put(message)

    async def _run(self) -> None:
        scope = {
            "type": "lifespan",
            "asgi": {"version": "3.0", "spec_version": "2.0"},
            "state": self.state,
        }
        try:
            await self.app(scope, self._to_app.get, self._send)
        except Exception as exc:
            if self._answered:
                raise
            # An app without lifespan support raises on the scope before answering;
            # like uvicorn's "auto" mode, that means "nothing to start".
            log.debug("app has no lifespan: %r", exc)
            self._supported = False
            await self._from_app.put({"type": "lifespan.startup.complete"})

    async def _expect(self, *types: str) -> Message:
        assert self._task is not None
        getter = asyncio.ensure_future(self._from_app.get())
        await asyncio.wait({getter, self._task}, return_when=asyncio.FIRST_COMPLETED)
        if getter.done():
            return getter.result()
        getter.cancel()
        exc = self._task.exception()
        raise RuntimeError(f"app lifespan ended before {types[0]}: {exc!r}") from exc

    async def startup(self) -> None:
        self._task = asyncio.create_task(self._run(), name="naftiko-lifespan")
        await self._to_app.put({"type": "lifespan.startup"})
        message = await self._expect("lifespan.startup.complete", "lifespan.startup.failed")
        if message["type"] == "lifespan.startup.failed":
            with contextlib.suppress(Exception):  # the app re-raises after answering
                await self._task
            raise RuntimeError(f"app failed to start: {message.get('message', '')}")

    async def shutdown(self) -> None:
        if self._task is None or self._task.done() or not self._supported:
            return
        await self._to_app.put({"type": "lifespan.shutdown"})
        try:
            message = await self._expect("lifespan.shutdown.complete")
            if message["type"] == "lifespan.shutdown.failed":
                log.warning("app shutdown failed: %s", message.get("message", ""))
        except RuntimeError as exc:
            log.warning("%s", exc)
        with contextlib.suppress(Exception):
            await asyncio.wait_for(self._task, timeout=5)


class AppGeneration:
    """One built app plus its lifespan and the count of requests it is serving.

    Per request this costs a counter and, only when the app's lifespan put something in
    its state, that state's copy: the idle event exists only while someone waits for it.
    """

    def __init__(self, app: ASGIApp, label: str = "") -> None:
        self.app = app
        self.label = label
        self.lifespan = LifespanDriver(app)
        self.in_flight = 0
        self._idle: asyncio.Event | None = None  # set when in_flight drops to 0

    async def start(self) -> None:
        await self.lifespan.startup()

    async def stop(self) -> None:
        await self.lifespan.shutdown()

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        self.enter(scope)
        try:
            await self.app(scope, receive, send)
        finally:
            self.leave()

    def enter(self, scope: Scope) -> None:
        """Count a request in; give it this generation's lifespan state (Starlette's
        ``request.state``), a copy per request as uvicorn does for its own."""
        if scope["type"] in ("http", "websocket"):
            state = self.lifespan.state
            # The server's scope is fresh per request; an empty state needs no new dict.
            if state or not isinstance(scope.get("state"), dict):
                scope["state"] = dict(state)
        self.in_flight += 1

    def leave(self) -> None:
        """Count a request out; wake :meth:`drained` waiters when none is left."""
        self.in_flight -= 1
        if self.in_flight == 0 and self._idle is not None:
            self._idle.set()
            self._idle = None

    @contextlib.contextmanager
    def hold(self) -> Iterator[None]:
        """Count work that reaches this generation's engine by another way than its app
        (the gateway's aggregate ``/mcp`` calls a member's handlers directly)."""
        self.in_flight += 1
        try:
            yield
        finally:
            self.leave()

    async def drained(self, timeout_s: float) -> bool:
        """Wait until nothing is in flight; False when ``timeout_s`` ran out first."""
        if self.in_flight == 0:
            return True
        if self._idle is None:
            self._idle = asyncio.Event()
        try:
            await asyncio.wait_for(self._idle.wait(), timeout=timeout_s)
        except TimeoutError:
            return False
        return True


class SwappableApp:
    """The ASGI app given to uvicorn; the lifespan it receives drives the current
    generation's, so uvicorn's graceful shutdown order is kept (drain, then close)."""

    def __init__(self, generation: AppGeneration) -> None:
        self.current = generation

    def swap(self, generation: AppGeneration) -> AppGeneration:
        """Route new requests to ``generation`` (already started); return the old one."""
        old, self.current = self.current, generation
        return old

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "lifespan":
            await self._lifespan(receive, send)
            return
        # ``AppGeneration.__call__`` inlined: one coroutine frame less on every request.
        generation = self.current
        generation.enter(scope)
        try:
            await generation.app(scope, receive, send)
        finally:
            generation.leave()

    async def _lifespan(self, receive: Receive, send: Send) -> None:
        while True:
            message = await receive()
            if message["type"] == "lifespan.startup":
                try:
                    await self.current.start()
                except Exception as exc:
                    log.error("adapter failed to start: %s", exc)
                    await send({"type": "lifespan.startup.failed", "message": str(exc)})
                    return
                await send({"type": "lifespan.startup.complete"})
            elif message["type"] == "lifespan.shutdown":
                await self.current.stop()
                await send({"type": "lifespan.shutdown.complete"})
                return


class FileWatcher:
    """Polls modification times (no inotify dependency); reports changed files."""

    def __init__(self, paths: Iterable[Path]) -> None:
        self._stamps: dict[Path, tuple[int, int] | None] = {p: self._stamp(p) for p in paths}

    @staticmethod
    def _stamp(path: Path) -> tuple[int, int] | None:
        try:
            st = path.stat()
        except OSError:
            return None
        return (st.st_mtime_ns, st.st_size)

    def changed(self) -> list[Path]:
        changed = []
        for path, old in self._stamps.items():
            new = self._stamp(path)
            if new != old:
                self._stamps[path] = new
                if new is not None:  # a file being replaced may vanish for a moment
                    changed.append(path)
        return changed

    async def watch(
        self, on_change: Callable[[Path], Any], interval_s: float, stop: asyncio.Event
    ) -> None:
        """Call ``on_change(path)`` (awaited when it returns an awaitable) until ``stop``."""
        while not stop.is_set():
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(stop.wait(), timeout=interval_s)
            if stop.is_set():
                return
            for path in self.changed():
                try:
                    outcome = on_change(path)
                    if asyncio.iscoroutine(outcome):
                        await outcome
                except Exception:
                    log.exception("reload of %s failed", path)


class FolderWatcher:
    """Polls the files a listing gives (the documents under watched folders): reports
    those added or changed, and those gone from the listing."""

    def __init__(self, list_files: Callable[[], Iterable[Path]]) -> None:
        self._list = list_files
        self._stamps: dict[Path, tuple[int, int] | None] = {
            p: FileWatcher._stamp(p) for p in list_files()
        }

    def changes(self) -> list[tuple[Path, bool]]:
        """``(path, removed)`` for every file added, changed or removed since last time."""
        try:
            current = list(dict.fromkeys(self._list()))
        except OSError as exc:  # a watched folder itself vanished for a moment
            log.warning("cannot list the watched folders: %s", exc)
            return []
        out: list[tuple[Path, bool]] = []
        for path in current:
            new = FileWatcher._stamp(path)
            if new is None:  # listed, then gone: the next poll sees it removed
                continue
            if self._stamps.get(path) != new:
                self._stamps[path] = new
                out.append((path, False))
        listed = set(current)
        for path in [p for p in self._stamps if p not in listed]:
            del self._stamps[path]
            out.append((path, True))
        return out

    async def watch(
        self, on_change: Callable[[Path, bool], Any], interval_s: float, stop: asyncio.Event
    ) -> None:
        """Await ``on_change(path, removed)`` for every change, until ``stop``."""
        while not stop.is_set():
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(stop.wait(), timeout=interval_s)
            if stop.is_set():
                return
            for path, removed in self.changes():
                try:
                    await on_change(path, removed)
                except Exception:
                    log.exception("reload of %s failed", path)
