"""The MCP adapter's translation, against an engine double and the official SDK client.

The double stands for ``Engine.invoke`` (input validation included, as the real engine
does), so these tests pin what the adapter does with every kind of ``Result``. The
end-to-end tests with the real engine and upstream are in ``test_mcp.py``.
"""

from __future__ import annotations

import base64
import json
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

import httpx
import pytest
from mcp import Client
from mcp.shared.exceptions import MCPError
from mcp.types import INVALID_PARAMS

import naftiko
from naftiko.adapters.http.settings import AdapterSettings
from naftiko.adapters.mcp.plan import DynamicResourcePlan, McpAdapterPlan, StaticResourcePlan
from naftiko.adapters.mcp.results import build_tool, failure_text
from naftiko.adapters.mcp.server import build_mcp_app, build_mcp_server
from naftiko.engine.types import ErrorKind, Inputs, Problem, Result, Unit
from naftiko.observability import NullObserver, set_observer
from naftiko.spec.binds import Bindings
from naftiko.spec.models import Authentication, McpPrompt
from support.servers import serve_asgi

Handler = Callable[[Inputs], Awaitable[Result] | Result]
BODY_SCHEMA = {
    "type": "object",
    "properties": {"body": {"type": "object", "description": "JSON"}},
    "required": ["body"],
}


class EngineDouble:
    """``invoke`` answers from per-unit handlers; a missing required input is a VALIDATION
    problem, like the real engine's."""

    def __init__(self, handlers: dict[str, Handler]) -> None:
        self.handlers = handlers
        self.calls: list[tuple[str, dict[str, Any]]] = []

    async def invoke(self, unit: Unit, inputs: Inputs) -> Result:
        self.calls.append((unit.id, dict(inputs.values)))
        for name in unit.input_schema.get("required", ()):
            if name not in inputs.values:
                return Result.failure(
                    Problem(
                        ErrorKind.VALIDATION,
                        "Invalid input",
                        f"'{name}' is required",
                        400,
                        parameter=name,
                    )
                )
        answer = self.handlers[unit.id](inputs)
        return await answer if not isinstance(answer, Result) else answer


def unit(
    name: str, *, schema: dict[str, Any] | None = None, kind: str = "tool", **fields: Any
) -> Unit:
    return Unit(
        id=f"ns.{name}",
        kind=kind,
        name=name,
        adapter_namespace="ns",
        inputs=(),
        input_schema=schema if schema is not None else BODY_SCHEMA,
        **fields,
    )


def plan(*tools: Unit, **fields: Any) -> McpAdapterPlan:
    base: dict[str, Any] = dict(
        type="mcp",
        namespace="ns",
        address=None,
        port=None,
        description="Test adapter.",
        authentication=None,
    )
    base.update(fields)
    return McpAdapterPlan(tools=tools, **base)


def ok(body: Any, **fields: Any) -> Handler:
    return lambda _: Result(status=200, body=body, upstream_status=200, **fields)


TIKTOK_ERROR = {
    "error": "invalid_request",
    "error_description": "The request parameters are malformed.",
    "log_id": "202206221854370101130062072500FFA2",
}


@pytest.fixture
def engine() -> EngineDouble:
    return EngineDouble(
        {
            "ns.echo": lambda i: Result(
                status=200, body={"got": i.values["body"]}, upstream_status=200
            ),
            "ns.list": ok([1, 2]),
            "ns.text": ok(b"plain text \xe2\x9c\x93", media_type="text/plain"),
            "ns.png": ok(b"\x89PNG\r\n\x1a\n", media_type="image/png"),
            "ns.blob": ok(b"\x00\xff\x10", media_type="application/octet-stream"),
            "ns.empty": ok(None),
            "ns.tiktok": lambda _: Result(
                status=400, body=TIKTOK_ERROR, is_error=True, upstream_status=400
            ),
            "ns.down": lambda _: Result.failure(
                Problem(
                    ErrorKind.UNREACHABLE,
                    "Upstream unreachable",
                    "connection refused by 127.0.0.1:1",
                    502,
                )
            ),
            "ns.typed": ok({"count": "not a number"}),
            "ns.boom": lambda _: 1 / 0,  # type: ignore[return-value,arg-type]
        }
    )


