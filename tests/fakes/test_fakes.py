"""The fakes and server helpers behave as the end-to-end tests rely on them to."""

from __future__ import annotations

import json
import re
import xml.etree.ElementTree as ET
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import httpx
import pytest
from starlette.applications import Starlette
from starlette.responses import PlainTextResponse
from starlette.routing import Route

from fakes.faults import BIG_DEFAULT, FaultState, serve_faults
from fakes.shipyard import (
    DOCKYARD_API_KEY,
    DOCKYARD_PREFIX,
    KNOWN_VOYAGE,
    NORTHERN_STAR,
    REGISTRY_PREFIX,
    REGISTRY_TOKEN,
    REGISTRY_VERSION,
    Dockyard,
    LiveShipyard,
    Registry,
)
from fakes.tiktok import (
    DEFAULT_CLIENT_KEY,
    DEFAULT_CLIENT_SECRET,
    DEFAULT_REDIRECT_URI,
    MALFORMED,
    MISSING,
    REFRESH_PATH,
    REVOKE_PATH,
    TOKEN_PATH,
    FakeTikTok,
)
from naftiko.spec.loader import load_capability
from naftiko.spec.models import RequestBody
from support.servers import (
    LiveFake,
    ServerThread,
    closed_port,
    free_port,
    serve_asgi,
    wait_for_http,
)

CLIENT = {"client_key": DEFAULT_CLIENT_KEY, "client_secret": DEFAULT_CLIENT_SECRET}
TOKEN_FIELDS = {
    "access_token",
    "expires_in",
    "open_id",
    "refresh_expires_in",
    "refresh_token",
    "scope",
    "token_type",
}
REGISTRY_HEADERS = {
    "Authorization": f"Bearer {REGISTRY_TOKEN}",
    "Registry-Version": REGISTRY_VERSION,
}


# --------------------------------------------------------------------------- servers


async def test_serve_asgi_runs_uvicorn_with_lifespan() -> None:
    events: list[str] = []

    @asynccontextmanager
    async def lifespan(app: Starlette) -> AsyncIterator[None]:
        events.append("startup")
        yield
        events.append("shutdown")

    async def hello(request: Any) -> PlainTextResponse:
        return PlainTextResponse("hi")

    app = Starlette(routes=[Route("/", hello)], lifespan=lifespan)
    async with serve_asgi(app) as url:
        assert url.startswith("http://127.0.0.1:")
        async with httpx.AsyncClient() as client:
            assert (await client.get(url)).text == "hi"
        assert events == ["startup"]
    assert events == ["startup", "shutdown"]
    with pytest.raises(httpx.ConnectError):
        httpx.get(url)


async def test_serve_asgi_reports_a_failed_startup() -> None:
    @asynccontextmanager
    async def lifespan(app: Starlette) -> AsyncIterator[None]:
        raise RuntimeError("boom")
        yield

    with pytest.raises(RuntimeError, match="failed to start"):
        async with serve_asgi(Starlette(lifespan=lifespan)):
            pass


def test_server_thread_serves_sync_clients_and_stops() -> None:
    fake = FakeTikTok()
    with ServerThread(fake.app) as server:
        response = httpx.post(server.url + TOKEN_PATH, data={"grant_type": "client_credentials"})
        assert response.status_code == 400
    with pytest.raises(httpx.ConnectError):
        httpx.get(server.url)


def test_ports_and_wait_for_http() -> None:
    port = closed_port()
    with pytest.raises(httpx.ConnectError):
        httpx.get(f"http://127.0.0.1:{port}/")
    with pytest.raises(TimeoutError):
        wait_for_http(f"http://127.0.0.1:{port}/", timeout=0.2)
    assert 0 < free_port() < 65536
    with ServerThread(FakeTikTok().app) as server:
        assert wait_for_http(server.url + "/nothing").status_code == 404


# --------------------------------------------------------------------------- tiktok


@pytest.fixture
async def tiktok() -> AsyncIterator[tuple[FakeTikTok, httpx.AsyncClient]]:
    fake = FakeTikTok()
    async with serve_asgi(fake.app) as url, httpx.AsyncClient(base_url=url) as client:
        yield fake, client


async def _exchange(client: httpx.AsyncClient, code: str, **extra: str) -> httpx.Response:
    data = {**CLIENT, "grant_type": "authorization_code", "code": code}
    data |= {"redirect_uri": DEFAULT_REDIRECT_URI} | extra
    return await client.post(TOKEN_PATH, data=data)


