"""The engine writes upstream requests itself only when httpx would write the same bytes."""

from __future__ import annotations

import dataclasses
from typing import Any
from urllib.parse import urlencode

import httpx
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from naftiko.compile.consumes import compile_path
from naftiko.engine.types import Inputs
from naftiko.templating import Scope
from naftiko.upstream.outbound_auth import (
    ApiKeyOutboundAuth,
    BasicOutboundAuth,
    BearerOutboundAuth,
    DigestOutboundAuth,
    OAuth2TokenCache,
)
from naftiko.upstream.plans import ConsumesPlan, OperationPlan, ParamPlan
from naftiko.upstream.request import RequestError, UpstreamRequest, build_request, form_encode
from naftiko.upstream.settings import UpstreamSettings
from naftiko.upstream.transport import WireRequest, wire_request
from naftiko.upstream.wire import ResponseHeaders, fixed_origin_of, wire_of

TIMEOUT = httpx.Timeout(connect=3, read=20, write=20, pool=3)


async def httpx_wire(request: UpstreamRequest, auth: Any = None) -> WireRequest:
    built = request.to_httpx()
    built.extensions = {"timeout": TIMEOUT.as_dict()}
    if auth is not None:
        built = next(auth.auth_flow(built))
    return await wire_request(built)


async def assert_same_bytes(request: UpstreamRequest, auth: Any = None) -> None:
    ours = wire_of(request, auth, TIMEOUT)
    assert ours is not None, request
    assert ours == await httpx_wire(request, auth)


@pytest.mark.parametrize("method", ["GET", "POST", "PUT", "PATCH", "DELETE", "HEAD", "OPTIONS"])
@pytest.mark.parametrize("content", [None, b"", b'{"a":1}'])
async def test_methods_and_bodies(method: str, content: bytes | None) -> None:
    headers = {"User-Agent": "naftiko/t", "Content-Type": "application/json"}
    await assert_same_bytes(UpstreamRequest(method, "http://127.0.0.1:8080/x", headers, content))


@pytest.mark.parametrize(
    "url",
    [
        "http://api.example.com",
        "http://api.example.com/",
        "https://API.Example.com:443/v2/oauth/token/",
        "http://api.example.com:80/a",
        "https://api.example.com:8443/a/b?x=1&y=%20z",
        "http://[::1]:9000/v1/users/abc%2Fdef/videos/?max_count=5&cursor=0",
        "http://10.0.0.1/a?q=a+b&r=%E2%82%AC",
        "http://api.example.com?only=query",
        "http://api.example.com/a:b@c!$&'()*+,;=~/",
    ],
)
async def test_url_shapes(url: str) -> None:
    await assert_same_bytes(UpstreamRequest("GET", url, {"Accept": "application/json"}))


@pytest.mark.parametrize(
    "auth",
    [
        BasicOutboundAuth("user", "päss"),
        BearerOutboundAuth("tok-123"),
        ApiKeyOutboundAuth("X-Api-Key", "k-1"),
        ApiKeyOutboundAuth("Authorization", "Token t"),
    ],
)
async def test_single_header_auth_replaces_any_case(auth: Any) -> None:
    headers = {"authorization": "caller", "x-api-key": "caller", "Accept": "*/*"}
    await assert_same_bytes(UpstreamRequest("POST", "https://a.example/t", headers, b"a=b"), auth)


@pytest.mark.parametrize(
    "url",
    [
        "https://a.example/x",
        "https://a.example/x?page=2&api_key=stale&api_key=old",
        "https://a.example:8443/x/%2F?q=a+b&r=%20",
        "https://a.example",
    ],
)
@pytest.mark.parametrize("value", ["s3cret", "a b&c=d/é+%"])
async def test_an_api_key_in_the_query_is_merged_as_httpx_merges_it(url: str, value: str) -> None:
    auth = ApiKeyOutboundAuth("api_key", value, placement="query")
    await assert_same_bytes(UpstreamRequest("GET", url, {"Accept": "*/*"}), auth)


@pytest.mark.parametrize(
    ("url", "headers", "auth", "files"),
    [
        ("http://a.example/a b", {}, None, None),  # httpx escapes the space
        ("http://a.example/caf\u00e9", {}, None, None),
        ("http://a.example/x/../y", {}, None, None),  # httpx removes dot segments
        ("http://a.example/x#frag", {}, None, None),
        ("http://user:pw@a.example/x", {}, None, None),  # httpx turns these into Basic
        ("ftp://a.example/x", {}, None, None),
        ("http://a.example/x", {"Host": "other"}, None, None),
        ("http://a.example/x", {"content-length": "3"}, None, None),
        ("http://a.example/x", {"X-Name": "caf\u00e9"}, None, None),
        ("http://user:pw@a.example/x", {}, ApiKeyOutboundAuth("k", "v", placement="query"), None),
        ("http://a.example/x", {}, ApiKeyOutboundAuth("k", "v", placement="cookie"), None),
        ("http://a.example/x", {}, DigestOutboundAuth("u", "p"), None),
        ("http://a.example/x", {}, None, [("f", (None, b"v", None))]),
    ],
)
def test_unusual_requests_are_left_to_httpx(
    url: str, headers: dict[str, str], auth: Any, files: Any
) -> None:
    assert wire_of(UpstreamRequest("POST", url, headers, files=files), auth, TIMEOUT) is None


