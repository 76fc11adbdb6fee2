"""Bad input from callers: always a 4xx (REST) or an error result (MCP), never a 5xx.

The upstream is a recorder that answers 200 to everything, so any 5xx here is the
runtime's own. Hypothesis mixes methods, paths, query strings, content types and
bodies for REST, and argument shapes for MCP; fixed cases cover the classics (10k-deep
JSON, 10 MB bodies, invalid UTF-8, duplicate keys, odd methods, huge numbers). After
each batch the same server must still answer a valid call.
"""

from __future__ import annotations

import itertools
import json
import os
from collections.abc import Iterator
from typing import Any

import httpx
import pytest
from hardening_kit import (
    CAPABILITIES,
    INTERNAL_ERROR,
    MCP_HEADERS,
    CapabilityThread,
    RawRecorder,
    recorder_thread,
)
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from naftiko.upstream.settings import UpstreamSettings

FUZZ_CAPABILITY = CAPABILITIES / "fuzz.yaml"
EXAMPLES = int(os.environ.get("NAFTIKO_FUZZ_EXAMPLES", "80"))
FUZZ = settings(
    max_examples=EXAMPLES,
    deadline=None,
    database=None,
    suppress_health_check=list(HealthCheck),
)
TEN_MB = 10 * 1024 * 1024


class Target:
    """The served fuzz capability and clients bound to it."""

    def __init__(self, rest_url: str, mcp_url: str, recorder: RawRecorder) -> None:
        self.rest = httpx.Client(base_url=rest_url, timeout=60.0)
        self.mcp_url = mcp_url
        self.recorder = recorder
        self._ids = itertools.count(1)

    def rpc(self, payload: Any, *, raw: bytes | None = None) -> httpx.Response:
        content = raw if raw is not None else json.dumps(payload).encode()
        return self.rest.post(
            self.mcp_url,
            content=content,
            headers={**MCP_HEADERS, "Content-Type": "application/json"},
        )

    def call(self, name: Any, arguments: Any) -> httpx.Response:
        params = {"name": name, "arguments": arguments}
        return self.rpc(
            {"jsonrpc": "2.0", "id": next(self._ids), "method": "tools/call", "params": params}
        )

    def assert_healthy(self) -> None:
        response = self.rest.get("/things/7", params={"flag": "true", "n": "1.5"})
        assert response.status_code == 200, response.text
        reply = self.call("read-thing", {"id": 7})
        assert reply.status_code == 200
        assert reply.json()["result"].get("isError") is not True, reply.text


@pytest.fixture(scope="module")
def target() -> Iterator[Target]:
    with recorder_thread() as (url, recorder):
        settings = UpstreamSettings(base_uri_overrides={"sink": url})
        with CapabilityThread(FUZZ_CAPABILITY, engine_settings=settings) as served:
            t = Target(served.served.rest["fuzz-rest"], served.served.mcp["fuzz-mcp"], recorder)
            try:
                yield t
            finally:
                t.rest.close()


def assert_not_5xx(response: httpx.Response) -> None:
    assert response.status_code < 500, (response.status_code, response.text[:500])


def assert_mcp_survived(response: httpx.Response) -> None:
    """Any HTTP 4xx, a JSON-RPC error other than internal, or a tool result."""
    assert_not_5xx(response)
    if response.status_code != 200:
        return
    message = response.json()
    if "error" in message:
        assert message["error"]["code"] != INTERNAL_ERROR, message
    else:
        assert "result" in message, message


# --------------------------------------------------------------------------- strategies

