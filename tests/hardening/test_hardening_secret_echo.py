"""Bound secrets never come back through an upstream that echoes the request.

A malicious (or merely chatty) upstream answers with everything it received: headers,
query string and body, in 200, 400 and 500 answers, as JSON and as plain text, and puts
the Authorization header in kept response headers too. The runtime injected a bind
value (header, query, JSON body), an outbound bearer token, an API key in the query,
basic credentials and an OAuth2 access token. Through REST (passthrough, mapped,
forward) and MCP, the caller must see none of them in any spelling the runtime used to
send them, while the rest of the echo still reaches it, masked.
"""

from __future__ import annotations

import base64
import json
from collections.abc import Iterator
from dataclasses import dataclass, field
from urllib.parse import quote, quote_plus

import httpx
import pytest
from hardening_kit import CAPABILITIES, mcp_call, serve_capability
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, PlainTextResponse, Response
from starlette.routing import Route

from naftiko.upstream.resilience import ResiliencePolicy, ResilienceSettings
from naftiko.upstream.settings import UpstreamSettings
from support.servers import ServerThread

CAPABILITY = CAPABILITIES / "secret-echo.yaml"
BIND_VALUE = 'sBIND"v/al+9e4f'  # a quote (JSON-escaped), a slash and a plus (URL-encoded)
OUT_TOKEN = "sOUTtok-4f1e9a7c"
OUT_KEY = "sKEY/8b+2d=6e0f"
BASIC_USER = "echo-user"
BASIC_PASS = "sPASS:w0rd!x"
OAUTH_SECRET = "sOAUTHsec-2d8b4f6a"
OAUTH_ACCESS = "sOAUTHacc-7a1c3e5b"  # issued at run time by the token endpoint
SECRETS = [BIND_VALUE, OUT_TOKEN, OUT_KEY, BASIC_PASS, OAUTH_SECRET, OAUTH_ACCESS]
STATUSES = (200, 400, 500)


def spellings(secret: str) -> set[str]:
    """Raw, JSON-escaped, URL-encoded and form-encoded."""
    return {secret, json.dumps(secret)[1:-1], quote(secret, safe=""), quote_plus(secret)}


FORBIDDEN = {form for secret in SECRETS for form in spellings(secret)} | {
    base64.b64encode(f"{BASIC_USER}:{BASIC_PASS}".encode()).decode()
}


@dataclass
class EchoUpstream:
    """``/{kind}/{status}`` echoes the request; ``/token`` issues ``OAUTH_ACCESS``."""

    received: list[str] = field(default_factory=list)

    @property
    def app(self) -> Starlette:
        async def token(request: Request) -> Response:
            await request.body()
            return JSONResponse(
                {"access_token": OAUTH_ACCESS, "token_type": "Bearer", "expires_in": 3600}
            )

        async def echo(request: Request) -> Response:
            body = (await request.body()).decode()
            seen = {
                "method": request.method,
                "path": request.url.path,
                "query": request.url.query,
                "headers": dict(request.headers),
                "body": body,
            }
            text = json.dumps(seen, ensure_ascii=False)
            self.received.append(text)
            status = int(request.path_params["status"])
            # The credential in headers the runtime keeps (correlation, rate limits).
            authorization = request.headers.get("authorization", "") or request.url.query
            headers = {"request-id": authorization, "x-ratelimit-note": authorization}
            if request.path_params["kind"] == "text":
                raw = "\n".join(f"{k}: {v}" for k, v in request.headers.items())
                return PlainTextResponse(
                    f"{text}\n{raw}\n{request.url.query}", status, headers=headers
                )
            return Response(text, status, headers=headers, media_type="application/json")

        return Starlette(
            routes=[
                Route("/token", token, methods=["POST"]),
                Route("/{kind}/{status:int}", echo, methods=["GET", "POST"]),
            ]
        )


@pytest.fixture
def upstream() -> Iterator[tuple[str, EchoUpstream]]:
    echo = EchoUpstream()
    with ServerThread(echo.app) as server:
        yield server.url, echo


