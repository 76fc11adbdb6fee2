"""The engine's HTTP/1.1 transport against scripted upstreams on real sockets.

Each upstream is a tiny asyncio server answering every request with scripted bytes, so
framing (content-length, chunked, end of stream), keep-alive reuse and every failure
class are exercised exactly as they appear on the wire.
"""

from __future__ import annotations

import asyncio
import datetime
import ipaddress
import socket
import ssl
import threading
import time
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from pathlib import Path

import httpx
import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

from naftiko.upstream.transport import Http11Transport

OK = b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\nContent-Type: application/json\r\n\r\n{}"

Reply = Callable[[bytes], bytes | None]  # request bytes -> answer (None: close, no answer)


class Upstream:
    """Counts connections and records requests; answers with ``reply``."""

    def __init__(self, reply: Reply, *, close_after: bool = False, delay: float = 0) -> None:
        self.reply = reply
        self.close_after = close_after
        self.delay = delay
        self.connections = 0
        self.requests: list[bytes] = []

    async def handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.connections += 1
        try:
            while True:
                head = await reader.readuntil(b"\r\n\r\n")
                body = b""
                lowered = head.lower()
                if b"content-length:" in lowered:
                    length = int(lowered.split(b"content-length:")[1].split(b"\r\n")[0])
                    body = await reader.readexactly(length)
                elif b"transfer-encoding: chunked" in lowered:
                    body = await reader.readuntil(b"0\r\n\r\n")
                self.requests.append(head + body)
                await asyncio.sleep(self.delay)
                answer = self.reply(head + body)
                if answer is None:
                    break
                writer.write(answer)
                await writer.drain()
                if self.close_after:
                    break
        except (asyncio.IncompleteReadError, ConnectionError):
            pass
        finally:
            writer.close()


@asynccontextmanager
async def serve(upstream: Upstream, **transport: float) -> AsyncIterator[httpx.AsyncClient]:
    server = await asyncio.start_server(upstream.handle, "127.0.0.1", 0)
    port = server.sockets[0].getsockname()[1]
    client = httpx.AsyncClient(
        base_url=f"http://127.0.0.1:{port}",
        transport=Http11Transport(**transport),  # type: ignore[arg-type]
        timeout=httpx.Timeout(2.0),
    )
    try:
        yield client
    finally:
        await client.aclose()
        server.close()
        await server.wait_closed()


def always(answer: bytes | None) -> Reply:
    return lambda _: answer


async def test_keep_alive_reuses_one_connection() -> None:
    upstream = Upstream(always(OK))
    async with serve(upstream) as client:
        for _ in range(3):
            response = await client.post("/x", json={"a": 1})
            assert (response.status_code, response.json()) == (200, {})
    assert upstream.connections == 1
    assert upstream.requests[0].startswith(b"POST /x HTTP/1.1\r\n")
    assert upstream.requests[0].endswith(b'{"a":1}')


async def test_concurrent_requests_open_parallel_connections_then_reuse_them() -> None:
    upstream = Upstream(always(OK), delay=0.05)
    async with serve(upstream) as client:
        for _ in range(2):
            responses = await asyncio.gather(*(client.get("/x") for _ in range(4)))
            assert [r.status_code for r in responses] == [200] * 4
    assert upstream.connections == 4


async def test_query_string_is_sent() -> None:
    upstream = Upstream(always(OK))
    async with serve(upstream) as client:
        await client.get("/v1/items", params={"q": "a b", "n": 2})
    assert upstream.requests[0].startswith(b"GET /v1/items?q=a+b&n=2 HTTP/1.1\r\n")


async def test_chunked_response() -> None:
    body = b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n3\r\nabc\r\n2\r\nde\r\n0\r\n\r\n"
    upstream = Upstream(always(body))
    async with serve(upstream) as client:
        assert (await client.get("/")).content == b"abcde"
        assert (await client.get("/")).content == b"abcde"
    assert upstream.connections == 1


