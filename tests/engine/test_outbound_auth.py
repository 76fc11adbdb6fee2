"""Outbound authentication: what each type puts on the wire to a consumed API."""

from __future__ import annotations

import asyncio
import base64
import hashlib
import re
from collections.abc import Mapping
from typing import Any

import httpx
import pytest
import respx
from starlette.responses import JSONResponse

from naftiko.spec.models import Authentication
from naftiko.upstream.outbound_auth import (
    MAX_CACHED_TOKENS,
    OAuth2TokenCache,
    OutboundAuthConfigError,
    OutboundAuthError,
    build_outbound_auth,
)
from support.servers import serve_asgi

UPSTREAM = "https://api.example.com/items"
TOKEN_URL = "https://auth.example.com/oauth/token"
SECRETS = {"USER": "alice", "PASS": "pa:ss wörd", "TOKEN": "tok-123", "KEY": "a&b c=d/é"}


def renderer(values: Mapping[str, str]):
    """A minimal stand-in for the engine's renderer: None when a variable is unbound."""

    def render(template: str | None) -> str | None:
        if template is None:
            return None
        missing = False

        def sub(match: re.Match[str]) -> str:
            nonlocal missing
            name = match.group(1).removeprefix("env.")
            if name not in values:
                missing = True
                return ""
            return values[name]

        out = re.sub(r"\{\{\s*([\w.]+)\s*\}\}", sub, template)
        return None if missing else out

    return render


RENDER = renderer(SECRETS)


def auth(**fields: object) -> Authentication:
    return Authentication.model_validate(fields)


async def send(auth_obj: httpx.Auth | None, url: str = UPSTREAM) -> httpx.Response:
    async with httpx.AsyncClient() as client:
        return await client.send(client.build_request("GET", url), auth=auth_obj)


@respx.mock
async def test_basic_sends_base64_user_colon_password() -> None:
    route = respx.get(UPSTREAM).respond(200)
    await send(
        build_outbound_auth(auth(type="basic", username="{{USER}}", password="{{PASS}}"), RENDER)
    )
    expected = base64.b64encode("alice:pa:ss wörd".encode()).decode()
    assert route.calls.last.request.headers["Authorization"] == f"Basic {expected}"


@respx.mock
async def test_bearer_sends_the_rendered_token() -> None:
    route = respx.get(UPSTREAM).respond(200)
    await send(build_outbound_auth(auth(type="bearer", token="{{env.TOKEN}}"), RENDER))
    assert route.calls.last.request.headers["Authorization"] == "Bearer tok-123"


@respx.mock
@pytest.mark.parametrize("placement", ["header", None])
async def test_apikey_header_defaults_to_header(placement: str | None) -> None:
    route = respx.get(UPSTREAM).respond(200)
    spec = auth(type="apikey", key="X-Api-Key", value="{{TOKEN}}", placement=placement)
    await send(build_outbound_auth(spec, RENDER))
    request = route.calls.last.request
    assert request.headers["x-api-key"] == "tok-123"
    assert request.url.query == b""


@respx.mock
async def test_apikey_header_may_be_authorization() -> None:
    route = respx.get(UPSTREAM).respond(200)
    spec = auth(type="apikey", key="Authorization", value="Token {{TOKEN}}", placement="header")
    await send(build_outbound_auth(spec, RENDER))
    assert route.calls.last.request.headers["Authorization"] == "Token tok-123"


@respx.mock
async def test_apikey_query_is_percent_encoded_and_merged() -> None:
    route = respx.get(url__startswith=UPSTREAM).respond(200)
    spec = auth(type="apikey", key="api_key", value="{{KEY}}", placement="query")
    await send(build_outbound_auth(spec, RENDER), UPSTREAM + "?page=2&api_key=stale")
    url = route.calls.last.request.url
    assert url.params["api_key"] == "a&b c=d/é"
    assert url.params["page"] == "2"
    assert len(url.params.get_list("api_key")) == 1
    assert "a&b" not in url.query.decode()  # the & was encoded, not concatenated
    assert "Authorization" not in route.calls.last.request.headers