def _env(url: str) -> dict[str, str]:
    return {
        "ECHO_BIND_VALUE": BIND_VALUE,
        "ECHO_OUT_TOKEN": OUT_TOKEN,
        "ECHO_OUT_KEY": OUT_KEY,
        "ECHO_BASIC_USER": BASIC_USER,
        "ECHO_BASIC_PASS": BASIC_PASS,
        "ECHO_OAUTH_SECRET": OAUTH_SECRET,
        "ECHO_TOKEN_URL": url,
    }


def _leaks(text: str) -> list[str]:
    return sorted(form for form in FORBIDDEN if form in text)


async def test_echoed_secrets_are_masked_for_rest_and_mcp(
    upstream: tuple[str, EchoUpstream],
) -> None:
    url, echo = upstream
    namespaces = ("bearer", "keyed", "basic", "oauthed")
    # Every status is asked for on purpose, 500 included: no circuit breaker, which
    # would answer for the upstream after a few 500s in a row.
    no_breaker = ResiliencePolicy(breaker_failures=0, breaker_failure_ratio=0)
    settings = UpstreamSettings(
        base_uri_overrides={ns: url for ns in namespaces},
        resilience=ResilienceSettings(no_breaker),
    )
    seen: dict[str, str] = {}  # what each caller received: status, headers, body
    async with (
        serve_capability(CAPABILITY, env=_env(url), engine_settings=settings) as served,
        httpx.AsyncClient(timeout=30.0) as http,
    ):
        rest, mcp = served.rest["echo-rest"], served.mcp["echo-mcp"]
        for status in STATUSES:
            for kind in ("json", "text"):
                for ns in namespaces:
                    answer = await http.get(f"{rest}/{ns}/{kind}/{status}")
                    assert answer.status_code == status, answer.text
                    seen[f"REST {ns} {kind} {status}"] = _shown(answer)
                    reply = await mcp_call(http, mcp, ns, {"kind": kind, "status": str(status)})
                    assert reply.is_error is (status >= 400), reply.text
                    seen[f"MCP {ns} {kind} {status}"] = reply.text + json.dumps(reply.result)
                posted = await http.post(f"{rest}/bearer/{kind}/{status}", json={"note": "n"})
                assert posted.status_code == status, posted.text
                seen[f"REST post {kind} {status}"] = _shown(posted)
                arguments = {"kind": kind, "status": str(status), "note": "n"}
                reply = await mcp_call(http, mcp, "bearer-post", arguments)
                seen[f"MCP post {kind} {status}"] = reply.text + json.dumps(reply.result)
                forwarded = await http.get(f"{rest}/forward/{kind}/{status}")
                assert forwarded.status_code == status, forwarded.text
                seen[f"REST forward {kind} {status}"] = _shown(forwarded)
            mapped = await http.get(f"{rest}/mapped/json/{status}")
            assert mapped.status_code == status, mapped.text
            seen[f"REST mapped {status}"] = _shown(mapped)
            reply = await mcp_call(http, mcp, "mapped", {"kind": "json", "status": str(status)})
            seen[f"MCP mapped {status}"] = reply.text + json.dumps(reply.result)

    # The secrets were really sent, and really echoed.
    wire = "\n".join(echo.received)
    for secret in (BIND_VALUE, OUT_TOKEN, OAUTH_ACCESS):
        assert secret in wire or json.dumps(secret)[1:-1] in wire
    assert quote_plus(OUT_KEY) in wire
    assert base64.b64encode(f"{BASIC_USER}:{BASIC_PASS}".encode()).decode() in wire
    leaks = {where: found for where, text in seen.items() if (found := _leaks(text))}
    assert not leaks, leaks
    # The echo itself still came through, masked rather than dropped.
    for where, text in seen.items():
        assert "***" in text, (where, text)
    mapped_200 = json.loads(seen["REST mapped 200"].split("\n", 1)[1])
    assert mapped_200["headers"]["authorization"] == "Bearer ***"


def _shown(response: httpx.Response) -> str:
    return f"{response.status_code} {dict(response.headers)}\n{response.text}"