async def test_body_framed_by_the_end_of_the_stream() -> None:
    upstream = Upstream(always(b"HTTP/1.0 200 OK\r\n\r\nuntil the end"), close_after=True)
    async with serve(upstream) as client:
        assert (await client.get("/")).content == b"until the end"
        assert (await client.get("/")).content == b"until the end"
    assert upstream.connections == 2


async def test_connection_close_is_not_reused() -> None:
    answer = b"HTTP/1.1 200 OK\r\nConnection: close\r\nContent-Length: 1\r\n\r\nx"
    upstream = Upstream(always(answer), close_after=True)
    async with serve(upstream) as client:
        for _ in range(2):
            assert (await client.get("/")).content == b"x"
    assert upstream.connections == 2


async def test_head_and_204_have_no_body() -> None:
    def reply(request: bytes) -> bytes:
        if request.startswith(b"HEAD"):
            return b"HTTP/1.1 200 OK\r\nContent-Length: 10\r\n\r\n"
        return b"HTTP/1.1 204 No Content\r\n\r\n"

    upstream = Upstream(reply)
    async with serve(upstream) as client:
        head = await client.head("/")
        assert (head.status_code, head.content, head.headers["content-length"]) == (200, b"", "10")
        for _ in range(2):
            no_content = await client.delete("/")
            assert (no_content.status_code, no_content.content) == (204, b"")


async def test_interim_responses_are_skipped() -> None:
    answer = b"HTTP/1.1 103 Early Hints\r\nLink: </a>\r\n\r\n" + OK
    async with serve(Upstream(always(answer))) as client:
        response = await client.get("/")
    assert (response.status_code, response.content) == (200, b"{}")
    assert "link" not in response.headers


async def test_large_body_is_read_whole() -> None:
    size = 3 * 1024 * 1024
    answer = b"HTTP/1.1 200 OK\r\nContent-Length: %d\r\n\r\n" % size + b"x" * size
    async with serve(Upstream(always(answer))) as client:
        assert len((await client.get("/")).content) == size


async def test_streamed_request_body_is_sent_chunked() -> None:
    async def parts() -> AsyncIterator[bytes]:
        yield b"ab"
        yield b"cd"

    upstream = Upstream(always(OK))
    async with serve(upstream) as client:
        assert (await client.post("/", content=parts())).status_code == 200
    assert upstream.requests[0].endswith(b"\r\n\r\n4\r\nabcd\r\n0\r\n\r\n")


async def test_disconnect_without_answer_is_a_protocol_error() -> None:
    async with serve(Upstream(always(None))) as client:
        with pytest.raises(httpx.RemoteProtocolError):
            await client.get("/")


async def test_truncated_body_is_a_protocol_error() -> None:
    answer = b"HTTP/1.1 200 OK\r\nContent-Length: 10\r\n\r\nabc"
    async with serve(Upstream(always(answer), close_after=True)) as client:
        with pytest.raises(httpx.RemoteProtocolError):
            await client.get("/")


async def test_malformed_response_is_a_protocol_error() -> None:
    async with serve(Upstream(always(b"NOT HTTP AT ALL\r\n\r\n"))) as client:
        with pytest.raises(httpx.RemoteProtocolError):
            await client.get("/")


async def test_slow_answer_is_a_read_timeout() -> None:
    async with serve(Upstream(always(OK), delay=1.0)) as client:
        with pytest.raises(httpx.ReadTimeout):
            await client.get("/", timeout=httpx.Timeout(2.0, read=0.05))


async def test_busy_pool_is_a_pool_timeout_and_frees_its_slot() -> None:
    async with serve(Upstream(always(OK)), max_connections=1) as client:
        held = await client.send(client.build_request("GET", "/"), stream=True)
        with pytest.raises(httpx.PoolTimeout):
            await client.get("/", timeout=httpx.Timeout(2.0, pool=0.05))
        await held.aclose()
        assert (await client.get("/")).status_code == 200


