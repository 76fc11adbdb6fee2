"""Caller rate limits through the adapters, on real loopback sockets (issue 21, part 3).

Every app is served by uvicorn on loopback; the limiter's clock is a test clock, so the
counts, ``Retry-After`` and refills are exact whatever the machine's load. REST and skill
answer ``429`` problem+json with ``Retry-After`` and the ``RateLimit`` fields; MCP
answers ``isError`` through the official client, on both the fast path and the SDK's;
``resources/read`` and ``prompts/get`` take from the same bucket and answer a JSON-RPC error.
"""

from __future__ import annotations

import contextlib
import time
from collections.abc import AsyncIterator, Mapping
from pathlib import Path
from typing import Any

import httpx
import jwt
import pytest
from cryptography.hazmat.primitives.asymmetric import rsa
from mcp import Client
from mcp.shared.exceptions import MCPError
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from naftiko.adapters.exposes import compile_capability
from naftiko.adapters.http.rate_limit import (
    RateLimitConfig,
    RateLimiter,
    parse_policy,
)
from naftiko.adapters.http.settings import AdapterSettings
from naftiko.adapters.mcp.aggregate import Member, build_aggregate_app
from naftiko.adapters.mcp.server import RATE_LIMITED, build_mcp_app
from naftiko.adapters.rest.app import build_rest_app
from naftiko.adapters.skill.app import build_skill_app
from naftiko.engine.invoke import Engine
from naftiko.spec.loader import load_capability
from naftiko.upstream.settings import UpstreamSettings
from support.servers import serve_asgi

CAPABILITY = Path(__file__).parent / "capabilities" / "rate-limits.yaml"
AUDIENCE = "https://rl.example.com"
API_KEY = "rl-api-key-2c9d"


class Clock:
    """Monotonic seconds the test moves by hand."""

    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def limiter(clock: Clock, **policies: str) -> RateLimiter:
    """``ns="RATE/PERIOD"``; ``default=...`` for every adapter."""
    default = policies.pop("default", None)
    config = RateLimitConfig(
        parse_policy(default, "test") if default else None,
        {ns.replace("_", "-"): parse_policy(p, "test") for ns, p in policies.items()},
    )
    return RateLimiter(config, clock=clock)


@contextlib.asynccontextmanager
async def serve(
    rate_limiter: RateLimiter | None,
    env: Mapping[str, str] | None = None,
    *,
    fast_path: bool = True,
) -> AsyncIterator[dict[str, str]]:
    """Every adapter of the capability on its own loopback server; base URLs by namespace."""
    values = {"RL_AS_URI": "http://127.0.0.1:9", "RL_API_KEY": API_KEY, **(env or {})}
    loaded = load_capability(CAPABILITY, env=values)
    compiled = compile_capability(loaded, UpstreamSettings())
    settings = AdapterSettings(allowed_hosts=("*",), rate_limiter=rate_limiter)
    urls: dict[str, str] = {}
    async with (
        Engine(compiled, UpstreamSettings()) as engine,
        contextlib.AsyncExitStack() as stack,
    ):
        for plan in compiled.adapters:
            app: Any
            if plan.type == "rest":
                app = build_rest_app(engine, plan, settings, bindings=loaded.bindings)
            elif plan.type == "mcp":
                app = build_mcp_app(
                    engine, plan, settings, bindings=loaded.bindings, fast_path=fast_path
                )
            else:
                app = build_skill_app(engine, plan, settings, bindings=loaded.bindings)
            urls[plan.namespace] = await stack.enter_async_context(serve_asgi(app))
        yield urls