@respx.mock
async def test_digest_answers_the_challenge() -> None:
    realm, nonce = "upstream", "dcd98b7102dd2f0e8b11d0f600bfb0c093"

    def upstream(request: httpx.Request) -> httpx.Response:
        header = request.headers.get("Authorization")
        if header is None:
            challenge = f'Digest realm="{realm}", qop="auth", nonce="{nonce}", algorithm=MD5'
            return httpx.Response(401, headers={"WWW-Authenticate": challenge})
        params = dict(re.findall(r'(\w+)="?([^",]+)"?', header.removeprefix("Digest ")))

        def md5(text: str) -> str:
            return hashlib.md5(text.encode()).hexdigest()

        ha1 = md5(f"alice:{realm}:pa:ss wörd")
        ha2 = md5(f"GET:{params['uri']}")
        parts = (ha1, nonce, params["nc"], params["cnonce"], params["qop"], ha2)
        ok = params["username"] == "alice" and params["response"] == md5(":".join(parts))
        return httpx.Response(200 if ok else 403)

    route = respx.get(UPSTREAM).mock(side_effect=upstream)
    spec = auth(type="digest", username="{{USER}}", password="{{PASS}}")
    response = await send(build_outbound_auth(spec, RENDER))
    assert response.status_code == 200
    assert route.call_count == 2
    assert route.calls[0].request.headers.get("Authorization") is None


@respx.mock
@pytest.mark.parametrize(
    "spec",
    [
        auth(type="bearer", token="{{MISSING}}"),
        auth(type="basic", username="{{USER}}", password="{{MISSING}}"),
        auth(type="basic", username="{{env.MISSING}}", password="x"),
        auth(type="apikey", key="X-Key", value="{{MISSING}}"),
        auth(type="apikey", key="k", value="pre-{{MISSING}}", placement="query"),
        auth(type="oauth2", tokenEndpoint=TOKEN_URL, clientId="id", clientSecret="{{MISSING}}"),
    ],
    ids=["bearer", "basic-password", "basic-user", "apikey-header", "apikey-query", "oauth2"],
)
async def test_unresolved_field_sends_no_credential(spec: Authentication) -> None:
    route = respx.get(url__startswith=UPSTREAM).respond(401)
    token = respx.post(TOKEN_URL).respond(200, json={"access_token": "t"})
    response = await send(build_outbound_auth(spec, RENDER))
    assert response.status_code == 401  # the upstream answers for itself
    request = route.calls.last.request
    assert "Authorization" not in request.headers and "X-Key" not in request.headers
    assert request.url.query == b""
    assert "{{" not in str(request.url) and "MISSING" not in str(request.headers)
    assert not token.called


@pytest.mark.parametrize(
    ("spec", "message"),
    [
        (auth(type="kerberos"), "authentication type 'kerberos' is not supported"),
        (auth(type="apikey", key="k", value="v", placement="body"), "placement 'body'"),
        (auth(type="apikey", key="k", value="v", placement="path"), "placement 'path'"),
        (
            auth(
                type="oauth2", tokenEndpoint=TOKEN_URL, clientId="c", tokenEndpointAuthMethod="jwt"
            ),
            "tokenEndpointAuthMethod 'jwt'",
        ),
    ],
)
def test_config_errors(spec: Authentication, message: str) -> None:
    with pytest.raises(OutboundAuthConfigError, match=message):
        build_outbound_auth(spec, RENDER)


