"""A misbehaving upstream for hardening tests, on a raw ``asyncio`` server.

Starlette/uvicorn always speak correct HTTP; resets, short bodies and stalls need a
server that writes the bytes itself. The mode is chosen by path:

=============================  ====================================================
``/echo`` (and ``/``)          200 JSON ``{method, path, query, headers, body}``
``/status/{code}``             that status, JSON body ``{"error", "status"}``
``/no-content``                204, no body
``/reset``                     headers + part of the body, then a TCP reset
``/reset-before-response``     a TCP reset instead of any response
``/close-before-response``     a clean close (FIN) instead of any response
``/slow-headers?delay=30``     sleep ``delay`` seconds, then the echo
``/slow-body?chunks=5&interval=1``  chunked JSON array, one element per ``interval``
``/truncated-json``            Content-Length promises more than is sent, then FIN
``/invalid-json``              a complete 200 ``application/json`` that is not JSON
``/invalid-xml``               a complete 200 ``application/xml`` that is not XML
``/big?size=52428800&chunked=0``  a valid JSON document of exactly ``size`` bytes,
                               streamed in 64 KiB writes (``chunked=1``: no length)
``/gzip?size=1000``             ``{"data":"aaa…"}`` of ``size`` bytes, gzip-encoded
``/redirect?to=URL&status=302``  redirect, by default to ``localhost`` (another host
                               name for the same server) ``/echo``
``/flaky/{key}/{n}/{fault}``   a flapping upstream: the first ``n`` requests for
                               ``key`` fail with ``fault`` (a status such as ``503``,
                               ``429``; ``reset``; ``close``), later ones get the echo.
                               ``?retry_after=S`` adds ``Retry-After: S`` to failures,
                               ``?delay=S`` waits S seconds before the answer.
=============================  ====================================================
Every response carries ``Connection: close``.
"""

from __future__ import annotations

import asyncio
import contextlib
import gzip
import json
import socket
import struct
import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from http import HTTPStatus
from urllib.parse import parse_qsl, urlsplit

from fakes import RecordedRequest, parse_form, parse_json
from support.servers import LOOPBACK, BackgroundServer

BIG_DEFAULT = 50 * 1024 * 1024
WRITE_SIZE = 64 * 1024
INVALID_JSON = b'{"ships": [{"imo_number": "IMO-9321483", "vessel_name": "Northern Star",}'
INVALID_XML = b"<vessels><vessel><vesselName>Broken</vessel></vessels>"


@dataclass
class FaultState:
    """What the fault server saw; ``url`` is filled in once it listens."""

    requests: list[RecordedRequest] = field(default_factory=list)
    url: str = ""
    flaky: dict[str, int] = field(default_factory=dict)  # /flaky/{key}: requests seen

    def hits(self, key: str) -> list[RecordedRequest]:
        """The requests that reached ``/flaky/{key}/...``, in order."""
        return [r for r in self.requests if r.path.startswith(f"/flaky/{key}/")]


class _Closed(Exception):
    """The client went away before sending a whole request."""


async def _read_request(reader: asyncio.StreamReader) -> RecordedRequest:
    try:
        head = await reader.readuntil(b"\r\n\r\n")
    except (asyncio.IncompleteReadError, asyncio.LimitOverrunError) as exc:
        raise _Closed from exc
    lines = head.decode("latin-1").split("\r\n")
    method, target, _version = lines[0].split(" ", 2)
    headers: dict[str, str] = {}
    for line in lines[1:]:
        if ":" in line:
            name, value = line.split(":", 1)
            headers[name.strip().lower()] = value.strip()
    body = b""
    if headers.get("transfer-encoding", "").lower() == "chunked":
        while size := int((await reader.readuntil(b"\r\n")).split(b";")[0], 16):
            body += await reader.readexactly(size + 2)
            body = body[:-2]
        await reader.readuntil(b"\r\n")
    elif length := int(headers.get("content-length", "0") or 0):
        body = await reader.readexactly(length)
    url = urlsplit(target)
    content_type = headers.get("content-type", "").split(";")[0].strip().lower()
    return RecordedRequest(
        method=method,
        path=url.path,
        query=dict(parse_qsl(url.query, keep_blank_values=True)),
        headers=headers,
        body=body,
        form=parse_form(body) if content_type == "application/x-www-form-urlencoded" else None,
        json=parse_json(body) if content_type.endswith("json") else None,
    )


