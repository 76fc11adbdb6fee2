"""Outbound HTTPS trusts the OS store, and a private CA added to it (``SSL_CERT_FILE``).

A loopback HTTPS server whose certificate a private CA signed (``support.tls``): unknown
to every client until the CA is added, then trusted by each outbound client (upstream
transport, OAuth2 token fetch, JWKS fetch).
"""

from __future__ import annotations

import asyncio
import ssl
from collections.abc import AsyncIterator, Callable, Iterator
from pathlib import Path

import certifi
import httpx
import pytest

from naftiko.adapters.http.auth import oauth2 as inbound_auth
from naftiko.upstream import outbound_auth
from naftiko.upstream.tls import trust_context
from naftiko.upstream.transport import Http11Transport
from support.tls import private_ca


@pytest.fixture
def fresh_trust(monkeypatch: pytest.MonkeyPatch) -> Iterator[pytest.MonkeyPatch]:
    """The trust context rebuilt from this test's environment, and again afterwards."""
    monkeypatch.delenv("SSL_CERT_FILE", raising=False)
    monkeypatch.delenv("SSL_CERT_DIR", raising=False)
    trust_context.cache_clear()
    yield monkeypatch
    trust_context.cache_clear()


@pytest.fixture
async def https_upstream(tmp_path: Path) -> AsyncIterator[tuple[str, Path]]:
    """``(url, ca.pem)``: a loopback HTTPS server answering ``{"ok": true}``."""
    ca_file, cert_file, key_file = private_ca(tmp_path)
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    context.load_cert_chain(cert_file, key_file)

    async def handle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            await reader.readuntil(b"\r\n\r\n")
            body = b'{"ok": true}'
            writer.write(
                b"HTTP/1.1 200 OK\r\ncontent-type: application/json\r\n"
                b"content-length: %d\r\nconnection: close\r\n\r\n%s" % (len(body), body)
            )
            await writer.drain()
        except (asyncio.IncompleteReadError, ConnectionError, ssl.SSLError):
            pass  # a client that refused our certificate hangs up mid-handshake
        finally:
            writer.close()

    server = await asyncio.start_server(handle, "127.0.0.1", 0, ssl=context)
    port = server.sockets[0].getsockname()[1]
    async with server:
        yield f"https://127.0.0.1:{port}/", ca_file


def upstream_client() -> httpx.AsyncClient:
    return httpx.AsyncClient(transport=Http11Transport(), trust_env=False)


CLIENTS: dict[str, Callable[[], httpx.AsyncClient]] = {
    "upstream transport": upstream_client,
    "oauth2 token client": outbound_auth._default_client,
    "jwks client": inbound_auth._default_client,
}


@pytest.mark.parametrize("make_client", CLIENTS.values(), ids=CLIENTS.keys())
async def test_a_private_ca_is_trusted_once_added(
    fresh_trust: pytest.MonkeyPatch,
    https_upstream: tuple[str, Path],
    make_client: Callable[[], httpx.AsyncClient],
) -> None:
    url, ca_file = https_upstream
    async with make_client() as client:
        with pytest.raises(httpx.ConnectError):
            await client.get(url)

    fresh_trust.setenv("SSL_CERT_FILE", str(ca_file))
    trust_context.cache_clear()
    async with make_client() as client:
        response = await client.get(url)
    assert response.status_code == 200 and response.json() == {"ok": True}


def test_the_trust_source_is_the_os_store_not_certifi(fresh_trust: pytest.MonkeyPatch) -> None:
    paths = ssl.get_default_verify_paths()
    if not (paths.cafile or paths.capath):
        pytest.skip("this machine's OpenSSL has no CA store configured (certifi is the fallback)")
    assert trust_context() is trust_context()  # built once per process
    expected = ssl.create_default_context().cert_store_stats()
    assert trust_context().cert_store_stats() == expected
    certifi_stats = ssl.create_default_context(cafile=certifi.where()).cert_store_stats()
    if certifi_stats != expected:  # the two bundles differ here, so the test can tell
        assert trust_context().cert_store_stats() != certifi_stats
