"""The framework tutorial's two upstreams: the Maritime Registry (JSON, bearer) and the
Legacy Dockyard (XML, ``X-Dock-Key``).

Endpoints, credentials and field names come from the tutorial's ``shared/*consumes*``
files, ``shared/secrets.yaml`` and the output mappings of steps 1-11, so the tutorial
documents run unchanged against these fakes once their base URIs are overridden.
Routes answer both at the root and under the mocks.naftiko.net base path.
"""

from __future__ import annotations

import copy
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any
from xml.sax.saxutils import escape

from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import BaseRoute, Mount, Route

from fakes import ALL_METHODS, RecordedRequest, parse_json, record

# shared/secrets.yaml
REGISTRY_TOKEN = "dummy-token"
REGISTRY_VERSION = "1.0.0-alpha2"
DOCKYARD_API_KEY = "dummy-dockyard-key"
MCP_SERVER_TOKEN = "sk-mcp-YYYYYYYYYYYY"
SECRETS: dict[str, str] = {
    "registry-bearer-token": REGISTRY_TOKEN,
    "registry-api-version": REGISTRY_VERSION,
    "dockyard-api-key": DOCKYARD_API_KEY,
    "mcp-server-token": MCP_SERVER_TOKEN,
}

REGISTRY_PREFIX = "/rest/naftiko-shipyard-maritime-registry-api/1.0.0-alpha2"
DOCKYARD_PREFIX = "/rest/naftiko-shipyard-legacy-dockyard-api/1.0.0-alpha2"

NORTHERN_STAR = "IMO-9321483"
KNOWN_VOYAGE = "VOY-2026-042"

SHIPS: list[dict[str, Any]] = [
    {
        "imo_number": NORTHERN_STAR,
        "vessel_name": "Northern Star",
        "vessel_type": "cargo",
        "flag_code": "NO",
        "operational_status": "active",
        "year_built": 2015,
        "gross_tonnage": 42500,
        "dimensions": {"length_overall": 229.5, "beam": 32.2, "draft": 12.5},
        "home_port": "Bergen",
        "assignedCrew": ["CREW-001", "CREW-003"],
    },
    {
        "imo_number": "IMO-9456721",
        "vessel_name": "Atlantic Pioneer",
        "vessel_type": "tanker",
        "flag_code": "LR",
        "operational_status": "active",
        "year_built": 2018,
        "gross_tonnage": 61200,
        "dimensions": {"length_overall": 249.9, "beam": 44.0, "draft": 14.8},
        "home_port": "Monrovia",
        "assignedCrew": ["CREW-002", "CREW-004"],
    },
    {
        "imo_number": "IMO-9187234",
        "vessel_name": "Pacific Dawn",
        "vessel_type": "container",
        "flag_code": "PA",
        "operational_status": "maintenance",
        "year_built": 2009,
        "gross_tonnage": 75300,
        "dimensions": {"length_overall": 294.1, "beam": 32.3, "draft": 13.5},
        "home_port": "Panama City",
        "assignedCrew": ["CREW-005"],
    },
    {
        "imo_number": "IMO-9702156",
        "vessel_name": "Polar Explorer",
        "vessel_type": "research",
        "flag_code": "IS",
        "operational_status": "inactive",
        "year_built": 2012,
        "gross_tonnage": 8300,
        "dimensions": {"length_overall": 99.8, "beam": 20.1, "draft": 7.2},
        "home_port": "Reykjavik",
        "assignedCrew": [],
    },
]
SHIP_SUMMARY_FIELDS = (
    "imo_number",
    "vessel_name",
    "vessel_type",
    "flag_code",
    "operational_status",
)

