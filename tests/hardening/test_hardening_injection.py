"""Injection: a caller's value never moves the upstream request off its host and prefix.

Values go in through REST (path segments as sent on the wire, query strings, raw
sockets for what httpx would normalise) and MCP arguments (decoded text, CR/LF
included). The assertions are on what the recording upstream received: the Host,
the raw path under ``/api/v1``, one path segment per path parameter that decodes to
exactly the caller's value, the query pairs, the headers. A refused value must be a
4xx / ``isError`` with nothing sent.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
from collections.abc import AsyncIterator
from dataclasses import dataclass
from urllib.parse import parse_qsl, unquote, urlsplit

import httpx
import pytest
from hardening_kit import (
    CAPABILITIES,
    CLIENT_TIMEOUT,
    RawRecorder,
    mcp_call,
    recorder_thread,
    serve_capability,
)

INJECTION = CAPABILITIES / "injection.yaml"
PREFIX = "/api/v1/items/"
TENANT = "acme"


@dataclass
class Rig:
    rest: httpx.AsyncClient
    rest_url: str
    mcp_url: str
    http: httpx.AsyncClient
    recorder: RawRecorder
    upstream_netloc: str


@contextlib.asynccontextmanager
async def rig() -> AsyncIterator[Rig]:
    with recorder_thread() as (url, recorder):
        env = {"HARD_VICTIM_BASE": url, "HARD_TENANT": TENANT}
        async with (
            serve_capability(INJECTION, env=env) as served,
            httpx.AsyncClient(
                base_url=served.rest["injection-rest"], timeout=CLIENT_TIMEOUT
            ) as rest,
            httpx.AsyncClient(timeout=CLIENT_TIMEOUT) as http,
        ):
            yield Rig(
                rest,
                served.rest["injection-rest"],
                served.mcp["injection-mcp"],
                http,
                recorder,
                urlsplit(url).netloc,
            )


async def raw_http(base_url: str, target: str, headers: str = "", body: bytes = b"") -> int:
    """Send a request line exactly as given (no client-side normalisation); the status."""
    parts = urlsplit(base_url)
    reader, writer = await asyncio.open_connection(parts.hostname, parts.port)
    try:
        head = f"GET {target} HTTP/1.1\r\nHost: {parts.netloc}\r\n{headers}"
        head += f"Content-Length: {len(body)}\r\nConnection: close\r\n\r\n"
        writer.write(head.encode("latin-1") + body)
        await writer.drain()
        status_line = await asyncio.wait_for(reader.readline(), 30)
        await asyncio.wait_for(reader.read(), 30)
        return int(status_line.split()[1])
    finally:
        writer.close()
        with contextlib.suppress(ConnectionError):
            await writer.wait_closed()


def assert_single_segment(rig: Rig, value: str) -> None:
    """Exactly one request, on our host, one segment under the prefix decoding to ``value``."""
    assert len(rig.recorder.requests) == 1, (value, rig.recorder.requests)
    (seen,) = rig.recorder.requests
    assert seen.header("host") == [rig.upstream_netloc]
    assert seen.raw_path.startswith(PREFIX), seen.raw_path
    segment = seen.raw_path[len(PREFIX) :]
    assert "/" not in segment and "?" not in segment and "#" not in segment, seen.raw_path
    assert unquote(segment) == value, (segment, value)


def assert_forward_stays_under_prefix(rig: Rig) -> None:
    for seen in rig.recorder.requests:
        assert seen.header("host") == [rig.upstream_netloc]
        assert seen.raw_path.startswith("/api/v1/"), seen.raw_path
        segments = [unquote(s) for s in seen.raw_path.split("/")]
        assert "." not in segments and ".." not in segments, seen.raw_path


# --------------------------------------------------------------------------- path values

PATH_VALUES = [
    "../../admin",
    "..",
    ".",
    "%2e%2e",
    "%2E%2E%2Fadmin",
    "a/../../b",
    "/",
    "//evil.com",
    "@evil.com",
    "user@evil.com:80",
    "http://evil.com/x",
    "?admin=1",
    "#frag",
    "..\\..\\admin",
    "%252e%252e%252f",
    "a b",
    "é/ü",
    "\u2025\u2024",  # two-dot leader / one-dot leader: not dots
]
REFUSED = {".", ".."}


async def test_mcp_path_argument_is_one_segment_or_refused() -> None:
    async with rig() as r:
        for value in PATH_VALUES:
            r.recorder.requests.clear()
            reply = await mcp_call(r.http, r.mcp_url, "get-item", {"id": value})
            assert reply.status == 200, reply.text
            if value in REFUSED:
                assert reply.is_error and "Invalid" in reply.error_text, reply.text
                assert r.recorder.requests == [], value
            else:
                assert not reply.is_error, reply.text
                assert_single_segment(r, value)


# As written in the request target: the adapter decodes once, then encodes once.
REST_SEGMENTS = [
    "..%2F..%2Fadmin",
    "%2e%2e",
    "%2E%2E",
    "%2e",
    "%2E%2E%2Fadmin",
    "%2F",
    "%2F%2Fevil.com",
    "@evil.com",
    "http:%2F%2Fevil.com%2Fx",
    "%252e%252e%252f",
    "%3Fadmin=1%23x",
    "%5C..%5Cadmin",
    "%0D%0AHost:%20evil",
    "a%0Ab",
    "a;b=c",
]
LITERAL_DOTS = ["/items/../../admin", "/items/./x/..", "/items/x/../../../admin", "/items//x"]


async def test_rest_path_segment_is_one_segment_or_refused() -> None:
    async with rig() as r:
        for segment in REST_SEGMENTS:
            r.recorder.requests.clear()
            status = await raw_http(r.rest_url, f"/items/{segment}")
            value = unquote(segment)
            if status == 200:
                assert value not in REFUSED, segment
                assert_single_segment(r, value)
            else:
                assert 400 <= status < 500, (segment, status)
                assert r.recorder.requests == [], segment
        r.recorder.requests.clear()
        for target in LITERAL_DOTS:  # as sent, without a client normalising them
            status = await raw_http(r.rest_url, target)
            assert 400 <= status < 500, (target, status)
        assert r.recorder.requests == []


async def test_rest_segment_with_an_encoded_newline_is_routed_by_the_adapter() -> None:
    async with rig() as r:
        response = await r.rest.get(httpx.URL(r.rest_url + "/items/a%0Ab"))
        assert response.status_code == 200, response.text
        assert_single_segment(r, "a\nb")


# --------------------------------------------------------------------------- forward


FORWARD_TARGETS = [
    "/proxy/../../admin",
    "/proxy/a/../../../admin",
    "/proxy/%2e%2e/%2e%2e/admin",
    "/proxy/..%2F..%2Fadmin",
    "/proxy/.%2E/admin",
    "/proxy//evil.com/x",
    "/proxy/http://evil.com/x",
    "/proxy/@evil.com",
    "/proxy/%2F%2Fevil.com",
    "/proxy/a?x=1&x=%2F..%2F",
]


async def test_forward_remainder_stays_under_the_prefix() -> None:
    async with rig() as r:
        for target in FORWARD_TARGETS:
            r.recorder.requests.clear()
            status = await raw_http(r.rest_url, target)
            assert status in (200, 400), (target, status)
            if status == 400:
                assert r.recorder.requests == [], target
            assert_forward_stays_under_prefix(r)


async def test_forward_never_copies_host_or_framing_headers_even_when_trusted() -> None:
    async with rig() as r:
        status = await raw_http(
            r.rest_url,
            "/proxy/x",
            headers="X-Forwarded-Host: evil.com\r\nX-Trace: t-1\r\nX-Other: no\r\n",
            body=b"abc",
        )
        assert status == 200
    (seen,) = r.recorder.requests
    assert seen.header("host") == [r.upstream_netloc]
    assert seen.header("content-length") == ["3"]
    assert seen.header("transfer-encoding") == []
    assert seen.header("x-trace") == ["t-1"]
    assert seen.header("x-other") == []
    assert seen.body == b"abc"


async def test_framing_headers_are_never_taken_from_a_callers_arguments() -> None:
    """A ``Content-Length`` shorter than the body would leave the rest of the body on the
    pooled connection, to be read as the next request (request smuggling)."""
    framing = {
        "Content-Length": 1,
        "Transfer-Encoding": "chunked",
        "Host": "evil.com",
        "Connection": "close",
    }
    async with rig() as r:
        for body in ({"name": "first", "admin": True}, {"name": "second"}):
            arguments = {"id": "7", "body": body, **framing}
            reply = await mcp_call(r.http, r.mcp_url, "put-item", arguments)
            assert not reply.is_error, reply.text
    assert len(r.recorder.requests) == 2  # the first body did not swallow the second call
    for seen, name in zip(r.recorder.requests, ("first", "second"), strict=True):
        assert (seen.method, seen.raw_path) == ("PUT", PREFIX + "7")
        assert seen.header("host") == [r.upstream_netloc]
        assert seen.header("content-length") == [str(len(seen.body))]
        assert seen.header("transfer-encoding") == [] and seen.header("connection") == []
        assert json.loads(seen.body)["name"] == name


# --------------------------------------------------------------------------- query


QUERY_VALUES = ["a&admin=true", "x#frag=1", "k=v", "%26%3D", "a+b c", "é", ";x=1", "\u0000"]


async def test_query_value_stays_one_pair() -> None:
    async with rig() as r:
        for value in QUERY_VALUES:
            r.recorder.requests.clear()
            reply = await mcp_call(r.http, r.mcp_url, "get-item", {"id": "7", "q": value})
            response = await r.rest.get("/items/7", params={"q": value})
            assert response.status_code == 200, (value, response.text)
            assert not reply.is_error, reply.text
            assert len(r.recorder.requests) == 2
            for seen in r.recorder.requests:
                assert parse_qsl(seen.query_string, keep_blank_values=True) == [("q", value)]
                assert seen.raw_path == PREFIX + "7"


async def test_duplicate_query_keys_do_not_add_parameters() -> None:
    async with rig() as r:
        response = await r.rest.get("/items/7?q=a&q=b&admin=true&tag=x&tag=y")
        assert response.status_code < 500
    for seen in r.recorder.requests:
        keys = {k for k, _ in parse_qsl(seen.query_string, keep_blank_values=True)}
        assert keys <= {"q"}, seen.query_string
        assert all("admin" not in v for _, v in seen.headers if _ != "host")


# --------------------------------------------------------------------------- headers

CRLF_VALUES = [
    "a\r\nX-Injected: 1",
    "a\nX-Injected: 1",
    "a\rX-Injected: 1",
    "a\x00b",
    "\r\n\r\nGET /",
]


async def test_header_value_with_line_breaks_is_refused() -> None:
    async with rig() as r:
        for value in CRLF_VALUES:
            reply = await mcp_call(r.http, r.mcp_url, "get-item", {"id": "7", "tag": value})
            response = await r.rest.get("/items/7", params={"tag": value})
            assert reply.is_error, reply.text
            assert "tag" in reply.error_text or "X-Tag" in reply.error_text
            assert response.status_code == 400, response.text
        assert r.recorder.requests == []


async def test_plain_header_value_arrives_intact() -> None:
    async with rig() as r:
        reply = await mcp_call(r.http, r.mcp_url, "get-item", {"id": "7", "tag": "v 1; x=2"})
        assert not reply.is_error, reply.text
    (seen,) = r.recorder.requests
    assert seen.header("x-tag") == ["v 1; x=2"]
    assert seen.header("x-injected") == []


@pytest.mark.parametrize("value", ["café", "\u2028"])
async def test_non_ascii_header_value_is_a_validation_error_not_a_500(value: str) -> None:
    async with rig() as r:
        reply = await mcp_call(r.http, r.mcp_url, "get-item", {"id": "7", "tag": value})
        response = await r.rest.get("/items/7", params={"tag": value})
    assert response.status_code == 400, response.text
    assert reply.is_error and "[500]" not in reply.error_text, reply.text


# --------------------------------------------------------------------------- base URIs


async def test_bound_base_uri_cannot_be_overridden_by_a_caller() -> None:
    async with rig() as r:
        hostile = {"TENANT": "../evil", "VICTIM_BASE": "http://evil.com"}
        reply = await mcp_call(r.http, r.mcp_url, "tenant-ping", hostile)
        response = await r.rest.get("/tenant", params=hostile)
        assert not reply.is_error, reply.text
        assert response.status_code == 200, response.text
    assert [s.raw_path for s in r.recorder.requests] == [f"/t/{TENANT}/ping"] * 2
    assert all(s.header("host") == [r.upstream_netloc] for s in r.recorder.requests)


async def test_unbound_base_uri_is_501_whatever_the_caller_sends() -> None:
    async with rig() as r:
        own = r.upstream_netloc  # the caller tries to point the call at a real server
        reply = await mcp_call(r.http, r.mcp_url, "unbound-ping", {"CALLER_HOST": own})
        response = await r.rest.get("/unbound", params={"CALLER_HOST": own})
        assert reply.is_error and "[501]" in reply.error_text, reply.text
        assert response.status_code == 501
        assert r.recorder.requests == []