segment = st.text(alphabet="abcXYZ019-._~%20:@!$&'()*+,;=/é ?{}`\"<>", max_size=10)
header_values = st.text(alphabet="abc XYZ019-._~;=/,:\t", max_size=12)


@settings(max_examples=300, deadline=None)
@given(
    path=segment,
    query=st.one_of(st.none(), segment),
    headers=st.dictionaries(
        st.sampled_from(["Accept", "X-Trace", "accept", "Cookie"]), header_values, max_size=3
    ),
    content=st.one_of(st.none(), st.binary(max_size=8)),
    auth=st.sampled_from([None, ApiKeyOutboundAuth("k", "v &é", placement="query")]),
)
async def test_whenever_we_write_it_httpx_would_write_the_same(
    path: str, query: str | None, headers: dict[str, str], content: bytes | None, auth: Any
) -> None:
    url = "https://api.example.com:8443/v1/" + path + ("" if query is None else "?" + query)
    request = UpstreamRequest("POST", url, headers, content)
    ours = wire_of(request, auth, TIMEOUT)
    if ours is not None:
        assert ours == await httpx_wire(request, auth)


def test_response_headers_read_like_httpx() -> None:
    raw = [
        (b"Content-Type", b"application/json"),
        (b"X-Rate", b"1"),
        (b"x-rate", b"2"),
        (b"X-Name", "caf\u00e9".encode()),
    ]
    ours, theirs = ResponseHeaders.of(raw), httpx.Headers(raw)
    assert list(ours.items()) == list(theirs.items())
    assert ours["content-type"] == ours["Content-Type"] == theirs["content-type"]
    assert ours.get("X-RATE") == theirs.get("x-rate") == "1, 2"
    assert "CONTENT-TYPE" in ours and "absent" not in ours and ours.get("absent") is None
    latin = [(b"X-Name", "caf\u00e9".encode("latin-1"))]
    assert list(ResponseHeaders.of(latin).items()) == list(httpx.Headers(latin).items())


@settings(max_examples=300, deadline=None)
@given(st.lists(st.tuples(st.text(max_size=8), st.text(max_size=12)), max_size=5))
def test_form_encoding_is_urlencode(pairs: list[tuple[str, str]]) -> None:
    assert form_encode(pairs) == urlencode(pairs)


def test_a_body_nested_beyond_the_encoder_is_a_request_error() -> None:
    from naftiko.upstream.request import RequestError, _json_body

    deep: list[object] = []
    for _ in range(5000):
        deep = [deep]
    with pytest.raises(RequestError, match="nested too deeply"):
        _json_body(deep)


# ---------------------------------------------------------------- requests the engine built

BASES = [
    "http://127.0.0.1:8080",
    "https://api.example.com/",
    "https://API.Example.com:443/v2",
    "http://[::1]:9000/base/path/",
    "http://a.example/sp ace",  # httpx escapes the space: never plain
    "http://a.example/x/..",  # httpx removes dot segments: never plain
    "http://user:pw@a.example",  # credentials: httpx's Basic auth
]
TEMPLATES = [
    "",
    "/",
    "/v1/users/{id}/videos/",
    "v1/{{id}}",
    "/{id}{other}",
    "/./{id}",
    "/a/../{id}",
    "/{id}/.",
    "/q?fixed=1&x={id}",
    "/frag#{id}",
    '/quote"{id}',
]
values = st.text(alphabet="abcXYZ019-._~%20:@!$&'()*+,;=/é ?#{}`\"<>\r", min_size=1, max_size=8)


@settings(max_examples=400, deadline=None)
@given(
    base=st.sampled_from(BASES),
    template=st.sampled_from(TEMPLATES),
    path_values=st.tuples(values, values),
    query=st.lists(st.tuples(st.sampled_from(["q", "cursor", "a b"]), values), max_size=3),
)
async def test_the_plain_origin_shortcut_writes_what_examining_the_url_writes(
    base: str, template: str, path_values: tuple[str, str], query: list[tuple[str, str]]
) -> None:
    """``UpstreamRequest.fixed_origin`` skips ``_locate``: the bytes must be the same as without
    it, and as httpx's, for every base, template and value."""
    path = compile_path(template)
    operation = OperationPlan(
        namespace="api",
        name="op",
        method="GET",
        path=path,
        params=tuple(ParamPlan(name, "query", None, None, False, None) for name, _ in query),
        body=None,
        output_raw_format=None,
        output_schema=None,
        base_dir=".",
        fixed_origin=fixed_origin_of(base, path),  # as compile_consumes decides it
    )
    consumes = ConsumesPlan("api", base, (), None, None, True, {"op": operation})
    inputs = {"id": path_values[0], "other": path_values[1], **dict(query)}
    try:
        built = build_request(
            operation,
            consumes,
            Scope(inputs=inputs),
            Inputs(values=inputs),
            UpstreamSettings(),
            OAuth2TokenCache(),
        )
    except RequestError:
        return  # refused before any URL exists (a '.' or '..' segment)
    request = built.request
    examined = wire_of(dataclasses.replace(request, fixed_origin=None), None, TIMEOUT)
    assert wire_of(request, None, TIMEOUT) == examined
    if request.fixed_origin is not None:
        assert examined is not None
        assert examined == await httpx_wire(request)
