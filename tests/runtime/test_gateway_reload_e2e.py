"""``--gateway --reload`` end to end: documents added, changed, broken, clashing and removed
under a watched folder while calls run in a loop, on a real subprocess.

Every call made while the folder changes answers: 200, or 404 for the removed document
once its removal was logged (never a 5xx, never a dropped connection). The aggregate
``/mcp`` follows every change (listed with the official MCP client) and tells an open
stateful session ``notifications/tools/list_changed``.
"""

from __future__ import annotations

import asyncio
import json
import os
import signal
from pathlib import Path
from typing import Any

import httpx
from mcp import Client
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.routing import Route

from runtime.naftiko_process import NaftikoProcess
from support.servers import ServerThread

# Long enough that calls are in flight whenever a swap happens.
UPSTREAM_DELAY_S = 0.2


def document(namespace: str, upstream: str, tool: str = "get-thing") -> str:
    return f"""\
naftiko: 1.0.0-alpha2
info:
  label: {namespace}
  description: The {namespace} document.
capability:
  consumes:
    - type: http
      namespace: {namespace}-backend
      baseUri: {upstream}
      resources:
        - name: thing
          path: /{namespace}/thing
          operations:
            - name: get-thing
              method: GET
  exposes:
    - type: rest
      namespace: {namespace}-rest
      port: 8080
      resources:
        - path: /things
          name: things
          operations:
            - method: GET
              name: getThings
              call: {namespace}-backend.get-thing
    - type: mcp
      namespace: {namespace}-mcp
      port: 9090
      tools:
        - name: {tool}
          description: Gets the thing of {namespace}.
          call: {namespace}-backend.get-thing
"""


def write(path: Path, text: str) -> None:
    """Replace the file's content and make sure its mtime moves (coarse clocks)."""
    before = path.stat().st_mtime_ns if path.exists() else 0
    path.write_text(text, encoding="utf-8")
    if path.stat().st_mtime_ns <= before:
        os.utime(path, ns=(before + 1_000_000, before + 1_000_000))


def upstream_app() -> Starlette:
    async def echo(request: Request) -> JSONResponse:
        await asyncio.sleep(UPSTREAM_DELAY_S)
        return JSONResponse({"ok": True, "path": request.url.path})

    return Starlette(routes=[Route("/{path:path}", echo, methods=["GET"])])


def reload_event(line: str, outcome: str, file: Path) -> bool:
    try:
        event = json.loads(line)
    except ValueError:
        return False
    return (
        event.get("event") == "reload"
        and event.get("outcome") == outcome
        and event.get("file") == str(file)
    )


class Loop:
    """GETs one URL again and again; records (status, started, ended) of each call."""

    def __init__(self, http: httpx.AsyncClient, url: str) -> None:
        self.http, self.url = http, url
        self.calls: list[tuple[int | str, float, float]] = []
        self.stop = False

    async def run(self) -> None:
        loop = asyncio.get_running_loop()
        while not self.stop:
            started = loop.time()
            try:
                status: int | str = (await self.http.get(self.url)).status_code
            except httpx.HTTPError as exc:  # a dropped call: the test fails on it
                status = type(exc).__name__
            self.calls.append((status, started, loop.time()))


async def tool_names(client: Client) -> set[str]:
    return {t.name for t in (await client.list_tools()).tools}


