"""uvicorn serves through the runtime's protocol and server class, on a pre-bound socket."""

from __future__ import annotations

import asyncio
import signal
import socket
from typing import Any

import httpx
import uvicorn

from naftiko.runtime.http_protocol import LimitedHttpToolsProtocol, ListenerServer


async def app(scope: dict[str, Any], receive: Any, send: Any) -> None:
    if scope["type"] != "http":
        return
    await receive()
    if scope["path"] == "/stream":
        await send(
            {
                "type": "http.response.start",
                "status": 200,
                "headers": [(b"content-type", b"text/event-stream")],
            }
        )
        for i in range(3):
            await send(
                {"type": "http.response.body", "body": b"data: %d\n\n" % i, "more_body": True}
            )
            await asyncio.sleep(0.01)
        await send({"type": "http.response.body", "body": b""})
        return
    body = scope["path"].encode()
    await send(
        {
            "type": "http.response.start",
            "status": 200,
            "headers": [(b"content-length", str(len(body)).encode())],
        }
    )
    await send({"type": "http.response.body", "body": body})


async def test_uvicorn_serves_through_it() -> None:
    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    port = sock.getsockname()[1]
    config = uvicorn.Config(
        app, http=LimitedHttpToolsProtocol, lifespan="off", log_config=None, access_log=False
    )
    server = uvicorn.Server(config)
    task = asyncio.create_task(server.serve(sockets=[sock]))
    try:
        while not server.started:
            await asyncio.sleep(0.01)
        async with httpx.AsyncClient(base_url=f"http://127.0.0.1:{port}") as client:
            answers = await asyncio.gather(*(client.get(f"/r{i}") for i in range(20)))
            assert [r.text for r in answers] == [f"/r{i}" for i in range(20)]
            async with client.stream("GET", "/stream") as response:
                events = [line async for line in response.aiter_lines() if line]
            assert events == ["data: 0", "data: 1", "data: 2"]
        reader, writer = await asyncio.open_connection("127.0.0.1", port)
        writer.write(b"GET / HTTP/1.1\r\nHost: x\r\nContent-Length: nope\r\n\r\n")
        answer = await reader.read()  # uvicorn answers 400, then closes
        writer.close()
        assert answer.startswith(b"HTTP/1.1 400 ")
    finally:
        server.should_exit = True
        await task


async def test_the_listener_server_leaves_the_process_signal_handlers_alone() -> None:
    """The runtime stops every server from its own handler: serving must not replace it."""
    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    config = uvicorn.Config(
        app, http=LimitedHttpToolsProtocol, lifespan="off", log_config=None, access_log=False
    )
    server = ListenerServer(config)
    before = {sig: signal.getsignal(sig) for sig in (signal.SIGINT, signal.SIGTERM)}
    task = asyncio.create_task(server.serve(sockets=[sock]))
    try:
        while not server.started:
            await asyncio.sleep(0.01)
        assert {sig: signal.getsignal(sig) for sig in before} == before
    finally:
        server.should_exit = True
        await task
