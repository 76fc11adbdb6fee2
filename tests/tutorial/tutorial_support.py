"""Running the framework tutorial's capability files unchanged, against the fake shipyard.

The fakes of ``fakes.shipyard`` carry their own sample data; the tutorial *text* shows
different values (Erik Lindström the captain, Aiko Tanaka the cook, 42000 t, the Oslo →
Singapore voyage...). :func:`tutorial_registry` and :func:`tutorial_dockyard` load the
text's data into them, so every test can compare with what the tutorial documents.

:func:`serve_tutorial` loads a step file from the corpus as it is (only the consumed base
URIs are overridden), compiles it, and serves every adapter it declares on its own
loopback uvicorn server (ports chosen by the OS).
"""

from __future__ import annotations

import contextlib
import copy
from collections.abc import AsyncIterator, Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx2
from mcp import Client
from mcp.client.streamable_http import streamable_http_client

from fakes.shipyard import MCP_SERVER_TOKEN, NORTHERN_STAR, Dockyard, Registry
from naftiko.adapters.exposes import compile_capability
from naftiko.adapters.mcp.plan import McpAdapterPlan
from naftiko.adapters.mcp.server import build_mcp_app
from naftiko.adapters.rest.app import build_rest_app
from naftiko.adapters.rest.plan import RestAdapterPlan
from naftiko.adapters.skill.app import build_skill_app
from naftiko.adapters.skill.plan import SkillAdapterPlan
from naftiko.engine.invoke import Engine
from naftiko.engine.plans import CompiledCapability
from naftiko.spec.loader import LoadedCapability, load_capability
from naftiko.upstream.settings import UpstreamSettings
from support.servers import serve_asgi

PACIFIC_DAWN = "IMO-9456781"
VOYAGE = "VOY-2026-042"
CARGO_ELECTRONICS = "CARGO-2024-0451"
CARGO_ORE = "CARGO-2024-0452"

# Tutorial part 1, steps 1, 2 and 4 (ship card), step 7 (assignedCrew).
_SHIP_DATA: dict[str, dict[str, Any]] = {
    NORTHERN_STAR: {
        "vessel_name": "Northern Star",
        "vessel_type": "cargo",
        "flag_code": "NO",
        "operational_status": "active",
        "year_built": 2015,
        "gross_tonnage": 42000,
        "dimensions": {"length_overall": 229, "beam": 32, "draft": 12.5},
        "assignedCrew": ["CREW-001", "CREW-003"],
    },
    PACIFIC_DAWN: {
        "vessel_name": "Pacific Dawn",
        "vessel_type": "tanker",
        "flag_code": "SG",
        "operational_status": "maintenance",
        "year_built": 2011,
        "gross_tonnage": 61000,
        "dimensions": {"length_overall": 250, "beam": 44, "draft": 14.8},
        "assignedCrew": ["CREW-002"],
    },
}

# Tutorial part 1, step 7: "No Aiko, no departure."
CREW: list[dict[str, Any]] = [
    {"crewId": "CREW-001", "fullName": "Erik Lindström", "role": "captain", "nationality": "NO"},
    {"crewId": "CREW-002", "fullName": "Mateo García", "role": "chief engineer"},
    {"crewId": "CREW-003", "fullName": "Aiko Tanaka", "role": "cook", "nationality": "JP"},
]

# Tutorial part 2, step 3 (the fleet manifest).
CARGO: list[dict[str, Any]] = [
    {
        "cargoId": CARGO_ELECTRONICS,
        "type": "container",
        "description": "Electronics components",
        "weight": 12.5,
        "hazardous": False,
    },
    {
        "cargoId": CARGO_ORE,
        "type": "bulk",
        "description": "Iron ore samples",
        "weight": 85.0,
        "hazardous": False,
    },
    {
        "cargoId": "CARGO-2024-0999",
        "type": "tank",
        "description": "Not on this voyage",
        "weight": 1.0,
        "hazardous": True,
    },
]

VOYAGE_DATA: dict[str, Any] = {
    "voyageId": VOYAGE,
    "shipImo": NORTHERN_STAR,
    "departurePort": "Oslo",
    "arrivalPort": "Singapore",
    "departureDate": "2026-04-10",
    "arrivalDate": "2026-05-02",
    "crewIds": ["CREW-001", "CREW-003"],
    "cargoIds": [CARGO_ELECTRONICS, CARGO_ORE],
    "status": "planned",
}

# Tutorial part 1, step 5.
LEGACY_VESSELS: list[dict[str, str]] = [
    {
        "vesselCode": "LEGACY-4012",
        "vesselName": "Old Faithful",
        "category": "cargo",
        "flagState": "GB",
        "operationalStatus": "active",
    },
    {
        "vesselCode": "LEGACY-2087",
        "vesselName": "Iron Maiden",
        "category": "bulk_carrier",
        "flagState": "PA",
        "operationalStatus": "laid_up",
    },
]


