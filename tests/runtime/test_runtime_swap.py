"""The reload machinery: swapping apps without dropping a request, lifespans, file polling."""

from __future__ import annotations

import asyncio
import contextlib
import os
from collections.abc import AsyncIterator
from pathlib import Path

import httpx
import pytest
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import PlainTextResponse
from starlette.routing import Route

from naftiko.runtime.reload import AppGeneration, FileWatcher, LifespanDriver, SwappableApp


def make_app(name: str, events: list[str], gate: asyncio.Event | None = None) -> Starlette:
    async def hello(_: Request) -> PlainTextResponse:
        if gate is not None:
            await gate.wait()
        return PlainTextResponse(name)

    @contextlib.asynccontextmanager
    async def lifespan(_: Starlette) -> AsyncIterator[dict[str, str]]:
        events.append(f"{name} up")
        yield {"generation": name}
        events.append(f"{name} down")

    return Starlette(routes=[Route("/", hello)], lifespan=lifespan)


async def test_swap_keeps_in_flight_request_on_the_old_generation() -> None:
    events: list[str] = []
    gate = asyncio.Event()
    old = AppGeneration(make_app("old", events, gate))
    outer = SwappableApp(old)
    await old.start()
    transport = httpx.ASGITransport(app=outer)
    async with httpx.AsyncClient(transport=transport, base_url="http://t") as http:
        slow = asyncio.create_task(http.get("/"))
        while old.in_flight == 0:
            await asyncio.sleep(0)
        new = AppGeneration(make_app("new", events))
        await new.start()
        assert outer.swap(new) is old
        assert (await http.get("/")).text == "new"  # new requests see the new model
        assert not await old.drained(0.01)  # the slow one is still running on the old
        gate.set()
        assert (await slow).text == "old"
        assert await old.drained(1.0)
    await old.stop()
    assert events == ["old up", "new up", "old down"]
    await new.stop()


async def test_request_state_comes_from_the_generation_lifespan() -> None:
    async def show(request: Request) -> PlainTextResponse:
        return PlainTextResponse(request.state.generation)

    @contextlib.asynccontextmanager
    async def lifespan(_: Starlette) -> AsyncIterator[dict[str, str]]:
        yield {"generation": "g1"}

    generation = AppGeneration(Starlette(routes=[Route("/", show)], lifespan=lifespan))
    await generation.start()
    transport = httpx.ASGITransport(app=SwappableApp(generation))
    async with httpx.AsyncClient(transport=transport, base_url="http://t") as http:
        assert (await http.get("/")).text == "g1"
    await generation.stop()


async def test_request_state_is_a_copy_per_request() -> None:
    seen: list[dict[str, object]] = []

    async def app(scope, receive, send) -> None:  # type: ignore[no-untyped-def]
        if scope["type"] == "lifespan":
            await receive()
            scope["state"]["shared"] = "g1"
            await send({"type": "lifespan.startup.complete"})
            return
        seen.append(scope["state"])
        scope["state"]["mine"] = len(seen)  # must not leak into the next request

    generation = AppGeneration(app)
    await generation.start()
    outer = SwappableApp(generation)
    for _ in range(2):
        await outer({"type": "http", "state": {}}, _never_called, _never_called)
    assert seen == [{"shared": "g1", "mine": 1}, {"shared": "g1", "mine": 2}]
    assert generation.lifespan.state == {"shared": "g1"}


async def test_an_empty_lifespan_state_still_gives_every_request_a_state() -> None:
    states: list[object] = []

    async def app(scope, receive, send) -> None:  # type: ignore[no-untyped-def]
        states.append(scope.get("state"))

    outer = SwappableApp(AppGeneration(app))
    await outer({"type": "http"}, _never_called, _never_called)  # a server without state
    await outer({"type": "http", "state": {}}, _never_called, _never_called)
    assert states == [{}, {}]


async def test_drained_waits_for_every_request_and_wakes_all_waiters() -> None:
    gate = asyncio.Event()

    async def app(scope, receive, send) -> None:  # type: ignore[no-untyped-def]
        await gate.wait()

    generation = AppGeneration(app)
    outer = SwappableApp(generation)
    assert await generation.drained(0)  # idle: at once
    requests = [
        asyncio.create_task(outer({"type": "http"}, _never_called, _never_called)) for _ in range(2)
    ]
    await asyncio.sleep(0)
    assert generation.in_flight == 2
    waiters = [asyncio.create_task(generation.drained(5.0)) for _ in range(2)]
    assert not await generation.drained(0.01)  # a timed-out waiter leaves the others be
    gate.set()
    assert await asyncio.gather(*waiters) == [True, True]
    await asyncio.gather(*requests)
    assert generation.in_flight == 0
    assert await generation.drained(0)


async def _never_called(*_: object) -> None:
    raise AssertionError("not expected")


async def test_lifespan_failure_is_reported() -> None:
    @contextlib.asynccontextmanager
    async def broken(_: Starlette) -> AsyncIterator[None]:
        raise RuntimeError("cannot start")
        yield

    driver = LifespanDriver(Starlette(lifespan=broken))
    with pytest.raises(RuntimeError, match="cannot start"):
        await driver.startup()


async def test_app_without_lifespan_support_starts() -> None:
    async def plain(scope, receive, send) -> None:  # type: ignore[no-untyped-def]
        assert scope["type"] == "http", "no lifespan here"

    driver = LifespanDriver(plain)
    await driver.startup()
    await driver.shutdown()


async def test_outer_lifespan_drives_the_current_generation() -> None:
    events: list[str] = []
    outer = SwappableApp(AppGeneration(make_app("g", events)))
    inbox: asyncio.Queue[dict[str, str]] = asyncio.Queue()
    outbox: list[str] = []

    async def send(message: dict[str, str]) -> None:
        outbox.append(message["type"])

    await inbox.put({"type": "lifespan.startup"})
    await inbox.put({"type": "lifespan.shutdown"})
    await outer({"type": "lifespan"}, inbox.get, send)
    assert outbox == ["lifespan.startup.complete", "lifespan.shutdown.complete"]
    assert events == ["g up", "g down"]


def test_file_watcher_reports_changed_files(tmp_path: Path) -> None:
    one, two = tmp_path / "one.yaml", tmp_path / "two.yaml"
    one.write_text("a")
    two.write_text("b")
    watcher = FileWatcher([one, two])
    assert watcher.changed() == []
    one.write_text("a changed")
    stat = one.stat()
    os.utime(one, ns=(stat.st_atime_ns, stat.st_mtime_ns + 1_000_000))
    assert watcher.changed() == [one]
    assert watcher.changed() == []
    two.unlink()
    assert watcher.changed() == []  # gone for now: nothing to load
    two.write_text("back")
    assert watcher.changed() == [two]


def test_folder_watcher_reports_added_changed_and_removed(tmp_path: Path) -> None:
    from naftiko.runtime.reload import FolderWatcher

    kept, gone = tmp_path / "kept.yaml", tmp_path / "gone.yaml"
    kept.write_text("a")
    gone.write_text("b")
    watcher = FolderWatcher(lambda: sorted(tmp_path.glob("*.yaml")))
    assert watcher.changes() == []
    added = tmp_path / "added.yaml"
    added.write_text("c")
    kept.write_text("a longer text")  # the size moves even where the mtime does not
    gone.unlink()
    assert sorted(watcher.changes()) == [(added, False), (gone, True), (kept, False)]
    assert watcher.changes() == []
