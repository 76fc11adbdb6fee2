"""FastMCP ``from_openapi`` server for the MCP comparison (runs in bench/.venv-fastmcp).

FastMCP pins its own ``mcp``/``httpx2`` stack, so it lives in its own virtual environment
and this script must not import anything from naftiko or the harness. It serves the one
operation of ``bench/openapi/upstream.json`` as a tool, stateless with JSON responses (the
same transport mode naftiko's MCP adapter uses by default), on 127.0.0.1 without an access
log (naftiko's runtime does not log each request either), and prints ``ready`` once
uvicorn has bound the port so the harness can time and sequence it.

Usage: python fastmcp_server.py OPENAPI_JSON UPSTREAM_BASE_URL PORT
"""

from __future__ import annotations

import asyncio
import json
import sys
from pathlib import Path

import httpx2
import uvicorn
from fastmcp import FastMCP


async def serve(spec_path: Path, upstream: str, port: int) -> None:
    spec = json.loads(spec_path.read_text())
    spec["servers"] = [{"url": upstream}]
    client = httpx2.AsyncClient(base_url=upstream, timeout=30.0)
    server = FastMCP.from_openapi(spec, client=client, name="bench-fastmcp")
    app = server.http_app(path="/mcp", json_response=True, stateless_http=True)
    config = uvicorn.Config(
        app, host="127.0.0.1", port=port, log_level="warning", access_log=False, lifespan="on"
    )
    uv = uvicorn.Server(config)
    task = asyncio.create_task(uv.serve())
    while not uv.started and not task.done():
        await asyncio.sleep(0.01)
    print("ready", flush=True)
    await task
    await client.aclose()


if __name__ == "__main__":
    asyncio.run(serve(Path(sys.argv[1]), sys.argv[2], int(sys.argv[3])))
