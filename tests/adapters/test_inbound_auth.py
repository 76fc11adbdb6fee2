"""Inbound authentication: every type refuses what it must and accepts the right caller."""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import time
from typing import Any

import httpx
import jwt
import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec, rsa
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, PlainTextResponse, Response
from starlette.routing import Route, WebSocketRoute
from starlette.testclient import TestClient, WebSocketDenialResponse
from starlette.websockets import WebSocket

from naftiko.adapters.http.auth import (
    InboundAuth,
    InboundAuthConfigError,
    InboundAuthMiddleware,
    build_inbound_auth,
    protected_resource_metadata,
    protected_resource_metadata_path,
    protected_resource_metadata_url,
)
from naftiko.spec.models import Authentication
from support.servers import serve_asgi

BINDS = {"API_TOKEN": "s3cret-token", "API_KEY": "k3y&val", "USER": "alice", "PASS": "pässword"}
NAMESPACES = {"vault": {"TOKEN": "ns-token"}}
ISSUER = "https://as.example.com/"
AUDIENCE = "https://mcp.example.com/mcp"
RESOURCE_METADATA = "https://mcp.example.com/.well-known/oauth-protected-resource/mcp"


def auth(**fields: object) -> Authentication:
    return Authentication.model_validate(fields)


async def hello(_: Request) -> Response:
    return PlainTextResponse("hello")


async def echo_ws(websocket: WebSocket) -> None:
    await websocket.accept()
    await websocket.send_text("hi")
    await websocket.close()


def protected(guard: InboundAuth | None) -> Starlette:
    assert guard is not None
    app = Starlette(
        routes=[Route("/", hello), Route("/health", hello), WebSocketRoute("/ws", echo_ws)]
    )
    app.add_middleware(InboundAuthMiddleware, auth=guard, exempt_paths=("/health",))
    return app


async def call(
    app: Starlette,
    headers: dict[str, str] | None = None,
    params: dict[str, str] | None = None,
    path: str = "/",
) -> httpx.Response:
    transport = httpx.ASGITransport(app=app)
    async with httpx.AsyncClient(transport=transport, base_url="http://testserver") as client:
        return await client.get(path, headers=headers or {}, params=params)


def assert_problem(response: httpx.Response, status: int, *secrets: str) -> None:
    assert response.status_code == status
    assert response.headers["content-type"] == "application/problem+json"
    body = response.json()
    assert body["status"] == status and body["title"] and body["type"]
    for secret in secrets:
        assert secret not in response.text
        assert secret not in str(response.headers)


def basic(user: str, password: str) -> str:
    return "Basic " + base64.b64encode(f"{user}:{password}".encode()).decode()


# --------------------------------------------------------------------------- static types


async def test_bearer() -> None:
    app = protected(build_inbound_auth(auth(type="bearer", token="{{API_TOKEN}}"), BINDS))
    missing = await call(app)
    assert_problem(missing, 401)
    assert missing.headers["www-authenticate"] == 'Bearer realm="naftiko"'
    wrong = await call(app, {"Authorization": "Bearer guess-WRONG"})
    assert_problem(wrong, 401, "guess-WRONG", "s3cret-token")
    assert 'error="invalid_token"' in wrong.headers["www-authenticate"]
    other_scheme = await call(app, {"Authorization": "Token s3cret-token"})
    assert_problem(other_scheme, 401, "s3cret-token")
    assert (await call(app, {"Authorization": "bEaReR s3cret-token"})).text == "hello"
    assert (await call(app, path="/health")).status_code == 200  # exempt


async def test_bearer_from_namespaced_bind() -> None:
    spec = auth(type="bearer", token="{{vault.TOKEN}}")
    app = protected(build_inbound_auth(spec, BINDS, NAMESPACES))
    assert (await call(app, {"Authorization": "Bearer ns-token"})).status_code == 200
    assert (await call(app, {"Authorization": "Bearer {{vault.TOKEN}}"})).status_code == 401


