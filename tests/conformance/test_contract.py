"""The request contract as schemathesis and the 2025-11-25 MCP spec read it.

Each case is one mismatch found by schemathesis or an official client: what the served
OpenAPI document (or the MCP spec) says, against what the adapter did.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest
from hardening_kit import CLIENT_TIMEOUT, RawRecorder, mcp_rpc, recorder_thread, serve_capability

from naftiko.upstream.settings import UpstreamSettings

CAPABILITY = Path(__file__).parent / "capabilities" / "contract.yaml"
FORM = {"content-type": "application/x-www-form-urlencoded"}
JSON = {"content-type": "application/json"}
INVALID_PARAMS = -32602


@dataclass
class Gateway:
    rest: httpx.AsyncClient
    http: httpx.AsyncClient
    mcp_url: str
    recorder: RawRecorder


@pytest.fixture
async def gateway() -> AsyncIterator[Gateway]:
    with recorder_thread() as (url, recorder):
        settings = UpstreamSettings(base_uri_overrides={"recorder": url})
        async with (
            serve_capability(CAPABILITY, engine_settings=settings) as served,
            httpx.AsyncClient(
                base_url=served.rest["contract-rest"], timeout=CLIENT_TIMEOUT
            ) as rest,
            httpx.AsyncClient(timeout=CLIENT_TIMEOUT) as http,
        ):
            yield Gateway(rest, http, served.mcp["contract-mcp"], recorder)


async def test_a_json_null_is_not_an_absent_object_body(gateway: Gateway) -> None:
    response = await gateway.rest.post("/notes", content=b"null", headers=JSON)
    assert response.status_code == 400, response.text
    assert response.headers["content-type"] == "application/problem+json"
    assert "body" in response.json()["detail"]
    assert not gateway.recorder.requests
    absent = await gateway.rest.post("/notes")  # no body at all: optional, accepted
    assert absent.status_code == 200, absent.text


async def test_an_empty_form_is_an_empty_object(gateway: Gateway) -> None:
    """Where the document declares form bodies (the OpenAPI document advertises them)."""
    response = await gateway.rest.put("/forms", content=b"", headers=FORM)
    assert response.status_code == 200, response.text
    assert gateway.recorder.requests[-1].raw_path == "/forms"
    assert gateway.recorder.requests[-1].body == b""
    empty_json = await gateway.rest.put("/forms", content=b"", headers=JSON)
    assert empty_json.status_code == 400  # no JSON body is no object: still required
    # A JSON-only operation takes no forms (issue 15, CSRF): an empty one is no body.
    json_only = await gateway.rest.put("/notes", content=b"", headers=FORM)
    assert json_only.status_code == 400, json_only.text
    assert len(gateway.recorder.requests) == 1


async def test_an_empty_query_value_is_named_as_the_query_parameter_it_is(
    gateway: Gateway,
) -> None:
    response = await gateway.rest.get("/lookup", params={"id": ""})
    assert response.status_code == 400, response.text
    problem = response.json()
    assert "path parameter" not in problem["detail"]
    assert "'id'" in problem["detail"] and "empty" in problem["detail"]
    assert not gateway.recorder.requests


async def test_an_unknown_tool_is_a_json_rpc_invalid_params_error(gateway: Gateway) -> None:
    for version in ("2025-06-18", "2025-11-25"):
        reply = await mcp_rpc(
            gateway.http,
            gateway.mcp_url,
            "tools/call",
            {"name": "lokup", "arguments": {}},
            headers={"MCP-Protocol-Version": version},
        )
        assert reply.message is not None and "error" in reply.message, reply.text
        error = reply.message["error"]
        assert error["code"] == INVALID_PARAMS
        assert "Unknown tool 'lokup'" in error["message"] and "'lookup'" in error["message"]