CREW: list[dict[str, Any]] = [
    {"crewId": "CREW-001", "fullName": "Ingrid Larsen", "role": "Captain", "nationality": "NO"},
    {
        "crewId": "CREW-002",
        "fullName": "Mateo García",
        "role": "Chief Engineer",
        "nationality": "ES",
    },
    {"crewId": "CREW-003", "fullName": "Aiko Tanaka", "role": "First Officer", "nationality": "JP"},
    {"crewId": "CREW-004", "fullName": "Kwame Mensah", "role": "Bosun", "nationality": "GH"},
    {
        "crewId": "CREW-005",
        "fullName": "Sofia Rossi",
        "role": "Second Officer",
        "nationality": "IT",
    },
]

CARGO: list[dict[str, Any]] = [
    {
        "cargoId": "CARGO-001",
        "type": "container",
        "description": "Consumer electronics in 40 ft containers",
        "weight": 18500.5,
        "hazardous": False,
    },
    {
        "cargoId": "CARGO-002",
        "type": "bulk",
        "description": "Ammonium nitrate fertiliser",
        "weight": 32000,
        "hazardous": True,
    },
    {
        "cargoId": "CARGO-003",
        "type": "refrigerated",
        "description": "Frozen salmon",
        "weight": 12000,
        "hazardous": False,
    },
]

VOYAGES: list[dict[str, Any]] = [
    {
        "voyageId": KNOWN_VOYAGE,
        "shipImo": NORTHERN_STAR,
        "departurePort": "Oslo",
        "arrivalPort": "Rotterdam",
        "departureDate": "2026-04-01",
        "arrivalDate": "2026-04-05",
        "crewIds": ["CREW-001", "CREW-003"],
        "cargoIds": ["CARGO-001", "CARGO-003"],
        "status": "planned",
    }
]
VOYAGE_REQUIRED = ("shipImo", "departurePort", "arrivalPort", "departureDate", "arrivalDate")

LEGACY_VESSELS: list[dict[str, str]] = [
    {
        "vesselCode": "DY-0117",
        "vesselName": "Baltic Trader",
        "category": "general_cargo",
        "flagState": "PA",
        "operationalStatus": "active",
    },
    {
        "vesselCode": "DY-0342",
        "vesselName": "Sea Breeze",
        "category": "bulk_carrier",
        "flagState": "LR",
        "operationalStatus": "laid_up",
    },
    {
        "vesselCode": "DY-0519",
        "vesselName": "Old Faithful",
        "category": "tanker",
        "flagState": "MT",
        "operationalStatus": "scrapped",
    },
    {
        "vesselCode": "DY-0788",
        "vesselName": "Coastal Runner",
        "category": "ferry",
        "flagState": "GR",
        "operationalStatus": "active",
    },
]

Handler = Callable[[Request], Awaitable[Response]]


def _routes(
    table: list[tuple[str, str, Handler]], fallback: Handler, not_allowed: Handler
) -> list[BaseRoute]:
    """One route per path dispatching on method, then a catch-all: every request is
    answered by a (guarded, hence recorded) handler."""
    by_path: dict[str, dict[str, Handler]] = {}
    for method, path, handler in table:
        by_path.setdefault(path, {})[method] = handler

    def dispatch(methods: dict[str, Handler]) -> Handler:
        async def endpoint(request: Request) -> Response:
            return await methods.get(request.method, not_allowed)(request)

        return endpoint

    routes: list[BaseRoute] = [
        Route(p, dispatch(m), methods=ALL_METHODS) for p, m in by_path.items()
    ]
    routes.append(Route("/{rest:path}", fallback, methods=ALL_METHODS))
    return routes


def _json_error(status: int, error: str, message: str, **extra: Any) -> JSONResponse:
    headers = {"WWW-Authenticate": "Bearer"} if status == 401 else None
    return JSONResponse({"error": error, "message": message, **extra}, status, headers=headers)


