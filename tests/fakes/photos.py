"""A photo library upstream that answers real bytes: a PNG image (built and decodable
with the standard library: signature, IHDR, IDAT, IEND and their CRCs), a WAV sound, a
PDF, bytes labelled as text, and a body that never ends (for size limits)."""

from __future__ import annotations

import asyncio
import struct
import zlib
from collections.abc import AsyncIterator
from dataclasses import dataclass

from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response, StreamingResponse
from starlette.routing import Route


def _chunk(kind: bytes, data: bytes) -> bytes:
    return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))


def png_image(width: int = 64, height: int = 48) -> bytes:
    """A real PNG (8-bit RGB, a colour gradient with a checker): signature, IHDR, IDAT
    and IEND chunks with their CRCs, as any decoder reads it."""
    rows = b"".join(
        b"\x00"
        + bytes(
            v
            for x in range(width)
            for v in (x * 4 % 256, y * 5 % 256, 255 if (x // 8 + y // 8) % 2 else 0)
        )
        for y in range(height)
    )
    header = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    return (
        b"\x89PNG\r\n\x1a\n"
        + _chunk(b"IHDR", header)
        + _chunk(b"IDAT", zlib.compress(rows, 9))
        + _chunk(b"IEND", b"")
    )


def png_pixels(data: bytes) -> tuple[int, int, bytes]:
    """Decode what ``png_image`` writes (checks every CRC): width, height, raw rows."""
    assert data[:8] == b"\x89PNG\r\n\x1a\n"
    position, idat, size = 8, b"", (0, 0)
    while position < len(data):
        (length,) = struct.unpack(">I", data[position : position + 4])
        kind = data[position + 4 : position + 8]
        body = data[position + 8 : position + 8 + length]
        (crc,) = struct.unpack(">I", data[position + 8 + length : position + 12 + length])
        assert crc == zlib.crc32(kind + body), kind
        if kind == b"IHDR":
            size = struct.unpack(">II", body[:8])
        elif kind == b"IDAT":
            idat += body
        position += 12 + length
    return size[0], size[1], zlib.decompress(idat)


PNG = png_image()
WAV = (
    b"RIFF"
    + struct.pack("<I", 36 + 800)
    + b"WAVEfmt "
    + struct.pack("<IHHIIHH", 16, 1, 1, 8000, 8000, 1, 8)
    + b"data"
    + struct.pack("<I", 800)
    + bytes((i * 7) % 256 for i in range(800))
)
NOTE = b"plain words, binary by declaration"
PDF = b"%PDF-1.4\n%\xe2\xe3\xcf\xd3\n1 0 obj <<>> endobj\ntrailer <<>>\n%%EOF\n"


@dataclass
class PhotoLibrary:
    endless_sent: int = 0  # bytes of the endless body written before the reader left


def photo_library(state: PhotoLibrary) -> Starlette:
    async def photo(request: Request) -> Response:
        if request.path_params["id"] != "7":
            return JSONResponse(
                {"title": "Not found", "status": 404, "detail": "no such photo"},
                status_code=404,  # declared as application/problem+json by the document
            )
        # The upstream's own type is generic: the document's outputMediaType is declared.
        return Response(PNG, media_type="application/octet-stream")

    async def endless(_: Request) -> Response:
        async def chunks() -> AsyncIterator[bytes]:
            while True:
                state.endless_sent += 8192
                yield b"\x00" * 8192
                await asyncio.sleep(0.005)

        return StreamingResponse(chunks(), media_type="application/octet-stream")

    async def sound(_: Request) -> Response:
        return Response(WAV, media_type="application/octet-stream")

    async def document(_: Request) -> Response:
        return Response(PDF, media_type="application/pdf")

    async def note(_: Request) -> Response:
        return Response(NOTE, media_type="text/plain")

    return Starlette(
        routes=[
            Route("/photos/{id}/binary", photo),
            Route("/endless", endless),
            Route("/sound", sound),
            Route("/document", document),
            Route("/note", note),
        ]
    )