@pytest.mark.parametrize("placement", ["header", None])
async def test_apikey_header(placement: str | None) -> None:
    spec = auth(type="apikey", key="X-API-Key", value="{{env.API_KEY}}", placement=placement)
    app = protected(build_inbound_auth(spec, BINDS))
    missing = await call(app)
    assert_problem(missing, 401)
    assert missing.headers["www-authenticate"] == 'ApiKey realm="naftiko"'
    assert_problem(await call(app, {"X-API-Key": "nope-WRONG"}), 401, "nope-WRONG", "k3y&val")
    assert_problem(await call(app, params={"X-API-Key": "k3y&val"}), 401, "k3y&val")
    assert (await call(app, {"x-api-key": "k3y&val"})).status_code == 200


async def test_apikey_query() -> None:
    spec = auth(type="apikey", key="api_key", value="{{API_KEY}}", placement="query")
    app = protected(build_inbound_auth(spec, BINDS))
    assert_problem(await call(app), 401)
    assert_problem(await call(app, params={"api_key": "k3y"}), 401, "k3y&val")
    assert_problem(await call(app, {"api_key": "k3y&val"}), 401, "k3y&val")
    assert (await call(app, params={"api_key": "k3y&val"})).status_code == 200


async def test_basic() -> None:
    spec = auth(type="basic", username="{{USER}}", password="{{PASS}}")
    app = protected(build_inbound_auth(spec, BINDS))
    challenge = 'Basic realm="naftiko"'
    for headers in (
        {},
        {"Authorization": basic("alice", "WRONG-pass")},
        {"Authorization": basic("mallory", "pässword")},
        {"Authorization": "Basic !!!notbase64"},
        {"Authorization": "Basic " + base64.b64encode(b"alicepassword").decode()},
        {"Authorization": "Basic " + base64.b64encode("alice:pässword".encode("latin-1")).decode()},
    ):
        response = await call(app, headers)
        assert_problem(response, 401, "WRONG-pass", "pässword", "p\\u00e4ssword")
        assert response.headers["www-authenticate"] == challenge
    assert (await call(app, {"Authorization": basic("alice", "pässword")})).status_code == 200


async def test_exempt_paths_exempt_only_get_and_head() -> None:
    """Issue 15: an exempt path must not open other methods (the MCP metadata bypass)."""
    reached: list[str] = []

    async def inner(scope: Any, receive: Any, send: Any) -> None:
        reached.append(f"{scope['method']} {scope['path']}")
        await PlainTextResponse("inner")(scope, receive, send)

    guard = build_inbound_auth(auth(type="bearer", token="{{API_TOKEN}}"), BINDS)
    assert guard is not None
    app = InboundAuthMiddleware(inner, guard, exempt_paths=("/health",))
    transport = httpx.ASGITransport(app=app)
    async with httpx.AsyncClient(transport=transport, base_url="http://testserver") as client:
        for method in ("POST", "PUT", "PATCH", "DELETE", "OPTIONS"):
            for path in ("/health", "/health?x=1", "/health/", "/HEALTH"):
                assert_problem(await client.request(method, path, content=b"{}"), 401)
        assert (await client.get("/health?x=1")).text == "inner"
        assert (await client.head("/health")).status_code == 200
        assert_problem(await client.get("/health/"), 401)
    assert reached == ["GET /health", "HEAD /health"]


def test_websocket_on_an_exempt_path_is_checked() -> None:
    app = protected(build_inbound_auth(auth(type="bearer", token="{{API_TOKEN}}"), BINDS))
    app.router.routes.append(WebSocketRoute("/health", echo_ws))
    with TestClient(app) as client:
        with pytest.raises(WebSocketDenialResponse) as refused, client.websocket_connect("/health"):
            pass
        assert refused.value.status_code == 401


def test_websocket_is_checked() -> None:
    app = protected(build_inbound_auth(auth(type="bearer", token="{{API_TOKEN}}"), BINDS))
    with TestClient(app) as client:
        # TestClient supports the websocket denial-response extension: the problem is sent.
        with pytest.raises(WebSocketDenialResponse) as refused, client.websocket_connect("/ws"):
            pass
        assert refused.value.status_code == 401
        assert refused.value.headers["www-authenticate"] == 'Bearer realm="naftiko"'
        headers = {"Authorization": "Bearer s3cret-token"}
        with client.websocket_connect("/ws", headers=headers) as ws:
            assert ws.receive_text() == "hi"


