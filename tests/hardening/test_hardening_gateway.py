"""Hardening: attacks on the ``--gateway`` port (issue 17).

One real ``naftiko run --gateway`` process serves open and protected adapters of two
documents on one loopback listener, with small listener limits. The tests act as a
caller of one namespace trying to reach another's routes, tools, resources and prompts;
as a web page of another origin (DNS rebinding) on ``/mcp`` and ``/NS/mcp``; and as a
client abusing the listener itself (endless, dribbled or silent heads, a connection
flood). A stateful MCP session and a document reloaded under ``--reload`` keep the
checks of every request. The waits are guards against a hung server, never
expectations about speed.
"""

from __future__ import annotations

import asyncio
import json
import os
import shutil
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import httpx
import pytest
from hardening_kit import CAPABILITIES, MCP_HEADERS, RuntimeProcess, recorder_thread
from test_hardening_auth_matrix import _send_raw
from test_hardening_listeners import GUARD_S, _body, _exchange, _request, _status

MIXED = CAPABILITIES / "gateway-mixed.yaml"
LISTENERS = CAPABILITIES / "listeners.yaml"
TOKEN = "gw-hard-token-Tq55e"
HEADER_LIMIT = 8192
BEARER = {"Authorization": f"Bearer {TOKEN}"}
TOOL_CALL = json.dumps(
    {
        "jsonrpc": "2.0",
        "id": 1,
        "method": "tools/call",
        "params": {"name": "secret-plan-tool", "arguments": {"id": "1"}},
    }
).encode()
PREFIXES = ("open-rest", "open-mcp", "guard-mcp", "guard-skill", "lim-rest", "lim-mcp")


@dataclass
class Gw:
    url: str
    port: int
    recorded: list[Any]
    process: RuntimeProcess


def _start(recorder_url: str, *extra: str) -> RuntimeProcess:
    args = [str(LISTENERS), str(MIXED), "--gateway", "0", "--host", "127.0.0.1"]
    args += ["--base-uri", f"mixed-backend={recorder_url}", *extra]
    return RuntimeProcess(args, {"HARD_AUTH_TOKEN": TOKEN})


@pytest.fixture(scope="module")
def gw() -> Iterator[Gw]:
    with recorder_thread() as (backend, recorder):
        limits = ["--max-header-bytes", str(HEADER_LIMIT), "--header-timeout", "1"]
        limits += ["--idle-timeout", "1", "--allowed-origin", "https://app.example"]
        with _start(backend, *limits) as process:
            url = process.wait_ready()["gateway"]
            yield Gw(url, int(urlsplit(url).port or 0), recorder.requests, process)


def _rpc(url: str, method: str, params: dict[str, Any], **headers: str) -> httpx.Response:
    payload = {"jsonrpc": "2.0", "id": 1, "method": method, "params": params}
    return httpx.post(url, json=payload, headers={**MCP_HEADERS, **headers}, timeout=30)


# --------------------------------------------------------------------------- namespaces


def test_one_namespace_never_reaches_another_namespaces_routes(gw: Gw) -> None:
    """From every prefix, every spelling of a way into another prefix's paths (dot
    segments, encoded dots and slashes, doubled slashes, the other prefix as a path) is
    answered by the first prefix's adapter (or nobody): never the other's operation."""
    before = len(gw.recorded)
    targets = {
        "open-rest": "/items/1",
        "guard-mcp": "/mcp",
        "guard-skill": "/skills",
        "lim-rest": "/hello",
        "open-mcp": "/mcp",
    }
    headers = {**MCP_HEADERS, "Content-Type": "application/json", **BEARER}
    for source in PREFIXES:
        for target, path in targets.items():
            if target == source:
                continue
            for middle in ("/..", "/%2e%2e", "/%2E%2E", "/.%2e", "", "/", "/%2F", "%2F"):
                raw = f"/{source}{middle}/{target}{path}"
                for method in ("GET", "POST"):
                    body = b"" if method == "GET" else TOOL_CALL
                    answer = _send_raw(gw.url, method, raw, headers, body)
                    what = f"{method} {raw} -> {answer.status}"
                    assert answer.status in (404, 405), what
                    assert b"secret-plan" not in answer.body, what
    assert len(gw.recorded) == before, "another namespace's operation ran"


def test_a_namespace_endpoint_serves_only_its_own_tools_resources_and_prompts(gw: Gw) -> None:
    """``/open-mcp/mcp`` knows nothing of guard-mcp's tool, resource or prompt, by any
    name (its own, the aggregate's), and the aggregate knows no name outside its rule."""
    before = len(gw.recorded)
    open_mcp = gw.url + "/open-mcp/mcp"
    for name in (
        "secret-plan-tool",
        "guard-mcp__secret-plan-tool",
        "../guard-mcp/secret-plan-tool",
    ):
        answer = _rpc(open_mcp, "tools/call", {"name": name, "arguments": {"id": "1"}}, **BEARER)
        assert "error" in answer.json() or answer.json()["result"]["isError"], answer.text
        assert "Secret plan" not in answer.text
    read = _rpc(open_mcp, "resources/read", {"uri": "data://secret-plan/1"}, **BEARER)
    prompt = _rpc(open_mcp, "prompts/get", {"name": "secret-plan-prompt"}, **BEARER)
    assert "error" in read.json() and "error" in prompt.json()
    for name in (
        "guard-mcp__../secret-plan-tool",
        "Guard-mcp__secret-plan-tool",
        "secret-plan-tool",
    ):
        answer = _rpc(gw.url + "/mcp", "tools/call", {"name": name, "arguments": {}}, **BEARER)
        assert answer.json()["error"]["message"] == f"Unknown tool {name!r}.", answer.text
    assert len(gw.recorded) == before