async def test_code_exchange_issues_real_looking_tokens_once(tiktok: Any) -> None:
    fake, client = tiktok
    code = fake.issue_code()
    response = await _exchange(client, code)
    assert response.status_code == 200
    body = response.json()
    assert set(body) == TOKEN_FIELDS
    assert body["access_token"].startswith("act.")
    assert body["refresh_token"].startswith("rft.")
    assert (body["expires_in"], body["refresh_expires_in"]) == (86400, 31536000)
    assert body["token_type"] == "Bearer"
    assert fake.access_token_valid(body["access_token"])
    sent = fake.requests[-1]
    assert sent.content_type == "application/x-www-form-urlencoded"
    assert sent.form is not None and sent.form["code"] == code  # '*' and '!' decoded once
    assert b"grant_type=authorization_code" in sent.body

    again = await _exchange(client, code)
    assert again.status_code == 400
    assert again.json()["error"] == "invalid_grant"
    assert again.json()["log_id"] == again.headers["x-tt-logid"]


async def test_code_exchange_checks_redirect_uri_and_pkce(tiktok: Any) -> None:
    fake, client = tiktok
    code = fake.issue_code(code_verifier="verifier-123")
    wrong_uri = await _exchange(client, code, redirect_uri="https://evil.example/cb")
    assert wrong_uri.json()["error"] == "invalid_grant"
    no_verifier = await _exchange(client, code)
    assert no_verifier.json()["error"] == "invalid_grant"
    ok = await _exchange(client, code, code_verifier="verifier-123")
    assert ok.status_code == 200


async def test_client_and_request_errors(tiktok: Any) -> None:
    _, client = tiktok
    bad_secret = await client.post(
        TOKEN_PATH,
        data={"client_key": DEFAULT_CLIENT_KEY, "client_secret": "nope", "grant_type": "x"},
    )
    assert bad_secret.status_code == 401
    assert set(bad_secret.json()) == {"error", "error_description", "log_id"}
    assert bad_secret.json()["error"] == "invalid_client"

    unsupported = await client.post(TOKEN_PATH, data={**CLIENT, "grant_type": "password"})
    assert (unsupported.status_code, unsupported.json()["error"]) == (400, "unsupported_grant_type")

    missing = await client.post(TOKEN_PATH, data=CLIENT)
    assert missing.json() | {"log_id": ""} == {
        "error": "invalid_request",
        "error_description": MISSING,
        "log_id": "",
    }

    no_slash = await client.post(TOKEN_PATH.rstrip("/"), data=CLIENT)
    assert no_slash.status_code == 404


async def test_json_body_is_malformed_unless_accepted(tiktok: Any) -> None:
    fake, client = tiktok
    payload = {**CLIENT, "grant_type": "client_credentials"}
    rejected = await client.post(TOKEN_PATH, json=payload)
    assert rejected.status_code == 400
    assert rejected.json()["error_description"] == MALFORMED
    assert fake.requests[-1].json == payload

    fake.accept_json = True
    accepted = await client.post(TOKEN_PATH, json=payload)
    assert accepted.status_code == 200
    assert accepted.json()["access_token"].startswith("clt.")
    assert accepted.json()["expires_in"] == 7200


async def test_charset_rejection_is_opt_in(tiktok: Any) -> None:
    fake, client = tiktok
    content = "grant_type=client_credentials&client_key={client_key}&client_secret={client_secret}"
    headers = {"Content-Type": "application/x-www-form-urlencoded;charset=UTF-8"}
    body = content.format(**CLIENT)
    assert (await client.post(TOKEN_PATH, content=body, headers=headers)).status_code == 200
    fake.reject_charset = True
    refused = await client.post(TOKEN_PATH, content=body, headers=headers)
    assert refused.json()["error_description"] == MALFORMED


async def test_refresh_rotates_and_expires(tiktok: Any) -> None:
    fake, client = tiktok
    first = fake.issue_tokens()
    data = {**CLIENT, "grant_type": "refresh_token", "refresh_token": first["refresh_token"]}
    refreshed = await client.post(TOKEN_PATH, data=data)
    assert refreshed.status_code == 200
    second = refreshed.json()
    assert set(second) == TOKEN_FIELDS
    assert second["refresh_token"] != first["refresh_token"]
    assert second["access_token"] != first["access_token"]
    assert second["open_id"] == first["open_id"]

    reused = await client.post(TOKEN_PATH, data=data)
    assert (reused.status_code, reused.json()["error"]) == (400, "invalid_grant")

    fake.advance(fake.refresh_lifetime_s + 1)
    expired = await client.post(TOKEN_PATH, data=data | {"refresh_token": second["refresh_token"]})
    assert expired.json()["error"] == "invalid_grant"
    assert not fake.access_token_valid(second["access_token"])