TOOLS = (
    unit(
        "echo",
        title="Echo",
        description="Echo the body.",
        hints={"readOnlyHint": True, "openWorldHint": False},
        output_schema={"type": "object", "properties": {"got": {"type": "object"}}},
    ),
    unit("list", schema={}),
    unit("text"),
    unit("png"),
    unit("blob"),
    unit("empty"),
    unit("tiktok"),
    unit("down"),
    unit("typed", output_schema={"type": "object", "properties": {"count": {"type": "integer"}}}),
    unit("boom"),
)


@pytest.fixture
def server(engine: EngineDouble) -> Any:
    return build_mcp_server(engine, plan(*TOOLS))


@pytest.fixture(params=["auto", "legacy"])
def mode(request: pytest.FixtureRequest) -> str:
    """Both eras: the 2026-07-28 per-request envelope and the initialize handshake."""
    return request.param


async def test_tools_list_describes_schemas_hints_and_title(server: Any, mode: str) -> None:
    async with Client(server, mode=mode) as client:
        tools = {t.name: t for t in (await client.list_tools()).tools}
        assert list(tools) == [t.name for t in TOOLS]
        echo = tools["echo"]
        assert echo.title == "Echo" and echo.description == "Echo the body."
        assert echo.input_schema == BODY_SCHEMA
        assert echo.output_schema == {"type": "object", "properties": {"got": {"type": "object"}}}
        hints = echo.annotations.model_dump(by_alias=True, exclude_none=True)
        assert hints == {"title": "Echo", "readOnlyHint": True, "openWorldHint": False}
        assert tools["text"].annotations is None  # no hints, no label: no annotations
        assert tools["list"].input_schema == {"type": "object"}  # an object root is always there


async def test_object_result_is_structured_and_text(
    server: Any, mode: str, engine: EngineDouble
) -> None:
    async with Client(server, mode=mode) as client:
        result = await client.call_tool("echo", {"body": {"code": "abc"}})
        assert not result.is_error
        assert result.structured_content == {"got": {"code": "abc"}}
        assert json.loads(result.content[0].text) == {"got": {"code": "abc"}}
        assert engine.calls == [("ns.echo", {"body": {"code": "abc"}})]


async def test_non_object_json_is_text_only(server: Any, mode: str) -> None:
    async with Client(server, mode=mode) as client:
        result = await client.call_tool("list", {"body": {}})
        assert not result.is_error and result.structured_content is None
        assert result.content[0].text == "[1,2]"


async def test_bytes_become_text_or_binary_content(server: Any, mode: str) -> None:
    async with Client(server, mode=mode) as client:
        text = await client.call_tool("text", {"body": {}})
        assert text.content[0].text == "plain text \u2713"
        png = await client.call_tool("png", {"body": {}})
        assert png.content[0].type == "image" and png.content[0].mime_type == "image/png"
        assert base64.b64decode(png.content[0].data) == b"\x89PNG\r\n\x1a\n"
        blob = await client.call_tool("blob", {"body": {}})
        assert blob.content[0].type == "resource"
        assert base64.b64decode(blob.content[0].resource.blob) == b"\x00\xff\x10"


async def test_no_content_is_a_success(server: Any, mode: str) -> None:
    async with Client(server, mode=mode) as client:
        result = await client.call_tool("empty", {"body": {}})
        assert not result.is_error and result.content == []


async def test_upstream_error_keeps_status_and_body(server: Any, mode: str) -> None:
    async with Client(server, mode=mode) as client:
        result = await client.call_tool("tiktok", {"body": {}})
        assert result.is_error
        text = result.content[0].text
        assert text.startswith("HTTP 400 from upstream: ")
        assert json.loads(text.removeprefix("HTTP 400 from upstream: ")) == TIKTOK_ERROR


def test_a_failed_step_is_named_before_the_upstream_answer() -> None:
    problem = Problem(ErrorKind.UPSTREAM, "Upstream error", "d", 404, step="get-ship")
    failed = Result(
        status=404, body={"error": "not_found"}, is_error=True, problem=problem, upstream_status=404
    )
    plain = Result(status=404, body={"error": "not_found"}, is_error=True, upstream_status=404)
    entry = build_tool(unit("ship"))
    assert failure_text(entry, failed) == (
        'Step \'get-ship\' failed: HTTP 404 from upstream: {"error":"not_found"}'
    )
    assert failure_text(entry, plain) == 'HTTP 404 from upstream: {"error":"not_found"}'


