"""MCP adapter end to end: real loader, compiler and engine, real uvicorn, the official
SDK client (both protocol eras), stdio in a subprocess, and fake upstreams on loopback.

The TikTok capability is the published one, unchanged (JSON bodies, the ``/refresh/``
path); the fake is told to accept both so success paths can be shown, and left strict
to produce TikTok's own error bodies. Every test runs twice, from the alpha2 documents
and from their beta4 twins made by ``naftiko convert``, with the same expected answers.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import shutil
import sys
from collections.abc import AsyncIterator, Callable, Mapping
from pathlib import Path
from typing import Any

import httpx
import httpx2
import pytest
from mcp import Client, StdioServerParameters
from mcp.client.streamable_http import streamable_http_client
from mcp.shared.exceptions import MCPError
from mcp.types import INVALID_PARAMS

from fakes.shipyard import MCP_SERVER_TOKEN, NORTHERN_STAR, REGISTRY_TOKEN, LiveShipyard
from fakes.tiktok import (
    DEFAULT_CLIENT_KEY,
    DEFAULT_CLIENT_SECRET,
    DEFAULT_REDIRECT_URI,
    REFRESH_PATH,
    REVOKE_PATH,
    TOKEN_PATH,
    FakeTikTok,
)
from naftiko.adapters.exposes import compile_capability
from naftiko.adapters.http.settings import AdapterSettings
from naftiko.adapters.mcp.plan import McpAdapterPlan
from naftiko.adapters.mcp.server import build_mcp_app
from naftiko.engine.invoke import Engine
from naftiko.spec.loader import load_capability
from naftiko.upstream.settings import UpstreamSettings
from support.servers import LiveFake, serve_asgi
from support.twins import twin_forms, unchanged

HERE = Path(__file__).resolve().parent
STDIO_MAIN = HERE / "mcp_stdio_main.py"
SHIPYARD_CAPABILITY = HERE / "capabilities" / "mcp-shipyard-resources.yaml"
TIKTOK_NS = "tiktok-login-kit-oauth"
TIKTOK_ENV = {"TIKTOK_FOR_DEVELOPERS_API_KEY": "unused-by-the-capability"}
SHIPYARD_ENV = {
    "NAFTIKO_TEST_REGISTRY_TOKEN": REGISTRY_TOKEN,
    "NAFTIKO_TEST_MCP_TOKEN": MCP_SERVER_TOKEN,
}
TOOLS = ("revoke-access-token", "exchange-authorization-code-token", "refresh-access-token")
MODES = {"auto": "2026-07-28", "legacy": "2025-11-25"}


# The document served for the one a test names: the alpha2 original or its beta4 twin.
as_served: Callable[[Path], Path] = unchanged
document_form = twin_forms(__name__)


@contextlib.asynccontextmanager
async def serve_capability(
    path: Path,
    overrides: Mapping[str, str],
    env: Mapping[str, str],
    settings: AdapterSettings = AdapterSettings(),  # noqa: B008
) -> AsyncIterator[str]:
    """Load, compile, start the engine and serve the MCP adapter; yield its base URL."""
    engine_settings = UpstreamSettings(base_uri_overrides=dict(overrides))
    loaded = load_capability(as_served(path), env=dict(env))
    compiled = compile_capability(loaded, engine_settings)
    plan = next(a for a in compiled.adapters if isinstance(a, McpAdapterPlan))
    engine = Engine(compiled, engine_settings)
    await engine.start()
    try:
        app = build_mcp_app(engine, plan, settings, bindings=loaded.bindings)
        async with serve_asgi(app) as base:
            yield base
    finally:
        await engine.aclose()


def stdio_params(path: Path, overrides: Mapping[str, str], env: Mapping[str, str]) -> Any:
    args = [str(STDIO_MAIN), str(as_served(path))]
    for namespace, url in overrides.items():
        args += ["--base-uri", f"{namespace}={url}"]
    return StdioServerParameters(command=sys.executable, args=args, env={**os.environ, **env})


def exchange_body(code: str) -> dict[str, str]:
    return {
        "client_key": DEFAULT_CLIENT_KEY,
        "client_secret": DEFAULT_CLIENT_SECRET,
        "code": code,
        "grant_type": "authorization_code",
        "redirect_uri": DEFAULT_REDIRECT_URI,
    }


async def check_tiktok(client: Client, fake: FakeTikTok, mode: str) -> None:
    """Everything the published TikTok capability must do over MCP, on one connection."""
    assert client.protocol_version == MODES[mode]

    # tools/list: three tools, the published hints, a required ``body`` object.
    tools = {t.name: t for t in (await client.list_tools()).tools}
    assert sorted(tools) == sorted(TOOLS)
    for tool in tools.values():
        assert tool.annotations is not None
        assert tool.annotations.model_dump(by_alias=True, exclude_none=True) == {
            "readOnlyHint": False,
            "destructiveHint": False,
            "idempotentHint": False,
        }
        assert tool.input_schema["type"] == "object"
        assert tool.input_schema["required"] == ["body"]
        assert tool.input_schema["properties"]["body"]["type"] == "object"

    # A TikTok error (the real host accepts only forms): isError with TikTok's own words.
    fake.accept_json = False
    failed = await client.call_tool("exchange-authorization-code-token", {"body": {"code": "x"}})
    assert failed.is_error
    text = failed.content[0].text
    assert text.startswith("HTTP 400 from upstream: ")
    error = json.loads(text.removeprefix("HTTP 400 from upstream: "))
    assert error["error_description"] == "The request parameters are malformed."
    assert error["log_id"] == fake.last_log_id

    # Success on each tool, reaching the right path with the body as sent.
    fake.accept_json = True
    fake.refresh_path_alias = True
    sent = exchange_body(fake.issue_code())
    exchanged = await client.call_tool("exchange-authorization-code-token", {"body": sent})
    assert not exchanged.is_error, exchanged.content
    tokens = exchanged.structured_content
    assert tokens["token_type"] == "Bearer" and tokens["access_token"].startswith("act.")
    assert json.loads(exchanged.content[0].text) == tokens
    assert fake.requests[-1].path == TOKEN_PATH and fake.requests[-1].json == sent

    refresh = {
        "client_key": DEFAULT_CLIENT_KEY,
        "client_secret": DEFAULT_CLIENT_SECRET,
        "grant_type": "refresh_token",
        "refresh_token": tokens["refresh_token"],
    }
    refreshed = await client.call_tool("refresh-access-token", {"body": refresh})
    assert not refreshed.is_error, refreshed.content
    assert refreshed.structured_content["access_token"] != tokens["access_token"]
    assert fake.requests[-1].path == REFRESH_PATH and fake.requests[-1].json == refresh

    revoke = {
        "client_key": DEFAULT_CLIENT_KEY,
        "client_secret": DEFAULT_CLIENT_SECRET,
        "token": refreshed.structured_content["access_token"],
    }
    revoked = await client.call_tool("revoke-access-token", {"body": revoke})
    assert not revoked.is_error and revoked.structured_content == {}
    assert fake.requests[-1].path == REVOKE_PATH and fake.requests[-1].json == revoke
    assert not fake.access_token_valid(revoke["token"])

    # A missing argument never reaches the upstream and names what is missing.
    before = len(fake.requests)
    missing = await client.call_tool("revoke-access-token", {})
    assert missing.is_error and "'body'" in missing.content[0].text
    assert len(fake.requests) == before


@pytest.mark.parametrize("mode", list(MODES))
async def test_tiktok_over_streamable_http(
    fake_tiktok: LiveFake[FakeTikTok], tiktok_capability_path: Path, mode: str
) -> None:
    overrides = {TIKTOK_NS: fake_tiktok.url}
    async with (
        serve_capability(tiktok_capability_path, overrides, TIKTOK_ENV) as base,
        Client(base + "/mcp", mode=mode) as client,
    ):
        await check_tiktok(client, fake_tiktok.state, mode)


@pytest.mark.parametrize("mode", list(MODES))
async def test_tiktok_over_stdio(
    fake_tiktok: LiveFake[FakeTikTok], tiktok_capability_path: Path, mode: str
) -> None:
    params = stdio_params(tiktok_capability_path, {TIKTOK_NS: fake_tiktok.url}, TIKTOK_ENV)
    async with Client(params, mode=mode) as client:
        await check_tiktok(client, fake_tiktok.state, mode)


async def test_stdio_speaks_only_protocol_on_stdout_and_exits_when_stdin_closes(
    fake_tiktok: LiveFake[FakeTikTok], tiktok_capability_path: Path
) -> None:
    """stdin closes only once both answers are read, as an MCP client does.

    On EOF the SDK cancels requests still in flight (the client has left), so piping the
    requests together with EOF raced ``tools/list`` against the shutdown.
    """
    params = stdio_params(tiktok_capability_path, {TIKTOK_NS: fake_tiktok.url}, TIKTOK_ENV)
    requests = [
        {
            "jsonrpc": "2.0",
            "id": 1,
            "method": "initialize",
            "params": {
                "protocolVersion": "2025-06-18",
                "capabilities": {},
                "clientInfo": {"name": "raw", "version": "1"},
            },
        },
        {"jsonrpc": "2.0", "method": "notifications/initialized"},
        {"jsonrpc": "2.0", "id": "two", "method": "tools/list"},
    ]
    process = await asyncio.create_subprocess_exec(
        params.command,
        *params.args,
        env=params.env,
        stdin=asyncio.subprocess.PIPE,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )
    assert process.stdin and process.stdout and process.stderr
    stderr = asyncio.create_task(process.stderr.read())  # drained so the child never blocks
    try:
        process.stdin.write("".join(json.dumps(r) + "\n" for r in requests).encode())
        await process.stdin.drain()
        answers = [
            json.loads(await asyncio.wait_for(process.stdout.readline(), 60)) for _ in range(2)
        ]
        process.stdin.close()
        rest = await asyncio.wait_for(process.stdout.read(), 60)
        returncode = await asyncio.wait_for(process.wait(), 60)
    finally:
        if process.returncode is None:
            process.kill()
            await process.wait()
    logs = (await stderr).decode()
    assert returncode == 0, logs
    assert rest == b""  # nothing but the two answers ever reached stdout
    assert [answer["id"] for answer in answers] == [1, "two"]
    assert answers[0]["result"]["serverInfo"]["name"] == "tiktok-login-kit-oauth-mcp"
    assert len(answers[1]["result"]["tools"]) == 3
    assert "MCP server started on stdio" in logs
    assert "MCP server on stdio stopped" in logs


async def test_tiktok_raw_post_to_root(
    fake_tiktok: LiveFake[FakeTikTok], tiktok_capability_path: Path
) -> None:
    """The reference's tutorials POST JSON-RPC to ``/`` with no handshake."""
    fake_tiktok.state.accept_json = True
    body = exchange_body(fake_tiktok.state.issue_code())
    call = {
        "jsonrpc": "2.0",
        "id": 7,
        "method": "tools/call",
        "params": {"name": "exchange-authorization-code-token", "arguments": {"body": body}},
    }
    headers = {
        "Accept": "application/json, text/event-stream",
        "MCP-Protocol-Version": "2025-06-18",
    }
    overrides = {TIKTOK_NS: fake_tiktok.url}
    async with (
        serve_capability(tiktok_capability_path, overrides, TIKTOK_ENV) as base,
        httpx.AsyncClient() as http,
    ):
        response = await http.post(base + "/", json=call, headers=headers)
        async with Client(base + "/") as client:
            assert len((await client.list_tools()).tools) == 3
    assert response.status_code == 200
    answer = response.json()
    assert answer["id"] == 7 and answer["result"]["isError"] is False
    assert answer["result"]["structuredContent"]["token_type"] == "Bearer"


