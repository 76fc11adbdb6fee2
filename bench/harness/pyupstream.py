"""Stand-in upstream for machines without nginx (``--quick`` on a clean checkout).

A raw ASGI callable under uvicorn: no framework routing, the same static bodies as the
nginx upstream. It is slower than nginx, so results produced with it are flagged.

Usage: python pyupstream.py PORT
"""

from __future__ import annotations

import asyncio
import json
import sys
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import uvicorn

from harness.upstream import TOKEN_PATH, TOKEN_RESPONSE, VIDEOS_PREFIX, VIDEOS_RESPONSE

TOKEN = json.dumps(TOKEN_RESPONSE, separators=(",", ":")).encode()
VIDEOS = json.dumps(VIDEOS_RESPONSE, separators=(",", ":")).encode()
NOT_FOUND = b'{"error":"not_found"}'
Receive = Callable[[], Awaitable[dict[str, Any]]]
Send = Callable[[dict[str, Any]], Awaitable[None]]


async def app(scope: dict[str, Any], receive: Receive, send: Send) -> None:
    if scope["type"] != "http":
        return
    while (await receive()).get("more_body"):  # drain the request body
        pass
    path = scope["path"]
    if path == TOKEN_PATH:
        status, body = 200, TOKEN
    elif path.startswith(VIDEOS_PREFIX) and path.endswith("/videos/"):
        status, body = 200, VIDEOS
    else:
        status, body = 404, NOT_FOUND
    await send(
        {
            "type": "http.response.start",
            "status": status,
            "headers": [
                (b"content-type", b"application/json"),
                (b"content-length", str(len(body)).encode()),
            ],
        }
    )
    await send({"type": "http.response.body", "body": body})


async def main(port: int) -> None:
    server = uvicorn.Server(
        uvicorn.Config(
            app, host="127.0.0.1", port=port, log_level="warning", access_log=False, lifespan="off"
        )
    )
    task = asyncio.create_task(server.serve())
    while not server.started and not task.done():
        await asyncio.sleep(0.01)
    print("ready", flush=True)
    await task


if __name__ == "__main__":
    asyncio.run(main(int(sys.argv[1])))
