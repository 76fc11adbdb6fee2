"""The framework tutorial, end to end: every step's capability file run unchanged.

Each test loads ``step-N-*.yml`` from the corpus as published (only the consumed base
URIs point at the loopback fakes), serves its adapters on real uvicorn servers, calls
them the way the tutorial does (the official MCP SDK client, plain HTTP for REST and
skills) and checks the output the tutorial text shows for that step. The fakes hold the
text's data (see ``tutorial_support``). Every test runs twice: from the published alpha2
document and from its Ikanos beta4 twin made by ``naftiko convert`` (strictly valid),
with the same expected answers.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import httpx
import pytest
import tutorial_support
from tutorial_support import (
    CARGO_ELECTRONICS,
    PACIFIC_DAWN,
    VOYAGE,
    TutorialRegistry,
    call_tool,
    mcp_client,
    running_shipyard,
    serve_tutorial,
)

from fakes.shipyard import (
    DOCKYARD_API_KEY,
    MCP_SERVER_TOKEN,
    NORTHERN_STAR,
    REGISTRY_TOKEN,
    REGISTRY_VERSION,
)
from support.twins import FORMS, served_form

SHIP_CARD = {
    "imo": NORTHERN_STAR,
    "name": "Northern Star",
    "type": "cargo",
    "flag": "NO",
    "status": "active",
}
SPECS = {"yearBuilt": 2015, "tonnage": 42000, "length": 229}
CREW = [
    {"fullName": "Erik Lindström", "role": "captain"},
    {"fullName": "Aiko Tanaka", "role": "cook"},
]
SHIP_LIST = [
    SHIP_CARD,
    {
        "imo": PACIFIC_DAWN,
        "name": "Pacific Dawn",
        "type": "tanker",
        "flag": "SG",
        "status": "maintenance",
    },
]
LEGACY = [
    {
        "vesselCode": "LEGACY-4012",
        "name": "Old Faithful",
        "type": "cargo",
        "flag": "GB",
        "status": "active",
    },
    {
        "vesselCode": "LEGACY-2087",
        "name": "Iron Maiden",
        "type": "bulk_carrier",
        "flag": "PA",
        "status": "laid_up",
    },
]
VOYAGE_REQUEST = {
    "shipImo": NORTHERN_STAR,
    "departurePort": "Oslo",
    "arrivalPort": "Singapore",
    "departureDate": "2026-04-10",
    "arrivalDate": "2026-05-02",
    "crewIds": ["CREW-001", "CREW-003"],
    "cargoIds": [CARGO_ELECTRONICS],
}
PLANNED_VOYAGE = {
    "voyageId": VOYAGE,
    "shipImo": NORTHERN_STAR,
    "route": {"from": "Oslo", "to": "Singapore"},
    "dates": {"departure": "2026-04-10", "arrival": "2026-05-02"},
    "crewIds": ["CREW-001", "CREW-003"],
    "cargoIds": [CARGO_ELECTRONICS],
    "status": "planned",
}
MANIFEST = {
    "voyageId": VOYAGE,
    "status": "planned",
    "route": {"from": "Oslo", "to": "Singapore"},
    "ship": {"name": "Northern Star", "type": "cargo", "flag": "NO"},
    "crew": CREW,
    "cargo": [
        {
            "type": "container",
            "description": "Electronics components",
            "weight": 12.5,
            "hazardous": False,
        },
        {"type": "bulk", "description": "Iron ore samples", "weight": 85.0, "hazardous": False},
    ],
}
SHIP_WITH_CREW = {**SHIP_CARD, **SPECS, "crew": CREW}  # the mappings flatten the specs


@pytest.fixture(autouse=True, params=FORMS)
def document_form(
    request: pytest.FixtureRequest,
    tmp_path_factory: pytest.TempPathFactory,
    monkeypatch: pytest.MonkeyPatch,
) -> str:
    as_served = served_form(request, tmp_path_factory, strict=True)
    monkeypatch.setattr(tutorial_support, "as_served", as_served)
    return str(request.param)


def step(tutorial_dir: Path, number: int) -> Path:
    (path,) = tutorial_dir.glob(f"step-{number}-*.yml")
    return path


def annotations(tool: Any) -> dict[str, Any]:
    return tool.annotations.model_dump(by_alias=True, exclude_none=True) if tool.annotations else {}


# --------------------------------------------------------------------------- part 1


async def test_step_1_mock_tool_answers_from_values(tutorial_dir: Path) -> None:
    async with (
        serve_tutorial(step(tutorial_dir, 1), {}) as served,
        mcp_client(served.url("mcp"), token=None) as client,
    ):
        tools = (await client.list_tools()).tools
        assert [t.name for t in tools] == ["get-ship"]
        assert tools[0].input_schema["required"] == ["imo_number"]
        result = await call_tool(client, "get-ship", {"imo_number": NORTHERN_STAR})
    assert result == SHIP_CARD


async def test_step_2_wiring_lists_and_gets_ships(tutorial_dir: Path) -> None:
    registry = TutorialRegistry(require_auth=False, require_version=False)
    async with (
        running_shipyard(registry) as shipyard,
        serve_tutorial(step(tutorial_dir, 2), shipyard.overrides) as served,
        mcp_client(served.url("mcp"), token=None) as client,
    ):
        assert await call_tool(client, "list-ships", {}) == SHIP_LIST
        active = await call_tool(client, "list-ships", {"status": "active"})
        assert active == [SHIP_CARD]
        assert await call_tool(client, "get-ship", {"imo": NORTHERN_STAR}) == SHIP_CARD
    paths = [r.path for r in registry.requests]
    assert paths[-1].endswith(f"/ships/{NORTHERN_STAR}")
    assert registry.requests[1].query == {"status": "active"}


async def test_step_3_binds_secure_both_sides(tutorial_dir: Path) -> None:
    async with (
        running_shipyard() as shipyard,
        serve_tutorial(step(tutorial_dir, 3), shipyard.overrides) as served,
    ):
        async with httpx.AsyncClient() as http:
            refused = await http.post(served.url("mcp") + "/mcp", json={})
        assert refused.status_code == 401
        async with mcp_client(served.url("mcp")) as client:
            assert await call_tool(client, "get-ship", {"imo": NORTHERN_STAR}) == SHIP_CARD
    sent = shipyard.registry.requests[-1].headers
    assert sent["authorization"] == f"Bearer {REGISTRY_TOKEN}"
    assert sent["registry-version"] == REGISTRY_VERSION
    assert MCP_SERVER_TOKEN not in refused.text


async def test_step_4_output_shaping_builds_the_ship_card(tutorial_dir: Path) -> None:
    async with (
        running_shipyard() as shipyard,
        serve_tutorial(step(tutorial_dir, 4), shipyard.overrides) as served,
        mcp_client(served.url("mcp")) as client,
    ):
        card = await call_tool(client, "get-ship", {"imo": NORTHERN_STAR})
    assert card == {**SHIP_CARD, "specs": SPECS}


async def test_step_5_multi_source_reads_the_legacy_dockyard(tutorial_dir: Path) -> None:
    async with (
        running_shipyard() as shipyard,
        serve_tutorial(step(tutorial_dir, 5), shipyard.overrides) as served,
        mcp_client(served.url("mcp")) as client,
    ):
        assert await call_tool(client, "list-legacy-vessels", {}) == LEGACY
        laid_up = await call_tool(client, "list-legacy-vessels", {"status": "laid_up"})
        assert await call_tool(client, "get-ship", {"imo": NORTHERN_STAR}) == {
            **SHIP_CARD,
            "specs": SPECS,
        }
    assert laid_up == [LEGACY[1]]
    assert shipyard.dockyard.requests[-1].headers["x-dock-key"] == DOCKYARD_API_KEY


async def test_step_6_create_voyage_posts_the_body_template(tutorial_dir: Path) -> None:
    registry = TutorialRegistry(with_voyage=False)
    async with (
        running_shipyard(registry) as shipyard,
        serve_tutorial(step(tutorial_dir, 6), shipyard.overrides) as served,
        mcp_client(served.url("mcp")) as client,
    ):
        tools = {t.name: t for t in (await client.list_tools()).tools}
        voyage = await call_tool(client, "create-voyage", VOYAGE_REQUEST)
    assert voyage == PLANNED_VOYAGE
    assert annotations(tools["create-voyage"]) == {
        "readOnlyHint": False,
        "destructiveHint": False,
        "idempotentHint": False,
        "openWorldHint": True,
    }
    assert tools["create-voyage"].input_schema["properties"]["crewIds"]["type"] == "array"
    posted = registry.requests[-1]
    assert posted.method == "POST"
    assert registry.voyages[VOYAGE]["crewIds"] == ["CREW-001", "CREW-003"]


async def test_step_6_body_template_keeps_an_injection_as_one_value(tutorial_dir: Path) -> None:
    """Issue 15: the tutorial's JSON body template, unchanged, cannot be given two more
    fields by a value with quotes; the upstream sees one ``shipImo`` string."""
    injection = 'IMO-9321483", "status": "approved", "approvedBy": "attacker'
    registry = TutorialRegistry(with_voyage=False)
    async with (
        running_shipyard(registry) as shipyard,
        serve_tutorial(step(tutorial_dir, 6), shipyard.overrides) as served,
        mcp_client(served.url("mcp")) as client,
    ):
        result = await client.call_tool("create-voyage", {**VOYAGE_REQUEST, "shipImo": injection})
    posted = registry.requests[-1].json
    assert posted["shipImo"] == injection
    assert "approvedBy" not in posted and "status" not in posted
    assert posted["cargoIds"] == [CARGO_ELECTRONICS]
    assert result.is_error  # the registry knows no such ship (422): data, not syntax
    assert registry.voyages == {}


async def test_step_7_orchestrated_lookup_resolves_crew_names(tutorial_dir: Path) -> None:
    async with (
        running_shipyard() as shipyard,
        serve_tutorial(step(tutorial_dir, 7), shipyard.overrides) as served,
    ):
        async with mcp_client(served.url("mcp")) as client:
            names = [t.name for t in (await client.list_tools()).tools]
            mcp_result = await call_tool(client, "get-ship-with-crew", {"imo": NORTHERN_STAR})
        async with httpx.AsyncClient(base_url=served.url("rest")) as http:
            rest = await http.get(f"/ships/{NORTHERN_STAR}/crew")
            card = await http.get(f"/ships/{NORTHERN_STAR}")
    assert names == [
        "list-ships",
        "get-ship",
        "list-legacy-vessels",
        "create-voyage",
        "get-ship-with-crew",
    ]
    assert mcp_result == SHIP_WITH_CREW
    assert (rest.status_code, rest.json()) == (200, SHIP_WITH_CREW)
    assert card.json() == {**SHIP_CARD, "specs": SPECS}


async def test_step_7_failing_step_stops_the_chain_and_is_named(tutorial_dir: Path) -> None:
    async with (
        running_shipyard() as shipyard,
        serve_tutorial(step(tutorial_dir, 7), shipyard.overrides) as served,
        mcp_client(served.url("mcp")) as client,
    ):
        before = len(shipyard.registry.requests)
        result = await client.call_tool("get-ship-with-crew", {"imo": "IMO-0000000"})
        calls = shipyard.registry.requests[before:]
        async with httpx.AsyncClient(base_url=served.url("rest")) as http:
            rest = await http.get("/ships/IMO-0000000/crew")
    assert result.is_error
    assert "404" in result.content[0].text
    assert result.content[0].text.startswith("Step 'get-ship' failed: HTTP 404 from upstream:")
    assert [c.path.rsplit("/", 1)[-1] for c in calls] == ["IMO-0000000"]  # no /crew call
    assert rest.status_code == 404
    assert rest.headers["content-type"] == "application/problem+json"
    assert rest.json()["step"] == "get-ship"
    assert rest.json()["upstream"]["error"] == "not_found"  # the upstream body, kept


# --------------------------------------------------------------------------- part 2


async def test_step_8_skill_catalogue_groups_tools(tutorial_dir: Path) -> None:
    async with (
        running_shipyard() as shipyard,
        serve_tutorial(step(tutorial_dir, 8), shipyard.overrides) as served,
        httpx.AsyncClient(base_url=served.url("skill")) as http,
    ):
        catalogue = (await http.get("/skills")).json()
        detail = (await http.get("/skills/fleet-ops")).json()
        unknown = await http.get("/skills/cargo-ops")
        download = await http.get("/skills/fleet-ops/download")
    assert catalogue["count"] == 2
    assert [s["name"] for s in catalogue["skills"]] == ["fleet-ops", "voyage-ops"]
    assert catalogue["skills"][1]["tools"] == ["create-voyage"]
    assert catalogue["skills"][0]["tools"] == [
        "list-ships",
        "get-ship",
        "list-legacy-vessels",
        "get-ship-with-crew",
    ]
    assert detail["tools"][0] == {
        "name": "list-ships",
        "description": "List ships in the shipyard, optionally filtered by status",
        "type": "derived",
        "invocationRef": {
            "targetNamespace": "shipyard-tools",
            "action": "list-ships",
            "mode": "mcp",
        },
    }
    assert unknown.status_code == 404
    assert unknown.headers["content-type"].startswith("application/problem+json")
    assert download.status_code == 404  # the tutorial's skills declare no location


async def test_step_9_aggregate_function_backs_the_tool(tutorial_dir: Path) -> None:
    async with (
        running_shipyard() as shipyard,
        serve_tutorial(step(tutorial_dir, 9), shipyard.overrides) as served,
        mcp_client(served.url("mcp")) as client,
    ):
        tools = {t.name: t for t in (await client.list_tools()).tools}
        result = await call_tool(client, "get-ship-with-crew", {"imo": NORTHERN_STAR})
    tool = tools["get-ship-with-crew"]
    assert tool.description == "Get ship details with resolved crew names"
    assert tool.input_schema["properties"]["imo"]["type"] == "string"
    assert tool.input_schema["required"] == ["imo"]
    # safe -> readOnly and not destructive; idempotent copied; cacheable derives nothing.
    assert annotations(tool) == {
        "readOnlyHint": True,
        "destructiveHint": False,
        "idempotentHint": True,
    }
    assert result == SHIP_WITH_CREW


async def test_step_10_rest_front_door(tutorial_dir: Path) -> None:
    async with (
        running_shipyard(TutorialRegistry(with_voyage=False)) as shipyard,
        serve_tutorial(step(tutorial_dir, 10), shipyard.overrides) as served,
        httpx.AsyncClient(base_url=served.url("rest")) as http,
    ):
        ships = await http.get("/ships", params={"status": "active"})
        card = await http.get(f"/ships/{NORTHERN_STAR}")
        crew = await http.get(f"/ships/{NORTHERN_STAR}/crew")  # ref to the aggregate
        legacy = await http.get("/legacy/vessels")
        created = await http.post("/voyages", json=VOYAGE_REQUEST)
        skill = (await http.get(served.url("skill") + "/skills")).json()
    assert (ships.status_code, ships.json()) == (200, [SHIP_CARD])
    assert card.json() == {**SHIP_CARD, "specs": SPECS}
    assert (crew.status_code, crew.json()) == (200, SHIP_WITH_CREW)
    assert legacy.json() == LEGACY
    assert created.json() == PLANNED_VOYAGE
    assert skill["count"] == 2


async def test_step_11_fleet_manifest_over_mcp_rest_and_skills(tutorial_dir: Path) -> None:
    registry = TutorialRegistry()
    # shared/step11-registry-consumes.yml sends the literal names (no braces): the
    # tutorial's mock server does not check credentials, so neither does this fake.
    registry.tokens.add("REGISTRY_TOKEN")
    registry.versions.add("REGISTRY_VERSION")
    async with (
        running_shipyard(registry) as shipyard,
        serve_tutorial(step(tutorial_dir, 11), shipyard.overrides) as served,
    ):
        async with mcp_client(served.url("mcp")) as client:
            tools = [t.name for t in (await client.list_tools()).tools]
            manifest = await call_tool(client, "get-voyage-manifest", {"voyageId": VOYAGE})
            with_crew = await call_tool(client, "get-ship-with-crew", {"imo": NORTHERN_STAR})
        async with httpx.AsyncClient() as http:
            rest = await http.get(f"{served.url('rest')}/voyages/{VOYAGE}/manifest")
            ops = (await http.get(f"{served.url('skill')}/skills/voyage-ops")).json()
    assert tools == [
        "list-ships",
        "get-ship",
        "list-legacy-vessels",
        "create-voyage",
        "get-ship-with-crew",
        "get-voyage-manifest",
    ]
    assert manifest == MANIFEST
    assert with_crew == SHIP_WITH_CREW
    assert rest.status_code == 200
    assert rest.json() == {
        "voyageId": VOYAGE,
        "status": "planned",
        "departurePort": "Oslo",
        "arrivalPort": "Singapore",
        "shipName": "Northern Star",
        "shipType": "cargo",
        "shipFlag": "NO",
        "crew": CREW,
        "cargo": MANIFEST["cargo"],
    }
    assert [t["name"] for t in ops["tools"]] == ["create-voyage", "get-voyage-manifest"]
    assert registry.requests[-1].headers["authorization"] == "Bearer REGISTRY_TOKEN"


_DECLARED_VOYAGE = """\
          inputParameters:
            - name: voyageId
              type: string
              required: true
              description: "Voyage ID to build the manifest for"
          steps:
            - name: get-voyage
              type: call
              call: registry.get-voyage
              with:
                voyageId: "{{voyageId}}"