async def test_rest_answers_429_with_the_fields_and_refills() -> None:
    clock = Clock()
    async with serve(limiter(clock, rl_rest="3/minute")) as urls, httpx.AsyncClient() as http:
        url = urls["rl-rest"] + "/hello"
        for remaining in (2, 1, 0):
            ok = await http.get(url)
            assert ok.status_code == 200, ok.text
            assert ok.headers["ratelimit-policy"] == '"rl-rest";q=3;w=60'
            assert ok.headers["ratelimit"] == f'"rl-rest";r={remaining};t={(3 - remaining) * 20}'
            assert "retry-after" not in ok.headers
        refused = await http.get(url)
        assert refused.status_code == 429
        assert refused.headers["content-type"] == "application/problem+json"
        assert refused.headers["retry-after"] == "20"  # one token every 20 s
        assert refused.headers["ratelimit"] == '"rl-rest";r=0;t=60'
        assert refused.headers["ratelimit-policy"] == '"rl-rest";q=3;w=60'
        assert refused.headers["x-request-id"]
        problem = refused.json()
        assert problem["type"] == "https://naftiko.dev/problems/rate-limited"
        assert problem["status"] == 429 and problem["retryAfter"] == 20
        assert "'rl-rest'" in problem["detail"] and "3/minute" in problem["detail"]
        assert "Retry after 20 seconds" in problem["detail"]

        clock.now += 15  # three quarters of a token: still refused, and says how long
        again = await http.get(url)
        assert again.status_code == 429 and again.headers["retry-after"] == "5"
        clock.now += 5  # one whole token
        assert (await http.get(url)).status_code == 200
        assert (await http.get(url)).status_code == 429
        clock.now += 60  # full again
        statuses = [(await http.get(url)).status_code for _ in range(4)]
        assert statuses == [200, 200, 200, 429]
        # Paths that reach no unit do not pay: the OpenAPI document and unknown paths.
        assert (await http.get(urls["rl-rest"] + "/.well-known/openapi.json")).status_code == 200
        assert (await http.get(urls["rl-rest"] + "/nowhere")).status_code == 404


async def test_burst_sets_the_bucket_size() -> None:
    clock = Clock()
    rl = limiter(clock, rl_rest="60/minute,burst=2")
    async with serve(rl) as urls, httpx.AsyncClient() as http:
        url = urls["rl-rest"] + "/hello"
        assert [(await http.get(url)).status_code for _ in range(3)] == [200, 200, 429]
        last = await http.get(url)
        assert last.headers["ratelimit-policy"] == '"rl-rest";q=2;w=2'
        assert last.headers["retry-after"] == "1"


async def test_off_by_default() -> None:
    async with serve(None) as urls, httpx.AsyncClient() as http:
        for _ in range(20):
            response = await http.get(urls["rl-rest"] + "/hello")
            assert response.status_code == 200
            assert "ratelimit" not in response.headers
    clock = Clock()
    # A default for every adapter, one namespace exempted with "off".
    config = RateLimitConfig(parse_policy("1/minute", "t"), {"rl-rest": None})
    async with serve(RateLimiter(config, clock=clock)) as urls, httpx.AsyncClient() as http:
        assert [(await http.get(urls["rl-rest"] + "/hello")).status_code for _ in range(5)] == [
            200
        ] * 5
        skill = urls["rl-skill"] + "/skills"
        assert [(await http.get(skill)).status_code for _ in range(2)] == [200, 429]


@pytest.mark.parametrize("fast_path", [True, False], ids=["fast-path", "sdk-path"])
async def test_mcp_tools_call_is_error_naming_the_limit(fast_path: bool) -> None:
    clock = Clock()
    async with (
        serve(limiter(clock, rl_mcp="2/minute"), fast_path=fast_path) as urls,
        Client(urls["rl-mcp"] + "/mcp") as mcp,
    ):
        for _ in range(2):
            result = await mcp.call_tool("hello", {})
            assert not result.is_error, result
        refused = await mcp.call_tool("hello", {})
        assert refused.is_error
        text = refused.content[0].text
        assert text == (
            "Rate limit exceeded for 'rl-mcp': 2/minute per caller. Retry after 30 seconds."
        )
        # Listing is not a call of a unit: never limited.
        assert [t.name for t in (await mcp.list_tools()).tools] == ["hello"]
        clock.now += 30
        assert not (await mcp.call_tool("hello", {})).is_error
        assert (await mcp.call_tool("hello", {})).is_error


