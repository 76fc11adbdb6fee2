"""Binary content (Ikanos beta1) and MCP caching hints (beta4), end to end.

A loopback fake photo library answers a real PNG image (and a WAV, a PDF, a body that
never ends); the Ikanos beta5 document ``ikanos-binary-photos.yaml`` exposes it over
REST (declared ``responses`` and the ``responseBinary`` shorthand) and MCP (a tool
through a flow, a binary resource), served on real sockets and called with httpx and
the official MCP client. Bytes must come back identical, with the declared media type;
a body past ``maxBinarySize`` is refused without reading the rest.
"""

from __future__ import annotations

import base64
import contextlib
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest
from mcp import Client
from mcp.types import AudioContent, BlobResourceContents, EmbeddedResource, ImageContent

from fakes.photos import NOTE, PDF, PNG, WAV, PhotoLibrary, photo_library, png_pixels
from naftiko.adapters.exposes import compile_capability
from naftiko.adapters.mcp.plan import McpAdapterPlan
from naftiko.adapters.mcp.server import build_mcp_app
from naftiko.adapters.rest.app import build_rest_app
from naftiko.adapters.rest.plan import RestAdapterPlan
from naftiko.engine.invoke import Engine
from naftiko.spec.diagnostics import LoadError
from naftiko.spec.loader import load_capability
from naftiko.upstream.settings import UpstreamSettings
from support.servers import serve_asgi

CAPABILITY = Path(__file__).parent / "capabilities" / "ikanos-binary-photos.yaml"
NS = "photo-library"


@dataclass
class Served:
    rest: str
    mcp: str
    library: PhotoLibrary


@contextlib.asynccontextmanager
async def serve_photos(**upstream_settings: Any) -> AsyncIterator[Served]:
    library = PhotoLibrary()
    async with serve_asgi(photo_library(library), graceful_shutdown_s=0.5) as upstream:
        settings = UpstreamSettings(base_uri_overrides={NS: upstream}, **upstream_settings)
        loaded = load_capability(CAPABILITY)
        assert not loaded.diagnostics, [d.format() for d in loaded.diagnostics]
        compiled = compile_capability(loaded, settings)
        assert not compiled.warnings, [d.format() for d in compiled.warnings]
        rest = next(a for a in compiled.adapters if isinstance(a, RestAdapterPlan))
        mcp = next(a for a in compiled.adapters if isinstance(a, McpAdapterPlan))
        async with Engine(compiled, settings) as engine:
            info = loaded.document.info
            rest_app = build_rest_app(engine, rest, bindings=loaded.bindings, info=info)
            mcp_app = build_mcp_app(engine, mcp, bindings=loaded.bindings)
            async with serve_asgi(rest_app) as rest_url, serve_asgi(mcp_app) as mcp_url:
                yield Served(rest_url, mcp_url + "/mcp", library)


@pytest.fixture
async def photos() -> AsyncIterator[Served]:
    async with serve_photos() as served:
        yield served


def test_the_image_is_a_real_png() -> None:
    width, height, rows = png_pixels(PNG)
    assert (width, height) == (64, 48) and len(rows) == height * (1 + width * 3)


# --------------------------------------------------------------------------- REST


async def test_rest_answers_the_upstream_bytes_unchanged_with_the_declared_type(
    photos: Served,
) -> None:
    async with httpx.AsyncClient(base_url=photos.rest) as http:
        image = await http.get("/photos/7/image")
        assert image.status_code == 200, image.text
        assert image.content == PNG
        # Declared in ``responses`` (the upstream said application/octet-stream).
        assert image.headers["content-type"] == "image/png"
        assert png_pixels(image.content)[:2] == (64, 48)

        thumbnail = await http.get("/photos/7/thumbnail")
        assert thumbnail.status_code == 200
        assert thumbnail.content == PNG
        assert thumbnail.headers["content-type"] == "image/x-thumbnail"  # responseBinary

        # No declared media type anywhere: the upstream's own.
        document = await http.get("/document")
        assert document.content == PDF
        assert document.headers["content-type"] == "application/pdf"


async def test_rest_maps_an_upstream_status_to_its_declared_content(photos: Served) -> None:
    async with httpx.AsyncClient(base_url=photos.rest) as http:
        missing = await http.get("/photos/8/image")
    assert missing.status_code == 404
    assert missing.headers["content-type"] == "application/problem+json"
    assert missing.json()["detail"] == "no such photo"


