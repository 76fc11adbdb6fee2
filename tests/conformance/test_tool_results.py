"""Tool results for every kind of upstream body, checked as the MCP spec requires.

A tool that declares an output schema MUST return ``structuredContent`` matching it
(2025-11-25, "Output Schema"); the Inspector and the Python SDK client reject a
successful result without it. Any answer that cannot be such an object (array,
scalar, text, XML, binary) is therefore an ``isError`` result that still carries the
upstream's answer; a tool without an output schema passes every body through.
"""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from hardening_kit import CLIENT_TIMEOUT, mcp_call, serve_capability

from naftiko.upstream.settings import UpstreamSettings
from support.servers import ServerThread

CAPABILITY = Path(__file__).parent / "capabilities" / "results.yaml"
PNG = b"\x89PNG\r\n\x1a\n\x00\x00\x00\rIHDR\xff\xfe"
BODIES: dict[str, tuple[int, str, bytes]] = {
    "object": (200, "application/json", b'{"id": 7, "name": "seven"}'),
    "array": (200, "application/json", b"[1, 2, 3]"),
    "scalar": (200, "application/json", b"42"),
    "text": (200, "text/plain; charset=utf-8", b"plain words"),
    "xml": (200, "application/xml", b"<ship><id>7</id></ship>"),
    "empty": (204, "", b""),
    "binary": (200, "image/png", PNG),
}


async def kinds_upstream(scope: Any, receive: Any, send: Any) -> None:
    """Answers ``/kind/{name}`` with the body of :data:`BODIES`."""
    if scope["type"] != "http":
        return
    status, media, body = BODIES[scope["path"].rsplit("/", 1)[-1]]
    headers = [(b"content-type", media.encode())] if media else []
    await send({"type": "http.response.start", "status": status, "headers": headers})
    await send({"type": "http.response.body", "body": body})


@pytest.fixture(scope="module")
def upstream() -> Any:
    with ServerThread(kinds_upstream) as server:
        yield server.url


@pytest.fixture
async def mcp(upstream: str) -> AsyncIterator[tuple[httpx.AsyncClient, str]]:
    settings = UpstreamSettings(base_uri_overrides={"kinds": upstream})
    async with (
        serve_capability(CAPABILITY, engine_settings=settings) as served,
        httpx.AsyncClient(timeout=CLIENT_TIMEOUT) as http,
    ):
        yield http, served.mcp["results-mcp"]


async def test_a_json_object_is_structured_content(mcp: tuple[httpx.AsyncClient, str]) -> None:
    reply = await mcp_call(*mcp, "typed", {"kind": "object"})
    assert not reply.is_error, reply.text
    assert reply.structured == {"id": 7, "name": "seven"}
    assert json.loads(reply.error_text) == reply.structured  # the text block says the same


async def test_an_empty_answer_is_an_empty_object(mcp: tuple[httpx.AsyncClient, str]) -> None:
    reply = await mcp_call(*mcp, "typed", {"kind": "empty"})
    assert not reply.is_error, reply.text
    assert reply.structured == {}


@pytest.mark.parametrize(
    ("kind", "shown"),
    [
        ("array", "[1,2,3]"),
        ("scalar", "42"),
        ("text", "plain words"),
        ("xml", "<ship><id>7</id></ship>"),
        ("binary", None),
    ],
)
async def test_what_cannot_match_the_schema_is_a_tool_error(
    mcp: tuple[httpx.AsyncClient, str], kind: str, shown: str | None
) -> None:
    """Never a success without structured content: clients raise on that."""
    reply = await mcp_call(*mcp, "typed", {"kind": kind})
    result = reply.result
    assert result.get("isError") is True, reply.text
    assert "structuredContent" not in result or result["structuredContent"] is None
    assert "does not match its declared output schema" in reply.error_text
    if shown is not None:
        assert shown in reply.error_text  # the agent still sees the answer
    else:
        images = [c for c in result["content"] if c["type"] == "image"]
        assert images and images[0]["mimeType"] == "image/png"


@pytest.mark.parametrize("kind", ["object", "array", "scalar", "text", "xml", "binary"])
async def test_without_an_output_schema_every_body_is_a_success(
    mcp: tuple[httpx.AsyncClient, str], kind: str
) -> None:
    reply = await mcp_call(*mcp, "untyped", {"kind": kind})
    assert not reply.is_error, reply.text
    assert reply.result["content"], reply.text
    assert reply.structured is None or kind == "object"
