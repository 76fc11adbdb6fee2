"""The ``tools/call`` fast path answers exactly what the SDK answers.

Every raw request goes to two apps built from the same plan and engine double, one with
the fast path and one without, and the answers (status, content type, body bytes) must be
equal. A counting wrapper around the SDK proves which requests the fast path served
itself, so an equality can never come from both sides having asked the SDK.
"""

from __future__ import annotations

import contextlib
import json
from collections.abc import AsyncIterator
from typing import Any

import httpx
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from jsonschema import Draft202012Validator
from starlette.types import ASGIApp, Receive, Scope, Send
from test_mcp_adapter import TOOLS, EngineDouble, plan, unit

from naftiko.adapters.http.settings import AdapterSettings
from naftiko.adapters.mcp import fast_path as fast_path_module
from naftiko.adapters.mcp.fast_path import ToolCallFastPath
from naftiko.adapters.mcp.results import compile_check
from naftiko.adapters.mcp.server import build_mcp_app
from naftiko.engine.types import Result
from naftiko.observability import NullObserver, set_observer

LEGACY = (None, "2024-11-05", "2025-03-26", "2025-06-18", "2025-11-25")
MODERN = "2026-07-28"
ACCEPT = "application/json, text/event-stream"
UNICODE_TOOL = unit(
    "unicode",
    output_schema={"type": "object", "properties": {"name": {"type": "string"}}},
)
ALL_TOOLS = (*TOOLS, UNICODE_TOOL)