async def test_rest_refuses_a_body_past_max_binary_size_without_reading_the_rest(
    photos: Served,
) -> None:
    # The upstream body never ends: reading it whole could only end in a 504.
    async with httpx.AsyncClient(base_url=photos.rest, timeout=60) as http:
        response = await http.get("/endless")
    assert response.status_code == 502
    assert response.headers["content-type"] == "application/problem+json"
    detail = response.json()["detail"]
    assert "maxBinarySize 16KiB (16384 bytes)" in detail, detail
    assert "the rest was not read" in detail


async def test_openapi_declares_the_binary_responses_and_the_document_version(
    photos: Served,
) -> None:
    async with httpx.AsyncClient(base_url=photos.rest) as http:
        document = (await http.get("/.well-known/openapi.json")).json()
    assert document["info"]["version"] == "2.3.1"
    image = document["paths"]["/photos/{id}/image"]["get"]["responses"]
    assert image["200"]["content"] == {
        "image/png": {"schema": {"type": "string", "format": "binary"}}
    }
    assert "2XX" not in image
    assert image["404"]["content"]["application/problem+json"]["schema"] == {"type": "object"}
    thumbnail = document["paths"]["/photos/{id}/thumbnail"]["get"]["responses"]
    assert thumbnail["200"]["description"] == "Thumbnail bytes."
    assert thumbnail["200"]["content"] == {
        "image/x-thumbnail": {"schema": {"type": "string", "format": "binary"}}
    }
    endless = document["paths"]["/endless"]["get"]["responses"]["2XX"]["content"]
    assert endless == {"*/*": {"schema": {"type": "string", "format": "binary"}}}


# --------------------------------------------------------------------------- MCP


@pytest.mark.parametrize("mode", ["auto", "legacy"])
async def test_mcp_tools_answer_image_audio_and_embedded_resource_content(
    photos: Served, mode: str
) -> None:
    async with Client(photos.mcp, mode=mode) as client:
        tools = {t.name: t for t in (await client.list_tools()).tools}
        assert tools["get-photo"].output_schema is None  # bytes are no structured content

        photo = await client.call_tool("get-photo", {"id": "7"})
        assert not photo.is_error, photo
        [image] = photo.content
        assert isinstance(image, ImageContent) and image.mime_type == "image/png"
        assert base64.b64decode(image.data) == PNG

        sound = await client.call_tool("get-sound", {})
        [audio] = sound.content
        assert isinstance(audio, AudioContent) and audio.mime_type == "audio/wav"
        assert base64.b64decode(audio.data) == WAV

        document = await client.call_tool("get-document", {})
        [embedded] = document.content
        assert isinstance(embedded, EmbeddedResource)
        blob = embedded.resource
        assert isinstance(blob, BlobResourceContents) and blob.mime_type == "application/pdf"
        assert base64.b64decode(blob.blob) == PDF

        # Binary by declaration, whatever the bytes or their label look like.
        note = await client.call_tool("get-note", {})
        [embedded] = note.content
        assert isinstance(embedded, EmbeddedResource)
        assert isinstance(embedded.resource, BlobResourceContents)
        assert embedded.resource.mime_type == "text/plain"
        assert base64.b64decode(embedded.resource.blob) == NOTE


@pytest.mark.parametrize("mode", ["auto", "legacy"])
async def test_mcp_binary_resource_reads_as_a_blob(photos: Served, mode: str) -> None:
    async with Client(photos.mcp, mode=mode) as client:
        read = await client.read_resource("photos://library/7/bytes")
        [contents] = read.contents
        assert isinstance(contents, BlobResourceContents)
        assert contents.mime_type == "image/png"
        assert base64.b64decode(contents.blob) == PNG

        [note] = (await client.read_resource("photos://notes/1")).contents
        assert isinstance(note, BlobResourceContents)
        assert (note.mime_type or "").startswith("text/plain")  # the upstream's type
        assert base64.b64decode(note.blob) == NOTE


async def test_mcp_tool_past_max_binary_size_is_a_tool_error_naming_the_limit(
    photos: Served,
) -> None:
    async with Client(photos.mcp) as client:
        result = await client.call_tool("get-endless", {})
    assert result.is_error
    text = result.content[0].text  # type: ignore[union-attr]
    assert "maxBinarySize 16KiB (16384 bytes)" in text and "[502]" in text, text