async def test_our_failures_are_tool_errors_with_the_reason(server: Any, mode: str) -> None:
    async with Client(server, mode=mode) as client:
        result = await client.call_tool("down", {"body": {}})
        assert result.is_error
        assert "Upstream unreachable" in result.content[0].text
        assert "connection refused" in result.content[0].text and "502" in result.content[0].text


async def test_missing_argument_names_it_and_what_is_expected(server: Any, mode: str) -> None:
    async with Client(server, mode=mode) as client:
        result = await client.call_tool("echo", {})
        assert result.is_error
        text = result.content[0].text
        assert "'body'" in text and "'echo'" in text
        assert '"type":"object"' in text  # what the argument must be


async def test_unknown_tool_suggests_the_closest(server: Any, mode: str) -> None:
    async with Client(server, mode=mode) as client:
        # 2025-11-25 "Error Handling": an unknown tool is a JSON-RPC error, not a result.
        with pytest.raises(MCPError) as caught:
            await client.call_tool("ecko", {})
        assert caught.value.error.code == INVALID_PARAMS
        assert "Unknown tool 'ecko'" in caught.value.error.message
        assert "Did you mean 'echo'?" in caught.value.error.message


async def test_an_exception_never_escapes_as_a_protocol_error(server: Any, mode: str) -> None:
    async with Client(server, mode=mode) as client:
        result = await client.call_tool("boom", {"body": {}})
        assert result.is_error and "Internal error" in result.content[0].text
        assert "ZeroDivision" not in result.content[0].text


async def test_result_violating_the_output_schema_is_a_tool_error(server: Any, mode: str) -> None:
    async with Client(server, mode=mode) as client:
        # Sending it as structured content would make the client raise and lose the data.
        result = await client.call_tool("typed", {"body": {}})
        assert result.is_error
        assert "output schema" in result.content[0].text
        assert '"count":"not a number"' in result.content[0].text


async def test_observer_sees_each_call(server: Any) -> None:
    seen: list[dict[str, Any]] = []

    class Recorder(NullObserver):
        def request_finished(self, **fields: Any) -> None:
            seen.append(fields)

    set_observer(Recorder())
    try:
        async with Client(server) as c:
            await c.call_tool("tiktok", {"body": {}})
            with pytest.raises(MCPError):
                await c.call_tool("no-such-tool-" + "x" * 50, {})
    finally:
        set_observer(NullObserver())
    assert [(s["unit"], s["status"], s["is_error"], s["upstream_status"]) for s in seen] == [
        ("ns.tiktok", 400, True, 400),
        ("(unknown)", 404, True, None),
    ]
    assert all(s["adapter_type"] == "mcp" and s["adapter"] == "ns" for s in seen)


async def test_capabilities_and_identity(server: Any, mode: str) -> None:
    async with Client(server, mode=mode) as client:
        caps = client.server_capabilities
        info = client.server_info
        instructions = client.instructions
    assert caps.tools is not None and caps.resources is None and caps.prompts is None
    assert info is not None and (info.name, info.version) == ("ns", naftiko.__version__)
    assert instructions == "Test adapter."


# ------------------------------------------------------------------------ resources


@pytest.fixture
def docs(tmp_path: Path) -> Path:
    root = tmp_path / "docs"
    (root / "api").mkdir(parents=True)
    (root / "guide.md").write_text("# Guide")
    (root / "api" / "spec.json").write_text('{"openapi": "3.1.0"}')
    (root / "logo.png").write_bytes(b"\x89PNG\r\n\x1a\n\x00")
    (tmp_path / "secrets.txt").write_text("TOP SECRET")
    return root