async def test_refresh_path_is_404_unless_aliased(tiktok: Any) -> None:
    fake, client = tiktok
    data = {**CLIENT, "grant_type": "refresh_token"}
    data["refresh_token"] = fake.issue_tokens()["refresh_token"]
    assert (await client.post(REFRESH_PATH, data=data)).status_code == 404
    assert fake.requests[-1].path == REFRESH_PATH
    fake.refresh_path_alias = True
    assert (await client.post(REFRESH_PATH, data=data)).status_code == 200


async def test_errors_as_200_and_forced_errors(tiktok: Any) -> None:
    fake, client = tiktok
    fake.errors_as_200 = True
    response = await client.post(TOKEN_PATH, data={**CLIENT, "grant_type": "refresh_token"})
    assert response.status_code == 200
    assert response.json()["error"] == "invalid_request"
    fake.errors_as_200 = False
    fake.fail_with = ("temporarily_unavailable", "Try again later.")
    response = await client.post(TOKEN_PATH, data={**CLIENT, "grant_type": "client_credentials"})
    assert (response.status_code, response.json()["error"]) == (503, "temporarily_unavailable")


async def test_revoke_ends_the_grant(tiktok: Any) -> None:
    fake, client = tiktok
    tokens = fake.issue_tokens()
    revoked = await client.post(REVOKE_PATH, data={**CLIENT, "token": tokens["access_token"]})
    assert (revoked.status_code, revoked.json()) == (200, {})
    assert not fake.access_token_valid(tokens["access_token"])
    assert not fake.refresh_token_valid(tokens["refresh_token"])
    assert fake.revoked_tokens == [tokens["access_token"]]
    missing = await client.post(REVOKE_PATH, data=CLIENT)
    assert missing.json()["error"] == "invalid_request"


async def test_delay_makes_clients_time_out(tiktok: Any) -> None:
    fake, client = tiktok
    fake.delay_s = 30
    with pytest.raises(httpx.ReadTimeout):
        await client.post(TOKEN_PATH, data=CLIENT, timeout=0.2)


def test_fake_tiktok_fixture(fake_tiktok: LiveFake[FakeTikTok]) -> None:
    code = fake_tiktok.state.issue_code()
    data = {**CLIENT, "grant_type": "authorization_code", "code": code}
    data["redirect_uri"] = DEFAULT_REDIRECT_URI
    assert httpx.post(fake_tiktok.url + TOKEN_PATH, data=data).status_code == 200


# --------------------------------------------------------------------------- shipyard


async def test_registry_serves_the_tutorial_data() -> None:
    registry = Registry()
    async with (
        serve_asgi(registry.app) as url,
        httpx.AsyncClient(base_url=url, headers=REGISTRY_HEADERS) as client,
    ):
        ship = (await client.get(f"/ships/{NORTHERN_STAR}")).json()
        assert ship["vessel_name"] == "Northern Star"
        assert ship["year_built"] == 2015
        assert isinstance(ship["dimensions"]["length_overall"], float)
        assert ship["assignedCrew"] == ["CREW-001", "CREW-003"]

        active = (await client.get("/ships", params={"status": "active"})).json()
        assert {s["operational_status"] for s in active} == {"active"}
        assert NORTHERN_STAR in {s["imo_number"] for s in active}

        crew = {c["crewId"]: c for c in (await client.get("/crew")).json()}
        assert {"fullName", "role"} <= set(crew["CREW-001"])
        cargo = (await client.get("/cargo")).json()
        assert {"cargoId", "type", "description", "weight", "hazardous"} <= set(cargo[0])
        voyage = (await client.get(f"{REGISTRY_PREFIX}/voyages/{KNOWN_VOYAGE}")).json()
        assert voyage["shipImo"] == NORTHERN_STAR

        assert (await client.get("/ships/IMO-0000000")).status_code == 404
        assert (await client.delete("/ships")).status_code == 405
        assert registry.requests[0].headers["registry-version"] == REGISTRY_VERSION


async def test_registry_checks_token_and_version() -> None:
    registry = Registry()
    async with serve_asgi(registry.app) as url, httpx.AsyncClient(base_url=url) as client:
        assert (await client.get("/ships")).status_code == 401
        bearer_only = {"Authorization": f"Bearer {REGISTRY_TOKEN}"}
        assert (await client.get("/ships", headers=bearer_only)).status_code == 400
        registry.require_auth = registry.require_version = False
        assert (await client.get("/ships")).status_code == 200