@pytest.mark.parametrize("fast_path", [True, False], ids=["fast-path", "sdk-path"])
async def test_mcp_resources_and_prompts_share_the_tools_bucket(fast_path: bool) -> None:
    """``resources/read`` (dynamic: a unit call; static: a file) and ``prompts/get`` take
    from the bucket ``tools/call`` takes from, and answer a JSON-RPC error when it is empty."""
    clock = Clock()
    async with (
        serve(limiter(clock, rl_mcp="3/minute"), fast_path=fast_path) as urls,
        Client(urls["rl-mcp"] + "/mcp") as mcp,
    ):
        assert not (await mcp.call_tool("hello", {})).is_error
        card = await mcp.read_resource("data://cards/ada")
        assert card.contents[0].text == "hello"
        prompt = await mcp.get_prompt("greet", {"who": "ada"})
        assert prompt.messages[0].content.text == "Say hello to ada."
        expected = "Rate limit exceeded for 'rl-mcp': 3/minute per caller. Retry after 20 seconds."
        for read in (
            lambda: mcp.read_resource("data://cards/ada"),
            lambda: mcp.read_resource("data://docs/guide.md"),
            lambda: mcp.get_prompt("greet", {"who": "ada"}),
        ):
            with pytest.raises(MCPError) as refused:
                await read()
            assert refused.value.code == RATE_LIMITED
            assert refused.value.message == expected
            assert refused.value.data == {"retryAfter": 20}
        tool = await mcp.call_tool("hello", {})
        assert tool.is_error and tool.content[0].text == expected  # one text, both forms
        # Listing reads no unit and no file: never limited; an unknown URI costs nothing.
        assert len((await mcp.list_resources()).resources) == 2  # the two files
        assert [p.name for p in (await mcp.list_prompts()).prompts] == ["greet"]
        with pytest.raises(MCPError) as unknown:
            await mcp.read_resource("data://nowhere")
        assert unknown.value.code != RATE_LIMITED
        clock.now += 20  # one token: a static read pays like any other
        guide = await mcp.read_resource("data://docs/guide.md")
        assert guide.contents[0].text
        with pytest.raises(MCPError):
            await mcp.read_resource("data://docs/guide.md")


async def test_mcp_resource_callers_by_address_have_their_own_buckets() -> None:
    clock = Clock()
    other = httpx.AsyncHTTPTransport(local_address="127.0.0.2")
    read = {"jsonrpc": "2.0", "id": 1, "method": "resources/read"}
    read["params"] = {"uri": "data://cards/ada"}
    get = {"jsonrpc": "2.0", "id": 2, "method": "prompts/get"}
    get["params"] = {"name": "greet", "arguments": {"who": "ada"}}
    async with (
        serve(limiter(clock, rl_mcp="1/minute")) as urls,
        httpx.AsyncClient(headers=MCP_HEADERS) as first,
        httpx.AsyncClient(headers=MCP_HEADERS, transport=other) as second,
    ):
        url = urls["rl-mcp"] + "/mcp"

        async def code(client: httpx.AsyncClient, body: dict[str, Any]) -> int | None:
            response = await client.post(url, json=body)
            assert response.status_code == 200, response.text
            error = response.json().get("error")
            return error["code"] if error else None

        assert [await code(first, read), await code(first, get)] == [None, RATE_LIMITED]
        assert [await code(second, get), await code(second, read)] == [None, RATE_LIMITED]


async def test_aggregate_mcp_takes_resources_and_prompts_from_the_members_bucket() -> None:
    """Through the gateway's ``/mcp`` a read or a prompt takes from the member's own bucket:
    the one its tools take from, through ``/mcp`` or through the member's endpoint."""
    clock = Clock()
    rate_limiter = limiter(clock, rl_mcp="3/hour")
    loaded = load_capability(CAPABILITY, env={"RL_AS_URI": "http://127.0.0.1:9", "RL_API_KEY": "k"})
    compiled = compile_capability(loaded, UpstreamSettings())
    plan = next(p for p in compiled.adapters if p.namespace == "rl-mcp")
    settings = AdapterSettings(allowed_hosts=("*",), rate_limiter=rate_limiter)
    async with Engine(compiled, UpstreamSettings()) as engine:
        app = build_mcp_app(engine, plan, settings, bindings=loaded.bindings)
        aggregate = build_aggregate_app([Member("rl-mcp", app.state.mcp_handlers)])
        async with (
            serve_asgi(app) as own_url,
            serve_asgi(aggregate) as gateway,
            Client(gateway + "/mcp") as mcp,
            Client(own_url + "/mcp") as own,
        ):
            assert not (await own.call_tool("hello", {})).is_error
            assert await mcp.read_resource("data://cards/ada")
            assert await mcp.get_prompt("rl-mcp__greet", {"who": "ada"})
            for refused in (
                lambda: mcp.read_resource("data://cards/ada"),
                lambda: mcp.get_prompt("rl-mcp__greet", {"who": "ada"}),
                lambda: own.read_resource("data://cards/ada"),
            ):
                with pytest.raises(MCPError) as error:
                    await refused()
                assert error.value.code == RATE_LIMITED
                assert error.value.message.startswith("Rate limit exceeded for 'rl-mcp'")
            assert (await mcp.call_tool("rl-mcp__hello", {})).is_error


