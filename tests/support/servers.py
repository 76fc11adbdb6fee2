"""Real loopback servers for end-to-end tests: uvicorn in-loop or in a thread, free ports.

Tests talk to real sockets rather than ASGI transports because the runtime's behaviour
on timeouts, resets and connection reuse only shows over TCP.
"""

from __future__ import annotations

import asyncio
import contextlib
import socket
import threading
import time
from collections.abc import AsyncIterator, Callable, Iterator
from contextlib import AbstractAsyncContextManager, asynccontextmanager
from dataclasses import dataclass
from typing import Any, Generic, Literal, TypeVar

import httpx
import uvicorn
from starlette.types import ASGIApp

LOOPBACK = "127.0.0.1"
# A guard against a broken server hanging the suite, not an expectation about speed.
STARTUP_TIMEOUT_S = 15.0

T = TypeVar("T")


@dataclass(frozen=True)
class LiveFake(Generic[T]):
    """A running fake: where it listens and the state it records and is tuned by."""

    url: str
    state: T


class _TestServer(uvicorn.Server):
    """uvicorn without signal capture.

    Several servers share one loop in tests; each one installing and later restoring
    SIGINT/SIGTERM handlers would restore them out of order and swallow Ctrl+C.
    """

    @contextlib.contextmanager
    def capture_signals(self) -> Iterator[None]:
        yield


def _url(host: str, port: int) -> str:
    return f"http://[{host}]:{port}" if ":" in host else f"http://{host}:{port}"


async def _serve(server: uvicorn.Server) -> None:
    try:
        await server.serve()
    except SystemExit as exc:  # uvicorn exits the process when lifespan startup fails
        raise RuntimeError(f"ASGI app failed to start (uvicorn exit code {exc.code})") from None


@asynccontextmanager
async def serve_asgi(
    app: ASGIApp,
    *,
    host: str = LOOPBACK,
    port: int = 0,
    lifespan: Literal["on", "off", "auto"] = "on",
    graceful_shutdown_s: float = 2.0,
) -> AsyncIterator[str]:
    """Run ``app`` on a real uvicorn server inside the running loop; yield its base URL.

    ``graceful_shutdown_s`` bounds how long teardown waits for requests still in flight
    (a fake told to hang), after which uvicorn cancels them.
    """
    config = uvicorn.Config(
        app,
        host=host,
        port=port,
        lifespan=lifespan,
        log_level="warning",
        access_log=False,
        timeout_graceful_shutdown=graceful_shutdown_s,
    )
    server = _TestServer(config)
    task = asyncio.create_task(_serve(server), name=f"uvicorn-{host}")
    try:
        deadline = time.monotonic() + STARTUP_TIMEOUT_S
        while not server.started:
            if task.done():
                task.result()  # raises the startup failure
                raise RuntimeError("uvicorn stopped before it started")
            if time.monotonic() > deadline:
                raise TimeoutError(f"uvicorn did not start within {STARTUP_TIMEOUT_S}s")
            await asyncio.sleep(0.005)
        bound = server.servers[0].sockets[0].getsockname()
        yield _url(host, bound[1])
    finally:
        server.should_exit = True
        with contextlib.suppress(asyncio.CancelledError):
            await task


class BackgroundServer:
    """Run an async server context manager in a thread with its own event loop.

    For sync tests and subprocess-driven tests, where nothing drives the test's loop
    while the server must answer. Use as a context manager; ``.url`` is the base URL.
    """

    def __init__(self, factory: Callable[[], AbstractAsyncContextManager[str]]) -> None:
        self._factory = factory
        self._ready = threading.Event()
        self._loop: asyncio.AbstractEventLoop | None = None
        self._stop: asyncio.Event | None = None
        self._error: BaseException | None = None
        self._thread: threading.Thread | None = None
        self.url = ""

    def _run(self) -> None:
        async def main() -> None:
            self._loop = asyncio.get_running_loop()
            self._stop = asyncio.Event()
            async with self._factory() as url:
                self.url = url
                self._ready.set()
                await self._stop.wait()

        try:
            asyncio.run(main())
        except BaseException as exc:  # reported to the starting thread
            self._error = exc
        finally:
            self._ready.set()

    def start(self) -> str:
        self._thread = threading.Thread(target=self._run, name="test-server", daemon=True)
        self._thread.start()
        if not self._ready.wait(STARTUP_TIMEOUT_S):
            raise TimeoutError(f"server thread did not start within {STARTUP_TIMEOUT_S}s")
        if self._error is not None:
            raise RuntimeError("server thread failed to start") from self._error
        return self.url

    def stop(self) -> None:
        if self._thread is None:
            return
        if self._loop is not None and self._stop is not None and not self._loop.is_closed():
            with contextlib.suppress(RuntimeError):  # loop already gone
                self._loop.call_soon_threadsafe(self._stop.set)
        self._thread.join(STARTUP_TIMEOUT_S)
        self._thread = None

    def __enter__(self) -> BackgroundServer:
        self.start()
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.stop()


class ServerThread(BackgroundServer):
    """``serve_asgi`` in a background thread: ``with ServerThread(app) as s: s.url``."""

    def __init__(self, app: ASGIApp, *, host: str = LOOPBACK, **options: Any) -> None:
        super().__init__(lambda: serve_asgi(app, host=host, **options))


def free_port(host: str = LOOPBACK) -> int:
    """A port that was free a moment ago (a process told to bind it may still race)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind((host, 0))
        return int(sock.getsockname()[1])


# Bound but never listening: connecting gives ECONNREFUSED, and nobody else can take the
# port while this process lives, so connection-refused tests cannot hit a stranger.
_HELD: list[socket.socket] = []


def closed_port(host: str = LOOPBACK) -> int:
    """A port on ``host`` where a connection attempt is refused, reliably."""
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.bind((host, 0))
    _HELD.append(sock)
    return int(sock.getsockname()[1])


def wait_for_http(url: str, timeout: float = 15.0, *, interval: float = 0.05) -> httpx.Response:
    """Poll ``url`` with GET until anything answers (any status); return that response.

    For subprocess tests: the process is up once its socket speaks HTTP.
    """
    deadline = time.monotonic() + timeout
    last: Exception | None = None
    while True:
        try:
            return httpx.get(url, timeout=max(interval, 1.0))
        except httpx.TransportError as exc:
            last = exc
        if time.monotonic() >= deadline:
            raise TimeoutError(f"{url} did not answer within {timeout}s: {last!r}")
        time.sleep(interval)