async def test_registry_creates_voyages_from_json() -> None:
    registry = Registry()
    async with (
        serve_asgi(registry.app) as url,
        httpx.AsyncClient(base_url=url, headers=REGISTRY_HEADERS) as client,
    ):
        payload = {
            "shipImo": NORTHERN_STAR,
            "departurePort": "Bergen",
            "arrivalPort": "Hamburg",
            "departureDate": "2026-05-01",
            "arrivalDate": "2026-05-03",
            "crewIds": ["CREW-001", "CREW-003"],
            "cargoIds": ["CARGO-002"],
        }
        created = await client.post("/voyages", json=payload)
        assert created.status_code == 201
        assert created.json() | {"voyageId": "x"} == payload | {
            "voyageId": "x",
            "status": "planned",
        }
        voyage_id = created.json()["voyageId"]
        assert (await client.get(f"/voyages/{voyage_id}")).json()["crewIds"] == payload["crewIds"]

        # What a template that does not serialise arrays would send.
        broken = '{"shipImo": "IMO-9321483", "crewIds": [CREW-001, CREW-003]}'
        bad = await client.post(
            "/voyages", content=broken, headers={"Content-Type": "application/json"}
        )
        assert (bad.status_code, bad.json()["error"]) == (400, "invalid_body")
        incomplete = await client.post("/voyages", json={"shipImo": NORTHERN_STAR})
        assert incomplete.json()["error"] == "validation_error"


async def test_dockyard_serves_xml_behind_an_api_key() -> None:
    dockyard = Dockyard()
    async with serve_asgi(dockyard.app) as url, httpx.AsyncClient(base_url=url) as client:
        refused = await client.get("/vessels")
        assert refused.status_code == 401
        assert ET.fromstring(refused.text).findtext("code") == "UNAUTHORIZED"

        headers = {"X-Dock-Key": DOCKYARD_API_KEY}
        response = await client.get(f"{DOCKYARD_PREFIX}/vessels", headers=headers)
        assert response.headers["content-type"].startswith("application/xml")
        root = ET.fromstring(response.content)
        assert root.tag == "vessels"
        assert {v.findtext("vesselName") for v in root} >= {"Baltic Trader", "Sea Breeze"}
        laid_up = await client.get("/vessels", params={"status": "laid_up"}, headers=headers)
        codes = [v.findtext("vesselCode") for v in ET.fromstring(laid_up.content)]
        assert codes == ["DY-0342"]


def test_shipyard_fixture(shipyard: LiveShipyard) -> None:
    ship = httpx.get(f"{shipyard.registry_url}/ships/{NORTHERN_STAR}", headers=REGISTRY_HEADERS)
    assert ship.json()["flag_code"] == "NO"
    assert shipyard.base_uri_overrides() == {
        "registry": shipyard.registry_url,
        "legacy": shipyard.dockyard_url,
    }


# --------------------------------------------------------------------------- faults


@pytest.fixture
async def faults() -> AsyncIterator[tuple[FaultState, httpx.AsyncClient]]:
    state = FaultState()
    async with serve_faults(state) as url, httpx.AsyncClient(base_url=url) as client:
        yield state, client


async def test_fault_echo_status_and_no_content(faults: Any) -> None:
    state, client = faults
    echo = await client.post("/echo?a=1", json={"x": 1}, headers={"X-Trace": "abc"})
    assert echo.json()["headers"]["x-trace"] == "abc"
    assert json.loads(echo.json()["body"]) == {"x": 1}
    assert state.requests[-1].json == {"x": 1}
    failed = await client.get("/status/503")
    assert (failed.status_code, failed.json()["status"]) == (503, 503)
    empty = await client.get("/no-content")
    assert (empty.status_code, empty.content) == (204, b"")


async def test_fault_resets_and_truncation(faults: Any) -> None:
    _, client = faults
    with pytest.raises((httpx.RemoteProtocolError, httpx.ReadError)):
        await client.get("/reset")
    with pytest.raises((httpx.RemoteProtocolError, httpx.ReadError)):
        await client.get("/reset-before-response")
    with pytest.raises(httpx.RemoteProtocolError):
        await client.get("/close-before-response")
    with pytest.raises(httpx.RemoteProtocolError):
        await client.get("/truncated-json")


async def test_fault_slow_modes(faults: Any) -> None:
    _, client = faults
    with pytest.raises(httpx.ReadTimeout):
        await client.get("/slow-headers", params={"delay": 30}, timeout=0.2)
    dripped = await client.get("/slow-body", params={"chunks": 3, "interval": 0})
    assert dripped.json() == [0, 1, 2]


