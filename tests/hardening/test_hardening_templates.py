"""Templates under attack: step outputs a caller cannot override, bodies it cannot break.

Issue 15, item 2: templates used to look caller inputs up before step outputs and saw
undeclared inputs, so ``?get-profile.tenant=B`` (REST), a body field or the MCP argument
``{"get-profile": {"tenant": "C"}}`` replaced what step 1 looked up. The upstream must
see step 1's tenant in step 2's URL and body, whatever the caller sends; a tool that
declares its inputs refuses unknown arguments by name.

Item 5: a value rendered inside a JSON, XML or form body template is escaped for that
body and lands upstream as one value: the framework tutorial's create-voyage body (step
6, unchanged) with ``IMO-9321483", "status": "approved", "approvedBy": "attacker``.
"""

from __future__ import annotations

import contextlib
import json
import xml.etree.ElementTree as ET
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import parse_qs

import httpx
from hardening_kit import (
    CAPABILITIES,
    CLIENT_TIMEOUT,
    RawRequest,
    mcp_call,
    mcp_rpc,
    serve_capability,
)

from support.servers import ServerThread

TEMPLATES = CAPABILITIES / "templates.yaml"
TENANT = "tenant-a"
INJECTION = 'IMO-9321483", "status": "approved", "approvedBy": "attacker'


@dataclass
class ProfileUpstream:
    """Answers ``/api/profile`` with the caller's tenant, anything else with ``{}``;
    records every request as it arrived."""

    requests: list[RawRequest] = field(default_factory=list)

    async def __call__(self, scope: Any, receive: Any, send: Any) -> None:
        if scope["type"] != "http":
            return
        self.requests.append(await RawRequest.received(scope, receive))
        answer = {"tenant": TENANT, "user": "u-1"} if scope["path"] == "/api/profile" else {}
        await send(
            {
                "type": "http.response.start",
                "status": 200,
                "headers": [(b"content-type", b"application/json")],
            }
        )
        await send({"type": "http.response.body", "body": json.dumps(answer).encode()})


@contextlib.contextmanager
def upstream() -> Iterator[tuple[str, ProfileUpstream]]:
    app = ProfileUpstream()
    with ServerThread(app) as server:
        yield server.url, app


@dataclass
class Rig:
    rest: httpx.AsyncClient
    http: httpx.AsyncClient
    mcp_url: str
    upstream: ProfileUpstream

    def sent(self) -> list[RawRequest]:
        """The requests after the profile look-ups (what the attack aims at)."""
        return [r for r in self.upstream.requests if r.raw_path != "/api/profile"]

    async def tool(self, name: str, arguments: dict[str, Any]) -> Any:
        return await mcp_call(self.http, self.mcp_url, name, arguments)


@contextlib.asynccontextmanager
async def rig() -> AsyncIterator[Rig]:
    with upstream() as (url, app):
        async with (
            serve_capability(TEMPLATES, env={"HARD_VICTIM_BASE": url}) as served,
            httpx.AsyncClient(
                base_url=served.rest["templates-rest"], timeout=CLIENT_TIMEOUT
            ) as rest,
            httpx.AsyncClient(timeout=CLIENT_TIMEOUT) as http,
        ):
            yield Rig(rest, http, served.mcp["templates-mcp"], app)


def assert_step_tenant(request: RawRequest) -> None:
    """Step 2 went to step 1's tenant, in its URL and its body."""
    assert request.raw_path == f"/api/tenants/{TENANT}/data"
    assert json.loads(request.body)["tenant"] == TENANT


# --------------------------------------------------------------------------- item 2


async def test_rest_query_parameter_cannot_override_a_step_output() -> None:
    async with rig() as r:
        reply = await r.rest.post(
            "/tenant-data",
            params={"get-profile.tenant": "tenant-b", "get-profile": "tenant-b"},
            json={"note": "hello"},
        )
    assert reply.status_code == 200, reply.text
    (sent,) = r.sent()
    assert_step_tenant(sent)
    assert json.loads(sent.body)["note"] == "hello"


async def test_rest_body_fields_cannot_override_a_step_output() -> None:
    async with rig() as r:
        reply = await r.rest.post(
            "/tenant-data",
            json={
                "note": "hello",
                "get-profile": {"tenant": "tenant-c"},
                "get-profile.tenant": "tenant-d",
            },
        )
    assert reply.status_code == 200, reply.text
    (sent,) = r.sent()
    assert_step_tenant(sent)


async def test_mcp_unknown_argument_is_an_error_naming_it() -> None:
    async with rig() as r:
        reply = await r.tool("tenant-data", {"note": "hi", "get-profile": {"tenant": "tenant-c"}})
        dotted = await r.tool("tenant-data", {"get-profile.tenant": "tenant-d"})
    assert reply.is_error
    assert "'get-profile'" in reply.error_text
    assert dotted.is_error
    assert "'get-profile.tenant'" in dotted.error_text
    assert r.upstream.requests == []  # refused before anything went out