# --------------------------------------------------------------------------- origin


MCP_ENDPOINTS = ("/mcp", "/guard-mcp/mcp", "/open-mcp/mcp", "/lim-mcp/mcp")


@pytest.mark.parametrize("path", MCP_ENDPOINTS)
def test_origin_and_host_refused_on_mcp_endpoints(gw: Gw, path: str) -> None:
    """A page of another origin, or a rebound host name, drives no MCP endpoint of the
    gateway, with or without the token; the allowed origin and no Origin are served."""
    before = len(gw.recorded)
    url = gw.url + path
    call = {"name": "guard-mcp__secret-plan-tool", "arguments": {"id": "1"}}
    for headers in ({}, BEARER):
        for method, params in (("tools/list", {}), ("tools/call", call)):
            evil = _rpc(url, method, params, Origin="http://evil.example", **headers)
            assert evil.status_code == 403, (path, evil.text)
            null = _rpc(url, method, params, Origin="null", **headers)
            assert null.status_code == 403, (path, null.text)
            rebound = _rpc(url, method, params, Host="evil.example", **headers)
            assert rebound.status_code == 421, (path, rebound.text)
            assert "secret-plan" not in evil.text + null.text + rebound.text
    assert len(gw.recorded) == before
    allowed = _rpc(url, "tools/list", {}, Origin="https://app.example", **BEARER)
    agent = _rpc(url, "tools/list", {}, **BEARER)
    assert allowed.status_code == agent.status_code == 200, (allowed.text, agent.text)
    assert allowed.json()["result"] == agent.json()["result"]


def test_origin_refused_on_the_gateways_own_pages(gw: Gw) -> None:
    for path in ("/", "/open-rest/docs", "/status", "/guard-skill/skills", "/open-rest/items/1"):
        response = httpx.get(gw.url + path, headers={"Origin": "http://evil.example", **BEARER})
        assert response.status_code == 403, path


# --------------------------------------------------------------------------- listener

LIMIT_PATHS = ("/mcp", "/guard-mcp/mcp", "/open-rest/items/1", "/open-rest/docs", "/", "/status")


@pytest.mark.parametrize("path", LIMIT_PATHS)
async def test_gateway_listener_refuses_a_head_over_the_limit(gw: Gw, path: str) -> None:
    big = "X-Big: " + "a" * (HEADER_LIMIT + 1)
    answer = await _exchange(gw.port, _request(path, gw.port, big))
    assert _status(answer) == 431
    assert _body(answer)["status"] == 431
    start = f"GET {path} HTTP/1.1\r\nHost: 127.0.0.1:{gw.port}\r\nX-Big: ".encode()
    endless = await _exchange(gw.port, start + b"a" * (8 * HEADER_LIMIT))
    assert _status(endless) == 431


async def test_gateway_listener_deadlines(gw: Gw) -> None:
    start = f"POST /mcp HTTP/1.1\r\nHost: 127.0.0.1:{gw.port}\r\n".encode()
    dribbled = await _exchange(gw.port, start, keep_sending=b"X-Slow: " + b"a" * int(GUARD_S / 0.2))
    assert _status(dribbled) == 408
    assert await _exchange(gw.port, b"") == b""  # silent: closed at the idle timeout


async def test_gateway_listener_connection_cap() -> None:
    cap = 6
    with recorder_thread() as (backend, _):
        process = _start(backend, "--max-connections", str(cap), "--idle-timeout", "60")
        with process:
            port = int(urlsplit(process.wait_ready()["gateway"]).port or 0)
            held = []
            for _ in range(cap):
                reader, writer = await asyncio.open_connection("127.0.0.1", port)
                writer.write(
                    f"GET /health/live HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\n\r\n".encode()
                )
                await writer.drain()
                head = await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), GUARD_S)
                assert head.startswith(b"HTTP/1.1 200 ")
                held.append(writer)
            try:
                refused = await _exchange(port, _request("/mcp", port))
                assert _status(refused) == 503 and _body(refused)["status"] == 503
            finally:
                for writer in held:
                    writer.close()


# --------------------------------------------------------------------------- sessions