async def test_gateway_reload_follows_the_folder_without_dropping_calls(tmp_path: Path) -> None:
    folder = tmp_path / "capabilities"
    folder.mkdir()
    with ServerThread(upstream_app()) as upstream:
        stable, changing = folder / "stable.yaml", folder / "changing.yaml"
        write(stable, document("stable", upstream.url))
        write(changing, document("changing", upstream.url))
        argv = [str(folder), "--gateway", "0", "--reload", "--host", "127.0.0.1"]
        argv += ["--log-format", "json", "--mcp-stateful"]
        with NaftikoProcess(argv) as run:
            base = run.wait_ready()["gateway"]
            notified: list[str] = []

            async def on_message(message: Any) -> None:
                method = getattr(getattr(message, "root", message), "method", None)
                if isinstance(method, str):
                    notified.append(method)

            async with (
                httpx.AsyncClient(timeout=30) as http,
                # A handshake-era session (Mcp-Session-Id): the kind a notification
                # reaches outside a request (see naftiko.runtime.gateway_reload).
                Client(f"{base}/mcp", mode="legacy", message_handler=on_message) as mcp,
            ):
                seen: dict[tuple[str, Path], int] = {}

                async def wait(outcome: str, file: Path) -> None:
                    """Until one more reload event of this outcome for this file."""
                    want = seen.get((outcome, file), 0) + 1
                    for _ in range(300):
                        count = sum(1 for ln in run.stdout if reload_event(ln, outcome, file))
                        if count >= want:
                            seen[(outcome, file)] = want
                            return
                        await asyncio.sleep(0.1)
                    raise AssertionError(f"no {outcome} reload of {file}:\n{run.output}")

                assert await tool_names(mcp) == {"stable-mcp__get-thing", "changing-mcp__get-thing"}
                loops = [
                    Loop(http, f"{base}/stable-rest/things"),
                    Loop(http, f"{base}/changing-rest/things"),
                ]
                tasks = [asyncio.create_task(loop.run()) for loop in loops]
                # Tools called through the aggregate /mcp while the folder changes.
                called: list[bool] = []

                async def call_stable() -> None:
                    while not loops[0].stop:
                        result = await mcp.call_tool("stable-mcp__get-thing", {})
                        called.append(result.is_error)

                tasks.append(asyncio.create_task(call_stable()))
                await asyncio.sleep(0.5)

                # Added: served under its prefix, in /mcp, sessions told.
                added = folder / "added.yaml"
                write(added, document("added", upstream.url))
                await wait("added", added)
                assert (await http.get(f"{base}/added-rest/things")).status_code == 200
                assert "added-mcp__get-thing" in await tool_names(mcp)
                for _ in range(50):
                    if "notifications/tools/list_changed" in notified:
                        break
                    await asyncio.sleep(0.1)
                assert "notifications/tools/list_changed" in notified, notified

                # Changed: swapped while calls run; the tool list follows.
                write(changing, document("changing", upstream.url, tool="get-thing-v2"))
                await wait("reloaded", changing)
                tools = await tool_names(mcp)
                assert "changing-mcp__get-thing-v2" in tools
                assert "changing-mcp__get-thing" not in tools
                result = await mcp.call_tool("changing-mcp__get-thing-v2", {})
                assert not result.is_error, result

                # Broken: the previous version keeps serving, marked degraded with why.
                write(changing, "naftiko: 1.0.0-alpha2\ncapability: [unclosed\n")
                await wait("failed", changing)
                status = (await http.get(f"{base}/status")).json()
                entry = next(c for c in status["capabilities"] if c["file"] == str(changing))
                assert entry["state"] == "degraded" and entry["reason"], entry
                assert "changing-mcp__get-thing-v2" in await tool_names(mcp)
                assert (await http.get(f"{base}/changing-rest/things")).status_code == 200
                page = (await http.get(f"{base}/")).text
                assert "degraded" in page and str(changing) in page

                # A namespace another document serves: refused, shown, the others serve.
                clash = folder / "clash.yaml"
                write(clash, document("stable", upstream.url))
                await wait("refused", clash)
                status = (await http.get(f"{base}/status")).json()
                assert [r["file"] for r in status["refused"]] == [str(clash)]
                assert "/stable-rest is already served" in status["refused"][0]["reason"]
                clash.unlink()

                # Mended, then removed: its prefix answers 404 from then on.
                write(changing, document("changing", upstream.url, tool="get-thing-v3"))
                await wait("reloaded", changing)
                status = (await http.get(f"{base}/status")).json()
                entry = next(c for c in status["capabilities"] if c["file"] == str(changing))
                assert entry["state"] == "ok" and "refused" not in status, status
                changing.unlink()
                await wait("removed", changing)
                removed_at = asyncio.get_running_loop().time()
                await asyncio.sleep(1.0)
                for loop in loops:
                    loop.stop = True
                await asyncio.gather(*tasks)
                tools = await tool_names(mcp)
                assert "changing-mcp__get-thing-v3" not in tools
                assert {"stable-mcp__get-thing", "added-mcp__get-thing"} <= tools

                # A refused document is served once the one holding its prefix goes.
                late = folder / "late.yaml"
                write(late, document("added", upstream.url, tool="late-tool"))
                await wait("refused", late)
                added.unlink()
                await wait("removed", added)
                await wait("added", late)
                assert "added-mcp__late-tool" in await tool_names(mcp)
                assert "refused" not in (await http.get(f"{base}/status")).json()

            # Members added by a reload are stopped with the rest: a clean exit.
            run.signal(signal.SIGTERM)
            assert run.wait() == 0, run.output
            assert "Task was destroyed" not in run.output

            stable_calls, changing_calls = loops[0].calls, loops[1].calls
            assert len(stable_calls) > 20 and len(changing_calls) > 20
            assert {s for s, _, _ in stable_calls} == {200}, stable_calls
            assert called and not any(called)
            for status_code, started, _ in changing_calls:
                if started > removed_at:
                    assert status_code == 404, changing_calls
                else:
                    assert status_code in (200, 404), changing_calls
            # Calls on the previous versions were in flight across every swap.
            assert sum(1 for s, _, _ in changing_calls if s == 200) > 10
            assert any(s == 404 for s, _, _ in changing_calls)