@pytest.fixture
def resource_server(docs: Path) -> Any:
    profile = unit(
        "profile",
        kind="resource",
        schema={
            "type": "object",
            "properties": {"userId": {"type": "string"}},
            "required": ["userId"],
        },
    )
    schema = unit("schema", kind="resource", schema={})
    engine = EngineDouble(
        {
            "ns.profile": lambda i: Result(status=200, body={"id": i.values["userId"]}),
            "ns.schema": ok({"tables": ["users"]}),
        }
    )
    resources = (
        StaticResourcePlan(
            name="docs",
            uri="data://docs",
            title="Docs",
            description="Guides",
            mime_type=None,
            directory=str(docs),
        ),
        DynamicResourcePlan(
            name="database-schema",
            uri="data://schema",
            title="Schema",
            description=None,
            mime_type=None,
            unit=schema,
            is_template=False,
        ),
        DynamicResourcePlan(
            name="profile",
            uri="data://users/{userId}/profile",
            title=None,
            description="A profile",
            mime_type="application/json",
            unit=profile,
            is_template=True,
        ),
    )
    server = build_mcp_server(engine, plan(resources=resources))
    server.engine_double = engine
    return server


async def test_resources_are_listed_recursively_with_types(resource_server: Any) -> None:
    async with Client(resource_server, mode="legacy") as c:
        caps = c.server_capabilities
        listed = {r.uri: r for r in (await c.list_resources()).resources}
        templates = (await c.list_resource_templates()).resource_templates
    assert caps.resources is not None and caps.prompts is None
    assert set(listed) == {
        "data://schema",
        "data://docs/api/spec.json",
        "data://docs/guide.md",
        "data://docs/logo.png",
    }
    assert listed["data://docs/guide.md"].mime_type == "text/markdown"
    assert listed["data://docs/guide.md"].title == "Docs"
    assert [(t.uri_template, t.name) for t in templates] == [
        ("data://users/{userId}/profile", "profile"),
    ]


async def test_static_reads_text_and_blob(resource_server: Any) -> None:
    async with Client(resource_server) as c:
        guide = (await c.read_resource("data://docs/guide.md")).contents[0]
        logo = (await c.read_resource("data://docs/logo.png")).contents[0]
    assert guide.text == "# Guide" and guide.mime_type == "text/markdown"
    assert base64.b64decode(logo.blob) == b"\x89PNG\r\n\x1a\n\x00"


@pytest.mark.parametrize(
    "uri",
    [
        "data://docs/../secrets.txt",
        "data://docs/api/../../secrets.txt",
        "data://docs/%2e%2e/secrets.txt",
        "data://docs//etc/passwd",
    ],
)
async def test_traversal_is_rejected(resource_server: Any, uri: str) -> None:
    async with Client(resource_server) as c:
        with pytest.raises(MCPError) as caught:
            await c.read_resource(uri)
    assert caught.value.code == INVALID_PARAMS
    assert "traversal" in caught.value.message
    assert "SECRET" not in str(caught.value)


@pytest.mark.parametrize(
    "uri", ["data://nothing", "data://docs/missing.md", "data://docs", "data://users/1/2/profile"]
)
async def test_unknown_uris_are_invalid_params(resource_server: Any, uri: str) -> None:
    async with Client(resource_server) as c:
        with pytest.raises(MCPError) as caught:
            await c.read_resource(uri)
    assert caught.value.code == INVALID_PARAMS
    assert uri in caught.value.message


async def test_dynamic_resources_pass_template_variables(resource_server: Any) -> None:
    async with Client(resource_server) as c:
        profile = (await c.read_resource("data://users/42/profile")).contents[0]
        schema = (await c.read_resource("data://schema")).contents[0]
    assert json.loads(profile.text) == {"id": "42"} and profile.mime_type == "application/json"
    assert json.loads(schema.text) == {"tables": ["users"]}
    assert ("ns.profile", {"userId": "42"}) in resource_server.engine_double.calls


# ------------------------------------------------------------------------ prompts


@pytest.fixture
def prompt_server(tmp_path: Path) -> Any:
    (tmp_path / "review.md").write_text("Review {{topic}} carefully.")
    prompts = (
        McpPrompt.model_validate(
            {
                "name": "summarize",
                "label": "Summarize",
                "description": "Summarize a text",
                "arguments": [{"name": "text"}, {"name": "style", "required": False}],
                "template": [
                    {"role": "user", "content": "Summarize {{text}} as {{style}}"},
                    {"role": "assistant", "content": "Sure."},
                ],
            }
        ),
        McpPrompt.model_validate(
            {"name": "review", "location": "file://review.md", "arguments": [{"name": "topic"}]}
        ),
    )
    return build_mcp_server(EngineDouble({}), plan(prompts=prompts, base_dir=str(tmp_path)))