async def test_cancelled_exchange_closes_its_connection() -> None:
    upstream = Upstream(always(OK), delay=0.5)
    async with serve(upstream, max_connections=1) as client:
        with pytest.raises(TimeoutError):
            async with asyncio.timeout(0.05):
                await client.get("/")
        upstream.delay = 0
        assert (await client.get("/")).status_code == 200
    assert upstream.connections == 2


async def test_refused_connection_is_a_connect_error() -> None:
    server = await asyncio.start_server(lambda r, w: None, "127.0.0.1", 0)
    port = server.sockets[0].getsockname()[1]
    server.close()
    await server.wait_closed()
    async with httpx.AsyncClient(transport=Http11Transport()) as client:
        with pytest.raises(httpx.ConnectError):
            await client.get(f"http://127.0.0.1:{port}/")


@pytest.mark.parametrize("value", ["a\r\nInjected: 1", "a\nb", "a\x00b"])
async def test_line_breaks_in_headers_are_refused(value: str) -> None:
    upstream = Upstream(always(OK))
    async with serve(upstream) as client:
        with pytest.raises(httpx.LocalProtocolError):
            await client.get("/", headers={"X-Value": value})
    assert upstream.requests == []


async def test_unsupported_scheme() -> None:
    async with httpx.AsyncClient(transport=Http11Transport()) as client:
        with pytest.raises(httpx.UnsupportedProtocol):
            await client.get("ftp://example.com/")


async def test_a_connection_the_server_closed_while_idle_is_not_reused() -> None:
    """A server's keep-alive timeout closes idle connections without warning (uvicorn after
    5 s, nginx after 75 s): the next request must take a fresh connection, not fail."""
    upstream = Upstream(always(OK), close_after=True)  # keep-alive promised, then closed
    async with serve(upstream) as client:
        assert (await client.get("/")).status_code == 200
        await asyncio.sleep(0.05)  # the FIN arrives while the connection sits idle
        assert (await client.get("/")).status_code == 200
    assert upstream.connections == 2


class _AnswersThenCloses:
    """A blocking server thread: every connection answers one request with keep-alive
    promised, then closes at once, so its FIN lands while the client's loop is busy."""

    def __init__(self) -> None:
        self.listener = socket.create_server(("127.0.0.1", 0))
        self.connections = 0
        self.thread = threading.Thread(target=self._serve, daemon=True)
        self.thread.start()

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.listener.getsockname()[1]}"

    def _serve(self) -> None:
        while True:
            try:
                conn, _ = self.listener.accept()
            except OSError:
                return
            self.connections += 1
            with conn:
                data = b""
                while b"\r\n\r\n" not in data:
                    data += conn.recv(65536)
                conn.sendall(OK)


async def test_a_close_the_loop_has_not_read_yet_is_seen_before_reuse() -> None:
    """The FIN is in the socket but unread (the loop was busy): a POST, which is never
    replayed, must go out on a fresh connection rather than on the closed one."""
    server = _AnswersThenCloses()
    transport = Http11Transport()
    try:
        async with httpx.AsyncClient(transport=transport, timeout=httpx.Timeout(2.0)) as client:
            for _ in range(3):
                response = await client.post(server.url + "/x", json={"a": 1})
                assert response.status_code == 200
                time.sleep(0.05)  # blocks the loop: the FIN arrives but is not read
    finally:
        server.listener.close()
    assert server.connections == 3


class _DropsSecondRequest(Upstream):
    """Answers the first request of each connection; closes on the second, unanswered:
    the keep-alive race where the peer gives up on the connection as a request arrives."""

    async def handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.connections += 1
        try:
            for index in range(2):
                head = await reader.readuntil(b"\r\n\r\n")
                length = 0
                if b"content-length:" in head.lower():
                    length = int(head.lower().split(b"content-length:")[1].split(b"\r\n")[0])
                self.requests.append(head + await reader.readexactly(length))
                if index == 0:
                    writer.write(OK)
                    await writer.drain()
        except (asyncio.IncompleteReadError, ConnectionError):
            pass
        finally:
            writer.close()