async def test_websocket_without_denial_extension_is_closed_1008() -> None:
    guard = build_inbound_auth(auth(type="bearer", token="{{API_TOKEN}}"), BINDS)
    assert guard is not None
    reached: list[str] = []

    async def inner(scope: Any, receive: Any, send: Any) -> None:
        reached.append(scope["type"])

    sent: list[dict[str, Any]] = []

    async def receive() -> dict[str, Any]:
        return {"type": "websocket.connect"}

    async def send(message: dict[str, Any]) -> None:
        sent.append(message)

    middleware = InboundAuthMiddleware(inner, guard)
    scope = {"type": "websocket", "path": "/ws", "headers": [], "query_string": b""}
    await middleware(scope, receive, send)
    assert sent == [{"type": "websocket.close", "code": 1008}] and reached == []
    await middleware({"type": "lifespan"}, receive, send)
    assert reached == ["lifespan"]


# --------------------------------------------------------------------------- config errors


@pytest.mark.parametrize(
    ("spec", "message"),
    [
        (auth(type="bearer", token="{{NOPE}}"), "'token'.*'NOPE'"),
        (auth(type="bearer", token="{{env.NOPE}}"), "'token'.*'env.NOPE'"),
        (auth(type="bearer", token="{{vault.NOPE}}"), "'token'.*'vault.NOPE'"),
        (auth(type="bearer", token="{{EMPTY}}"), "'token'.*'EMPTY'"),
        (auth(type="bearer"), "'token'"),
        (auth(type="bearer", token=""), "'token'"),
        (auth(type="apikey", key="X-Key", value="pre-{{NOPE}}"), "'value'.*'NOPE'"),
        (auth(type="apikey", key="X-Key", value="v", placement="cookie"), "placement"),
        (auth(type="basic", username="{{USER}}", password="{{NOPE}}"), "'password'.*'NOPE'"),
        (auth(type="digest", username="u", password="p"), "digest .* not supported"),
        (auth(type="kerberos"), "unsupported inbound authentication type"),
        (
            auth(
                type="oauth2",
                authorizationServerUri=ISSUER,
                audience="a",
                tokenValidation="introspection",
            ),
            "introspection.*not supported",
        ),
        (auth(type="oauth2", authorizationServerUri=ISSUER), "audience"),
        (auth(type="oauth2", audience="a"), "authorizationServerUri"),
    ],
)
def test_config_errors(spec: Authentication, message: str) -> None:
    binds = {**BINDS, "EMPTY": ""}
    with pytest.raises(InboundAuthConfigError, match=message) as info:
        build_inbound_auth(spec, binds, NAMESPACES)
    for secret in BINDS.values():
        assert secret not in str(info.value)


def test_literal_credentials_and_no_spec() -> None:
    assert build_inbound_auth(None, BINDS) is None
    guard = build_inbound_auth(auth(type="bearer", token="literal-token"), {})
    assert guard is not None
    assert "literal-token" not in repr(guard)


async def test_literal_credential_is_used_as_is() -> None:
    app = protected(build_inbound_auth(auth(type="bearer", token="literal-token"), {}))
    assert (await call(app, {"Authorization": "Bearer literal-token"})).status_code == 200


# --------------------------------------------------------------------------- oauth2