def _head(status: int, headers: dict[str, str]) -> bytes:
    try:
        reason = HTTPStatus(status).phrase
    except ValueError:
        reason = "Unknown"
    lines = [f"HTTP/1.1 {status} {reason}", *(f"{k}: {v}" for k, v in headers.items())]
    lines.append("Connection: close")
    return ("\r\n".join(lines) + "\r\n\r\n").encode("latin-1")


async def _respond(
    writer: asyncio.StreamWriter, status: int, body: bytes = b"", ctype: str = "application/json"
) -> None:
    headers = {"Content-Type": ctype, "Content-Length": str(len(body))} if status != 204 else {}
    writer.write(_head(status, headers) + body)
    await writer.drain()


def _reset(writer: asyncio.StreamWriter) -> None:
    """Close with SO_LINGER 0: the kernel sends RST instead of FIN."""
    sock = writer.get_extra_info("socket")
    if sock is not None:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
    writer.transport.abort()


def _echo(request: RecordedRequest) -> bytes:
    return json.dumps(
        {
            "method": request.method,
            "path": request.path,
            "query": request.query,
            "headers": request.headers,
            "body": request.body.decode("utf-8", "replace"),
        }
    ).encode()


async def _big(writer: asyncio.StreamWriter, size: int, chunked: bool) -> None:
    """Stream ``{"data":"aaa…"}`` of exactly ``size`` bytes without building it in memory."""
    prefix, suffix = b'{"data":"', b'"}'
    size = max(size, len(prefix) + len(suffix))
    if chunked:
        headers = {"Content-Type": "application/json", "Transfer-Encoding": "chunked"}
    else:
        headers = {"Content-Type": "application/json", "Content-Length": str(size)}
    writer.write(_head(200, headers))

    async def send(data: bytes) -> None:
        writer.write(b"%x\r\n%b\r\n" % (len(data), data) if chunked else data)
        await writer.drain()

    await send(prefix)
    remaining = size - len(prefix) - len(suffix)
    block = b"a" * WRITE_SIZE
    while remaining > 0:
        piece = block[: min(remaining, WRITE_SIZE)]
        await send(piece)
        remaining -= len(piece)
    await send(suffix)
    if chunked:
        writer.write(b"0\r\n\r\n")
        await writer.drain()


async def _flaky(request: RecordedRequest, writer: asyncio.StreamWriter, state: FaultState) -> None:
    _, _, key, fails, fault = request.path.split("/", 4)
    seen = state.flaky[key] = state.flaky.get(key, 0) + 1
    if seen > int(fails):
        await asyncio.sleep(float(request.query.get("delay", "0")))
        await _respond(writer, 200, _echo(request))
    elif fault == "reset":
        _reset(writer)
    elif fault == "close":
        writer.close()
    else:
        headers = {"Content-Type": "application/json"}
        if "retry_after" in request.query:
            headers["Retry-After"] = request.query["retry_after"]
        body = json.dumps({"error": "flapping", "attempt": seen}).encode()
        headers["Content-Length"] = str(len(body))
        writer.write(_head(int(fault), headers) + body)
        await writer.drain()


