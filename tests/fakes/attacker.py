"""A malicious upstream for security tests, on a raw ``asyncio`` server with keep-alive.

Unlike ``fakes.faults`` (every answer closes its connection), connections stay open
and carry any number of requests, so what one answer leaves on a pooled connection can
reach the next. The attack is chosen by path:

==================================  ==================================================
``/echo?token=T``                   200 JSON ``{"path", "query"}``
``/bomb-ENC[-ENC...]?size=N``        ``N`` bytes of ``a`` (a multiple of 1 MiB), gzip
                                    encoded then each further ``ENC`` (``gzip`` or
                                    ``deflate``) applied in turn, all listed in one
                                    ``Content-Encoding``: a decompression bomb of a
                                    few hundred bytes on the wire
``/redirect-bomb?size=N``           a 302 to ``/echo`` whose body is a ``gzip, gzip``
                                    bomb of ``N`` bytes (httpx reads redirect bodies)
``/redirect-big?size=N``            a 302 to ``/echo`` with ``N`` plain body bytes
``/big-header?size=N``              a 200 whose ``X-Big`` header is ``N`` bytes long
``/smuggle``                        a JSON answer and, in the same write, a second
                                    response nobody asked for (``"evil"``)
``/smuggle-partial``                a JSON answer and, in the same write, the first
                                    bytes of a status line (``HTTP/1.1 2``)
``/smuggle-late``                   the same, the second response written after the
                                    answer; ``AttackerState.late_sent`` is set then
``/utf8-header``                    a JSON answer with a rate-limit header and an
                                    ETag holding UTF-8 (not Latin-1) text
``/yaml-aliases?size=N&chunks=K``   a YAML document: one string of ``N`` bytes under
                                    an anchor, then ``K`` aliases to it
==================================  ==================================================
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import gzip
import json
import struct
import threading
import zlib
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from urllib.parse import parse_qsl, urlsplit

from support.servers import LOOPBACK, BackgroundServer

MIB = 1024 * 1024
WRITE_SIZE = 64 * 1024
EVIL = b'HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: 6\r\n\r\n"evil"'
UTF8_NOTE = "quota \u20ac \u2713"  # the euro sign and a check mark: not Latin-1


@dataclass
class AttackerState:
    """What the attacker saw: request paths, and connections accepted."""

    paths: list[str] = field(default_factory=list)
    connections: int = 0
    late_sent: threading.Event = field(default_factory=threading.Event)
    url: str = ""


def gzip_bomb(size: int) -> bytes:
    """A valid gzip member of ``size`` bytes of ``a``, built without compressing them:
    one full-flushed deflate block of 1 MiB (self-contained, so it can be repeated)."""
    return _gzip_bomb(max(size // MIB, 1))


@functools.lru_cache(maxsize=8)
def _gzip_bomb(mebibytes: int) -> bytes:
    block = b"a" * MIB
    deflate = zlib.compressobj(9, zlib.DEFLATED, -zlib.MAX_WBITS)
    piece = deflate.compress(block) + deflate.flush(zlib.Z_FULL_FLUSH)
    tail = deflate.flush(zlib.Z_FINISH)
    crc = 0
    for _ in range(mebibytes):
        crc = zlib.crc32(block, crc)
    header = b"\x1f\x8b\x08\x00\x00\x00\x00\x00\x02\xff"
    trailer = struct.pack("<II", crc, (mebibytes * MIB) & 0xFFFFFFFF)
    return header + piece * mebibytes + tail + trailer


def encoded_bomb(size: int, encodings: list[str]) -> bytes:
    """``gzip_bomb(size)``, then every further encoding of ``encodings[1:]`` applied."""
    assert encodings[0] == "gzip", "the innermost coding of a bomb is gzip"
    body = gzip_bomb(size)
    for coding in encodings[1:]:
        body = gzip.compress(body) if coding == "gzip" else zlib.compress(body, 9)
    return body


def _head(status: str, headers: list[tuple[str, str]]) -> bytes:
    lines = [f"HTTP/1.1 {status}", *(f"{k}: {v}" for k, v in headers)]
    return ("\r\n".join(lines) + "\r\n\r\n").encode("latin-1")


def _json(body: object, *extra: tuple[str, str]) -> bytes:
    content = json.dumps(body).encode()
    headers = [("Content-Type", "application/json"), ("Content-Length", str(len(content))), *extra]
    return _head("200 OK", headers) + content


async def _answer(
    path: str, query: dict[str, str], writer: asyncio.StreamWriter, state: AttackerState
) -> None:
    if path == "/echo":
        writer.write(_json({"path": path, "query": query}))
    elif path.startswith("/bomb-"):
        encodings = path.removeprefix("/bomb-").split("-")
        body = encoded_bomb(int(query.get("size", str(64 * MIB))), encodings)
        headers = [
            ("Content-Type", "application/json"),
            ("Content-Encoding", ", ".join(encodings)),
            ("Content-Length", str(len(body))),
        ]
        writer.write(_head("200 OK", headers) + body)
    elif path == "/redirect-bomb":
        body = encoded_bomb(int(query.get("size", str(64 * MIB))), ["gzip", "gzip"])
        headers = [
            ("Location", "/echo"),
            ("Content-Encoding", "gzip, gzip"),
            ("Content-Length", str(len(body))),
        ]
        writer.write(_head("302 Found", headers) + body)
    elif path == "/redirect-big":
        size = int(query.get("size", str(50 * MIB)))
        writer.write(_head("302 Found", [("Location", "/echo"), ("Content-Length", str(size))]))
        block = b"r" * WRITE_SIZE
        while size > 0:
            writer.write(block[: min(size, WRITE_SIZE)])
            size -= WRITE_SIZE
            await writer.drain()
    elif path == "/big-header":
        size = int(query.get("size", str(50 * MIB)))
        writer.write(b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nX-Big: ")
        block = b"b" * WRITE_SIZE
        while size > 0:
            writer.write(block[: min(size, WRITE_SIZE)])
            size -= WRITE_SIZE
            await writer.drain()
        writer.write(b"\r\nContent-Length: 2\r\n\r\n{}")
    elif path == "/smuggle":
        writer.write(_json({"answer": "first"}) + EVIL)
    elif path == "/smuggle-partial":
        writer.write(_json({"answer": "first"}) + b"HTTP/1.1 2")
    elif path == "/smuggle-late":
        writer.write(_json({"answer": "first"}))
        await writer.drain()
        writer.write(EVIL)
        await writer.drain()
        state.late_sent.set()
    elif path == "/utf8-header":
        content = b'{"answer": "headers"}'
        head = (
            b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\n"
            b'Content-Length: %d\r\nX-RateLimit-Note: %b\r\nETag: "%b"\r\n\r\n'
            % (len(content), UTF8_NOTE.encode(), "v\u2713".encode())
        )
        writer.write(head + content)
    elif path == "/yaml-aliases":
        size, copies = int(query.get("size", str(MIB))), int(query.get("chunks", "300"))
        content = (
            b'big: &b "' + b"y" * size + b'"\ncopies: [' + b", ".join([b"*b"] * copies) + b"]\n"
        )
        headers = [("Content-Type", "application/yaml"), ("Content-Length", str(len(content)))]
        writer.write(_head("200 OK", headers) + content)
    else:
        writer.write(_json({"error": "no such attack", "path": path}))
    await writer.drain()


@asynccontextmanager
async def serve_attacker(state: AttackerState, *, host: str = LOOPBACK) -> AsyncIterator[str]:
    """Run the attacker in the current loop; yield its base URL."""
    handlers: set[asyncio.Task[None]] = set()

    async def handle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        task = asyncio.current_task()
        assert task is not None
        handlers.add(task)
        state.connections += 1
        try:
            while True:  # keep-alive: every request of the connection
                head = await reader.readuntil(b"\r\n\r\n")
                target = head.split(b" ", 2)[1].decode("latin-1")
                url = urlsplit(target)
                state.paths.append(url.path)
                await _answer(url.path, dict(parse_qsl(url.query)), writer, state)
        except (asyncio.IncompleteReadError, asyncio.LimitOverrunError, ConnectionError):
            pass
        except asyncio.CancelledError:
            pass
        finally:
            handlers.discard(task)
            writer.close()
            with contextlib.suppress(Exception):
                await writer.wait_closed()

    server = await asyncio.start_server(handle, host, 0)
    state.url = f"http://{host}:{server.sockets[0].getsockname()[1]}"
    try:
        yield state.url
    finally:
        server.close()
        for task in list(handlers):
            task.cancel()
        await asyncio.gather(*handlers, return_exceptions=True)
        await server.wait_closed()


class AttackerThread(BackgroundServer):
    """``serve_attacker`` in a background thread: ``with AttackerThread() as a: a.url``."""

    def __init__(self, state: AttackerState | None = None) -> None:
        self.state = state if state is not None else AttackerState()
        super().__init__(lambda: serve_attacker(self.state))