class TutorialRegistry(Registry):
    """The registry fake with the tutorial text's data.

    ``with_voyage=False`` starts with no voyage, so the first one created is
    ``VOY-2026-042`` as in the text of step 6 (the fake numbers voyages from 43 because
    its sample data already holds 42; it has no public knob for that).
    """

    def __init__(self, *, with_voyage: bool = True, **knobs: bool) -> None:
        super().__init__(**knobs)
        ships = []
        for imo, data in _SHIP_DATA.items():
            base = copy.deepcopy(self.ship(NORTHERN_STAR) or {})
            ships.append({**base, "imo_number": imo, **copy.deepcopy(data)})
        self.ships = ships
        self.crew = copy.deepcopy(CREW)
        self.cargo = copy.deepcopy(CARGO)
        if with_voyage:
            self.voyages = {VOYAGE: copy.deepcopy(VOYAGE_DATA)}
        else:
            self.voyages = {}
            self._next_voyage = 42


def tutorial_dockyard(**knobs: bool) -> Dockyard:
    dockyard = Dockyard(**knobs)
    dockyard.vessels = copy.deepcopy(LEGACY_VESSELS)
    return dockyard


@dataclass
class Shipyard:
    registry: Registry
    dockyard: Dockyard
    registry_url: str
    dockyard_url: str

    @property
    def overrides(self) -> dict[str, str]:
        return {"registry": self.registry_url, "legacy": self.dockyard_url}


@contextlib.asynccontextmanager
async def running_shipyard(
    registry: Registry | None = None, dockyard: Dockyard | None = None
) -> AsyncIterator[Shipyard]:
    registry = registry if registry is not None else TutorialRegistry()
    dockyard = dockyard if dockyard is not None else tutorial_dockyard()
    async with serve_asgi(registry.app) as reg, serve_asgi(dockyard.app) as dock:
        yield Shipyard(registry, dockyard, reg, dock)


@dataclass
class Served:
    """A capability being served: base URL per exposed namespace."""

    loaded: LoadedCapability
    compiled: CompiledCapability
    engine: Engine
    urls: dict[str, str] = field(default_factory=dict)

    def url(self, adapter_type: str) -> str:
        """The base URL of the (first) adapter of that type."""
        for plan in self.compiled.adapters:
            if plan.type == adapter_type:
                return self.urls[plan.namespace]
        raise LookupError(f"no {adapter_type} adapter")


def _unchanged(path: Path) -> Path:
    return path


# The document served for the one a test names: the alpha2 original, or its beta4 twin
# (the suite runs in both forms: see ``support.twins``).
as_served: Callable[[Path], Path] = _unchanged


@contextlib.asynccontextmanager
async def serve_tutorial(path: Path, overrides: Mapping[str, str]) -> AsyncIterator[Served]:
    """Load ``path`` unchanged, compile with base-URI ``overrides``, serve every adapter."""
    settings = UpstreamSettings(base_uri_overrides=dict(overrides))
    loaded = load_capability(as_served(path))
    compiled = compile_capability(loaded, settings)
    engine = Engine(compiled, settings)
    served = Served(loaded, compiled, engine)
    async with contextlib.AsyncExitStack() as stack:
        await engine.start()
        stack.push_async_callback(engine.aclose)
        for plan in compiled.adapters:
            if isinstance(plan, McpAdapterPlan):
                app = build_mcp_app(engine, plan, bindings=loaded.bindings)
            elif isinstance(plan, RestAdapterPlan):
                app = build_rest_app(engine, plan, bindings=loaded.bindings)
            elif isinstance(plan, SkillAdapterPlan):
                app = build_skill_app(engine, plan, bindings=loaded.bindings)
            else:
                continue
            served.urls[plan.namespace] = await stack.enter_async_context(serve_asgi(app))
        yield served


@contextlib.asynccontextmanager
async def mcp_client(base_url: str, token: str | None = MCP_SERVER_TOKEN) -> AsyncIterator[Client]:
    """The official SDK client over streamable HTTP, with the tutorial's bearer token."""
    headers = {"Authorization": f"Bearer {token}"} if token else {}
    async with (
        httpx2.AsyncClient(headers=headers) as http,
        Client(streamable_http_client(base_url + "/mcp", http_client=http)) as client,
    ):
        yield client


async def call_tool(client: Client, name: str, arguments: Mapping[str, Any]) -> Any:
    """The tool's JSON result; fails the test with the error text when it is an error."""
    import json

    result = await client.call_tool(name, dict(arguments))
    text = "".join(getattr(block, "text", "") for block in result.content)
    assert not result.is_error, text
    return json.loads(text)