async def _dispatch(
    request: RecordedRequest, writer: asyncio.StreamWriter, state: FaultState
) -> None:
    base = state.url
    path, q = request.path.rstrip("/") or "/", request.query
    if path.startswith("/flaky/"):
        await _flaky(request, writer, state)
    elif path in ("/", "/echo"):
        await _respond(writer, 200, _echo(request))
    elif path.startswith("/status/"):
        code = int(path.rsplit("/", 1)[1])
        body = json.dumps({"error": "upstream failure", "status": code}).encode()
        await _respond(writer, code, body)
    elif path == "/no-content":
        await _respond(writer, 204)
    elif path == "/reset":
        headers = {"Content-Type": "application/json", "Content-Length": "1000"}
        writer.write(_head(200, headers) + b'{"partial": "')
        await writer.drain()
        await asyncio.sleep(0.05)  # let the client get the headers: a reset *mid*-response
        _reset(writer)
    elif path == "/reset-before-response":
        _reset(writer)
    elif path == "/close-before-response":
        writer.close()
    elif path == "/slow-headers":
        await asyncio.sleep(float(q.get("delay", "30")))
        await _respond(writer, 200, _echo(request))
    elif path == "/slow-body":
        chunks, interval = int(q.get("chunks", "5")), float(q.get("interval", "1"))
        writer.write(
            _head(200, {"Content-Type": "application/json", "Transfer-Encoding": "chunked"})
        )
        for i in range(chunks):
            piece = ("[" if i == 0 else ",") + str(i) + ("]" if i == chunks - 1 else "")
            writer.write(b"%x\r\n%b\r\n" % (len(piece), piece.encode()))
            await writer.drain()
            if i < chunks - 1:
                await asyncio.sleep(interval)
        writer.write(b"0\r\n\r\n")
        await writer.drain()
    elif path == "/truncated-json":
        full = json.dumps({"ships": [{"imo_number": "IMO-9321483"}] * 20}).encode()
        headers = {"Content-Type": "application/json", "Content-Length": str(len(full))}
        writer.write(_head(200, headers) + full[: len(full) // 2])
        await writer.drain()
    elif path == "/invalid-json":
        await _respond(writer, 200, INVALID_JSON)
    elif path == "/invalid-xml":
        await _respond(writer, 200, INVALID_XML, "application/xml")
    elif path == "/big":
        await _big(writer, int(q.get("size", BIG_DEFAULT)), q.get("chunked", "0") == "1")
    elif path == "/gzip":
        size = int(q.get("size", "1000"))
        plain = b'{"data":"' + b"a" * max(size - 11, 0) + b'"}'
        packed = gzip.compress(plain)
        headers = {
            "Content-Type": "application/json",
            "Content-Encoding": "gzip",
            "Content-Length": str(len(packed)),
        }
        writer.write(_head(200, headers) + packed)
        await writer.drain()
    elif path == "/redirect":
        port = urlsplit(base).port
        location = q.get("to", f"http://localhost:{port}/echo")
        writer.write(
            _head(int(q.get("status", "302")), {"Location": location, "Content-Length": "0"})
        )
        await writer.drain()
    else:
        await _respond(writer, 404, json.dumps({"error": "no such fault", "path": path}).encode())


@asynccontextmanager
async def serve_faults(
    state: FaultState | None = None, *, host: str = LOOPBACK
) -> AsyncIterator[str]:
    """Run the fault server in the current loop; yield its base URL."""
    state = state if state is not None else FaultState()
    handlers: set[asyncio.Task[None]] = set()

    async def handle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        task = asyncio.current_task()
        assert task is not None
        handlers.add(task)
        try:
            request = await _read_request(reader)
            request.extra["at"] = time.monotonic()
            state.requests.append(request)
            await _dispatch(request, writer, state)
        except (_Closed, ConnectionError, asyncio.CancelledError):
            pass
        finally:
            handlers.discard(task)
            if not writer.is_closing():
                writer.close()
            with contextlib.suppress(Exception):
                await writer.wait_closed()

    server = await asyncio.start_server(handle, host, 0)
    port = server.sockets[0].getsockname()[1]
    state.url = f"http://{host}:{port}"
    try:
        yield state.url
    finally:
        server.close()
        for task in list(handlers):  # stalled modes would otherwise outlive the test
            task.cancel()
        await asyncio.gather(*handlers, return_exceptions=True)
        await server.wait_closed()


class FaultServerThread(BackgroundServer):
    """``serve_faults`` in a background thread: ``with FaultServerThread() as f: f.url``."""

    def __init__(self, state: FaultState | None = None, *, host: str = LOOPBACK) -> None:
        self.state = state if state is not None else FaultState()
        super().__init__(lambda: serve_faults(self.state, host=host))