def test_a_stateful_session_is_checked_on_every_request() -> None:
    """A session opened with the token gives nothing to a later request without it:
    credentials are read per request, never remembered by the session."""
    with recorder_thread() as (backend, recorder):
        with _start(backend, "--mcp-stateful") as process:
            url = process.wait_ready()["gateway"] + "/mcp"
            init = {
                "protocolVersion": "2025-06-18",
                "capabilities": {},
                "clientInfo": {"name": "attacker", "version": "1"},
            }
            opened = _rpc(url, "initialize", init, **BEARER)
            assert opened.status_code == 200, opened.text
            session = {"Mcp-Session-Id": opened.headers["mcp-session-id"]}
            note = {"jsonrpc": "2.0", "method": "notifications/initialized"}
            httpx.post(url, json=note, headers={**MCP_HEADERS, **session, **BEARER}, timeout=30)
            with_token = _rpc(url, "tools/list", {}, **session, **BEARER)
            without = _rpc(url, "tools/list", {}, **session)
            call = {"name": "guard-mcp__secret-plan-tool", "arguments": {"id": "1"}}
            refused = _rpc(url, "tools/call", call, **session)
        assert "guard-mcp__secret-plan-tool" in _texts(with_token)
        assert "secret-plan" not in _texts(without), without.text
        assert '"isError":true' in _texts(refused).replace(" ", ""), refused.text
        assert "A bearer token is required." in _texts(refused)
        assert recorder.requests == []


def _texts(response: httpx.Response) -> str:
    """The JSON-RPC message of a JSON or an event-stream answer, as text."""
    text = response.text
    if response.headers.get("content-type", "").startswith("text/event-stream"):
        data = [line[5:].strip() for line in text.splitlines() if line.startswith("data:")]
        return json.dumps([json.loads(d) for d in data if d], separators=(",", ":"))
    return json.dumps(response.json(), separators=(",", ":"))


# --------------------------------------------------------------------------- reload


def _reloaded(process: RuntimeProcess, outcome: str, file: Path, count: int) -> None:
    def seen() -> int:
        found = 0
        for line in list(process.lines):
            try:
                event = json.loads(line)
            except ValueError:
                continue
            if (
                isinstance(event, dict)
                and event.get("event") == "reload"
                and event.get("outcome") == outcome
                and event.get("file") == str(file)
            ):
                found += 1
        return found

    process.wait_for(lambda _: seen() >= count)


def test_a_reloaded_document_keeps_its_authentication(tmp_path: Path) -> None:
    folder = tmp_path / "capabilities"
    folder.mkdir()
    mixed = folder / "mixed.yaml"
    shutil.copy(MIXED, mixed)
    with recorder_thread() as (backend, recorder):
        process = _start(backend, "--reload", "--log-format", "json")
        process.args[process.args.index(str(LISTENERS))] = str(folder)
        process.args.remove(str(MIXED))
        with process:
            base = process.wait_ready()["gateway"]
            process.wait_for(lambda line: "watching" in line)  # its first look is taken
            text = mixed.read_text().replace("Secret plan description.", "Secret plan v2.")
            before = mixed.stat().st_mtime_ns
            mixed.write_text(text)
            if mixed.stat().st_mtime_ns <= before:
                os.utime(mixed, ns=(before + 1_000_000, before + 1_000_000))
            _reloaded(process, "reloaded", mixed, 1)
            with httpx.Client(base_url=base, timeout=30) as client:
                assert client.get("/guard-skill/skills").status_code == 401
                own = _rpc(base + "/guard-mcp/mcp", "tools/list", {})
                listed = _rpc(base + "/mcp", "tools/list", {})
                call = {"name": "guard-mcp__secret-plan-tool", "arguments": {"id": "1"}}
                refused = _rpc(base + "/mcp", "tools/call", call)
                page = client.get("/").text
                granted = _rpc(base + "/mcp", "tools/list", {}, **BEARER)
        assert own.status_code == 401
        assert "secret-plan" not in listed.text and "Secret plan" not in page
        assert refused.json()["result"]["isError"] is True
        assert "Secret plan v2." in granted.text  # the new version, behind the same check
        assert recorder.requests == []


def test_an_adapter_whose_credential_is_unset_serves_nothing_open() -> None:
    """Degraded because the bind its authentication reads is not set: every path of it
    answers 503 naming the variable, its docs page too, and /mcp knows none of its tools."""
    auth = CAPABILITIES / "auth.yaml"
    with recorder_thread() as (backend, recorder):
        args = [str(auth), str(MIXED), "--gateway", "0", "--host", "127.0.0.1"]
        with RuntimeProcess([*args, "--base-uri", f"backend={backend}"], {}) as process:
            base = process.wait_ready()["gateway"]
            with httpx.Client(base_url=base, timeout=30) as client:
                for path in ("/rest-bearer/docs", "/rest-basic/items/1", "/guard-skill/skills"):
                    for method in ("GET", "HEAD", "POST"):
                        answer = client.request(method, path)
                        assert answer.status_code == 503, (method, path, answer.status_code)
                        if method != "HEAD":
                            assert "HARD_AUTH" in answer.json()["detail"], answer.text
                listed = _rpc(base + "/mcp", "tools/list", {})
                own = _rpc(base + "/guard-mcp/mcp", "tools/list", {})
        assert [t["name"] for t in listed.json()["result"]["tools"]] == ["open-mcp__get-open-item"]
        assert own.status_code == 503
        assert recorder.requests == []