async def test_rest_and_mcp_translate_one_decision() -> None:
    """The same policy and the same caller meet the same limit in both protocols."""
    clock = Clock()
    async with (
        serve(limiter(clock, default="1/hour")) as urls,
        httpx.AsyncClient() as http,
        Client(urls["rl-mcp"] + "/mcp") as mcp,
    ):
        assert (await http.get(urls["rl-rest"] + "/hello")).status_code == 200
        assert not (await mcp.call_tool("hello", {})).is_error
        rest = await http.get(urls["rl-rest"] + "/hello")
        tool = await mcp.call_tool("hello", {})
        assert rest.status_code == 429 and tool.is_error
        assert rest.headers["retry-after"] == "3600"
        assert rest.json()["detail"] == tool.content[0].text.replace("rl-mcp", "rl-rest")


async def test_skill_requests_are_limited_with_the_same_fields() -> None:
    clock = Clock()
    async with serve(limiter(clock, rl_skill="2/minute")) as urls, httpx.AsyncClient() as http:
        url = urls["rl-skill"] + "/skills"
        first = await http.get(url)
        assert first.status_code == 200 and first.json()["count"] == 1
        assert first.headers["ratelimit"] == '"rl-skill";r=1;t=30'
        assert (await http.get(url + "/bare")).status_code == 200
        refused = await http.get(url)
        assert refused.status_code == 429
        assert refused.headers["retry-after"] == "30"
        assert refused.headers["x-request-id"]
        assert refused.json()["type"] == "https://naftiko.dev/problems/rate-limited"


async def test_callers_by_address_have_their_own_buckets() -> None:
    clock = Clock()
    other = httpx.AsyncHTTPTransport(local_address="127.0.0.2")
    async with (
        serve(limiter(clock, rl_rest="2/minute")) as urls,
        httpx.AsyncClient() as first,
        httpx.AsyncClient(transport=other) as second,
    ):
        url = urls["rl-rest"] + "/hello"
        assert [(await first.get(url)).status_code for _ in range(3)] == [200, 200, 429]
        assert [(await second.get(url)).status_code for _ in range(3)] == [200, 200, 429]


async def test_an_api_key_is_one_caller_whatever_the_address() -> None:
    """The key, not the address, is who calls: two addresses with the key share a bucket."""
    clock = Clock()
    other = httpx.AsyncHTTPTransport(local_address="127.0.0.2")
    key = {"X-API-Key": API_KEY}
    async with (
        serve(limiter(clock, rl_key="2/minute")) as urls,
        httpx.AsyncClient(headers=key) as first,
        httpx.AsyncClient(headers=key, transport=other) as second,
    ):
        url = urls["rl-key"] + "/hello"
        assert (await first.get(url)).status_code == 200
        assert (await second.get(url)).status_code == 200
        assert (await first.get(url)).status_code == 429
        assert (await second.get(url)).status_code == 429
        # A wrong key is refused by authentication (401) before any bucket.
        wrong = await first.get(url, headers={"X-API-Key": "nope"})
        assert wrong.status_code == 401 and "ratelimit" not in wrong.headers


# --------------------------------------------------------------------------- OAuth2 subjects