class AuthorizationServer:
    """A local authorization server: metadata + JWKS over ASGI, keys that can rotate."""

    def __init__(self, *, oidc_only: bool = False) -> None:
        self.rsa = {"k1": rsa.generate_private_key(public_exponent=65537, key_size=2048)}
        self.ec = ec.generate_private_key(ec.SECP256R1())
        self.published = ["k1", "ec1"]
        self.jwks_fetches = 0
        self.attempts = 0
        self.up = True
        self.issuer: str | None = None  # served on loopback: its URL
        metadata_path = (
            "/.well-known/openid-configuration"
            if oidc_only
            else "/.well-known/oauth-authorization-server"
        )
        self.app = Starlette(
            routes=[Route(metadata_path, self.metadata), Route("/jwks", self.jwks)]
        )

    async def metadata(self, _: Request) -> Response:
        self.attempts += 1  # every key refresh starts here
        if not self.up:
            return Response(status_code=503)
        issuer = self.issuer or ISSUER
        return JSONResponse({"issuer": issuer, "jwks_uri": issuer.rstrip("/") + "/jwks"})

    async def jwks(self, _: Request) -> Response:
        self.jwks_fetches += 1
        keys = []
        for kid in self.published:
            public = (self.ec if kid == "ec1" else self.rsa[kid]).public_key()
            jwk = json.loads(
                jwt.algorithms.get_default_algorithms()[
                    "ES256" if kid == "ec1" else "RS256"
                ].to_jwk(public)
            )
            keys.append({**jwk, "kid": kid, "use": "sig"})
        return JSONResponse({"keys": keys})

    def client(self) -> httpx.AsyncClient:
        return httpx.AsyncClient(transport=httpx.ASGITransport(app=self.app))

    def rotate(self, kid: str) -> None:
        self.rsa[kid] = rsa.generate_private_key(public_exponent=65537, key_size=2048)
        self.published.append(kid)

    def token(self, kid: str = "k1", alg: str = "RS256", key: Any = None, **overrides: Any) -> str:
        now = int(time.time())
        claims = {
            "iss": "https://as.example.com",  # no trailing slash: must still match
            "aud": ["other", AUDIENCE],
            "sub": "user-1",
            "exp": now + 600,
            "nbf": now - 10,
            "iat": now - 10,
            "scope": "tools:read tools:call",
            **overrides,
        }
        claims = {k: v for k, v in claims.items() if v is not None}
        if kid not in self.rsa and not alg.startswith("ES"):  # an unpublished key
            self.rsa[kid] = rsa.generate_private_key(public_exponent=65537, key_size=2048)
        signer = key or (self.ec if alg.startswith("ES") else self.rsa[kid])
        return jwt.encode(claims, signer, algorithm=alg, headers={"kid": kid})


class Clock:
    def __init__(self) -> None:
        self.now = 5000.0

    def __call__(self) -> float:
        return self.now


OAUTH = auth(
    type="oauth2",
    authorizationServerUri="{{AS_URI}}",
    resource=AUDIENCE,
    scopes=["tools:read", "tools:call"],
)
OAUTH_BINDS = {"AS_URI": ISSUER}


def oauth_app(
    server: AuthorizationServer, clock: Clock | None = None, spec: Authentication = OAUTH
) -> Starlette:
    return protected(
        build_inbound_auth(
            spec,
            OAUTH_BINDS,
            http_client_factory=server.client,
            resource_metadata_url=RESOURCE_METADATA,
            clock=clock or Clock(),
        )
    )


def unsigned(claims_token: str, header: dict[str, Any]) -> str:
    """The same claims under a forged header, for alg=none and HS256-with-public-key."""
    _, payload, _ = claims_token.split(".")
    head = base64.urlsafe_b64encode(json.dumps(header).encode()).rstrip(b"=").decode()
    return f"{head}.{payload}."


def hs256_with_public_key(server: AuthorizationServer, token: str) -> str:
    pem = (
        server.rsa["k1"]
        .public_key()
        .public_bytes(serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo)
    )
    head_payload = unsigned(token, {"alg": "HS256", "kid": "k1"})[:-1]
    signature = hmac.new(pem, head_payload.encode(), hashlib.sha256).digest()
    return head_payload + "." + base64.urlsafe_b64encode(signature).rstrip(b"=").decode()


async def test_oauth2_accepts_valid_rs_and_es_tokens() -> None:
    server = AuthorizationServer()
    app = oauth_app(server)
    for token in (
        server.token(),
        server.token(kid="ec1", alg="ES256"),
        server.token(alg="PS256"),
        server.token(scope=None, scp=["tools:read", "tools:call"]),
    ):
        response = await call(app, {"Authorization": f"Bearer {token}"})
        assert response.status_code == 200, response.text
    assert server.jwks_fetches == 1  # cached


async def test_oauth2_missing_token_gets_bare_challenge() -> None:
    response = await call(oauth_app(AuthorizationServer()))
    assert_problem(response, 401)
    assert response.headers["www-authenticate"] == (
        f'Bearer resource_metadata="{RESOURCE_METADATA}"'
    )