async def test_fault_unparseable_bodies(faults: Any) -> None:
    _, client = faults
    bad_json = await client.get("/invalid-json")
    assert bad_json.status_code == 200
    with pytest.raises(json.JSONDecodeError):
        bad_json.json()
    bad_xml = await client.get("/invalid-xml")
    with pytest.raises(ET.ParseError):
        ET.fromstring(bad_xml.content)


@pytest.mark.parametrize("chunked", ["0", "1"])
async def test_fault_big_response_is_streamed(faults: Any, chunked: str) -> None:
    _, client = faults
    total, largest, head, tail = 0, 0, b"", b""
    async with client.stream("GET", "/big", params={"chunked": chunked}) as response:
        assert ("content-length" in response.headers) == (chunked == "0")
        async for chunk in response.aiter_raw():
            head = head or chunk[:9]
            tail = (tail + chunk)[-2:]
            total += len(chunk)
            largest = max(largest, len(chunk))
    assert total == BIG_DEFAULT
    assert (head, tail) == (b'{"data":"', b'"}')
    assert largest < BIG_DEFAULT // 10


async def test_fault_redirects_to_another_host(faults: Any) -> None:
    state, client = faults
    response = await client.get("/redirect")
    assert response.status_code == 302
    location = httpx.URL(response.headers["location"])
    assert location.host == "localhost"
    assert location.port == httpx.URL(state.url).port


def test_fault_upstream_fixture(fault_upstream: LiveFake[FaultState]) -> None:
    assert httpx.get(fault_upstream.url + "/echo").json()["path"] == "/echo"
    assert fault_upstream.state.requests[-1].method == "GET"


# --------------------------------------------------------------------------- example


_TEMPLATE = re.compile(r"\{\{\s*([\w.-]+)\s*\}\}")


def test_example_capability_speaks_the_fakes_protocol(
    tiktok_example_path: Path, fake_tiktok: LiveFake[FakeTikTok]
) -> None:
    """The example's form bodies, rendered as the engine renders them (binds first, a
    field whose template does not resolve is omitted), are what the fake TikTok accepts."""
    env = {"TIKTOK_CLIENT_KEY": DEFAULT_CLIENT_KEY, "TIKTOK_CLIENT_SECRET": DEFAULT_CLIENT_SECRET}
    loaded = load_capability(tiktok_example_path, env=env, strict=True)
    binds = {name: loaded.bindings.get(name) for name in loaded.bindings}
    operations = {
        op.name: (resource.path, op)
        for consumed in loaded.document.consumed()
        for resource in consumed.resources
        for op in resource.operations
    }

    def send(name: str, **inputs: str) -> httpx.Response:
        path, op = operations[name]
        assert isinstance(op.body, RequestBody) and op.body.type == "formUrlEncoded"
        scope = {**inputs, **binds}
        form = {
            key: _TEMPLATE.sub(lambda m: str(scope[m[1]]), raw)
            for key, raw in op.body.data.items()
            if all(ref in scope for ref in _TEMPLATE.findall(raw))
        }
        return httpx.post(fake_tiktok.url + path, data=form)

    state = fake_tiktok.state
    plain = send("exchange-code", code=state.issue_code(), redirect_uri=DEFAULT_REDIRECT_URI)
    assert plain.status_code == 200
    assert "code_verifier" not in (state.requests[-1].form or {})
    pkce_code = state.issue_code(code_verifier="v" * 43)
    pkce = send(
        "exchange-code", code=pkce_code, redirect_uri=DEFAULT_REDIRECT_URI, code_verifier="v" * 43
    )
    assert pkce.status_code == 200
    refreshed = send("refresh-token", refresh_token=pkce.json()["refresh_token"])
    assert refreshed.status_code == 200
    assert state.requests[-1].path == TOKEN_PATH
    revoked = send("revoke-token", token=refreshed.json()["access_token"])
    assert (revoked.status_code, revoked.json()) == (200, {})
    assert not state.access_token_valid(refreshed.json()["access_token"])

    # What callers supply never includes the app's credentials.
    for exposed in loaded.document.capability.exposes:  # type: ignore[union-attr]
        units = getattr(exposed, "tools", ()) or [
            op for resource in getattr(exposed, "resources", ()) for op in resource.operations
        ]
        for unit in units:
            names = {p.name for p in unit.input_parameters}
            assert names and not names & {"client_key", "client_secret"}, unit.name