async def test_stateful_sessions_with_sse(
    fake_tiktok: LiveFake[FakeTikTok], tiktok_capability_path: Path
) -> None:
    settings = AdapterSettings(mcp_stateless=False, mcp_json_response=False)
    overrides = {TIKTOK_NS: fake_tiktok.url}
    async with (
        serve_capability(tiktok_capability_path, overrides, TIKTOK_ENV, settings) as base,
        Client(base + "/mcp", mode="legacy") as client,
    ):
        await check_tiktok(client, fake_tiktok.state, "legacy")


# ------------------------------------------------------------------ resources, prompts, auth


@contextlib.asynccontextmanager
async def shipyard_client(shipyard: LiveShipyard, token: str = MCP_SERVER_TOKEN) -> Any:
    overrides = {"registry": shipyard.registry_url}
    async with serve_capability(SHIPYARD_CAPABILITY, overrides, SHIPYARD_ENV) as base:
        http = httpx2.AsyncClient(headers={"Authorization": f"Bearer {token}"})
        async with Client(streamable_http_client(base + "/mcp", http_client=http)) as client:
            yield client


async def test_resources_templates_and_traversal(shipyard: LiveShipyard) -> None:
    async with shipyard_client(shipyard) as client:
        listed = {r.uri: r for r in (await client.list_resources()).resources}
        templates = (await client.list_resource_templates()).resource_templates
        guide = (await client.read_resource("data://docs/guide.md")).contents[0]
        spec = (await client.read_resource("data://docs/api/registry.json")).contents[0]
        card = (await client.read_resource(f"data://ships/{NORTHERN_STAR}")).contents[0]
        with pytest.raises(MCPError) as traversal:
            await client.read_resource("data://docs/../mcp-shipyard-resources.yaml")
        with pytest.raises(MCPError) as unknown:
            await client.read_resource("data://nowhere")
    assert sorted(listed) == ["data://docs/api/registry.json", "data://docs/guide.md"]
    assert listed["data://docs/guide.md"].mime_type == "text/markdown"
    assert [(t.uri_template, t.name) for t in templates] == [("data://ships/{imo}", "ship-card")]
    assert guide.text.startswith("# Shipyard guide") and spec.mime_type == "application/json"
    assert card.mime_type == "application/json"
    assert json.loads(card.text) == {"name": shipyard.registry.ship(NORTHERN_STAR)["vessel_name"]}
    assert shipyard.registry.requests[-1].path.endswith(f"/ships/{NORTHERN_STAR}")
    assert traversal.value.code == INVALID_PARAMS and "traversal" in traversal.value.message
    assert "REGISTRY_TOKEN" not in str(traversal.value)
    assert unknown.value.code == INVALID_PARAMS and "data://nowhere" in unknown.value.message


