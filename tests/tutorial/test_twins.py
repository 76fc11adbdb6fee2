"""An alpha2 document and its beta4 twin, served side by side, answer alike.

The tutorial's last step (MCP, REST and skill adapters, orchestrated steps, an
aggregate, imports from ``shared/``) is served twice against the same fakes: from the
published alpha2 file and from the Ikanos 1.0.0-beta4 document ``naftiko convert`` makes
of it (strictly valid). Everything a client can observe is collected from both and
compared: the MCP listing (names, titles, descriptions, schemas, hints) and tool results
through the official client, the REST answers and OpenAPI document, the skill catalogue
and details. Unnamed REST operations get a name in Ikanos, so the OpenAPI
``operationId`` is the one thing expected to differ, and is left out.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import httpx
from mcp.shared.exceptions import MCPError
from tutorial_support import (
    VOYAGE,
    TutorialRegistry,
    mcp_client,
    running_shipyard,
    serve_tutorial,
)

from fakes.shipyard import NORTHERN_STAR
from support.twins import beta4_twin


def _without_operation_ids(openapi: Any) -> Any:
    if isinstance(openapi, dict):
        return {k: _without_operation_ids(v) for k, v in openapi.items() if k != "operationId"}
    if isinstance(openapi, list):
        return [_without_operation_ids(v) for v in openapi]
    return openapi


async def _observe(path: Path) -> dict[str, Any]:
    registry = TutorialRegistry()
    registry.tokens.add("REGISTRY_TOKEN")
    registry.versions.add("REGISTRY_VERSION")
    seen: dict[str, Any] = {}
    async with (
        running_shipyard(registry) as shipyard,
        serve_tutorial(path, shipyard.overrides) as served,
    ):
        async with mcp_client(served.url("mcp")) as client:
            tools = (await client.list_tools()).tools
            seen["tools"] = [t.model_dump(mode="json") for t in tools]
            calls = {
                "get-voyage-manifest": {"voyageId": VOYAGE},
                "get-ship-with-crew": {"imo": NORTHERN_STAR},
                "get-ship": {"imo": NORTHERN_STAR},
                "list-ships": {},
                "list-legacy-vessels": {},
                "get-ship-unknown": {},
                "get-ship-bad-input": {"imo": 42},
            }
            for name, arguments in calls.items():
                tool = name.removesuffix("-unknown").removesuffix("-bad-input")
                if name.endswith("-unknown"):
                    tool = "no-such-tool"
                try:
                    result = (await client.call_tool(tool, arguments)).model_dump(mode="json")
                except MCPError as exc:  # an unknown tool is a protocol error
                    result = {"error": exc.error.code, "message": exc.error.message}
                seen[f"call {name}"] = result
        async with httpx.AsyncClient() as http:
            rest = served.url("rest")
            for route in (f"/voyages/{VOYAGE}/manifest", "/voyages/nope/manifest", "/nowhere"):
                answer = await http.get(rest + route)
                seen[f"GET {route}"] = (answer.status_code, answer.headers.get("content-type"))
                seen[f"GET {route} body"] = answer.text
            openapi = (await http.get(rest + "/.well-known/openapi.json")).json()
            seen["openapi"] = _without_operation_ids(openapi)
            skill = served.url("skill")
            for route in ("/skills", "/skills/voyage-ops", "/skills/fleet-ops", "/skills/x"):
                answer = await http.get(skill + route)
                seen[f"skill {route}"] = (answer.status_code, answer.text)
    return seen


async def test_step_11_and_its_beta4_twin_answer_alike(tutorial_dir: Path, tmp_path: Path) -> None:
    (original,) = tutorial_dir.glob("step-11-*.yml")
    twin = beta4_twin(original, tmp_path, strict=True)
    assert twin.read_text().startswith('ikanos: "1.0.0-beta4"')
    alpha2, beta4 = await _observe(original), await _observe(twin)
    assert not alpha2["call get-voyage-manifest"]["is_error"]  # the scenario ran
    assert alpha2["GET /voyages/" + VOYAGE + "/manifest"][0] == 200
    assert len(alpha2["tools"]) == 6
    for key in alpha2:
        assert beta4[key] == alpha2[key], key
    assert beta4.keys() == alpha2.keys()