@pytest.mark.parametrize(
    ("make", "reason"),
    [
        (lambda s: s.token(exp=int(time.time()) - 120), "Token expired"),
        (lambda s: s.token(nbf=int(time.time()) + 600), "Token not yet valid"),
        (lambda s: s.token(iss="https://evil.example.com"), "Invalid issuer"),
        (lambda s: s.token(aud="https://other.example.com"), "Invalid audience"),
        (lambda s: s.token(aud=None), "Invalid audience"),
        (
            lambda s: s.token(key=rsa.generate_private_key(public_exponent=65537, key_size=2048)),
            "Signature verification failed",
        ),
        (lambda s: s.token(kid="unknown"), "Signature verification failed"),
        (lambda s: unsigned(s.token(), {"alg": "none", "kid": "k1"}), "Token validation failed"),
        (lambda s: hs256_with_public_key(s, s.token()), "Token validation failed"),
        (lambda s: s.token(exp=None), "Token validation failed"),
        (lambda s: "not-a-jwt", "Token validation failed"),
    ],
    ids=[
        "expired",
        "not-yet-valid",
        "issuer",
        "audience",
        "no-audience",
        "signature",
        "unknown-kid",
        "alg-none",
        "hs256-confusion",
        "no-exp",
        "garbage",
    ],
)
async def test_oauth2_rejects_invalid_tokens(make: Any, reason: str) -> None:
    server = AuthorizationServer()
    token = make(server)
    response = await call(oauth_app(server), {"Authorization": f"Bearer {token}"})
    assert_problem(response, 401, token)
    assert response.json()["detail"] == reason
    assert response.headers["www-authenticate"] == (
        f'Bearer error="invalid_token", error_description="{reason}", '
        f'resource_metadata="{RESOURCE_METADATA}"'
    )


async def test_oauth2_missing_scope_is_403() -> None:
    server = AuthorizationServer()
    token = server.token(scope="tools:read")
    response = await call(oauth_app(server), {"Authorization": f"Bearer {token}"})
    assert_problem(response, 403, token)
    assert response.headers["www-authenticate"] == (
        'Bearer error="insufficient_scope", '
        "error_description=\"Required scope 'tools:call' not present in token\", "
        'scope="tools:read tools:call", '
        f'resource_metadata="{RESOURCE_METADATA}"'
    )


async def test_oauth2_audience_wins_over_resource() -> None:
    server = AuthorizationServer()
    spec = OAUTH.model_copy(update={"audience": "api://naftiko"})
    app = oauth_app(server, spec=spec)
    rejected = await call(app, {"Authorization": f"Bearer {server.token()}"})
    assert rejected.json()["detail"] == "Invalid audience"
    accepted = await call(app, {"Authorization": f"Bearer {server.token(aud='api://naftiko')}"})
    assert accepted.status_code == 200


async def test_oauth2_discovery_falls_back_to_openid_configuration() -> None:
    server = AuthorizationServer(oidc_only=True)
    response = await call(oauth_app(server), {"Authorization": f"Bearer {server.token()}"})
    assert response.status_code == 200


async def test_oauth2_kid_rotation_refreshes_at_most_every_30_seconds() -> None:
    server = AuthorizationServer()
    clock = Clock()
    app = oauth_app(server, clock)
    assert (await call(app, {"Authorization": f"Bearer {server.token()}"})).status_code == 200
    assert server.jwks_fetches == 1

    server.rotate("k2")
    fresh = server.token(kid="k2")
    clock.now += 10  # too soon after the last fetch: the unknown kid stays unknown
    rejected = await call(app, {"Authorization": f"Bearer {fresh}"})
    assert rejected.json()["detail"] == "Signature verification failed"
    assert server.jwks_fetches == 1

    clock.now += 21
    assert (await call(app, {"Authorization": f"Bearer {fresh}"})).status_code == 200
    assert server.jwks_fetches == 2
    for _ in range(3):  # unknown kids do not hammer the authorization server
        await call(app, {"Authorization": f"Bearer {server.token(kid='k9')}"})
    assert server.jwks_fetches == 2


async def test_oauth2_jwks_expires_after_5_minutes_and_outage_is_503() -> None:
    server = AuthorizationServer()
    clock = Clock()
    app = oauth_app(server, clock)
    token = server.token()
    assert (await call(app, {"Authorization": f"Bearer {token}"})).status_code == 200
    clock.now += 299
    assert (await call(app, {"Authorization": f"Bearer {token}"})).status_code == 200
    assert server.jwks_fetches == 1
    clock.now += 1
    server.up = False
    assert_problem(await call(app, {"Authorization": f"Bearer {token}"}), 503, token)
    server.up = True
    clock.now += 30  # the next attempt after a failed one waits JWKS_MIN_REFRESH
    assert (await call(app, {"Authorization": f"Bearer {token}"})).status_code == 200
    assert server.jwks_fetches == 2