async def test_tool_with_hints_and_mapped_output(shipyard: LiveShipyard) -> None:
    async with shipyard_client(shipyard) as client:
        tool = (await client.list_tools()).tools[0]
        result = await client.call_tool("get-ship", {"imo": NORTHERN_STAR})
    assert tool.title == "Get Ship"
    assert tool.annotations.model_dump(by_alias=True, exclude_none=True) == {
        "title": "Get Ship",
        "readOnlyHint": True,
        "openWorldHint": False,
    }
    assert not result.is_error
    assert result.structured_content == {
        "imo": NORTHERN_STAR,
        "name": shipyard.registry.ship(NORTHERN_STAR)["vessel_name"],
    }


async def test_prompts_inline_file_and_required(shipyard: LiveShipyard) -> None:
    async with shipyard_client(shipyard) as client:
        prompts = {p.name: p for p in (await client.list_prompts()).prompts}
        briefing = await client.get_prompt("ship-briefing", {"imo": "{{audience}}"})
        inspection = await client.get_prompt("inspection", {"imo": "IMO-1", "purpose": "audit"})
        with pytest.raises(MCPError) as missing:
            await client.get_prompt("inspection", {"imo": "IMO-1"})
    assert [(a.name, a.required) for a in prompts["ship-briefing"].arguments] == [
        ("imo", True),
        ("audience", False),
    ]
    assert [(m.role, m.content.text) for m in briefing.messages] == [
        ("user", "Brief {{audience}} about ship {{audience}}."),
        ("assistant", "I will look the ship up first."),
    ]
    assert [m.content.text for m in inspection.messages] == [
        "Review the ship IMO-1 for audit.\nIgnore {{unknown}}.\n",
    ]
    assert missing.value.code == INVALID_PARAMS and "'purpose'" in missing.value.message