@pytest.mark.parametrize("method", ["GET", "PUT", "DELETE"])
async def test_an_idempotent_request_the_peer_dropped_is_replayed_once(method: str) -> None:
    upstream = _DropsSecondRequest(always(OK))
    async with serve(upstream) as client:
        assert (await client.request(method, "/a")).status_code == 200
        assert (await client.request(method, "/b")).status_code == 200  # replayed
    assert upstream.connections == 2
    assert [r.split(b" ")[1] for r in upstream.requests] == [b"/a", b"/b", b"/b"]


async def test_a_post_the_peer_dropped_is_not_replayed() -> None:
    upstream = _DropsSecondRequest(always(OK))
    async with serve(upstream) as client:
        assert (await client.post("/a", json={})).status_code == 200
        with pytest.raises(httpx.RemoteProtocolError):
            await client.post("/b", json={})
    assert upstream.connections == 1  # sent once: it may have had an effect
    assert [r.split(b" ")[1] for r in upstream.requests] == [b"/a", b"/b"]


def _self_signed(directory: Path) -> tuple[Path, Path]:
    """A certificate for 127.0.0.1 and its key, as PEM files."""
    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "127.0.0.1")])
    now = datetime.datetime.now(datetime.UTC)
    cert = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(minutes=1))
        .not_valid_after(now + datetime.timedelta(hours=1))
        .add_extension(
            x509.SubjectAlternativeName([x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]),
            critical=False,
        )
        .sign(key, hashes.SHA256())
    )
    cert_file, key_file = directory / "cert.pem", directory / "key.pem"
    cert_file.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    key_file.write_bytes(
        key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
    )
    return cert_file, key_file


async def test_tls_connections_are_reused_not_taken_for_stale(tmp_path: Path) -> None:
    """The idle check asks the raw socket; TLS records must not make it look closed."""
    cert_file, key_file = _self_signed(tmp_path)
    server_context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    server_context.load_cert_chain(cert_file, key_file)
    upstream = Upstream(always(OK))
    server = await asyncio.start_server(upstream.handle, "127.0.0.1", 0, ssl=server_context)
    port = server.sockets[0].getsockname()[1]
    transport = Http11Transport(ssl_context=ssl.create_default_context(cafile=str(cert_file)))
    try:
        async with httpx.AsyncClient(transport=transport, timeout=httpx.Timeout(5.0)) as client:
            for index in range(6):
                response = await client.get(f"https://127.0.0.1:{port}/x")
                assert response.status_code == 200
                if index % 2:
                    await asyncio.sleep(0.02)  # idle for a while, as between real calls
    finally:
        server.close()
        await server.wait_closed()
    assert upstream.connections == 1


# --------------------------------------------------------------------------- hostile upstreams

EVIL = b'HTTP/1.1 200 OK\r\nContent-Length: 6\r\nContent-Type: application/json\r\n\r\n"evil"'


@pytest.mark.parametrize(
    "extra",
    [EVIL, EVIL.replace(b" OK\r\n", b" \r\n"), b"HTTP/1.1 2", b"H"],
    ids=["response", "response-without-reason", "partial-status-line", "one-byte"],
)
async def test_bytes_after_the_answer_in_its_write_close_the_connection(extra: bytes) -> None:
    """An upstream writes more right behind its answer (a second, unasked-for response,
    or its first bytes): the connection is not reused, the next request gets its own
    answer on a fresh one."""
    answers = iter([OK + extra, OK, OK, OK])
    upstream = Upstream(lambda _: next(answers))
    async with serve(upstream) as client:
        first = await client.get("/first")
        second = await client.get("/second")
    assert (first.status_code, first.json()) == (200, {})
    assert (second.status_code, second.json()) == (200, {})
    assert upstream.connections == 2