@respx.mock
async def test_apikey_cookie_joins_the_cookie_header() -> None:
    route = respx.get(UPSTREAM).respond(200)
    spec = auth(type="apikey", key="session", value="{{KEY}}", placement="cookie")
    built = build_outbound_auth(spec, RENDER)
    async with httpx.AsyncClient() as client:
        headers = {"Cookie": "theme=dark; session=stale"}
        await client.get(UPSTREAM, headers=headers, auth=built)
    cookie = route.calls.last.request.headers["Cookie"]
    # "a&b c=d/é": space and non-ASCII encoded, cookie-octets kept; the stale one replaced
    assert cookie == "theme=dark; session=a&b%20c=d/%C3%A9"
    assert route.calls.last.request.url.query == b""
    assert "Authorization" not in route.calls.last.request.headers


def test_reprs_hide_secrets() -> None:
    specs = [
        auth(type="basic", username="{{USER}}", password="{{TOKEN}}"),
        auth(type="digest", username="{{USER}}", password="{{TOKEN}}"),
        auth(type="bearer", token="{{TOKEN}}"),
        auth(type="apikey", key="X-Key", value="{{TOKEN}}"),
        auth(type="oauth2", tokenEndpoint=TOKEN_URL, clientId="cid", clientSecret="{{TOKEN}}"),
    ]
    for spec in specs:
        built = build_outbound_auth(spec, RENDER)
        assert built is not None
        assert "tok-123" not in repr(built)
        assert "tok-123" not in str(vars(built).get("_credentials", ""))


# --------------------------------------------------------------------------- oauth2


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


OAUTH = auth(
    type="oauth2",
    tokenEndpoint=TOKEN_URL,
    clientId="{{USER}}",
    clientSecret="{{TOKEN}}",
    scopes=["read", "write"],
)


class TokenServer:
    """Issues tok-1, tok-2, ... and yields to the loop so concurrent callers overlap."""

    def __init__(self, expires_in: int | None = 3600) -> None:
        self.requests: list[httpx.Request] = []
        self.expires_in = expires_in

    async def __call__(self, request: httpx.Request) -> httpx.Response:
        self.requests.append(request)
        for _ in range(5):
            await asyncio.sleep(0)
        body: dict[str, object] = {"access_token": f"tok-{len(self.requests)}"}
        if self.expires_in is not None:
            body["expires_in"] = self.expires_in
        return httpx.Response(200, json=body)

    def factory(self) -> httpx.AsyncClient:
        return httpx.AsyncClient(transport=httpx.MockTransport(self))


@respx.mock
async def test_oauth2_concurrent_requests_share_one_fetch() -> None:
    server = TokenServer()
    route = respx.get(UPSTREAM).respond(200)
    cache = OAuth2TokenCache()
    async with httpx.AsyncClient() as client:
        sends = [
            client.send(
                client.build_request("GET", UPSTREAM),
                auth=build_outbound_auth(
                    OAUTH, RENDER, token_cache=cache, client_factory=server.factory
                ),
            )
            for _ in range(10)
        ]
        responses = await asyncio.gather(*sends)
    assert [r.status_code for r in responses] == [200] * 10
    assert len(server.requests) == 1
    assert {c.request.headers["Authorization"] for c in route.calls} == {"Bearer tok-1"}

    token_request = server.requests[0]
    assert token_request.method == "POST"
    assert token_request.headers["Content-Type"] == "application/x-www-form-urlencoded"
    form = dict(httpx.QueryParams(token_request.content.decode()))
    assert form == {"grant_type": "client_credentials", "scope": "read write"}
    basic = base64.b64encode(b"alice:tok-123").decode()
    assert token_request.headers["Authorization"] == f"Basic {basic}"