async def test_bearer_auth_on_the_real_capability(shipyard: LiveShipyard) -> None:
    overrides = {"registry": shipyard.registry_url}
    listing = {"jsonrpc": "2.0", "id": 1, "method": "tools/list"}
    headers = {
        "Accept": "application/json, text/event-stream",
        "MCP-Protocol-Version": "2025-06-18",
    }
    async with (
        serve_capability(SHIPYARD_CAPABILITY, overrides, SHIPYARD_ENV) as base,
        httpx.AsyncClient() as http,
    ):
        missing = await http.post(base + "/mcp", json=listing, headers=headers)
        wrong = await http.post(
            base + "/", json=listing, headers={**headers, "Authorization": "Bearer wrong"}
        )
        good = await http.post(
            base + "/mcp",
            json=listing,
            headers={**headers, "Authorization": f"Bearer {MCP_SERVER_TOKEN}"},
        )
    assert (missing.status_code, wrong.status_code, good.status_code) == (401, 401, 200)
    assert MCP_SERVER_TOKEN not in missing.text + wrong.text
    assert good.json()["result"]["tools"][0]["name"] == "get-ship"


# ------------------------------------------------------------------ a client nobody here wrote

INSPECTOR = "@modelcontextprotocol/inspector@2.12.0"


@pytest.mark.skipif(shutil.which("npx") is None, reason="npx (Node.js) is not installed")
async def test_mcp_inspector_cli_lists_and_calls(
    fake_tiktok: LiveFake[FakeTikTok], tiktok_capability_path: Path
) -> None:
    fake_tiktok.state.accept_json = True
    body = json.dumps(exchange_body(fake_tiktok.state.issue_code()))
    overrides = {TIKTOK_NS: fake_tiktok.url}
    async with serve_capability(tiktok_capability_path, overrides, TIKTOK_ENV) as base:
        cli = ["npx", "-y", INSPECTOR, "--cli", base + "/mcp", "--transport", "http"]
        listed = await _run(*cli, "--method", "tools/list")
        called = await _run(
            *cli,
            "--method",
            "tools/call",
            "--tool-name",
            "exchange-authorization-code-token",
            "--tool-arg",
            f"body={body}",
        )
    if listed is None or called is None:
        pytest.skip("the MCP Inspector could not be fetched or started (offline npm?)")
    assert sorted(t["name"] for t in listed["tools"]) == sorted(TOOLS)
    assert called["isError"] is False
    assert called["structuredContent"]["token_type"] == "Bearer"


async def _run(*command: str) -> dict[str, Any] | None:
    """The JSON the Inspector CLI prints, or None when npx could not run it at all."""
    process = await asyncio.create_subprocess_exec(
        *command,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
        env={**os.environ, "npm_config_update_notifier": "false"},
    )
    out, err = await asyncio.wait_for(process.communicate(), timeout=300)
    if process.returncode != 0 and (b"npm ERR" in err or b"ENOTFOUND" in err or b"E404" in err):
        return None
    assert process.returncode == 0, err.decode(errors="replace")
    return json.loads(out)
