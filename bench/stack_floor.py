"""The stack floor: naftiko's serving stack with no engine in it, as a reverse proxy.

uvicorn with the runtime's protocol (``LimitedHttpToolsProtocol``, uvloop) and the
engine's upstream transport (``Http11Transport``): each request is forwarded as it came
(method, path, query, body, content type) and the upstream's status and body are sent
back. No capability, templating, mapping, validation, logging or metrics: what is left
is the cost of the HTTP server, the upstream client and their system calls, the part of
naftiko's cost no change to the engine can remove. ``bench/run`` measures it beside
naftiko-run and nginx.

Usage: ``python bench/stack_floor.py UPSTREAM_URL PORT`` (prints ``ready`` once listening).
"""

from __future__ import annotations

import asyncio
import sys
from typing import Any

import httpx
import uvicorn

from naftiko.runtime.http_protocol import LimitedHttpToolsProtocol
from naftiko.upstream.request import UpstreamRequest
from naftiko.upstream.transport import Http11Transport
from naftiko.upstream.wire import wire_of

UPSTREAM, PORT = sys.argv[1].rstrip("/"), int(sys.argv[2])
TRANSPORT = Http11Transport(max_connections=100, max_idle=100)
TIMEOUT = httpx.Timeout(30.0)


async def app(scope: dict[str, Any], receive: Any, send: Any) -> None:
    if scope["type"] == "lifespan":
        await receive()
        await send({"type": "lifespan.startup.complete"})
        print("ready", flush=True)
        await receive()
        await send({"type": "lifespan.shutdown.complete"})
        return
    body, more = b"", True
    while more:
        message = await receive()
        body += message.get("body", b"")
        more = message.get("more_body", False)
    target = scope["raw_path"].decode("latin-1")
    if scope["query_string"]:
        target += "?" + scope["query_string"].decode("latin-1")
    headers = {"User-Agent": "naftiko-stack-floor"}
    for name, value in scope["headers"]:
        if name == b"content-type":
            headers["Content-Type"] = value.decode("latin-1")
    request = UpstreamRequest(scope["method"], UPSTREAM + target, headers, body or None)
    wire = wire_of(request, None, TIMEOUT, asyncio.get_running_loop().time() + 60)
    assert wire is not None, "the bench's requests are plain"
    raw = await TRANSPORT.fetch(wire, limit=10 * 1024 * 1024, read_redirects=False)
    reply = [(b"content-type", b"application/json"), (b"content-length", b"%d" % len(raw.content))]
    await send({"type": "http.response.start", "status": raw.status, "headers": reply})
    await send({"type": "http.response.body", "body": raw.content})


if __name__ == "__main__":
    uvicorn.Server(
        uvicorn.Config(
            app,
            host="127.0.0.1",
            port=PORT,
            loop="uvloop",
            http=LimitedHttpToolsProtocol,
            access_log=False,
            log_level="warning",
            lifespan="on",
            server_header=False,
            proxy_headers=False,
        )
    ).run()