@respx.mock
@pytest.mark.parametrize(("expires_in", "reused_until"), [(3600, 3570.0), (None, 300.0)])
async def test_oauth2_token_reused_until_shortly_before_expiry(
    expires_in: int | None, reused_until: float
) -> None:
    server = TokenServer(expires_in)
    route = respx.get(UPSTREAM).respond(200)
    clock = Clock()
    cache = OAuth2TokenCache(clock=clock)

    def build() -> httpx.Auth | None:
        return build_outbound_auth(OAUTH, RENDER, token_cache=cache, client_factory=server.factory)

    await send(build())
    clock.now += reused_until - 1
    await send(build())
    assert len(server.requests) == 1
    clock.now += 1
    await send(build())
    assert len(server.requests) == 2
    assert [c.request.headers["Authorization"] for c in route.calls] == [
        "Bearer tok-1",
        "Bearer tok-1",
        "Bearer tok-2",
    ]


@respx.mock
async def test_oauth2_refreshes_once_on_401_and_retries_once() -> None:
    server = TokenServer()
    route = respx.get(UPSTREAM).mock(side_effect=[httpx.Response(401), httpx.Response(200)])
    cache = OAuth2TokenCache()
    built = build_outbound_auth(OAUTH, RENDER, token_cache=cache, client_factory=server.factory)
    response = await send(built)
    assert response.status_code == 200
    assert [c.request.headers["Authorization"] for c in route.calls] == [
        "Bearer tok-1",
        "Bearer tok-2",
    ]
    # The refreshed token is the cached one now.
    route.side_effect = None
    route.return_value = httpx.Response(200)
    await send(build_outbound_auth(OAUTH, RENDER, token_cache=cache, client_factory=server.factory))
    assert route.calls.last.request.headers["Authorization"] == "Bearer tok-2"
    assert len(server.requests) == 2


@respx.mock
async def test_oauth2_persistent_401_is_returned_after_one_retry() -> None:
    server = TokenServer()
    route = respx.get(UPSTREAM).respond(401)
    built = build_outbound_auth(OAUTH, RENDER, client_factory=server.factory)
    response = await send(built)
    assert response.status_code == 401
    assert route.call_count == 2
    assert len(server.requests) == 2


@respx.mock
async def test_oauth2_token_failure_is_safe() -> None:
    body = {"error": "invalid_client", "error_description": "secret tok-123 is wrong"}
    respx.post(TOKEN_URL).respond(401, json=body)
    upstream = respx.get(UPSTREAM).respond(200)
    with pytest.raises(OutboundAuthError) as info:
        await send(build_outbound_auth(OAUTH, RENDER))
    assert info.value.status == 401
    assert "invalid_client" in str(info.value)
    assert "tok-123" not in str(info.value) and "wrong" not in str(info.value)
    assert info.value.__cause__ is None
    assert not upstream.called


@respx.mock
async def test_oauth2_unreachable_or_tokenless_endpoint() -> None:
    respx.post(TOKEN_URL).mock(side_effect=httpx.ConnectError("boom tok-123"))
    with pytest.raises(OutboundAuthError) as info:
        await send(build_outbound_auth(OAUTH, RENDER))
    assert info.value.status is None
    assert "tok-123" not in str(info.value) and "boom" not in str(info.value)
    assert info.value.__suppress_context__  # the httpx error (and its request) stays out

    respx.post(TOKEN_URL).mock(side_effect=None, return_value=httpx.Response(200, json={}))
    with pytest.raises(OutboundAuthError, match="no access_token") as info:
        await send(build_outbound_auth(OAUTH, RENDER))
    assert info.value.status == 200


@respx.mock
async def test_oauth2_client_secret_post() -> None:
    server = TokenServer()
    respx.get(UPSTREAM).respond(200)
    spec = OAUTH.model_copy(update={"scopes": ()})
    spec = Authentication.model_validate(
        {**spec.model_dump(by_alias=True), "tokenEndpointAuthMethod": "client_secret_post"}
    )
    await send(build_outbound_auth(spec, RENDER, client_factory=server.factory))
    request = server.requests[0]
    assert "Authorization" not in request.headers
    form = dict(httpx.QueryParams(request.content.decode()))
    assert form == {
        "grant_type": "client_credentials",
        "client_id": "alice",
        "client_secret": "tok-123",
    }


