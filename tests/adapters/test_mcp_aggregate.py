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


async def test_replacing_members_keeps_a_call_in_flight_counted_on_its_generation() -> None:
    """The gateway's reload swaps the member table while a call runs through it: the call
    finishes on the previous member, counted on its generation (whose engine closes only
    once that count is back to 0); new calls and lists see the new table."""
    import asyncio

    from naftiko.adapters.mcp.aggregate import AggregateHandlers
    from naftiko.runtime.reload import AppGeneration

    loaded = load_capability(SHIPYARD, env=ENV)
    compiled = compile_capability(loaded, UpstreamSettings())
    plan = replace(
        next(a for a in compiled.adapters if isinstance(a, McpAdapterPlan)), authentication=None
    )
    gate = asyncio.Event()

    class Slow(McpHandlers):
        async def call_tool(self, name, arguments, request_id=None, *, caller=None):  # type: ignore[no-untyped-def]
            await gate.wait()
            return f"{name} done"

    engine = Engine(compiled, UpstreamSettings())
    old_generation = AppGeneration(app=None, label="old")  # type: ignore[arg-type]
    handlers = AggregateHandlers([Member("old", Slow(engine, plan), old_generation.hold)])
    call = asyncio.create_task(handlers.call_tool("old__get-ship", {}))
    await asyncio.sleep(0)
    assert old_generation.in_flight == 1
    handlers.replace([Member("new", McpHandlers(engine, plan))])
    listed = await handlers.list_tools(None, None)
    assert [t.name for t in listed.tools] == ["new__get-ship"]
    assert (await handlers.call_tool("old__get-ship", {})).is_error  # gone for new calls
    assert not await old_generation.drained(0.05)  # the call in flight holds it
    gate.set()
    assert await call == "get-ship done"
    assert old_generation.in_flight == 0 and await old_generation.drained(0)