async def test_a_trailing_line_break_after_the_answer_keeps_the_connection() -> None:
    """A stray CRLF after a message is tolerated by HTTP/1.1 parsers (RFC 9112 §2.2)."""
    upstream = Upstream(always(OK + b"\r\n"))
    async with serve(upstream) as client:
        for _ in range(3):
            assert (await client.get("/x")).json() == {}
    assert upstream.connections == 1


async def test_bytes_an_idle_connection_received_close_it() -> None:
    """The unasked-for bytes come after the answer, while the connection sits in the
    pool (read by the loop, or still in the socket): never handed to the next request."""
    sent = asyncio.Event()

    class Late(Upstream):
        async def handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
            self.connections += 1
            try:
                while True:
                    self.requests.append(await reader.readuntil(b"\r\n\r\n"))
                    writer.write(OK)
                    await writer.drain()
                    if len(self.requests) == 1:
                        writer.write(EVIL)
                        await writer.drain()
                        sent.set()
            except (asyncio.IncompleteReadError, ConnectionError):
                pass
            finally:
                writer.close()

    upstream = Late(always(OK))
    async with serve(upstream) as client:
        assert (await client.get("/first")).json() == {}
        await sent.wait()
        second = await client.get("/second")
    assert (second.status_code, second.json()) == (200, {})
    assert upstream.connections == 2


@pytest.mark.parametrize("fetch", [False, True], ids=["httpx", "fetch"])
async def test_an_oversized_response_head_is_refused(fetch: bool) -> None:
    """A 5 MB header: refused once the head passes the limit, connection closed."""
    from naftiko.upstream.transport import MAX_RESPONSE_HEAD, ResponseHeadTooLarge, wire_request

    huge = b"HTTP/1.1 200 OK\r\nX-Big: " + b"a" * (5 * 1024 * 1024) + b"\r\n" + OK[17:]
    answers = iter([huge, OK])
    upstream = Upstream(lambda _: next(answers))
    async with serve(upstream) as client:
        direct = Http11Transport()  # the fast path's own transport, on the same upstream

        async def fetch_on_it(path: str) -> bytes:
            request = client.build_request("GET", path)
            request.extensions = {"timeout": client.timeout.as_dict()}
            return (await direct.fetch(await wire_request(request), limit=1024)).content

        with pytest.raises(ResponseHeadTooLarge) as caught:
            if fetch:
                await fetch_on_it("/big")
            else:
                await client.get("/big")
        assert str(MAX_RESPONSE_HEAD) in str(caught.value)
        if fetch:
            assert await fetch_on_it("/next") == b"{}"
        else:
            assert (await client.get("/next")).json() == {}
        await direct.aclose()


async def test_a_head_just_under_the_limit_is_read() -> None:
    """The limit is on the head only: a head under it and a large body in one write pass."""
    from naftiko.upstream.transport import MAX_RESPONSE_HEAD

    body = b"b" * (1024 * 1024)
    head = b"HTTP/1.1 200 OK\r\nContent-Length: %d\r\nX-Pad: " % len(body)
    head += b"p" * (MAX_RESPONSE_HEAD - len(head) - 4) + b"\r\n\r\n"
    assert len(head) == MAX_RESPONSE_HEAD
    async with serve(Upstream(always(head + body))) as client:
        response = await client.get("/x")
    assert response.status_code == 200 and response.content == body


async def test_an_oversized_head_on_a_reused_connection_is_not_replayed() -> None:
    """On a kept-alive connection, 64 KiB of line breaks (which parsers skip before a
    status line) are an answer, not a dropped connection: refused, never sent again."""
    from naftiko.upstream.transport import ResponseHeadTooLarge

    huge = b"\r\n" * (64 * 1024) + OK
    answers = iter([OK, huge, OK, OK])
    upstream = Upstream(lambda _: next(answers))
    async with serve(upstream) as client:
        assert (await client.get("/first")).json() == {}
        with pytest.raises(ResponseHeadTooLarge):
            await client.get("/second")
    assert len(upstream.requests) == 2