@pytest.mark.parametrize(
    ("attack", "words"),
    [
        ("bomb-gzip-gzip?size=268435456", "token endpoint decoded response larger than"),
        ("redirect-big?size=20971520", "token endpoint response larger than"),
    ],
)
async def test_oauth2_token_response_is_bounded(attack: str, words: str) -> None:
    """A token endpoint is an upstream like any: its answer is cut at 1 MiB, as received
    and as decoded, on a real socket (a 256 MiB gzip bomb, then 20 MiB of plain body)."""
    from fakes.attacker import AttackerThread
    from naftiko.upstream.outbound_auth import MAX_TOKEN_RESPONSE_BYTES

    with AttackerThread() as attacker:
        spec = auth(
            type="oauth2",
            tokenEndpoint=f"{attacker.url}/{attack}",
            clientId="{{USER}}",
            clientSecret="{{TOKEN}}",
        )
        with pytest.raises(OutboundAuthError, match=words) as info:
            await send(build_outbound_auth(spec, RENDER), url=f"{attacker.url}/echo")
    assert str(MAX_TOKEN_RESPONSE_BYTES) in str(info.value)
    assert "tok-123" not in str(info.value)


# --------------------------------------------------------------------------- oauth2 cache key


class CheckingTokenServer:
    """A token endpoint that checks the client secret (Basic or form) like a real one."""

    def __init__(self, secret: str) -> None:
        self.secret = secret
        self.requests: list[httpx.Request] = []

    async def __call__(self, request: httpx.Request) -> httpx.Response:
        self.requests.append(request)
        form = dict(httpx.QueryParams(request.content.decode()))
        presented = form.get("client_secret")
        header = request.headers.get("Authorization", "")
        if header.startswith("Basic "):
            presented = base64.b64decode(header[6:]).decode().partition(":")[2]
        if presented != self.secret:
            return httpx.Response(401, json={"error": "invalid_client"})
        return httpx.Response(200, json={"access_token": f"tok-{len(self.requests)}"})

    def factory(self) -> httpx.AsyncClient:
        return httpx.AsyncClient(transport=httpx.MockTransport(self))


CALLER_OAUTH = auth(
    type="oauth2",
    tokenEndpoint=TOKEN_URL,
    clientId="{{client_id}}",
    clientSecret="{{client_secret}}",
)


@respx.mock
async def test_oauth2_cache_never_serves_a_token_to_a_wrong_secret() -> None:
    """Issue 15, item 3: credentials from callers; the same client id, another secret."""
    server = CheckingTokenServer("right-Secret-1")
    route = respx.get(UPSTREAM).respond(200)
    cache = OAuth2TokenCache()

    def caller(secret: str) -> httpx.Auth | None:
        render = renderer({"client_id": "cid", "client_secret": secret})
        return build_outbound_auth(
            CALLER_OAUTH, render, token_cache=cache, client_factory=server.factory
        )

    await send(caller("right-Secret-1"))
    assert route.calls.last.request.headers["Authorization"] == "Bearer tok-1"
    for wrong in ("wrong-Secret-2", "right-Secret-1 ", "RIGHT-SECRET-1"):
        with pytest.raises(OutboundAuthError, match="invalid_client"):
            await send(caller(wrong))
    assert route.call_count == 1, "a wrong secret was served the cached token"
    await send(caller("right-Secret-1"))  # the right secret still hits the cache
    assert route.call_count == 2 and len(server.requests) == 4
    assert "right-Secret-1" not in repr(cache) and "right-Secret-1" not in str(vars(cache))


