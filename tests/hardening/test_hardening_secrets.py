"""Secrets never leave through logs, problem bodies, MCP errors, /status or OpenAPI.

One ``naftiko run`` process at ``--log-level debug --log-format json`` serves a
capability holding every kind of credential (outbound bearer, apikey in the query,
OAuth2 client credentials with a working and a failing token endpoint, a bind value
in a header, inbound bearer on REST and MCP). Callers send OAuth form fields. Every
call is made to fail in a different way (reset, timeout, refused, upstream 401, token
endpoint 400 echoing the secret). Afterwards each unique secret string, in every
spelling it could take (raw, URL-encoded, base64 in a Basic header), is searched in
everything the process printed and everything any client received.
"""

from __future__ import annotations

import base64
from collections.abc import Iterator
from dataclasses import dataclass, field
from urllib.parse import quote, quote_plus

import httpx
import pytest
from hardening_kit import CAPABILITIES, MCP_HEADERS, RuntimeProcess
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from fakes import RecordedRequest
from fakes.faults import FaultServerThread
from support.servers import ServerThread, closed_port

SECRETS_CAPABILITY = CAPABILITIES / "secrets.yaml"
OUT_TOKEN = "sOUTtok-4f1e9a7c"
OUT_KEY = "sOUTkey-8b2d6e0f"
IN_TOKEN = "sINtok-3c7a5d1b"
BIND_VALUE = "sBINDval-9e4f2a6c"
OAUTH_SECRET = "sOAUTHsec-2d8b4f6a"
OAUTH_ACCESS = "sOAUTHacc-7a1c3e5b"
CALLER = {
    "client_secret": "cCLIsec-5e7f9a1b",
    "refresh_token": "cREFtok-1b3d5f7a",
    "access_token": "cACCtok-6c8e0a2d",
    "code": "cCODE-3f5a7c9e",
}
SECRETS = [OUT_TOKEN, OUT_KEY, IN_TOKEN, BIND_VALUE, OAUTH_SECRET, OAUTH_ACCESS, *CALLER.values()]


@dataclass
class TokenServer:
    """``/token`` issues ``OAUTH_ACCESS``; ``/token-broken`` fails, echoing its request."""

    received: list[str] = field(default_factory=list)

    @property
    def app(self) -> Starlette:
        async def token(request: Request) -> Response:
            self.received.append(
                (await request.body()).decode() + request.headers.get("authorization", "")
            )
            return JSONResponse(
                {"access_token": OAUTH_ACCESS, "token_type": "Bearer", "expires_in": 3600}
            )

        async def broken(request: Request) -> Response:
            body = (await request.body()).decode()
            self.received.append(body)
            return JSONResponse(
                {"error": "invalid_client", "error_description": f"bad credentials in {body}"},
                status_code=400,
            )

        return Starlette(
            routes=[
                Route("/token", token, methods=["POST"]),
                Route("/token-broken", broken, methods=["POST"]),
            ]
        )


def spellings(secret: str) -> set[str]:
    """The forms a secret takes in URLs, forms, JSON and Basic headers."""
    forms = {secret, quote(secret, safe=""), quote_plus(secret)}
    for user in ("hard-client", ""):
        forms.add(base64.b64encode(f"{user}:{secret}".encode()).decode())
    return forms


@dataclass
class Upstreams:
    faults: str
    fault_requests: list[RecordedRequest]
    tokens: str
    token_server: TokenServer


@pytest.fixture
def upstreams() -> Iterator[Upstreams]:
    token_server = TokenServer()
    with FaultServerThread() as faults, ServerThread(token_server.app) as tokens:
        yield Upstreams(faults.url, faults.state.requests, tokens.url, token_server)