JSON_SCALARS = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(min_value=-(10**30), max_value=10**30),
    st.floats(allow_nan=False, allow_infinity=False),
    st.text(max_size=40),
)
JSON_VALUES = st.recursive(
    JSON_SCALARS,
    lambda children: (
        st.lists(children, max_size=4) | st.dictionaries(st.text(max_size=8), children, max_size=4)
    ),
    max_leaves=20,
)
ODD_TEXT = st.one_of(
    st.text(max_size=30),
    st.sampled_from(
        ["1e400", "-1e400", "nan", "inf", "9" * 5000, "0x10", "true", "", "\x00", "1 ", "١٢"]
    ),
)
METHODS = st.sampled_from(
    ["GET", "POST", "PUT", "DELETE", "PATCH", "HEAD", "OPTIONS", "TRACE", "PROPFIND", "FOO"]
)
PATHS = st.sampled_from(
    [
        "/things/7",
        "/things/-1",
        "/things/1e3",
        "/things/" + "9" * 400,
        "/things/%00",
        "/things/%FF%FE",
        "/things/",
        "/things",
        "/things/7/extra",
        "/notes",
        "/forms/7",
        "/uploads/7",
        "/proxy/a/b",
        "/nope",
        "/.well-known/openapi.json",
    ]
)
CONTENT_TYPES = st.sampled_from(
    [
        None,
        "application/json",
        "application/json; charset=latin-1",
        "application/x-www-form-urlencoded",
        "text/plain; charset=utf-8",
        "text/plain; charset=nope",
        "application/xml",
        "garbage",
        "multipart/form-data; boundary=b",
        "multipart/form-data",
    ]
)
BODIES = st.one_of(
    st.none(),
    JSON_VALUES.map(lambda v: json.dumps(v).encode()),
    st.binary(max_size=200),
    st.sampled_from([b"\xff\xfe\x00", b'{"name": "\xc3\x28"}', b"name=%FF&size=1", b"{", b"[]"]),
)


MULTIPART_HEADERS = st.sampled_from(
    [
        b'Content-Disposition: form-data; name="name"',
        b'Content-Disposition: form-data; name="size"',
        b'Content-Disposition: form-data; name="doc"; filename="a.bin"',
        b"Content-Disposition: form-data",  # no name
        b'Content-Disposition: form-data; name="\xff"',
        b"Content-Type: text/plain",
        b"Content-Disposition",  # no colon
        b"",
    ]
)


@st.composite
def multipart_bodies(draw: Any) -> bytes:
    """Parts of boundary ``b`` with odd headers and values, maybe truncated or unclosed."""
    parts = draw(
        st.lists(
            st.tuples(st.lists(MULTIPART_HEADERS, max_size=2), st.binary(max_size=20)),
            max_size=3,
        )
    )
    body = b"".join(
        b"--b\r\n" + b"".join(h + b"\r\n" for h in headers) + b"\r\n" + value + b"\r\n"
        for headers, value in parts
    )
    body += draw(st.sampled_from([b"--b--\r\n", b"--b--", b"--b", b"", b"--c--\r\n"]))
    cut = draw(st.integers(min_value=0, max_value=len(body)))
    return body[:cut] if draw(st.booleans()) else body


@st.composite
def rest_requests(draw: Any) -> dict[str, Any]:
    query = draw(
        st.lists(
            st.tuples(st.sampled_from(["flag", "n", "id", "x", "X-Count"]), ODD_TEXT), max_size=4
        )
    )
    headers = {}
    if draw(st.booleans()):
        headers["X-Count"] = draw(st.sampled_from(["1", "-5", "9" * 100, "x", "1.5", ""]))
    content_type = draw(CONTENT_TYPES)
    if content_type is not None:
        headers["Content-Type"] = content_type
    multipart = content_type is not None and content_type.startswith("multipart/")
    return {
        "method": draw(METHODS),
        "url": draw(PATHS),
        "params": query,
        "headers": headers,
        "content": draw(multipart_bodies() if multipart else BODIES),
    }


# --------------------------------------------------------------------------- REST


def test_fuzzed_rest_requests_are_never_5xx(target: Target) -> None:
    @FUZZ
    @given(request=rest_requests())
    def check(request: dict[str, Any]) -> None:
        assert_not_5xx(target.rest.request(**request))

    check()
    target.assert_healthy()