@respx.mock
async def test_oauth2_cache_key_covers_everything_that_shapes_the_token() -> None:
    server = TokenServer()
    respx.get(UPSTREAM).respond(200)
    cache = OAuth2TokenCache()
    base = OAUTH.model_dump(by_alias=True, exclude_none=True)
    variants = [
        base,
        {**base, "tokenEndpoint": TOKEN_URL + "/v2"},
        {**base, "clientId": "bob"},
        {**base, "clientSecret": "{{PASS}}"},
        {**base, "scopes": ["read"]},
        {**base, "audience": "https://a.example"},
        {**base, "resource": "https://r.example"},
        {**base, "tokenEndpointAuthMethod": "client_secret_post"},
    ]
    for fields in variants * 2:  # the second round is served from the cache
        spec = Authentication.model_validate(fields)
        await send(
            build_outbound_auth(spec, RENDER, token_cache=cache, client_factory=server.factory)
        )
    assert len(server.requests) == len(variants) == len(cache)


def test_oauth2_cache_key_holds_no_secret() -> None:
    built = build_outbound_auth(OAUTH, RENDER)
    key = vars(built)["_credentials"].cache_key
    assert "tok-123" not in repr(key)
    assert hashlib.sha256(b"tok-123").hexdigest() not in repr(key)  # no plain unsalted hash


@respx.mock
async def test_oauth2_cache_does_not_grow_with_refused_secrets() -> None:
    """Callers choose the secret now in the key: refusals must leave nothing behind."""
    server = CheckingTokenServer("right-Secret-1")
    respx.get(UPSTREAM).respond(200)
    cache = OAuth2TokenCache()
    for i in range(50):
        render = renderer({"client_id": "cid", "client_secret": f"guess-{i}"})
        built = build_outbound_auth(
            CALLER_OAUTH, render, token_cache=cache, client_factory=server.factory
        )
        with pytest.raises(OutboundAuthError):
            await send(built)
    assert len(cache) == 0 and vars(cache)["_locks"] == {}


def test_oauth2_cache_keeps_a_bounded_number_of_tokens() -> None:
    clock = Clock()
    cache = OAuth2TokenCache(clock=clock)
    for i in range(MAX_CACHED_TOKENS + 10):
        cache.put(("k", str(i)), f"t{i}", 3600)
    assert len(cache) == MAX_CACHED_TOKENS
    assert cache.get(("k", "0")) is None  # the oldest went first
    assert cache.get(("k", str(MAX_CACHED_TOKENS + 9))) == f"t{MAX_CACHED_TOKENS + 9}"


class Recording:
    """A loopback ASGI app that records request paths and answers ``answer``."""

    def __init__(self, answer: dict[str, object]) -> None:
        self.answer = answer
        self.seen: list[str] = []

    async def __call__(self, scope: Any, receive: Any, send: Any) -> None:
        if scope["type"] != "http":
            return
        self.seen.append(scope["path"])
        response = JSONResponse(self.answer)
        await response(scope, receive, send)


async def test_oauth2_token_client_ignores_proxy_environment(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Issue 15: like the upstream client, the token client never goes through an env proxy."""
    proxy = Recording({"access_token": "from-the-proxy"})
    token_server = Recording({"access_token": "direct-tok", "expires_in": 60})
    upstream = Recording({})
    async with (
        serve_asgi(proxy) as proxy_url,
        serve_asgi(token_server) as token_url,
        serve_asgi(upstream) as upstream_url,
    ):
        for name in ("NO_PROXY", "no_proxy"):
            monkeypatch.delenv(name, raising=False)
        for name in ("HTTP_PROXY", "HTTPS_PROXY", "ALL_PROXY", "http_proxy", "all_proxy"):
            monkeypatch.setenv(name, proxy_url)
        spec = auth(type="oauth2", tokenEndpoint=token_url + "/token", clientId="cid")
        built = build_outbound_auth(spec, RENDER)
        async with httpx.AsyncClient(trust_env=False) as client:
            request = client.build_request("GET", upstream_url + "/items")
            assert (await client.send(request, auth=built)).status_code == 200
    assert proxy.seen == []
    assert token_server.seen == ["/token"] and upstream.seen == ["/items"]