async def test_prompts_list_with_arguments(prompt_server: Any) -> None:
    async with Client(prompt_server, mode="legacy") as c:
        caps = c.server_capabilities
        prompts = {p.name: p for p in (await c.list_prompts()).prompts}
    assert caps.prompts is not None and caps.resources is None
    assert prompts["summarize"].title == "Summarize"
    assert [(a.name, a.required) for a in prompts["summarize"].arguments] == [
        ("text", True),
        ("style", False),
    ]


async def test_prompts_render_without_reinterpolating(prompt_server: Any) -> None:
    async with Client(prompt_server) as c:
        got = await c.get_prompt("summarize", {"text": "{{style}}", "style": "bullets"})
        review = await c.get_prompt("review", {"topic": "PR 7"})
    assert [(m.role, m.content.text) for m in got.messages] == [
        ("user", "Summarize {{style}} as bullets"),
        ("assistant", "Sure."),
    ]
    assert [(m.role, m.content.text) for m in review.messages] == [
        ("user", "Review PR 7 carefully."),
    ]


async def test_prompt_errors_are_invalid_params(prompt_server: Any) -> None:
    async with Client(prompt_server) as c:
        with pytest.raises(MCPError) as missing:
            await c.get_prompt("summarize", {"style": "short"})
        with pytest.raises(MCPError) as unknown:
            await c.get_prompt("summarise", {})
    assert missing.value.code == INVALID_PARAMS and "'text'" in missing.value.message
    assert unknown.value.code == INVALID_PARAMS and "summarise" in unknown.value.message


# ------------------------------------------------------------------------ HTTP


async def _post(url: str, method: str, params: dict[str, Any], **headers: str) -> httpx.Response:
    payload = {"jsonrpc": "2.0", "id": 1, "method": method, "params": params}
    async with httpx.AsyncClient() as http:
        return await http.post(
            url,
            json=payload,
            headers={
                "Accept": "application/json, text/event-stream",
                "MCP-Protocol-Version": "2025-06-18",
                **headers,
            },
        )


async def test_http_serves_mcp_on_slash_and_mcp_without_redirects(engine: EngineDouble) -> None:
    async with serve_asgi(build_mcp_app(engine, plan(*TOOLS))) as base:
        for path in ("/", "/mcp", "/mcp/"):
            response = await _post(
                base + path, "tools/call", {"name": "echo", "arguments": {"body": {"k": path}}}
            )
            assert response.status_code == 200, path
            assert response.headers["content-type"].startswith("application/json")
            assert response.json()["result"]["structuredContent"] == {"got": {"k": path}}
        for mode in ("auto", "legacy"):
            async with Client(base + "/mcp", mode=mode) as c:
                assert (await c.call_tool("echo", {"body": {}})).structured_content == {"got": {}}


async def test_http_answers_404_off_the_mcp_paths(engine: EngineDouble) -> None:
    """Issue 15: MCP answers on /mcp, /mcp/ and / only (a catch-all exposed every path)."""
    async with serve_asgi(build_mcp_app(engine, plan(*TOOLS))) as base:
        for path in ("/x", "/mcp/x", "/mcpx", "/MCP", "//mcp", "/mcp%0A", "/.well-known/x"):
            response = await _post(base + path, "tools/call", {"name": "echo", "arguments": {}})
            assert response.status_code == 404, path
            assert response.headers["content-type"] == "application/problem+json", path
            assert response.json()["status"] == 404 and response.headers["x-request-id"]
    assert engine.calls == []