class CountingSdk:
    """Counts the requests that reach the SDK behind the fast path."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app
        self.calls = 0

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        self.calls += 1
        await self.app(scope, receive, send)


class Pair:
    """The same plan served with and without the fast path."""

    def __init__(self, fast: httpx.AsyncClient, sdk: httpx.AsyncClient, counter: CountingSdk):
        self.fast, self.sdk, self.counter = fast, sdk, counter

    async def both(
        self, body: bytes | str, headers: dict[str, str], path: str = "/mcp"
    ) -> tuple[httpx.Response, httpx.Response, bool]:
        """Both answers, and whether the fast path answered without the SDK."""
        content = body.encode() if isinstance(body, str) else body
        before = self.counter.calls
        fast = await self.fast.post(path, content=content, headers=headers)
        served = self.counter.calls == before
        return fast, await self.sdk.post(path, content=content, headers=headers), served


def wire(response: httpx.Response) -> tuple[int, str | None, bytes]:
    """What a client sees: status, content type and the exact body bytes."""
    return response.status_code, response.headers.get("content-type"), response.content


def engine() -> EngineDouble:
    return EngineDouble(
        {
            "ns.echo": lambda i: Result(status=200, body={"got": i.values["body"]}),
            "ns.list": lambda _: Result(status=200, body=[1, 2]),
            "ns.text": lambda _: Result(
                status=200, body=b"plain \xe2\x9c\x93", media_type="text/plain"
            ),
            "ns.png": lambda _: Result(status=200, body=b"\x89PNG\r\n", media_type="image/png"),
            "ns.blob": lambda _: Result(status=200, body=b"\x00\xff", media_type="application/x"),
            "ns.empty": lambda _: Result(status=204, body=None),
            "ns.tiktok": lambda _: Result(
                status=400, body={"error": "invalid_request"}, is_error=True, upstream_status=400
            ),
            "ns.typed": lambda _: Result(status=200, body={"count": "not a number"}),
            "ns.boom": lambda _: 1 / 0,  # type: ignore[return-value,arg-type]
            "ns.unicode": lambda _: Result(status=200, body={"name": "Zoë ✓ 東京"}),
        }
    )


@contextlib.asynccontextmanager
async def pair(settings: AdapterSettings = AdapterSettings()) -> AsyncIterator[Pair]:  # noqa: B008
    fast_app = build_mcp_app(engine(), plan(*ALL_TOOLS), settings)
    sdk_app = build_mcp_app(engine(), plan(*ALL_TOOLS), settings, fast_path=False)
    fast_path = fast_app.router.default.endpoint  # type: ignore[attr-defined]  # McpPaths
    assert isinstance(fast_path, ToolCallFastPath)
    counter = CountingSdk(fast_path.sdk)
    fast_path.sdk = counter
    async with (
        fast_app.router.lifespan_context(fast_app),
        sdk_app.router.lifespan_context(sdk_app),
        httpx.AsyncClient(transport=httpx.ASGITransport(fast_app), base_url="http://t") as fast,
        httpx.AsyncClient(transport=httpx.ASGITransport(sdk_app), base_url="http://t") as sdk,
    ):
        yield Pair(fast, sdk, counter)


def call(name: str, arguments: Any = None, *, rpc_id: Any = 1, era: str | None = None) -> str:
    params: dict[str, Any] = {"name": name}
    if arguments is not None:
        params["arguments"] = arguments
    if era == MODERN:
        params["_meta"] = {
            "io.modelcontextprotocol/protocolVersion": MODERN,
            "io.modelcontextprotocol/clientCapabilities": {},
        }
    return json.dumps({"jsonrpc": "2.0", "id": rpc_id, "method": "tools/call", "params": params})


def headers(era: str | None, name: str = "echo", **extra: str) -> dict[str, str]:
    result = {"Content-Type": "application/json", "Accept": ACCEPT}
    if era is not None:
        result["MCP-Protocol-Version"] = era
    if era == MODERN:
        result.update({"Mcp-Method": "tools/call", "Mcp-Name": name})
    result.update(extra)
    return result


CALLS = [
    ("echo", {"body": {"k": [1, "x", None]}}),  # structured content
    ("list", {}),  # non-object JSON: text only
    ("text", {"body": {}}),
    ("png", {"body": {}}),  # image content
    ("blob", {"body": {}}),  # embedded resource
    ("empty", {"body": {}}),
    ("tiktok", {"body": {}}),  # upstream error: isError with the body
    ("echo", {}),  # engine validation: isError naming the argument
    ("typed", {"body": {}}),  # output schema mismatch
    ("boom", {"body": {}}),  # an exception in the engine
    ("unicode", {"body": {}}),  # non-ASCII: escaped in one era, not the other
    ("echo", None),  # no arguments at all
]


@pytest.mark.parametrize("era", [*LEGACY, MODERN])
async def test_tool_calls_are_answered_as_the_sdk_answers(era: str | None) -> None:
    async with pair() as p:
        for name, arguments in CALLS:
            fast, sdk, served = await p.both(call(name, arguments, era=era), headers(era, name))
            assert served, (era, name)
            assert wire(fast) == wire(sdk), (era, name)
            assert fast.status_code == 200
        for rpc_id in ("abc", 0, 2**53 + 1):
            body = call("echo", {"body": {}}, rpc_id=rpc_id, era=era)
            fast, sdk, served = await p.both(body, headers(era))
            assert served and wire(fast) == wire(sdk)
            assert fast.json()["id"] == rpc_id


async def test_modern_results_carry_result_type_and_server_info() -> None:
    async with pair() as p:
        fast, _, served = await p.both(call("echo", {"body": {}}, era=MODERN), headers(MODERN))
    result = fast.json()["result"]
    assert served and result["resultType"] == "complete"
    assert result["_meta"]["io.modelcontextprotocol/serverInfo"]["name"] == "ns"


def _raw(method: str, params: Any, rpc_id: Any = 1) -> str:
    return json.dumps({"jsonrpc": "2.0", "id": rpc_id, "method": method, "params": params})


MODERN_META = {
    "io.modelcontextprotocol/protocolVersion": MODERN,
    "io.modelcontextprotocol/clientCapabilities": {},
}
# Requests the fast path must leave to the SDK (it reads their body first: the replay
# must hand the SDK the same bytes).
DELEGATED: list[tuple[str, bytes | str, dict[str, str]]] = [
    ("tools/list", _raw("tools/list", {}), headers("2025-06-18")),
    ("unknown tool: the SDK's JSON-RPC error", call("ecko", {}), headers("2025-11-25", "ecko")),
    (
        "initialize",
        _raw(
            "initialize",
            {
                "protocolVersion": "2025-06-18",
                "capabilities": {},
                "clientInfo": {"name": "t", "version": "1"},
            },
        ),
        headers(None),
    ),
    ("invalid params: no name", _raw("tools/call", {"arguments": {}}), headers("2025-06-18")),
    (
        "invalid params: arguments not an object",
        _raw("tools/call", {"name": "echo", "arguments": [1]}),
        headers("2025-06-18"),
    ),
    (
        "invalid params, modern",
        _raw("tools/call", {"name": "echo", "arguments": "x", "_meta": MODERN_META}),
        headers(MODERN),
    ),
    ("no params", json.dumps({"jsonrpc": "2.0", "id": 1, "method": "tools/call"}), headers(None)),
    ("batch", "[" + call("echo", {"body": {}}) + "]", headers("2025-06-18")),
    ("notification", json.dumps({"jsonrpc": "2.0", "method": "tools/call"}), headers(None)),
    ("bad JSON", "{", headers("2025-06-18")),
    ("bad JSON, modern", "{", headers(MODERN)),
    ("extra envelope key", call("echo", {"body": {}})[:-1] + ',"x":1}', headers(None)),
    ("boolean id", call("echo", {"body": {}}, rpc_id=True), headers(None)),
    ("float id", call("echo", {"body": {}}, rpc_id=1.5), headers(None)),
    ("wrong jsonrpc", call("echo", {"body": {}}).replace('"2.0"', '"1.0"'), headers(None)),
    ("unknown version", call("echo", {"body": {}}), headers("2099-01-01")),
    ("empty Accept", call("echo", {"body": {}}), headers(None, Accept="")),
    ("SSE only", call("echo", {"body": {}}), headers(None, Accept="text/event-stream")),
    ("text/plain", call("echo", {"body": {}}), headers(None, **{"Content-Type": "text/plain"})),
    (
        "upper-case JSON type",
        call("echo", {"body": {}}),
        headers(None, **{"Content-Type": "Application/JSON"}),
    ),
    ("modern without _meta", call("echo", {"body": {}}), headers(MODERN)),
    (
        "modern, Mcp-Name mismatch",
        call("echo", {"body": {}}, era=MODERN),
        headers(MODERN, name="other"),
    ),
    (
        "modern, Mcp-Method missing",
        call("echo", {"body": {}}, era=MODERN),
        {k: v for k, v in headers(MODERN).items() if k != "Mcp-Method"},
    ),
    (
        "modern, Mcp-Param header",
        call("echo", {"body": {}}, era=MODERN),
        headers(MODERN, **{"Mcp-Param-Body": "x"}),
    ),
    ("too large", call("echo", {"body": "x" * (4 * 1024 * 1024)}), headers(None)),
]


@pytest.mark.parametrize(
    ("what", "body", "request_headers"), DELEGATED, ids=[d[0] for d in DELEGATED]
)
async def test_everything_else_is_the_sdk_s_answer(
    what: str, body: bytes | str, request_headers: dict[str, str]
) -> None:
    async with pair() as p:
        fast, sdk, served = await p.both(body, request_headers)
    assert not served, what
    assert wire(fast) == wire(sdk), what


async def test_a_chunked_body_is_read_whole_or_replayed() -> None:
    async with pair() as p:

        async def chunks(text: str) -> AsyncIterator[bytes]:
            for start in range(0, len(text), 7):
                yield text[start : start + 7].encode()

        for body, fast_served in (
            (call("echo", {"body": {}}), True),
            (_raw("tools/list", {}), False),
        ):
            before = p.counter.calls
            fast = await p.fast.post("/mcp", content=chunks(body), headers=headers(None))
            assert (p.counter.calls == before) is fast_served
            sdk = await p.sdk.post("/mcp", content=chunks(body), headers=headers(None))
            assert wire(fast) == wire(sdk)


async def test_other_http_methods_are_the_sdk_s() -> None:
    async with pair() as p:
        for method in ("DELETE", "PUT"):
            before = p.counter.calls
            fast = await p.fast.request(method, "/mcp", headers=headers(None))
            sdk = await p.sdk.request(method, "/mcp", headers=headers(None))
            assert p.counter.calls == before + 1
            assert wire(fast) == wire(sdk)


async def test_an_installed_tracer_sends_calls_through_the_sdk(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """With an OpenTelemetry SDK the SDK path records its spans: the fast path steps aside."""
    monkeypatch.setattr(fast_path_module, "get_tracer_provider", lambda: object())
    async with pair() as p:
        fast, sdk, served = await p.both(call("echo", {"body": {}}), headers(None))
    assert not served and wire(fast) == wire(sdk)


async def test_a_changed_server_sends_calls_through_the_sdk() -> None:
    async with pair() as p:
        server = p.fast._transport.app.state.mcp_server  # type: ignore[attr-defined]
        server.middleware.append(server.middleware[0])
        _, _, served = await p.both(call("echo", {"body": {}}), headers(None))
    assert not served


async def test_observer_and_engine_see_the_same_calls() -> None:
    fast_engine, sdk_engine = engine(), engine()
    fast_app = build_mcp_app(fast_engine, plan(*ALL_TOOLS))
    sdk_app = build_mcp_app(sdk_engine, plan(*ALL_TOOLS), fast_path=False)
    for app in (fast_app, sdk_app):
        async with (
            app.router.lifespan_context(app),
            httpx.AsyncClient(transport=httpx.ASGITransport(app), base_url="http://t") as http,
        ):
            for name, arguments in CALLS:
                await http.post("/mcp", content=call(name, arguments), headers=headers(None))
    assert fast_engine.calls == sdk_engine.calls and fast_engine.calls


@pytest.mark.parametrize(
    "settings",
    [
        AdapterSettings(mcp_stateless=False),
        AdapterSettings(mcp_json_response=False),
    ],
    ids=["stateful", "sse"],
)
def test_the_fast_path_is_only_built_for_stateless_json(settings: AdapterSettings) -> None:
    app = build_mcp_app(engine(), plan(*ALL_TOOLS), settings)
    endpoint = app.router.default.endpoint  # type: ignore[attr-defined]  # McpPaths
    assert not isinstance(endpoint, ToolCallFastPath)


async def test_the_host_check_stands_in_front_of_the_fast_path() -> None:
    """Host/Origin are checked by the app's first middleware, so the fast path serves
    a server with an allowed-host list too, and a foreign Host never reaches a tool."""
    double = engine()
    app = build_mcp_app(double, plan(*ALL_TOOLS), AdapterSettings(allowed_hosts=("mcp.gw",)))
    assert isinstance(app.router.default.endpoint, ToolCallFastPath)  # type: ignore[attr-defined]
    async with (
        app.router.lifespan_context(app),
        httpx.AsyncClient(transport=httpx.ASGITransport(app), base_url="http://mcp.gw") as http,
    ):
        body = call("echo", {"body": {}})
        refused = await http.post("/mcp", content=body, headers={**headers(None), "Host": "evil"})
        assert refused.status_code == 421 and not double.calls
        served = await http.post("/mcp", content=body, headers=headers(None))
        assert served.status_code == 200 and double.calls


# ------------------------------------------------------------------ output schema check

_leaf = st.sampled_from(
    [{"type": t} for t in ("string", "number", "integer", "boolean", "null", "object", "array")]
    + [{"type": ["string", "null"]}, {"type": ["number", "null"]}, True, False, {}]
)
_schemas = st.recursive(
    _leaf,
    lambda inner: st.one_of(
        st.builds(
            lambda props, req, extra: {
                "type": "object",
                "properties": props,
                **({"required": req} if req else {}),
                **({"additionalProperties": extra} if extra is not None else {}),
            },
            st.dictionaries(st.sampled_from("abc"), inner, max_size=3),
            st.lists(st.sampled_from("abc"), max_size=2, unique=True),
            st.one_of(st.none(), st.booleans(), inner),
        ),
        st.builds(lambda items: {"type": "array", "items": items}, inner),
    ),
    max_leaves=6,
)
_values = st.recursive(
    st.one_of(
        st.none(), st.booleans(), st.integers(), st.floats(allow_nan=False), st.text(max_size=3)
    ),
    lambda inner: st.one_of(
        st.lists(inner, max_size=3), st.dictionaries(st.sampled_from("abcd"), inner, max_size=3)
    ),
    max_leaves=8,
)


@settings(max_examples=400, deadline=None)
@given(schema=_schemas, value=_values)
def test_compiled_output_check_agrees_with_jsonschema(schema: Any, value: Any) -> None:
    check = compile_check(schema)
    assert check is not None
    assert check(value) == Draft202012Validator(schema).is_valid(value)


def test_unknown_keywords_leave_the_check_to_jsonschema() -> None:
    assert compile_check({"type": "object", "properties": {"a": {"minLength": 2}}}) is None
    assert compile_check({"type": "string", "enum": ["a"]}) is None
    assert compile_check({"type": "decimal"}) is None


async def test_request_ids_are_sanitised_on_both_paths() -> None:
    """The caller's X-Request-Id is logged and forwarded: only a sane one is kept."""
    seen: list[str | None] = []

    class Recorder(NullObserver):
        def request_finished(self, **fields: Any) -> None:
            seen.append(fields["request_id"])

    set_observer(Recorder())
    try:
        async with pair() as p:
            for request_id in ("abc-123", "two words", "x" * 200):
                extra = {"X-Request-Id": request_id}
                _, _, served = await p.both(call("echo", {"body": {}}), headers(None, **extra))
                assert served
    finally:
        set_observer(NullObserver())
    assert seen == ["abc-123", "abc-123", None, None, None, None]