def test_fuzzed_multipart_bodies_are_never_5xx(target: Target) -> None:
    @settings(FUZZ, max_examples=max(10, EXAMPLES // 2))
    @given(body=multipart_bodies(), url=st.sampled_from(["/uploads/7", "/things/7"]))
    def check(body: bytes, url: str) -> None:
        headers = {"Content-Type": "multipart/form-data; boundary=b"}
        assert_not_5xx(target.rest.post(url, content=body, headers=headers))

    check()
    target.assert_healthy()


@pytest.mark.parametrize("depth", [500, 990, 10_000, 100_000])
def test_deeply_nested_json_is_4xx_or_ok(target: Target, depth: int) -> None:
    nested = b'{"a":' * depth + b"1" + b"}" * depth
    for url in ("/notes", "/things/7"):
        response = target.rest.post(
            url, content=nested, headers={"Content-Type": "application/json"}
        )
        assert_not_5xx(response)
    listy = b'{"name": "n", "meta": {"x": ' + b"[" * depth + b"]" * depth + b"}}"
    response = target.rest.post(
        "/things/7", content=listy, headers={"Content-Type": "application/json"}
    )
    assert_not_5xx(response)
    target.assert_healthy()


def test_ten_megabyte_bodies_are_413(target: Target) -> None:
    big = b"x" * TEN_MB
    for url, ctype in [
        ("/notes", "application/json"),
        ("/things/7", "application/x-www-form-urlencoded"),
        ("/proxy/upload", "application/octet-stream"),
    ]:
        response = target.rest.post(url, content=big, headers={"Content-Type": ctype})
        assert response.status_code == 413, response.text
    chunked = target.rest.post(
        "/notes", content=iter([b"x" * 65536] * 160), headers={"Content-Type": "text/plain"}
    )
    assert chunked.status_code == 413
    target.assert_healthy()


@pytest.mark.parametrize(
    ("ctype", "body"),
    [
        ("application/json", b'{"name": "\xff\xfe"}'),
        ("application/x-www-form-urlencoded", b"name=%FF%FE&size=1"),
        ("application/x-www-form-urlencoded", b"name=\xff\xfe"),
        ("text/plain; charset=utf-8", b"\xff\xfe"),
        (
            "multipart/form-data; boundary=b",
            b'--b\r\nContent-Disposition: form-data; name="name"\r\n\r\n\xff\r\n--b--\r\n',
        ),
    ],
)
def test_invalid_utf8_bodies_are_never_5xx(target: Target, ctype: str, body: bytes) -> None:
    for url in ("/things/7", "/notes", "/forms/7", "/uploads/7"):
        response = target.rest.post(url, content=body, headers={"Content-Type": ctype})
        assert_not_5xx(response)
    target.assert_healthy()


@pytest.mark.parametrize(
    ("ctype", "body"),
    [
        (
            "multipart/form-data; boundary=b",
            b"--b\r\nContent-Disposition: form-data\r\n\r\nvalue\r\n--b--\r\n",
        ),
        ("multipart/form-data", b"name=n"),
    ],
    ids=["part-without-name", "no-boundary"],
)
def test_malformed_multipart_is_400(target: Target, ctype: str, body: bytes) -> None:
    response = target.rest.post("/uploads/7", content=body, headers={"Content-Type": ctype})
    assert response.status_code == 400, response.text


def test_wrong_types_and_huge_numbers_are_400(target: Target) -> None:
    cases = [
        ("GET", "/things/seven", {}, None),
        ("GET", "/things/7?flag=maybe", {}, None),
        ("GET", "/things/7?n=abc", {}, None),
        ("GET", "/things/7", {"X-Count": "many"}, None),
        ("POST", "/things/7", {}, {"name": 5}),
        ("POST", "/things/7", {}, {"name": "n", "size": "big"}),
        ("POST", "/things/7", {}, {"name": "n", "size": 1.5}),
        ("POST", "/things/7", {}, {"name": "n", "meta": [1]}),
        ("POST", "/things/7", {}, {"name": "n", "tags": [1, 2]}),
        ("POST", "/things/7", {}, {"size": 1}),
        ("POST", "/things/7", {}, [1, 2, 3]),
        ("POST", "/things/7", {}, "just a string"),
    ]
    before = len(target.recorder.requests)
    for method, url, headers, body in cases:
        response = target.rest.request(method, url, headers=headers, json=body)
        assert 400 <= response.status_code < 500, (method, url, body, response.text)
        assert response.headers["content-type"] == "application/problem+json"
    assert len(target.recorder.requests) == before  # refused before the upstream
    for number in ("1e400", "-1e400", "9" * 5000, "1" + "0" * 400):
        for url in (f"/things/{number}", f"/things/7?n={number}"):
            assert_not_5xx(target.rest.get(url))
        response = target.rest.post(
            "/things/7",
            content=b'{"name": "n", "size": ' + number.encode() + b"}",
            headers={"Content-Type": "application/json"},
        )
        assert_not_5xx(response)
    target.assert_healthy()


def test_duplicate_query_keys_and_odd_methods(target: Target) -> None:
    assert_not_5xx(target.rest.get("/things/7?flag=true&flag=false&n=1&n=2"))
    assert_not_5xx(target.rest.get("/things/7?" + "&".join(["n=1"] * 2000)))
    for method in ("PROPFIND", "TRACE", "CONNECT", "FOO", "MKCOL", "OPTIONS", "get"):
        for url in ("/things/7", "/notes", "/nope", "/.well-known/openapi.json"):
            assert_not_5xx(target.rest.request(method, url))
    target.assert_healthy()


# --------------------------------------------------------------------------- MCP

ARGUMENT_NAMES = st.sampled_from(["id", "flag", "n", "name", "size", "meta", "tags", "zzz", ""])
ARGUMENTS = st.one_of(
    st.dictionaries(ARGUMENT_NAMES, JSON_VALUES, max_size=6),
    st.fixed_dictionaries(
        {"id": st.one_of(st.integers(), JSON_VALUES), "name": st.one_of(st.text(), JSON_VALUES)},
        optional={"meta": JSON_VALUES, "tags": JSON_VALUES, "size": JSON_VALUES},
    ),
    JSON_VALUES,  # not even an object
)


def test_fuzzed_mcp_arguments_are_errors_not_crashes(target: Target) -> None:
    @FUZZ
    @given(
        name=st.one_of(st.sampled_from(["read-thing", "write-thing", "nope"]), JSON_VALUES),
        arguments=ARGUMENTS,
    )
    def check(name: Any, arguments: Any) -> None:
        assert_mcp_survived(target.call(name, arguments))

    check()
    target.assert_healthy()


def test_hostile_mcp_payloads(target: Target) -> None:
    deep = {"a": 1}
    for _ in range(200):
        deep = {"a": deep}
    cases: list[Any] = [
        ("write-thing", {"id": 1, "name": "x" * (5 * 1024 * 1024)}),
        ("write-thing", {"id": 1, "name": "n", "meta": deep}),
        ("write-thing", {"id": 10**400, "name": "n"}),
        ("read-thing", {"id": 1, "n": 1e308 * 10}),
        ("read-thing", None),
        ("read-thing", []),
        ("read-thing", "id=1"),
        (None, {"id": 1}),
        ({"name": "read-thing"}, {}),
    ]
    for name, arguments in cases:
        try:
            assert_mcp_survived(target.call(name, arguments))
        except ValueError:  # the client refused to encode it (inf): send it as text
            raw = json.dumps(
                {
                    "jsonrpc": "2.0",
                    "id": 1,
                    "method": "tools/call",
                    "params": {"name": name, "arguments": arguments},
                },
                allow_nan=True,
            )
            assert_mcp_survived(target.rpc(None, raw=raw.encode()))
    nested = b'{"a":' * 10_000 + b"1" + b"}" * 10_000
    raws = [
        b'{"jsonrpc": "2.0", "id": 1, "method": "tools/call", "params": {"name": "read-thing", '
        b'"arguments": ' + nested + b"}}",
        b'{"jsonrpc": "2.0", "id": 1, "method": "tools/call", "params": {"name": "\xff\xfe"}}',
        b"{not json",
        b"[]",
        b"[" + b",".join([b'{"jsonrpc": "2.0", "id": 1, "method": "tools/list"}'] * 50) + b"]",
        b'{"jsonrpc": "2.0", "id": 1, "method": "tools/call"}',
        b'{"jsonrpc": "2.0", "id": 1, "method": "nope/nope", "params": {}}',
        b'{"jsonrpc": "1.0", "id": {}, "method": 5}',
        b"x" * TEN_MB,
    ]
    for raw in raws:
        assert_mcp_survived(target.rpc(None, raw=raw))
    target.assert_healthy()