async def test_stateful_mode_issues_a_session(engine: EngineDouble) -> None:
    settings = AdapterSettings(mcp_stateless=False, mcp_json_response=False)
    async with serve_asgi(build_mcp_app(engine, plan(*TOOLS), settings)) as base:
        response = await _post(
            base + "/mcp",
            "initialize",
            {
                "protocolVersion": "2025-03-26",
                "capabilities": {},
                "clientInfo": {"name": "t", "version": "1"},
            },
        )
        assert response.status_code == 200 and response.headers.get("mcp-session-id")
        assert response.headers["content-type"].startswith("text/event-stream")
        async with Client(base + "/mcp", mode="legacy") as c:
            assert not (await c.call_tool("echo", {"body": {}})).is_error


async def test_allowed_hosts(engine: EngineDouble) -> None:
    open_app = build_mcp_app(engine, plan(*TOOLS))
    closed_app = build_mcp_app(
        engine, plan(*TOOLS), AdapterSettings(allowed_hosts=("mcp-gw:9090",))
    )
    args = ("tools/list", {})
    async with serve_asgi(open_app) as open_base, serve_asgi(closed_app) as closed_base:
        assert (await _post(open_base + "/mcp", *args, Host="mcp-gw:9193")).status_code == 200
        assert (await _post(closed_base + "/mcp", *args, Host="evil.example")).status_code == 421
        assert (await _post(closed_base + "/mcp", *args, Host="mcp-gw:9090")).status_code == 200


async def test_bearer_auth_guards_every_path(engine: EngineDouble) -> None:
    auth = Authentication.model_validate({"type": "bearer", "token": "{{MCP_TOKEN}}"})
    bindings = Bindings([(None, "MCP_TOKEN", "s3cret")])
    app = build_mcp_app(engine, plan(*TOOLS, authentication=auth), bindings=bindings)
    async with serve_asgi(app) as base:
        assert (await _post(base + "/mcp", "tools/list", {})).status_code == 401
        wrong = await _post(base + "/", "tools/list", {}, Authorization="Bearer nope")
        assert wrong.status_code == 401 and "nope" not in wrong.text
        good = await _post(base + "/mcp", "tools/list", {}, Authorization="Bearer s3cret")
        assert good.status_code == 200 and good.json()["result"]["tools"]


async def test_oauth2_serves_protected_resource_metadata_without_auth(engine: EngineDouble) -> None:
    auth = Authentication.model_validate(
        {
            "type": "oauth2",
            "authorizationServerUri": "https://auth.example.com",
            "resource": "https://mcp.example.com/mcp",
            "scopes": ["tools:call"],
        }
    )
    app = build_mcp_app(engine, plan(*TOOLS, authentication=auth), bindings=Bindings.empty())
    async with serve_asgi(app) as base, httpx.AsyncClient() as http:
        metadata = await http.get(base + "/.well-known/oauth-protected-resource/mcp")
        refused = await _post(base + "/mcp", "tools/list", {})
    assert metadata.status_code == 200
    assert metadata.json() == {
        "resource": "https://mcp.example.com/mcp",
        "authorization_servers": ["https://auth.example.com"],
        "scopes_supported": ["tools:call"],
        "bearer_methods_supported": ["header"],
    }
    assert refused.status_code == 401
    challenge = refused.headers["www-authenticate"]
    assert "Bearer" in challenge
    assert (
        'resource_metadata="https://mcp.example.com/.well-known/oauth-protected-resource/mcp"'
        in challenge
    )


async def test_observer_sees_reads_and_prompts(resource_server: Any, prompt_server: Any) -> None:
    seen: list[tuple[str, int, bool]] = []

    class Recorder(NullObserver):
        def request_finished(self, **fields: Any) -> None:
            seen.append((fields["unit"], fields["status"], fields["is_error"]))

    set_observer(Recorder())
    try:
        async with Client(resource_server) as c:
            await c.read_resource("data://users/7/profile")
            await c.read_resource("data://docs/guide.md")
            with pytest.raises(MCPError):
                await c.read_resource("data://docs/../secrets.txt")
        async with Client(prompt_server) as c:
            await c.get_prompt("review", {"topic": "x"})
            with pytest.raises(MCPError):
                await c.get_prompt("review", {})
    finally:
        set_observer(NullObserver())
    assert seen == [
        ("ns.profile", 200, False),
        ("ns.docs", 200, False),
        ("ns.docs", 400, True),
        ("ns.review", 200, False),
        ("ns.review", 400, True),
    ]
