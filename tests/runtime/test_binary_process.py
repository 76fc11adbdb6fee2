"""``naftiko run`` serving an Ikanos beta5 document with binary content, as a subprocess.

The document's ``info.version`` is reported in the three places a client or operator
reads it (MCP ``serverInfo.version``, ``/status``, the OpenAPI ``info.version``), and a
real PNG from the loopback upstream reaches REST and MCP callers byte for byte.
"""

from __future__ import annotations

import base64
from pathlib import Path

import httpx
from mcp import Client
from mcp.types import ImageContent
from naftiko_process import NaftikoProcess

from fakes.photos import PNG, PhotoLibrary, photo_library
from support.servers import serve_asgi

CAPABILITY = Path(__file__).parents[1] / "adapters" / "capabilities" / "ikanos-binary-photos.yaml"
REST, MCP = "photos-api", "photos-mcp"


async def test_document_version_and_binary_content_through_the_runtime() -> None:
    async with serve_asgi(photo_library(PhotoLibrary()), graceful_shutdown_s=0.5) as upstream:
        args = [
            str(CAPABILITY),
            "--host",
            "127.0.0.1",
            "--base-uri",
            f"photo-library={upstream}",
            "--port",
            f"{REST}=0",
            "--port",
            f"{MCP}=0",
            "--control-port",
            "0",
        ]
        with NaftikoProcess(args) as run:
            urls = run.wait_ready()
            async with httpx.AsyncClient(timeout=30) as http:
                image = await http.get(f"{urls[REST]}/photos/7/image")
                assert image.status_code == 200, image.text
                assert image.content == PNG and image.headers["content-type"] == "image/png"

                openapi = (await http.get(f"{urls[REST]}/.well-known/openapi.json")).json()
                assert openapi["info"]["version"] == "2.3.1"

                status = (await http.get(f"{urls['control']}/status")).json()
                [capability] = status["capabilities"]
                assert capability["version"] == "2.3.1"
                assert capability["specVersion"] == "1.0.0-beta5"

            async with Client(urls[MCP]) as mcp:
                photo = await mcp.call_tool("get-photo", {"id": "7"})
                [content] = photo.content
                assert isinstance(content, ImageContent)
                assert base64.b64decode(content.data) == PNG
                assert mcp.server_info is not None and mcp.server_info.version == "2.3.1"