def test_no_secret_in_any_output(upstreams: Upstreams) -> None:
    faults, fault_requests = upstreams.faults, upstreams.fault_requests
    token_url, token_server = upstreams.tokens, upstreams.token_server
    dead = f"http://127.0.0.1:{closed_port()}"
    args = [str(SECRETS_CAPABILITY), "--host", "127.0.0.1"]
    args += ["--port", "secrets-rest=0", "--port", "secrets-mcp=0", "--control-port", "0"]
    for namespace, url in [
        ("vault", faults),
        ("keyed", faults),
        ("oauthed", faults),
        ("oauth-broken", faults),
        ("dead", dead),
    ]:
        args += ["--base-uri", f"{namespace}={url}"]
    args += ["--log-format", "json", "--log-level", "debug", "--timeout", "0.5"]
    env = {
        "HARD_SECRET_OUT_TOKEN": OUT_TOKEN,
        "HARD_SECRET_OUT_KEY": OUT_KEY,
        "HARD_SECRET_IN_TOKEN": IN_TOKEN,
        "HARD_SECRET_BIND_VALUE": BIND_VALUE,
        "HARD_SECRET_OAUTH_SECRET": OAUTH_SECRET,
        "HARD_SECRET_TOKEN_URL": token_url,
    }
    seen: list[str] = []  # everything any client received: status line, headers, body

    def keep(response: httpx.Response) -> httpx.Response:
        seen.append(f"{response.status_code} {dict(response.headers)} {response.text}")
        return response

    with RuntimeProcess(args, env) as run:
        urls = run.wait_ready()
        rest, mcp, control = urls["secrets-rest"], urls["secrets-mcp"], urls["control"]
        auth = {"Authorization": f"Bearer {IN_TOKEN}"}
        with httpx.Client(timeout=30.0, headers=auth) as http:
            statuses = [
                keep(http.get(f"{rest}/vault/reset")).status_code,
                keep(http.get(f"{rest}/vault/slow-headers", params={"delay": "5"})).status_code,
                keep(http.get(f"{rest}/keyed/reset-before-response")).status_code,
                keep(http.get(f"{rest}/keyed/close-before-response")).status_code,
                keep(http.get(f"{rest}/dead")).status_code,
                keep(http.get(f"{rest}/oauth/reset")).status_code,
                keep(http.get(f"{rest}/oauth-broken/echo")).status_code,
                keep(http.post(f"{rest}/token", data={**CALLER, "grant_type": "x"})).status_code,
                keep(http.post(f"{rest}/token", json=CALLER)).status_code,
                keep(
                    http.post(
                        f"{rest}/token",
                        content=b"{bad json " + CALLER["code"].encode(),
                        headers={"Content-Type": "application/json"},
                    )
                ).status_code,
            ]
            for name, arguments in [
                ("vault", {"mode": "reset"}),
                ("vault", {"mode": "slow-headers", "delay": "5"}),
                ("keyed", {"mode": "reset"}),
                ("oauth", {"mode": "close-before-response"}),
                ("oauth-broken", {"mode": "echo"}),
                ("dead", {}),
                ("token", CALLER),
                ("token", {**CALLER, "code": 5}),  # a validation error that names 'code'
            ]:
                payload = {
                    "jsonrpc": "2.0",
                    "id": 1,
                    "method": "tools/call",
                    "params": {"name": name, "arguments": arguments},
                }
                reply = keep(http.post(mcp, json=payload, headers=MCP_HEADERS))
                assert reply.json()["result"]["isError"] is True, reply.text
            keep(http.get(f"{rest}/.well-known/openapi.json"))
            for path in ("/status", "/metrics", "/health/ready", "/health/live"):
                keep(http.get(control + path))
        keep(httpx.get(f"{rest}/vault/reset", headers={"Authorization": "Bearer wrong"}))
        run.terminate()
        assert run.wait(60) == 0, run.output

    assert statuses[:7] == [502, 504, 502, 502, 502, 502, 502], statuses
    assert statuses[7] == 415  # a form body to an operation that sends JSON on
    assert statuses[8] == 401  # the upstream's own answer, passed through
    assert statuses[9] == 400
    # The secrets were really in play: the upstreams got them.
    wire = " ".join(f"{r.path}?{r.query} {r.headers}" for r in fault_requests)
    assert OUT_TOKEN in wire and OUT_KEY in wire and BIND_VALUE in wire and OAUTH_ACCESS in wire
    assert any(OAUTH_SECRET in r for r in token_server.received)
    assert any(CALLER["client_secret"] in r.body.decode() for r in fault_requests)

    haystack = {"process output": run.output, "responses": "\n".join(seen)}
    leaks = [
        (where, secret)
        for secret in SECRETS
        for form in spellings(secret)
        for where, text in haystack.items()
        if form in text
    ]
    assert not leaks, leaks
    assert '"level": "debug"' in run.output  # debug logging was really on
