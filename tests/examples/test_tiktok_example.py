"""The corrected TikTok capability in examples/ works the way the real API wants it.

Real engine, real uvicorn, the official MCP client, and the fake TikTok left strict (form
bodies only, ``/refresh/`` answers 404): the app credentials come from binds and reach the
upstream in the form body, while callers neither send nor see them.
"""

from __future__ import annotations

import contextlib
import json
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import parse_qs

import httpx
import pytest
from mcp import Client

from fakes.tiktok import (
    DEFAULT_CLIENT_KEY,
    DEFAULT_CLIENT_SECRET,
    DEFAULT_REDIRECT_URI,
    REVOKE_PATH,
    TOKEN_PATH,
    FakeTikTok,
)
from naftiko.adapters.exposes import compile_capability
from naftiko.adapters.mcp.plan import McpAdapterPlan
from naftiko.adapters.mcp.server import build_mcp_app
from naftiko.adapters.rest.app import build_rest_app
from naftiko.adapters.rest.plan import RestAdapterPlan
from naftiko.engine.invoke import Engine
from naftiko.spec.loader import load_capability
from naftiko.upstream.settings import UpstreamSettings
from support.servers import LiveFake, serve_asgi

EXAMPLE = Path(__file__).resolve().parents[2] / "examples" / "tiktok-login-kit-oauth"
CAPABILITY = EXAMPLE / "tiktok-login-kit-oauth.yaml"
ENV = {"TIKTOK_CLIENT_KEY": DEFAULT_CLIENT_KEY, "TIKTOK_CLIENT_SECRET": DEFAULT_CLIENT_SECRET}


@dataclass
class Served:
    rest: str
    mcp: str
    fake: FakeTikTok


@contextlib.asynccontextmanager
async def serve_example(live: LiveFake[FakeTikTok]) -> AsyncIterator[Served]:
    settings = UpstreamSettings(base_uri_overrides={"tiktok-oauth": live.url})
    loaded = load_capability(CAPABILITY, env=ENV)
    compiled = compile_capability(loaded, settings)
    rest_plan = next(a for a in compiled.adapters if isinstance(a, RestAdapterPlan))
    mcp_plan = next(a for a in compiled.adapters if isinstance(a, McpAdapterPlan))
    async with Engine(compiled, settings) as engine:
        rest_app = build_rest_app(engine, rest_plan, bindings=loaded.bindings)
        mcp_app = build_mcp_app(engine, mcp_plan, bindings=loaded.bindings)
        async with serve_asgi(rest_app) as rest, serve_asgi(mcp_app) as mcp:
            yield Served(rest, f"{mcp}/mcp", live.state)


@pytest.fixture
def strict_tiktok(fake_tiktok: LiveFake[FakeTikTok]) -> Iterator[LiveFake[FakeTikTok]]:
    assert fake_tiktok.state.accept_json is False  # the real host only takes forms
    yield fake_tiktok


def sent_form(fake: FakeTikTok, path: str) -> dict[str, list[str]]:
    recorded = fake.requests_to(path)[-1]
    assert recorded.headers["content-type"] == "application/x-www-form-urlencoded"
    return parse_qs(recorded.body.decode())


async def test_rest_exchange_refresh_revoke_against_strict_fake(
    strict_tiktok: LiveFake[FakeTikTok],
) -> None:
    async with serve_example(strict_tiktok) as served, httpx.AsyncClient() as http:
        code = served.fake.issue_code()
        exchanged = await http.post(
            f"{served.rest}/v1/oauth/token",
            json={"code": code, "redirect_uri": DEFAULT_REDIRECT_URI},
        )
        assert exchanged.status_code == 200, exchanged.text
        tokens = exchanged.json()
        assert tokens["access_token"].startswith("act.")
        assert tokens["token_type"] == "Bearer"
        assert isinstance(tokens["expires_in"], int)
        form = sent_form(served.fake, TOKEN_PATH)
        assert form["client_key"] == [DEFAULT_CLIENT_KEY]
        assert form["client_secret"] == [DEFAULT_CLIENT_SECRET]
        assert form["grant_type"] == ["authorization_code"]
        assert "code_verifier" not in form  # optional and not given: omitted, not ""
        assert DEFAULT_CLIENT_SECRET not in exchanged.text

        refreshed = await http.post(
            f"{served.rest}/v1/oauth/refresh", json={"refresh_token": tokens["refresh_token"]}
        )
        assert refreshed.status_code == 200, refreshed.text
        assert sent_form(served.fake, TOKEN_PATH)["grant_type"] == ["refresh_token"]
        assert not served.fake.refresh_token_valid(tokens["refresh_token"])  # rotated

        revoked = await http.post(
            f"{served.rest}/v1/oauth/revoke", json={"token": refreshed.json()["access_token"]}
        )
        assert revoked.status_code == 200, revoked.text
        assert sent_form(served.fake, REVOKE_PATH)["token"] == [refreshed.json()["access_token"]]


async def test_rest_error_keeps_tiktok_status_and_body(strict_tiktok: LiveFake[FakeTikTok]) -> None:
    async with serve_example(strict_tiktok) as served, httpx.AsyncClient() as http:
        answer = await http.post(
            f"{served.rest}/v1/oauth/token",
            json={"code": "not-a-code", "redirect_uri": DEFAULT_REDIRECT_URI},
        )
        assert answer.status_code == 400
        body = answer.json()
        assert body["error"] == "invalid_grant"
        assert body["log_id"] == served.fake.last_log_id
        assert body["error_description"]


async def test_mcp_tools_take_only_what_the_agent_knows(
    strict_tiktok: LiveFake[FakeTikTok],
) -> None:
    async with serve_example(strict_tiktok) as served, Client(served.mcp) as client:
        tools = {t.name: t for t in (await client.list_tools()).tools}
        exchange = tools["exchange-authorization-code"]
        assert set(exchange.input_schema["properties"]) == {"code", "redirect_uri", "code_verifier"}
        assert sorted(exchange.input_schema["required"]) == ["code", "redirect_uri"]
        listing = json.dumps([t.model_dump(mode="json") for t in tools.values()])
        assert "client_secret" not in listing and DEFAULT_CLIENT_SECRET not in listing

        verifier = "v" * 43
        code = served.fake.issue_code(code_verifier=verifier)
        result = await client.call_tool(
            "exchange-authorization-code",
            {"code": code, "redirect_uri": DEFAULT_REDIRECT_URI, "code_verifier": verifier},
        )
        assert not result.is_error, result.content
        assert result.structured_content["access_token"].startswith("act.")
        assert sent_form(served.fake, TOKEN_PATH)["code_verifier"] == [verifier]

        failed = await client.call_tool("refresh-access-token", {"refresh_token": "rft.unknown"})
        assert failed.is_error
        text = failed.content[0].text
        assert "error_description" in text and served.fake.last_log_id in text


async def test_mcp_error_reported_with_http_200_stays_visible(
    strict_tiktok: LiveFake[FakeTikTok],
) -> None:
    strict_tiktok.state.errors_as_200 = True
    async with serve_example(strict_tiktok) as served, Client(served.mcp) as client:
        result = await client.call_tool("refresh-access-token", {"refresh_token": "rft.unknown"})
        content = result.structured_content
        assert content["error"] == "invalid_grant"
        assert content["log_id"] == served.fake.last_log_id
        assert content["access_token"] is None