async def test_oauth2_outage_does_not_cause_a_fetch_per_request() -> None:
    """Issue 15: stale keys and a down authorization server: one attempt per 30 seconds."""
    server = AuthorizationServer()
    clock = Clock()
    app = oauth_app(server, clock)
    token = server.token()
    assert (await call(app, {"Authorization": f"Bearer {token}"})).status_code == 200
    server.up = False
    clock.now += 300  # the keys are stale now
    for i in range(20):
        headers = {"Authorization": f"Bearer {server.token(kid=f'random-{i}')}"}
        assert_problem(await call(app, headers), 503)
        assert_problem(await call(app, {"Authorization": f"Bearer {token}"}), 503, token)
    assert server.attempts == 2
    clock.now += 29
    assert_problem(await call(app, {"Authorization": f"Bearer {token}"}), 503, token)
    assert server.attempts == 2
    clock.now += 1
    assert_problem(await call(app, {"Authorization": f"Bearer {token}"}), 503, token)
    assert server.attempts == 3
    server.up = True
    clock.now += 30
    assert (await call(app, {"Authorization": f"Bearer {token}"})).status_code == 200
    assert server.attempts == 4


async def test_oauth2_down_from_the_start_and_random_kids_are_rate_limited() -> None:
    server = AuthorizationServer()
    server.up = False
    clock = Clock()
    app = oauth_app(server, clock)
    for i in range(20):
        headers = {"Authorization": f"Bearer {server.token(kid=f'random-{i}')}"}
        assert_problem(await call(app, headers), 503)
    assert server.attempts == 1
    server.up = True
    clock.now += 30
    assert (await call(app, {"Authorization": f"Bearer {server.token()}"})).status_code == 200
    # Keys fresh, the server down again: random kids still cost one attempt per 30 s.
    server.up = False
    for i in range(20):
        headers = {"Authorization": f"Bearer {server.token(kid=f'other-{i}')}"}
        assert_problem(await call(app, headers), 401)
        clock.now += 1
    assert server.attempts == 2  # the first refetch waited 30 s since the successful one
    assert (await call(app, {"Authorization": f"Bearer {server.token()}"})).status_code == 200


async def test_oauth2_key_client_ignores_proxy_environment(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Issue 15: the JWKS client, like the upstream client, never uses an env proxy."""
    server = AuthorizationServer()
    proxied: list[str] = []

    async def proxy(scope: Any, receive: Any, send: Any) -> None:
        if scope["type"] == "http":
            proxied.append(scope["path"])
            await Response(status_code=502)(scope, receive, send)

    async with serve_asgi(server.app) as issuer, serve_asgi(proxy) as proxy_url:
        for name in ("NO_PROXY", "no_proxy"):
            monkeypatch.delenv(name, raising=False)
        for name in ("HTTP_PROXY", "HTTPS_PROXY", "ALL_PROXY", "http_proxy", "all_proxy"):
            monkeypatch.setenv(name, proxy_url)
        guard = build_inbound_auth(OAUTH, {"AS_URI": issuer})
        app = protected(guard)
        # The token's issuer must be this server's; its metadata points the JWKS at itself.
        server.issuer = issuer
        token = server.token(iss=issuer)
        response = await call(app, {"Authorization": f"Bearer {token}"})
    assert proxied == []
    assert response.status_code == 200, response.text


# --------------------------------------------------------------------------- MCP metadata


def test_protected_resource_metadata() -> None:
    spec = OAUTH
    assert protected_resource_metadata(spec, OAUTH_BINDS) == {
        "resource": AUDIENCE,
        "authorization_servers": [ISSUER],
        "scopes_supported": ["tools:read", "tools:call"],
        "bearer_methods_supported": ["header"],
    }
    assert protected_resource_metadata_path(spec) == "/.well-known/oauth-protected-resource/mcp"
    assert protected_resource_metadata_url(spec) == RESOURCE_METADATA
    root = spec.model_copy(update={"resource": "https://mcp.example.com/", "scopes": ()})
    assert protected_resource_metadata_path(root) == "/.well-known/oauth-protected-resource"
    assert "scopes_supported" not in protected_resource_metadata(root, OAUTH_BINDS)
    with pytest.raises(InboundAuthConfigError):
        protected_resource_metadata(spec, {})
