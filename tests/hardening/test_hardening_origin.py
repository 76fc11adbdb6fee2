"""Hardening: Host and Origin checks against DNS rebinding (issue 15 item 6).

A real ``naftiko run`` process on loopback; requests carry the Host and Origin headers
a browser page would send (from a rebound ``evil.example``, from the page's own origin,
from an allowed front-end) or none (an agent, curl). REST and MCP must answer alike:
403 for a foreign Origin, 421 for a foreign Host, the call itself otherwise.
"""

from __future__ import annotations

from collections.abc import Iterator
from urllib.parse import urlsplit

import httpx
import pytest
from hardening_kit import CAPABILITIES, CLIENT_TIMEOUT, RuntimeProcess, mcp_call

CAPABILITY = CAPABILITIES / "listeners.yaml"


def _args(*extra: str) -> list[str]:
    return [
        str(CAPABILITY),
        "--host",
        "127.0.0.1",
        "--port",
        "lim-rest=0",
        "--port",
        "lim-mcp=0",
        "--port",
        "lim-skill=0",
        "--control-port",
        "0",
        *extra,
    ]


def _serve(*extra: str) -> Iterator[dict[str, str]]:
    with RuntimeProcess(_args(*extra)) as process:
        yield process.wait_ready()


@pytest.fixture(scope="module")
def default_urls() -> Iterator[dict[str, str]]:
    yield from _serve()


@pytest.fixture(scope="module")
def configured_urls() -> Iterator[dict[str, str]]:
    yield from _serve(
        "--allowed-origin",
        "https://app.example",
        "--allowed-host",
        "mcp-gw",
        "--allowed-host",
        "localhost",
    )


async def _call(urls: dict[str, str], adapter: str, headers: dict[str, str]) -> httpx.Response:
    """One call of the adapter's unit: REST ``POST /hello``, MCP ``tools/call hello``."""
    async with httpx.AsyncClient(timeout=CLIENT_TIMEOUT) as http:
        if adapter == "rest":
            return await http.post(urls["lim-rest"] + "/hello", json={}, headers=headers)
        if adapter == "rest-get":
            return await http.get(urls["lim-rest"] + "/hello", headers=headers)
        if adapter == "skill":
            return await http.get(urls["lim-skill"] + "/skills", headers=headers)
        if adapter == "control":
            return await http.get(urls["control"] + "/status", headers=headers)
        reply = await mcp_call(http, urls["lim-mcp"], "hello", {}, headers=headers)
        return httpx.Response(
            reply.status, text=reply.text, headers={"content-type": "application/json"}
        )


def _port(urls: dict[str, str], adapter: str) -> int:
    name = {
        "rest": "lim-rest",
        "rest-get": "lim-rest",
        "mcp": "lim-mcp",
        "skill": "lim-skill",
        "control": "control",
    }[adapter]
    return int(urlsplit(urls[name]).port or 0)


def _ran(adapter: str, response: httpx.Response) -> bool:
    """The unit ran (and answered) rather than being refused."""
    if response.status_code != 200:
        return False
    if adapter == "mcp":
        result = response.json()["result"]
        return not result.get("isError")
    return True


def _refused(adapter: str, response: httpx.Response, status: int) -> bool:
    if response.status_code != status:
        return False
    body = response.json()
    if adapter == "mcp":  # a JSON-RPC error, no result
        return "result" not in body and body["error"]["code"] == -32600
    return response.headers["content-type"].startswith("application/problem+json") and (
        body["status"] == status
    )


ADAPTERS = ("rest", "rest-get", "mcp", "skill", "control")

# (case, Origin or None; {port} is the listener's) -> expected: "ran" or a status
ORIGINS = [
    ("none", None, "ran"),
    ("same", "http://127.0.0.1:{port}", "ran"),
    ("localhost-spelling", "http://localhost:{port}", "ran"),
    ("ipv6-loopback-spelling", "http://[::1]:{port}", "ran"),
    ("loopback-127-x", "http://127.0.0.2:{port}", "ran"),
    ("evil", "http://evil.example", 403),
    ("evil-same-port", "http://evil.example:{port}", 403),
    ("loopback-other-port", "http://127.0.0.1:1", 403),
    ("null", "null", 403),
    ("not-yet-allowed", "https://app.example", 403),
]


@pytest.mark.parametrize("adapter", ADAPTERS)
@pytest.mark.parametrize(("case", "origin", "expected"), ORIGINS, ids=[o[0] for o in ORIGINS])
async def test_origin_matrix_by_default(
    default_urls: dict[str, str], adapter: str, case: str, origin: str | None, expected: object
) -> None:
    headers = {} if origin is None else {"Origin": origin.format(port=_port(default_urls, adapter))}
    response = await _call(default_urls, adapter, headers)
    if expected == "ran":
        assert _ran(adapter, response), response.text
    else:
        assert _refused(adapter, response, 403), (response.status_code, response.text)


@pytest.mark.parametrize("adapter", ADAPTERS)
async def test_a_rebound_host_is_refused_on_a_loopback_listener(
    default_urls: dict[str, str], adapter: str
) -> None:
    """DNS rebinding proper: the page's own origin, so no Origin on a GET; the Host
    header is the only trace. A loopback listener answers loopback names only."""
    port = _port(default_urls, adapter)
    for headers in (
        {"Host": f"evil.example:{port}"},
        {"Host": f"evil.example:{port}", "Origin": f"http://evil.example:{port}"},
    ):
        response = await _call(default_urls, adapter, headers)
        assert _refused(adapter, response, 421), (response.status_code, response.text)
    assert _ran(adapter, await _call(default_urls, adapter, {"Host": f"localhost:{port}"}))


@pytest.mark.parametrize("adapter", ADAPTERS)
async def test_allowed_origins_and_bare_allowed_hosts(
    configured_urls: dict[str, str], adapter: str
) -> None:
    port = _port(configured_urls, adapter)
    allowed = await _call(configured_urls, adapter, {"Origin": "https://app.example"})
    assert _ran(adapter, allowed), allowed.text
    other = await _call(configured_urls, adapter, {"Origin": "https://app.example.evil"})
    assert _refused(adapter, other, 403)
    # A bare --allowed-host accepts the name on any port: clients send Host: name:PORT.
    for host in (f"localhost:{port}", f"mcp-gw:{port}", "mcp-gw"):
        response = await _call(configured_urls, adapter, {"Host": host})
        assert _ran(adapter, response), (host, response.status_code, response.text)
    same = await _call(
        configured_urls, adapter, {"Host": f"mcp-gw:{port}", "Origin": f"http://mcp-gw:{port}"}
    )
    assert _ran(adapter, same), same.text
    refused = await _call(configured_urls, adapter, {"Host": f"evil.example:{port}"})
    assert _refused(adapter, refused, 421)