async def test_mcp_caching_hints_on_the_2026_revision_only(photos: Served) -> None:
    async with Client(photos.mcp) as modern:
        assert modern.protocol_version == "2026-07-28"
        for result in (
            await modern.list_tools(),
            await modern.list_resource_templates(),
            await modern.read_resource("photos://library/7/bytes"),
        ):
            assert (result.ttl_ms, result.cache_scope) == (60000, "public"), result
    async with Client(photos.mcp, mode="legacy") as legacy:
        assert legacy.protocol_version < "2026-07-28"
        for result in (
            await legacy.list_tools(),
            await legacy.read_resource("photos://library/7/bytes"),
        ):
            # Absent from the wire (the model's own defaults are not what was sent).
            assert not {"ttl_ms", "cache_scope"} & result.model_fields_set, result
    # The raw answer of an older revision carries no field it does not define.
    body = {"jsonrpc": "2.0", "id": 1, "method": "tools/list", "params": {}}
    headers = {
        "MCP-Protocol-Version": "2025-06-18",
        "Accept": "application/json, text/event-stream",
    }
    async with httpx.AsyncClient() as http:
        raw = (await http.post(photos.mcp, json=body, headers=headers)).json()
    assert "tools" in raw["result"]
    assert "ttlMs" not in raw["result"] and "cacheScope" not in raw["result"]


@pytest.mark.parametrize("mode", ["auto", "legacy"])
async def test_mcp_server_info_reports_the_document_version(photos: Served, mode: str) -> None:
    async with Client(photos.mcp, mode=mode) as client:
        await client.list_tools()  # the 2026 revision stamps serverInfo on results
        info: Any = client.server_info
        assert info is not None and info.version == "2.3.1"


async def test_a_body_past_max_binary_size_is_refused_on_the_general_path_too() -> None:
    # Following redirects takes httpx's client rather than the fast path.
    async with (
        serve_photos(follow_redirects=True) as photos,
        httpx.AsyncClient(base_url=photos.rest, timeout=60) as http,
    ):
        response = await http.get("/endless")
        image = await http.get("/photos/7/image")
    assert response.status_code == 502
    assert "maxBinarySize 16KiB (16384 bytes)" in response.json()["detail"]
    assert image.content == PNG and image.headers["content-type"] == "image/png"


# --------------------------------------------------------------------------- load time


def _variant(tmp_path: Path, old: str, new: str) -> Path:
    text = CAPABILITY.read_text()
    assert text.count(old) == 1, old
    path = tmp_path / "variant.yaml"
    path.write_text(text.replace(old, new))
    return path


def _load_errors(path: Path) -> str:
    loaded = load_capability(path)
    with pytest.raises(LoadError) as exc:
        compile_capability(loaded, UpstreamSettings())
    return str(exc.value)


@pytest.mark.parametrize(
    ("old", "new", "expected"),
    [
        (
            'maxBinarySize: "64KiB"',
            'maxBinarySize: "64KB"',
            "maxBinarySize '64KB' is not a size such as '512KiB' or '5MiB'",
        ),
        (
            '              outputRawFormat: "binary"\n              outputMediaType: "image/png"',
            '              outputRawFormat: "json"\n              outputMediaType: "image/png"',
            "does not read 'outputRawFormat: binary'",
        ),
        (
            "              responseBinary:\n",
            "              responses: {}\n              responseBinary:\n",
            "'responses' and 'responseBinary' cannot both be declared",
        ),
        ("      ttlMs: 60000", "      ttlMs: -1", "ttlMs must be a whole number of milliseconds"),
    ],
)
def test_inconsistent_binary_declarations_are_load_errors_with_their_line(
    tmp_path: Path, old: str, new: str, expected: str
) -> None:
    message = _load_errors(_variant(tmp_path, old, new))
    assert expected in message, message
    assert "variant.yaml:" in message


def test_units_know_at_load_time_that_they_answer_bytes(tmp_path: Path) -> None:
    path = _variant(
        tmp_path,
        '              description: "Photo identifier."\n          call:',
        '              description: "Photo identifier."\n'
        '          outputMediaType: "image/x-flow"\n          call:',
    )
    units = compile_capability(load_capability(path), UpstreamSettings()).units
    # A flow's outputMediaType wins over its operation's; the operation's maxBinarySize
    # over the MCP adapter's, which applies where the operation declares none.
    flow_tool = units["photos-mcp.get-photo"].binary
    assert flow_tool is not None and flow_tool.media_type == "image/x-flow"
    assert flow_tool.max_bytes == 64 * 1024
    sound = units["photos-mcp.get-sound"].binary
    assert sound is not None and (sound.media_type, sound.max_bytes) == ("audio/wav", 1 << 20)
    assert units["photos-mcp.get-sound"].output_schema is None
