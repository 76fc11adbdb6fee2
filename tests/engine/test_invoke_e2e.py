"""The published TikTok capability through ``Engine.invoke`` against the fake over TCP."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import pytest

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
from naftiko.engine.invoke import Engine
from naftiko.engine.types import Inputs
from naftiko.spec.loader import load_capability
from naftiko.upstream.settings import UpstreamSettings
from support.servers import LiveFake

NS = "tiktok-login-kit-oauth"
MCP = "tiktok-login-kit-oauth-mcp"
REST = "tiktok-login-kit-oauth-rest"
FORM = "application/x-www-form-urlencoded"


@pytest.fixture
async def engine(
    tiktok_capability_path: Path, fake_tiktok: LiveFake[FakeTikTok]
) -> AsyncIterator[Engine]:
    settings = UpstreamSettings(base_uri_overrides={NS: fake_tiktok.url}, read_timeout_s=10)
    compiled = compile_capability(load_capability(tiktok_capability_path, env={}), settings)
    async with Engine(compiled, settings) as running:
        yield running


def _credentials() -> dict[str, str]:
    return {"client_key": DEFAULT_CLIENT_KEY, "client_secret": DEFAULT_CLIENT_SECRET}


async def test_exchange_through_mcp_tool_sends_the_json_body(
    engine: Engine, fake_tiktok: LiveFake[FakeTikTok]
) -> None:
    fake_tiktok.state.accept_json = True  # the published capability sends JSON
    code = fake_tiktok.state.issue_code()
    body = {
        **_credentials(),
        "code": code,
        "grant_type": "authorization_code",
        "redirect_uri": DEFAULT_REDIRECT_URI,
    }
    result = await engine.invoke(
        engine.units[f"{MCP}.exchange-authorization-code-token"], Inputs(values={"body": body})
    )
    assert not result.is_error, result.body
    assert result.status == 200
    assert result.body["access_token"].startswith("act.")
    assert result.body["token_type"] == "Bearer"
    assert result.headers["x-tt-logid"] == fake_tiktok.state.last_log_id
    [sent] = fake_tiktok.state.requests_to(TOKEN_PATH)
    assert sent.method == "POST"
    assert sent.json == body
    assert sent.headers["user-agent"].startswith("naftiko/")


async def test_exchange_through_rest_keeps_the_callers_form(
    engine: Engine, fake_tiktok: LiveFake[FakeTikTok]
) -> None:
    code = fake_tiktok.state.issue_code()
    form = {
        **_credentials(),
        "code": code,
        "grant_type": "authorization_code",
        "redirect_uri": DEFAULT_REDIRECT_URI,
    }
    result = await engine.invoke(
        engine.units[f"{REST}.exchangetoken"], Inputs(body=form, media_type=FORM)
    )
    assert result.status == 200, result.body
    [sent] = fake_tiktok.state.requests_to(TOKEN_PATH)
    assert sent.content_type == FORM
    assert sent.form == form


async def test_refresh_reaches_the_published_refresh_path(
    engine: Engine, fake_tiktok: LiveFake[FakeTikTok]
) -> None:
    state = fake_tiktok.state
    state.accept_json = True
    state.refresh_path_alias = True
    tokens = state.issue_tokens()
    body = {
        **_credentials(),
        "grant_type": "refresh_token",
        "refresh_token": tokens["refresh_token"],
    }
    result = await engine.invoke(
        engine.units[f"{MCP}.refresh-access-token"], Inputs(values={"body": body})
    )
    assert result.status == 200, result.body
    assert result.body["refresh_token"] != tokens["refresh_token"]  # rotated
    [sent] = state.requests_to(REFRESH_PATH)
    assert (sent.method, sent.json) == ("POST", body)


async def test_refresh_path_unknown_to_the_real_host_is_an_upstream_404(
    engine: Engine, fake_tiktok: LiveFake[FakeTikTok]
) -> None:
    result = await engine.invoke(
        engine.units[f"{MCP}.refresh-access-token"], Inputs(values={"body": {"x": 1}})
    )
    assert result.is_error
    assert (result.status, result.upstream_status) == (404, 404)
    assert result.problem is None
    assert result.body == b"Not Found"
    assert result.media_type.startswith("text/plain")


async def test_revoke_sends_the_token(engine: Engine, fake_tiktok: LiveFake[FakeTikTok]) -> None:
    state = fake_tiktok.state
    state.accept_json = True
    tokens = state.issue_tokens()
    body = {**_credentials(), "token": tokens["access_token"]}
    result = await engine.invoke(
        engine.units[f"{MCP}.revoke-access-token"], Inputs(values={"body": body})
    )
    assert (result.status, result.body, result.is_error) == (200, {}, False)
    assert state.revoked_tokens == [tokens["access_token"]]
    assert not state.access_token_valid(tokens["access_token"])
    [sent] = state.requests_to(REVOKE_PATH)
    assert sent.method == "POST"


@pytest.mark.parametrize("as_200", [False, True])
async def test_tiktok_error_body_survives_with_its_status(
    engine: Engine, fake_tiktok: LiveFake[FakeTikTok], as_200: bool
) -> None:
    state = fake_tiktok.state
    state.accept_json = True
    state.errors_as_200 = as_200
    body = {"client_key": DEFAULT_CLIENT_KEY, "client_secret": "wrong", "token": "act.x"}
    result = await engine.invoke(
        engine.units[f"{MCP}.revoke-access-token"], Inputs(values={"body": body})
    )
    assert result.body == {
        "error": "invalid_client",
        "error_description": "Client key or client secret is invalid.",
        "log_id": state.last_log_id,
    }
    if as_200:
        # A 200 with an ``error`` object is a success at this layer (adapters may judge).
        assert (result.status, result.is_error) == (200, False)
    else:
        assert (result.status, result.upstream_status, result.is_error) == (401, 401, True)


async def test_malformed_request_error_is_kept(
    engine: Engine, fake_tiktok: LiveFake[FakeTikTok]
) -> None:
    # The real host refuses JSON bodies: the published capability gets invalid_request.
    result = await engine.invoke(
        engine.units[f"{MCP}.exchange-authorization-code-token"],
        Inputs(values={"body": {"code": "x"}}),
    )
    assert (result.status, result.is_error) == (400, True)
    assert result.body["error"] == "invalid_request"
    assert result.body["error_description"] == "The request parameters are malformed."
    assert result.body["log_id"] == fake_tiktok.state.last_log_id