async def test_mcp_declared_tool_schema_refuses_additional_properties() -> None:
    async with rig() as r:
        listed = await mcp_rpc(r.http, r.mcp_url, "tools/list", {})
    tools = {t["name"]: t for t in listed.result["tools"]}
    assert tools["tenant-data"]["inputSchema"]["additionalProperties"] is False
    assert set(tools["tenant-data"]["inputSchema"]["properties"]) == {"note"}


async def test_mcp_argument_of_a_tool_without_declared_inputs_cannot_override_a_step() -> None:
    async with rig() as r:
        reply = await r.tool(
            "tenant-data-derived",
            {"note": "hi", "get-profile": {"tenant": "tenant-c"}, "get-profile.tenant": "x"},
        )
    assert not reply.is_error, reply.error_text
    (sent,) = r.sent()
    assert_step_tenant(sent)
    assert json.loads(sent.body)["note"] == "hi"


async def test_mcp_declared_tool_still_runs_with_its_own_arguments() -> None:
    async with rig() as r:
        reply = await r.tool("tenant-data", {"note": 'say "hi"'})
    assert not reply.is_error, reply.error_text
    (sent,) = r.sent()
    assert_step_tenant(sent)
    assert json.loads(sent.body)["note"] == 'say "hi"'


# --------------------------------------------------------------------------- item 5

VOYAGE = {
    "departurePort": "Oslo",
    "arrivalPort": "Singapore",
    "departureDate": "2026-04-10",
    "arrivalDate": "2026-05-02",
    "crewIds": ["CREW-001", "CREW-003"],
}


def sent_json(r: Rig) -> Any:
    (sent,) = r.sent()
    return json.loads(sent.body)


async def test_tutorial_voyage_body_keeps_an_injection_as_one_string_over_mcp() -> None:
    async with rig() as r:
        reply = await r.tool("create-voyage", {**VOYAGE, "shipImo": INJECTION})
        assert not reply.is_error, reply.error_text
        body = sent_json(r)
    assert body["shipImo"] == INJECTION
    assert "approvedBy" not in body and "status" not in body
    assert body["crewIds"] == ["CREW-001", "CREW-003"]
    assert body["cargoIds"] is None  # a missing value in a bare position is null


async def test_tutorial_voyage_body_keeps_an_injection_as_one_string_over_rest() -> None:
    async with rig() as r:
        reply = await r.rest.post("/voyages", json={**VOYAGE, "shipImo": INJECTION})
        assert reply.status_code == 200, reply.text
        body = sent_json(r)
    assert body["shipImo"] == INJECTION
    assert "approvedBy" not in body and "status" not in body


async def test_a_value_in_a_bare_json_position_cannot_add_fields() -> None:
    crew = '["CREW-001"], "approvedBy": "attacker"'
    async with rig() as r:
        reply = await r.tool("create-voyage", {**VOYAGE, "shipImo": "IMO-1", "crewIds": crew})
        assert not reply.is_error, reply.error_text
        body = sent_json(r)
    assert body["crewIds"] == crew
    assert "approvedBy" not in body


async def test_triple_braces_render_raw_json_and_numbers_stay_numbers() -> None:
    async with rig() as r:
        reply = await r.rest.put(
            "/voyages", json={"shipImo": 'a"b\\c', "berth": 7, "raw": '{"deck": [1, 2]}'}
        )
        assert reply.status_code == 200, reply.text
        body = sent_json(r)
    assert body == {"shipImo": 'a"b\\c', "berth": 7, "raw": {"deck": [1, 2]}}


async def test_xml_body_escapes_text_and_attributes() -> None:
    ship = 'X" admin="yes'
    note = "</note><approved>yes</approved><note>"
    async with rig() as r:
        over_mcp = await r.tool("create-voyage-xml", {"shipImo": ship, "note": note})
        over_rest = await r.rest.post("/voyages/xml", json={"shipImo": ship, "note": note})
        assert not over_mcp.is_error, over_mcp.error_text
        assert over_rest.status_code == 200, over_rest.text
        sent = r.sent()
    assert len(sent) == 2
    for request in sent:
        root = ET.fromstring(request.body)
        assert root.attrib == {"ship": ship}
        assert [child.tag for child in root] == ["note"]
        assert root.find("note").text == note  # type: ignore[union-attr]


async def test_form_body_encodes_each_value() -> None:
    ship = "X&status=approved&approvedBy=attacker"
    async with rig() as r:
        over_mcp = await r.tool("create-voyage-form", {"shipImo": ship})
        over_rest = await r.rest.post("/voyages/form", json={"shipImo": ship})
        assert not over_mcp.is_error, over_mcp.error_text
        assert over_rest.status_code == 200, over_rest.text
        sent = r.sent()
    assert len(sent) == 2
    for request in sent:
        form = parse_qs(request.body.decode(), keep_blank_values=True)
        assert form == {"shipImo": [ship], "status": ["planned"]}
