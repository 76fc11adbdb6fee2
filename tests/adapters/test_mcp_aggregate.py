"""The gateway's aggregate MCP app, in process with the official client: tools, resources
and prompts of several adapters under their prefixes, routed back to each one."""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

import pytest
from mcp import Client
from mcp.shared.exceptions import MCPError

from naftiko.adapters.exposes import compile_capability
from naftiko.adapters.mcp.aggregate import Member, build_aggregate_app
from naftiko.adapters.mcp.plan import McpAdapterPlan
from naftiko.adapters.mcp.server import McpHandlers
from naftiko.engine.invoke import Engine
from naftiko.spec.loader import load_capability
from naftiko.upstream.settings import UpstreamSettings
from support.servers import serve_asgi

SHIPYARD = Path(__file__).resolve().parent / "capabilities" / "mcp-shipyard-resources.yaml"
ENV = {"NAFTIKO_TEST_REGISTRY_TOKEN": "r", "NAFTIKO_TEST_MCP_TOKEN": "m"}


async def test_aggregate_routes_tools_resources_and_prompts_to_their_adapter() -> None:
    loaded = load_capability(SHIPYARD, env=ENV)
    compiled = compile_capability(loaded, UpstreamSettings())
    plan = next(a for a in compiled.adapters if isinstance(a, McpAdapterPlan))
    plan = replace(plan, authentication=None)
    engine = Engine(compiled, UpstreamSettings())
    one, two = McpHandlers(engine, plan), McpHandlers(engine, plan)
    app = build_aggregate_app([Member("one", one), Member("two", two)])
    async with serve_asgi(app) as base, Client(base + "/mcp") as client:
        tools = [t.name for t in (await client.list_tools()).tools]
        prompts = [p.name for p in (await client.list_prompts()).prompts]
        resources = [str(r.uri) for r in (await client.list_resources()).resources]
        templates = (await client.list_resource_templates()).resource_templates
        guide = (await client.read_resource("data://docs/guide.md")).contents[0]
        briefing = await client.get_prompt("two__ship-briefing", {"imo": "IMO-1", "audience": "x"})
        with pytest.raises(MCPError):
            await client.get_prompt("ship-briefing", {"imo": "IMO-1"})
        with pytest.raises(MCPError):
            await client.read_resource("data://nowhere")
    assert tools == ["one__get-ship", "two__get-ship"]
    assert prompts == [
        "one__ship-briefing",
        "one__inspection",
        "two__ship-briefing",
        "two__inspection",
    ]
    # A URI is global: served by both adapters, listed once (the first one answers).
    assert sorted(resources) == ["data://docs/api/registry.json", "data://docs/guide.md"]
    assert [t.uri_template for t in templates] == ["data://ships/{imo}"]
    assert guide.text.startswith("# Shipyard guide")
    assert briefing.messages[0].content.text == "Brief x about ship IMO-1."