class Registry:
    """The Maritime Registry API: JSON, ``Authorization: Bearer``, ``Registry-Version``.

    Knobs (read per request): ``tokens`` accepted, ``require_auth``, ``versions``
    accepted, ``require_version``. Tutorial step 2 sends neither credential; step 11's
    consumes file sends the literal ``REGISTRY_TOKEN``/``REGISTRY_VERSION`` (no braces):
    relax the knobs or add those values for such tests. Data is copied per instance.
    """

    def __init__(self, *, require_auth: bool = True, require_version: bool = True) -> None:
        self.tokens: set[str] = {REGISTRY_TOKEN}
        self.versions: set[str] = {REGISTRY_VERSION}
        self.require_auth = require_auth
        self.require_version = require_version
        self.ships = copy.deepcopy(SHIPS)
        self.crew = copy.deepcopy(CREW)
        self.cargo = copy.deepcopy(CARGO)
        self.voyages: dict[str, dict[str, Any]] = {v["voyageId"]: v for v in copy.deepcopy(VOYAGES)}
        self.requests: list[RecordedRequest] = []
        self._next_voyage = 43
        table: list[tuple[str, str, Handler]] = [
            ("GET", "/ships", self._list_ships),
            ("GET", "/ships/{imo}", self._get_ship),
            ("GET", "/crew", self._list_crew),
            ("GET", "/cargo", self._list_cargo),
            ("GET", "/voyages", self._list_voyages),
            ("POST", "/voyages", self._create_voyage),
            ("GET", "/voyages/{voyage_id}", self._get_voyage),
        ]
        guarded = [(m, p, self._guarded(h)) for m, p, h in table]
        handlers = (guarded, self._guarded(self._not_found), self._guarded(self._not_allowed))
        self.app = Starlette(
            routes=[Mount(REGISTRY_PREFIX, routes=_routes(*handlers)), *_routes(*handlers)]
        )

    def ship(self, imo: str) -> dict[str, Any] | None:
        return next((s for s in self.ships if s["imo_number"] == imo), None)

    def _guarded(self, handler: Handler) -> Handler:
        async def endpoint(request: Request) -> Response:
            self.requests.append(await record(request))
            if self.require_auth:
                scheme, _, token = request.headers.get("authorization", "").partition(" ")
                if scheme.lower() != "bearer" or token not in self.tokens:
                    return _json_error(401, "unauthorized", "Missing or invalid bearer token.")
            if self.require_version:
                version = request.headers.get("registry-version")
                if version not in self.versions:
                    return _json_error(
                        400,
                        "unsupported_version",
                        f"Registry-Version must be one of {sorted(self.versions)}.",
                    )
            return await handler(request)

        return endpoint

    async def _not_found(self, request: Request) -> Response:
        return _json_error(404, "not_found", f"No route for {request.method} {request.url.path}.")

    async def _not_allowed(self, request: Request) -> Response:
        return _json_error(405, "method_not_allowed", f"{request.method} is not allowed here.")

    async def _list_ships(self, request: Request) -> Response:
        status = request.query_params.get("status")
        ships = [s for s in self.ships if not status or s["operational_status"] == status]
        return JSONResponse([{k: s[k] for k in SHIP_SUMMARY_FIELDS} for s in ships])

    async def _get_ship(self, request: Request) -> Response:
        imo = request.path_params["imo"]
        ship = self.ship(imo)
        if ship is None:
            return _json_error(404, "not_found", f"No ship with IMO number {imo}.")
        return JSONResponse(ship)

    async def _list_crew(self, request: Request) -> Response:
        return JSONResponse(self.crew)

    async def _list_cargo(self, request: Request) -> Response:
        return JSONResponse(self.cargo)

    async def _list_voyages(self, request: Request) -> Response:
        return JSONResponse(list(self.voyages.values()))

    async def _get_voyage(self, request: Request) -> Response:
        voyage = self.voyages.get(request.path_params["voyage_id"])
        if voyage is None:
            return _json_error(404, "not_found", "No such voyage.")
        return JSONResponse(voyage)

    async def _create_voyage(self, request: Request) -> Response:
        payload = parse_json(await request.body())
        if not isinstance(payload, dict):
            return _json_error(400, "invalid_body", "The body must be a JSON object.")
        problems = [f"{k} is required" for k in VOYAGE_REQUIRED if not payload.get(k)]
        for key, required in (("crewIds", True), ("cargoIds", False)):
            value = payload.get(key)
            if value is None and not required:
                continue
            if not isinstance(value, list) or not all(isinstance(i, str) for i in value):
                problems.append(f"{key} must be an array of strings")
        if problems:
            return _json_error(400, "validation_error", "Invalid voyage.", details=problems)
        if self.ship(payload["shipImo"]) is None:
            return _json_error(422, "unknown_ship", f"No ship with IMO {payload['shipImo']}.")
        voyage_id = f"VOY-2026-{self._next_voyage:03d}"
        self._next_voyage += 1
        voyage = {k: payload[k] for k in VOYAGE_REQUIRED}
        voyage |= {
            "voyageId": voyage_id,
            "crewIds": payload["crewIds"],
            "cargoIds": payload.get("cargoIds") or [],
            "status": "planned",
        }
        self.voyages[voyage_id] = voyage
        return JSONResponse(voyage, status_code=201)