"""
_STEP_WITH_ONLY = """\
          steps:
            - name: get-voyage
              type: call
              call: registry.get-voyage
              with:
                voyageId: shipyard-tools.voyageId
"""


async def test_step_11_input_read_only_by_a_step_with_is_derived(
    tutorial_dir: Path, tmp_path: Path
) -> None:
    """``shipyard-tools.voyageId`` appears only in a step's ``with``: it is still the
    tool's input, required because it feeds the consumed path parameter ``voyageId``."""
    text = step(tutorial_dir, 11).read_text(encoding="utf-8")
    assert text.count(_DECLARED_VOYAGE) == 1
    variant = tmp_path / "step-11-undeclared.yml"
    variant.write_text(text.replace(_DECLARED_VOYAGE, _STEP_WITH_ONLY), encoding="utf-8")
    (tmp_path / "shared").symlink_to(tutorial_dir / "shared")
    registry = TutorialRegistry()
    registry.tokens.add("REGISTRY_TOKEN")
    registry.versions.add("REGISTRY_VERSION")
    async with (
        running_shipyard(registry) as shipyard,
        serve_tutorial(variant, shipyard.overrides) as served,
        mcp_client(served.url("mcp")) as client,
    ):
        tools = {t.name: t for t in (await client.list_tools()).tools}
        refused = await client.call_tool("get-voyage-manifest", {})
        manifest = await call_tool(client, "get-voyage-manifest", {"voyageId": VOYAGE})
    schema = tools["get-voyage-manifest"].input_schema
    assert schema["properties"] == {"voyageId": {}}
    assert schema["required"] == ["voyageId"]
    assert refused.is_error and "'voyageId' is required" in refused.content[0].text
    assert manifest == MANIFEST


def test_tutorial_documents_are_unchanged_inputs(tutorial_dir: Path) -> None:
    """The tests above read the corpus in place; nothing of it is copied here."""
    assert len(list(tutorial_dir.glob("step-*.yml"))) == 11
    assert not list(Path(__file__).parent.glob("*.y*ml"))
