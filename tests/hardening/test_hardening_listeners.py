"""Hardening: the limits every listener enforces before any authentication (issue 15 item 4).

A real ``naftiko run`` process serves one adapter of each HTTP kind (REST, MCP, skill)
and the control port, with small limits given as flags; the tests speak raw HTTP/1.1
over loopback sockets, because what is under test is what a client can do before its
request ever reaches an app: send an endless head, dribble it, say nothing, or open
connection after connection. The waits below are guards against a hung server, never
expectations about speed.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
from collections.abc import Iterator
from urllib.parse import urlsplit

import httpx
import pytest
from hardening_kit import CAPABILITIES, RuntimeProcess

CAPABILITY = CAPABILITIES / "listeners.yaml"
GUARD_S = 20.0  # a server that never answers fails the test after this, not the suite
HEADER_LIMIT = 8192
ADAPTERS = ("lim-rest", "lim-mcp", "lim-skill", "control")


def _args(*extra: str) -> list[str]:
    return [
        str(CAPABILITY),
        "--host",
        "127.0.0.1",
        "--port",
        "lim-rest=0",
        "--port",
        "lim-mcp=0",
        "--port",
        "lim-skill=0",
        "--control-port",
        "0",
        *extra,
    ]


def _ports(urls: dict[str, str]) -> dict[str, int]:
    return {name: int(urlsplit(url).port or 0) for name, url in urls.items()}


@pytest.fixture(scope="module")
def limited() -> Iterator[tuple[RuntimeProcess, dict[str, int]]]:
    """Small header limit and short deadlines, so the tests stay fast."""
    args = _args(
        "--max-header-bytes", str(HEADER_LIMIT), "--header-timeout", "1", "--idle-timeout", "1"
    )
    with RuntimeProcess(args) as process:
        yield process, _ports(process.wait_ready())


# --------------------------------------------------------------------------- raw HTTP


async def _exchange(port: int, data: bytes, *, keep_sending: bytes = b"") -> bytes:
    """Send ``data`` (then ``keep_sending`` a byte at a time while the server listens)
    and return everything the server wrote until it closed the connection."""
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    received = bytearray()

    async def read_all() -> None:
        while chunk := await reader.read(65536):
            received.extend(chunk)

    async def dribble() -> None:
        with contextlib.suppress(ConnectionError):
            for byte in keep_sending:
                writer.write(bytes([byte]))
                await writer.drain()
                await asyncio.sleep(0.2)

    try:
        with contextlib.suppress(ConnectionError):
            writer.write(data)
            await writer.drain()
        sender = asyncio.create_task(dribble())
        with contextlib.suppress(ConnectionError):
            await asyncio.wait_for(read_all(), GUARD_S)
        sender.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await sender
    finally:
        writer.close()
        with contextlib.suppress(ConnectionError):
            await writer.wait_closed()
    return bytes(received)


def _status(answer: bytes) -> int:
    assert answer.startswith(b"HTTP/1.1 "), answer[:200]
    return int(answer[9:12])


def _body(answer: bytes) -> dict[str, object]:
    return json.loads(answer.split(b"\r\n\r\n", 1)[1])


def _request(path: str, port: int, *headers: str) -> bytes:
    lines = [f"GET {path} HTTP/1.1", f"Host: 127.0.0.1:{port}", "Connection: close", *headers]
    return ("\r\n".join(lines) + "\r\n\r\n").encode()


PATHS = {"lim-rest": "/hello", "lim-mcp": "/mcp", "lim-skill": "/skills", "control": "/health/live"}


# --------------------------------------------------------------------------- header size


@pytest.mark.parametrize("adapter", ADAPTERS)
async def test_a_complete_head_over_the_limit_gets_431(
    limited: tuple[RuntimeProcess, dict[str, int]], adapter: str
) -> None:
    _, ports = limited
    port = ports[adapter]
    big = "X-Big: " + "a" * (HEADER_LIMIT + 1)
    answer = await _exchange(port, _request(PATHS[adapter], port, big))
    assert _status(answer) == 431
    assert b"content-type: application/problem+json" in answer.lower()
    assert _body(answer)["status"] == 431


@pytest.mark.parametrize("adapter", ADAPTERS)
async def test_an_endless_head_gets_431_before_it_ends(
    limited: tuple[RuntimeProcess, dict[str, int]], adapter: str
) -> None:
    """The attack: megabytes of header that never end. Answered and closed at the limit."""
    _, ports = limited
    port = ports[adapter]
    start = f"GET {PATHS[adapter]} HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\nX-Big: ".encode()
    answer = await _exchange(port, start + b"a" * (8 * HEADER_LIMIT))
    assert _status(answer) == 431


async def test_a_head_under_the_limit_is_served(
    limited: tuple[RuntimeProcess, dict[str, int]],
) -> None:
    _, ports = limited
    port = ports["lim-rest"]
    answer = await _exchange(port, _request("/hello", port, "X-Big: " + "a" * 4000))
    assert _status(answer) == 200
    assert json.loads(answer.split(b"\r\n\r\n", 1)[1]) == "hello"


async def test_a_body_arriving_with_its_head_does_not_count_as_head(
    limited: tuple[RuntimeProcess, dict[str, int]],
) -> None:
    """Head and a body twice the header limit in one write: the head alone is measured."""
    _, ports = limited
    port = ports["lim-rest"]
    body = json.dumps({"pad": "a" * (2 * HEADER_LIMIT)}).encode()
    head = (
        f"POST /hello HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\nConnection: close\r\n"
        f"Content-Type: application/json\r\nContent-Length: {len(body)}\r\n"
        f"X-Some: {'a' * 4000}\r\n\r\n"
    ).encode()
    answer = await _exchange(port, head + body)
    assert _status(answer) == 200
    assert json.loads(answer.split(b"\r\n\r\n", 1)[1]) == "posted"


# --------------------------------------------------------------------------- deadlines


@pytest.mark.parametrize("adapter", ADAPTERS)
async def test_a_dribbled_head_is_closed_at_the_header_deadline(
    limited: tuple[RuntimeProcess, dict[str, int]], adapter: str
) -> None:
    """Slowloris: a byte every 0.2 s keeps the connection busy but never ends the head;
    the 1 s header deadline answers 408 and closes it (before the dribble runs out)."""
    _, ports = limited
    port = ports[adapter]
    start = f"GET {PATHS[adapter]} HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\n".encode()
    dribble = b"X-Slow: " + b"a" * int(GUARD_S / 0.2)
    answer = await _exchange(port, start, keep_sending=dribble)
    assert _status(answer) == 408


async def test_line_breaks_before_a_request_line_do_not_escape_the_deadline(
    limited: tuple[RuntimeProcess, dict[str, int]],
) -> None:
    """Empty lines before a request line are no request yet; dribbling them still ends
    at the header deadline (and never at the idle timeout, which any byte resets)."""
    _, ports = limited
    answer = await _exchange(ports["lim-rest"], b"\r\n", keep_sending=b"\r\n" * 50)
    assert _status(answer) == 408


@pytest.mark.parametrize("adapter", ADAPTERS)
async def test_a_silent_connection_is_closed_at_the_idle_timeout(
    limited: tuple[RuntimeProcess, dict[str, int]], adapter: str
) -> None:
    """Connected, never a byte: closed without an answer (there was no request)."""
    _, ports = limited
    assert await _exchange(ports[adapter], b"") == b""


async def test_a_kept_alive_connection_outlives_the_idle_timeout(
    limited: tuple[RuntimeProcess, dict[str, int]],
) -> None:
    """Found by the 10-minute stress run: with one timeout for both, the server closed a
    pooled connection at the same moment as the client (httpx keeps one 5 s) sent its
    next request on it, which failed without an answer. Between requests the keep-alive
    timeout (20 s) applies, not the idle timeout before a first request (1 s here)."""
    _, ports = limited
    reader, writer = await asyncio.open_connection("127.0.0.1", ports["lim-rest"])
    request = f"GET /hello HTTP/1.1\r\nHost: 127.0.0.1:{ports['lim-rest']}\r\n\r\n".encode()
    try:
        for _ in range(2):
            writer.write(request)
            await writer.drain()
            head = await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), GUARD_S)
            assert head.startswith(b"HTTP/1.1 200 ")
            length = int(head.lower().split(b"content-length: ")[1].split(b"\r\n")[0])
            await asyncio.wait_for(reader.readexactly(length), GUARD_S)
            await asyncio.sleep(2.0)  # twice the idle timeout, a tenth of the keep-alive one
    finally:
        writer.close()


async def test_keep_alive_requests_still_work_under_the_deadlines(
    limited: tuple[RuntimeProcess, dict[str, int]],
) -> None:
    _, ports = limited
    async with httpx.AsyncClient(base_url=f"http://127.0.0.1:{ports['lim-rest']}") as http:
        for _ in range(3):
            response = await http.get("/hello")
            assert response.status_code == 200 and response.json() == "hello"


# --------------------------------------------------------------------------- connection cap


async def _hold(port: int, count: int) -> list[asyncio.StreamWriter]:
    """``count`` keep-alive connections, each having been answered once (so the server
    has certainly accepted them)."""
    writers = []
    for _ in range(count):
        reader, writer = await asyncio.open_connection("127.0.0.1", port)
        writer.write(f"GET /hello HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\n\r\n".encode())
        await writer.drain()
        head = await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), GUARD_S)
        assert head.startswith(b"HTTP/1.1 200 ")
        length = int(head.lower().split(b"content-length: ")[1].split(b"\r\n")[0])
        await asyncio.wait_for(reader.readexactly(length), GUARD_S)
        writers.append(writer)
    return writers


async def test_past_the_connection_cap_new_connections_are_refused() -> None:
    cap = 8
    with RuntimeProcess(_args("--max-connections", str(cap), "--idle-timeout", "60")) as process:
        ports = _ports(process.wait_ready())
        rest, control = ports["lim-rest"], ports["control"]
        held = await _hold(rest, cap)
        try:
            refused = await _exchange(rest, _request("/hello", rest))
            assert _status(refused) == 503
            assert _body(refused)["status"] == 503
            process.wait_for(lambda line: "max-connections" in line and str(cap) in line)
            # Another listener keeps its own room: health answers during the flood.
            health = await _exchange(control, _request("/health/live", control))
            assert _status(health) == 200
        finally:
            for writer in held:
                writer.close()
        # Once the flood is gone the listener serves again.
        async with httpx.AsyncClient(base_url=f"http://127.0.0.1:{rest}") as http:
            for _ in range(int(GUARD_S / 0.1)):
                response = await http.get("/hello", headers={"Connection": "close"})
                if response.status_code == 200:
                    break
                await asyncio.sleep(0.1)
            assert response.status_code == 200