def vessels_xml(vessels: list[dict[str, str]]) -> str:
    """``<vessels><vessel><vesselCode>…</vessel>…</vessels>``, as the dockyard sends it."""
    items = "".join(
        "<vessel>"
        + "".join(f"<{k}>{escape(str(v))}</{k}>" for k, v in vessel.items())
        + "</vessel>"
        for vessel in vessels
    )
    return f'<?xml version="1.0" encoding="UTF-8"?>\n<vessels>{items}</vessels>\n'


def _xml(body: str, status: int = 200) -> Response:
    return Response(body, status_code=status, media_type="application/xml")


class Dockyard:
    """The Legacy Dockyard API: XML only, ``X-Dock-Key`` header.

    Knobs: ``api_keys`` accepted, ``require_auth``.
    """

    def __init__(self, *, require_auth: bool = True) -> None:
        self.api_keys: set[str] = {DOCKYARD_API_KEY}
        self.require_auth = require_auth
        self.vessels = copy.deepcopy(LEGACY_VESSELS)
        self.requests: list[RecordedRequest] = []
        table: list[tuple[str, str, Handler]] = [("GET", "/vessels", self._guarded(self._list))]
        handlers = (table, self._guarded(self._not_found), self._guarded(self._not_allowed))
        self.app = Starlette(
            routes=[Mount(DOCKYARD_PREFIX, routes=_routes(*handlers)), *_routes(*handlers)]
        )

    def _guarded(self, handler: Handler) -> Handler:
        async def endpoint(request: Request) -> Response:
            self.requests.append(await record(request))
            if self.require_auth and request.headers.get("x-dock-key") not in self.api_keys:
                return _xml(_xml_error("UNAUTHORIZED", "Missing or invalid X-Dock-Key."), 401)
            return await handler(request)

        return endpoint

    async def _not_found(self, request: Request) -> Response:
        return _xml(_xml_error("NOT_FOUND", f"No route for {request.url.path}."), 404)

    async def _not_allowed(self, request: Request) -> Response:
        return _xml(_xml_error("METHOD_NOT_ALLOWED", f"{request.method} is not allowed."), 405)

    async def _list(self, request: Request) -> Response:
        status = request.query_params.get("status")
        vessels = [v for v in self.vessels if not status or v["operationalStatus"] == status]
        return _xml(vessels_xml(vessels))


def _xml_error(code: str, message: str) -> str:
    return f"<error><code>{code}</code><message>{escape(message)}</message></error>"


@dataclass(frozen=True)
class LiveShipyard:
    """Both upstreams running: URLs, states, and the base-URI overrides per namespace."""

    registry_url: str
    dockyard_url: str
    registry: Registry
    dockyard: Dockyard

    def base_uri_overrides(self) -> dict[str, str]:
        """For ``UpstreamSettings.base_uri_overrides`` / ``--base-uri`` (tutorial namespaces)."""
        return {"registry": self.registry_url, "legacy": self.dockyard_url}