class AuthorizationServer:
    """A loopback authorization server: metadata and one RSA key."""

    def __init__(self) -> None:
        self.key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
        self.issuer = ""
        self.app = Starlette(
            routes=[
                Route("/.well-known/oauth-authorization-server", self.metadata),
                Route("/jwks", self.jwks),
            ]
        )

    async def metadata(self, _: Request) -> Response:
        return JSONResponse({"issuer": self.issuer, "jwks_uri": self.issuer + "/jwks"})

    async def jwks(self, _: Request) -> Response:
        public = jwt.algorithms.RSAAlgorithm.to_jwk(self.key.public_key(), as_dict=True)
        return JSONResponse({"keys": [{**public, "kid": "k1", "use": "sig"}]})

    def token(self, subject: str) -> str:
        now = int(time.time())
        claims = {"iss": self.issuer, "aud": AUDIENCE, "sub": subject, "exp": now + 600}
        return jwt.encode(claims, self.key, algorithm="RS256", headers={"kid": "k1"})


async def test_callers_by_token_subject_have_their_own_buckets() -> None:
    server = AuthorizationServer()
    clock = Clock()
    async with serve_asgi(server.app) as issuer:
        server.issuer = issuer
        async with (
            serve(limiter(clock, rl_oauth="2/minute"), {"RL_AS_URI": issuer}) as urls,
            httpx.AsyncClient() as http,
        ):
            url = urls["rl-oauth"] + "/hello"

            def as_(subject: str) -> dict[str, str]:
                return {"Authorization": f"Bearer {server.token(subject)}"}

            alice = [(await http.get(url, headers=as_("alice"))).status_code for _ in range(3)]
            assert alice == [200, 200, 429]
            # Same address, another subject: another bucket; a new token for alice: hers.
            assert (await http.get(url, headers=as_("bob"))).status_code == 200
            assert (await http.get(url, headers=as_("alice"))).status_code == 429
            # A refused credential is a 401 and takes nothing from anyone's bucket.
            assert (await http.get(url, headers={"Authorization": "Bearer x"})).status_code == 401
            assert (await http.get(url, headers=as_("bob"))).status_code == 200
            assert (await http.get(url, headers=as_("bob"))).status_code == 429


MCP_HEADERS = {"Accept": "application/json, text/event-stream"}


@pytest.mark.parametrize("fast_path", [True, False], ids=["fast-path", "sdk-path"])
async def test_mcp_callers_by_address_have_their_own_buckets(fast_path: bool) -> None:
    clock = Clock()
    other = httpx.AsyncHTTPTransport(local_address="127.0.0.2")
    body = {"jsonrpc": "2.0", "id": 1, "method": "tools/call", "params": {"name": "hello"}}
    async with (
        serve(limiter(clock, rl_mcp="1/minute"), fast_path=fast_path) as urls,
        httpx.AsyncClient(headers=MCP_HEADERS) as first,
        httpx.AsyncClient(headers=MCP_HEADERS, transport=other) as second,
    ):
        url = urls["rl-mcp"] + "/mcp"

        async def is_error(client: httpx.AsyncClient) -> bool:
            response = await client.post(url, json=body)
            assert response.status_code == 200, response.text
            return bool(response.json()["result"].get("isError"))

        assert [await is_error(first), await is_error(first)] == [False, True]
        assert [await is_error(second), await is_error(second)] == [False, True]


def test_local_buckets_are_bounded_dropping_full_ones_first() -> None:
    from naftiko.adapters.http.rate_limit import LocalStore

    clock = Clock()
    store = LocalStore(clock, max_buckets=3)
    slow, fast = parse_policy("1/hour", "t"), parse_policy("1/second", "t")
    assert store.take("limited", slow) == (True, 0.0)  # empty for an hour
    assert store.take("quick", fast)[0]
    assert store.take("other", slow)[0]
    clock.now += 2  # "quick" is full again: dropped first, "limited" is kept
    assert store.take("new", slow)[0]
    assert set(store.buckets) == {"limited", "other", "new"}
    assert store.take("limited", slow)[0] is False
    # Nothing full: the least recently used goes ("other"; "limited" was just used).
    assert store.take("newer", slow)[0]
    assert set(store.buckets) == {"limited", "new", "newer"}
    assert store.take("limited", slow)[0] is False
