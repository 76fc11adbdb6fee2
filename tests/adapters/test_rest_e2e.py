"""REST adapter end to end: real engine, real uvicorn, real fake upstreams on loopback.

Two capabilities: the published TikTok Login Kit one (against the fake TikTok OAuth API)
and tests/adapters/capabilities/rest-adapter-test.yaml (path, query, header and body
inputs, ``forward``, one adapter per inbound authentication kind) against a small echo
upstream defined here. A schemathesis run checks the served OpenAPI document against
what the adapter actually answers. Every test runs twice, from the alpha2 documents and
from their beta4 twins made by ``naftiko convert``, with the same expected answers.
"""

from __future__ import annotations

import json
import time
from collections.abc import AsyncIterator, Callable, Iterator
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import jwt
import pytest
from cryptography.hazmat.primitives.asymmetric import rsa
from hypothesis import HealthCheck, given, settings
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from fakes import ALL_METHODS
from fakes.tiktok import DEFAULT_CLIENT_KEY, DEFAULT_CLIENT_SECRET, FakeTikTok
from naftiko.adapters.exposes import compile_capability
from naftiko.adapters.http.settings import AdapterSettings
from naftiko.adapters.rest.app import OPENAPI_PATH, build_rest_app
from naftiko.adapters.rest.plan import RestAdapterPlan
from naftiko.engine.invoke import Engine
from naftiko.engine.types import PROBLEM_MEDIA_TYPE
from naftiko.spec.loader import load_capability
from naftiko.upstream.settings import UpstreamSettings
from support.servers import BackgroundServer, LiveFake, ServerThread, closed_port, serve_asgi
from support.twins import twin_forms, unchanged

TEST_CAPABILITY = Path(__file__).parent / "capabilities" / "rest-adapter-test.yaml"
TIKTOK_NS = "tiktok-login-kit-oauth"
TIKTOK_REST = "tiktok-login-kit-oauth-rest"
TIKTOK_ENV = {"TIKTOK_FOR_DEVELOPERS_API_KEY": "unused-by-the-capability"}
CLIENT_TIMEOUT = httpx.Timeout(20.0)  # a guard against hangs, not a speed expectation


# The document served for the one a test names: the alpha2 original or its beta4 twin.
as_served: Callable[[Path], Path] = unchanged
document_form = twin_forms(__name__)


@asynccontextmanager
async def serve_capability(
    path: Path,
    adapter: str,
    *,
    env: dict[str, str],
    engine_settings: UpstreamSettings,
    adapter_settings: AdapterSettings | None = None,
) -> AsyncIterator[httpx.AsyncClient]:
    """Load, compile and serve one REST adapter of ``path``; yield a client bound to it."""
    loaded = load_capability(as_served(path), env=env)
    compiled = compile_capability(loaded, engine_settings)
    plan = next(
        a for a in compiled.adapters if isinstance(a, RestAdapterPlan) and a.namespace == adapter
    )
    engine = Engine(compiled, engine_settings)
    app = build_rest_app(
        engine, plan, adapter_settings, bindings=loaded.bindings, info=loaded.document.info
    )
    async with (
        engine,
        serve_asgi(app) as url,
        httpx.AsyncClient(base_url=url, timeout=CLIENT_TIMEOUT) as client,
    ):
        yield client


PUBLISHED_TIKTOK = Path(__file__).parents[2] / "capabilities" / "tiktok-login-kit-oauth.yaml"


def _tiktok(base_uri: str, **engine: Any) -> Any:
    """The published TikTok capability, unchanged, with its upstream moved to ``base_uri``."""
    settings = UpstreamSettings(base_uri_overrides={TIKTOK_NS: base_uri}, **engine)
    return serve_capability(PUBLISHED_TIKTOK, TIKTOK_REST, env=TIKTOK_ENV, engine_settings=settings)


# --------------------------------------------------------------------------- TikTok


async def test_tiktok_published_form_body_is_415_json_reaches_the_upstream(
    fake_tiktok: LiveFake[FakeTikTok],
) -> None:
    """The published document declares its bodies JSON ("Request body (JSON)"), not
    forms: a form post is what a cross-site page sends, refused before the upstream."""
    fake = fake_tiktok.state
    fake.accept_json = True
    code = fake.issue_code()
    exchange = {
        "client_key": DEFAULT_CLIENT_KEY,
        "client_secret": DEFAULT_CLIENT_SECRET,
        "code": code,
        "grant_type": "authorization_code",
        "redirect_uri": "https://app.example.com/auth/tiktok/callback",
    }
    async with _tiktok(fake_tiktok.url) as client:
        as_form = await client.post("/v1/v2/oauth/token/", data=exchange)
        assert as_form.status_code == 415
        assert fake.requests_to("/v2/oauth/token/") == []
        response = await client.post("/v1/v2/oauth/token/", json=exchange)
    assert response.status_code == 200, response.text
    body = response.json()
    assert fake.access_token_valid(body["access_token"])
    assert set(body) >= {"access_token", "refresh_token", "open_id", "expires_in", "scope"}
    (upstream,) = fake.requests_to("/v2/oauth/token/")
    assert upstream.method == "POST"
    assert upstream.json is not None and upstream.json["code"] == code  # `*` and `!` intact


async def test_tiktok_error_keeps_status_and_body(fake_tiktok: LiveFake[FakeTikTok]) -> None:
    fake = fake_tiktok.state
    fake.accept_json = True
    async with _tiktok(fake_tiktok.url) as client:
        response = await client.post(
            "/v1/v2/oauth/token",
            json={"client_key": DEFAULT_CLIENT_KEY, "client_secret": "wrong", "code": "c"},
        )
    assert response.status_code == 401
    assert response.headers["content-type"] == "application/json"
    assert response.json() == {
        "error": "invalid_client",
        "error_description": "Client key or client secret is invalid.",
        "log_id": fake.last_log_id,
    }


async def test_tiktok_json_body_reaches_revoke_and_refresh_paths(
    fake_tiktok: LiveFake[FakeTikTok],
) -> None:
    fake = fake_tiktok.state
    fake.accept_json = True
    fake.refresh_path_alias = True
    tokens = fake.issue_tokens()
    credentials = {"client_key": DEFAULT_CLIENT_KEY, "client_secret": DEFAULT_CLIENT_SECRET}
    async with _tiktok(fake_tiktok.url) as client:
        refreshed = await client.post(
            "/v1/v2/oauth/token/refresh/",
            json={
                **credentials,
                "grant_type": "refresh_token",
                "refresh_token": tokens["refresh_token"],
            },
        )
        assert refreshed.status_code == 200, refreshed.text
        assert fake.access_token_valid(refreshed.json()["access_token"])
        revoked = await client.post(
            "/v1/v2/oauth/revoke", json={**credentials, "token": tokens["access_token"]}
        )
    assert revoked.status_code == 200
    assert revoked.json() == {}
    assert [(r.method, r.path) for r in fake.requests] == [
        ("POST", "/v2/oauth/token/refresh/"),
        ("POST", "/v2/oauth/revoke/"),
    ]
    assert fake.requests[1].json == {**credentials, "token": tokens["access_token"]}
    assert tokens["access_token"] in fake.revoked_tokens


async def test_tiktok_refresh_path_404_passes_through_unchanged(
    fake_tiktok: LiveFake[FakeTikTok],
) -> None:
    async with _tiktok(fake_tiktok.url) as client:
        response = await client.post("/v1/v2/oauth/token/refresh", json={"x": "y"})
    assert response.status_code == 404  # the real host has no such path
    assert response.content == b"Not Found"
    assert response.headers["content-type"].startswith("text/plain")


async def test_tiktok_unreachable_upstream_is_502() -> None:
    async with _tiktok(f"http://127.0.0.1:{closed_port()}") as client:
        response = await client.post("/v1/v2/oauth/token", json={"code": "c"})
    assert response.status_code == 502
    assert response.headers["content-type"] == PROBLEM_MEDIA_TYPE
    assert response.json()["type"].endswith("/unreachable")


async def test_tiktok_hanging_upstream_is_504(fake_tiktok: LiveFake[FakeTikTok]) -> None:
    fake_tiktok.state.delay_s = 60.0
    async with _tiktok(fake_tiktok.url, read_timeout_s=0.5) as client:
        response = await client.post("/v1/v2/oauth/token", json={"code": "c"})
    assert response.status_code == 504
    assert response.json()["type"].endswith("/timeout")


async def test_tiktok_adapter_http_edges(fake_tiktok: LiveFake[FakeTikTok]) -> None:
    async with _tiktok(fake_tiktok.url) as client:
        head = await client.head("/v1/v2/oauth/token")
        not_found = await client.post("/v1/v2/oauth/nope", json={})
        malformed = await client.post(
            "/v1/v2/oauth/token", content=b"{oops", headers={"content-type": "application/json"}
        )
        too_large = await client.post(
            "/v1/v2/oauth/token",
            content=b"x" * (1024 * 1024 + 1),
            headers={"content-type": "application/octet-stream"},
        )
        echoed = await client.post(
            "/v1/v2/oauth/token", json={}, headers={"X-Request-Id": "trace-42"}
        )
    assert head.status_code == 405  # POST-only resource
    assert head.headers["allow"] == "POST"
    assert head.content == b""
    assert not_found.status_code == 404
    assert malformed.status_code == 400
    assert malformed.headers["content-type"] == PROBLEM_MEDIA_TYPE
    assert too_large.status_code == 413
    assert echoed.status_code == 400  # the fake refuses JSON: TikTok's own error, kept
    assert echoed.headers["x-request-id"] == "trace-42"
    assert len(fake_tiktok.state.requests) == 1  # only the last request reached the upstream
    for response in (head, not_found, malformed, too_large):
        assert response.headers["x-request-id"]


# --------------------------------------------------------------------------- echo upstream


@dataclass
class Echo:
    """Echoes requests as JSON; ``/status/{code}`` answers a 4xx with a JSON error body."""

    requests: list[dict[str, Any]] = field(default_factory=list)

    async def handle(self, request: Request) -> Response:
        body = await request.body()
        seen = {
            "method": request.method,
            "path": request.url.path,
            "query": request.url.query,
            "headers": {k.lower(): v for k, v in request.headers.items()},
            "body": body.decode("utf-8", "replace"),
        }
        self.requests.append(seen)
        if request.url.path.startswith("/status/"):
            code = request.url.path.rsplit("/", 1)[1]
            status = int(code) if code.isdigit() and 400 <= int(code) <= 499 else 404
            return JSONResponse({"error": "teapot", "status": status}, status_code=status)
        return JSONResponse(seen)

    @property
    def app(self) -> Starlette:
        return Starlette(routes=[Route("/{path:path}", self.handle, methods=ALL_METHODS)])


@pytest.fixture
def echo() -> Iterator[LiveFake[Echo]]:
    state = Echo()
    with ServerThread(state.app) as server:
        yield LiveFake(server.url, state)


# --------------------------------------------------------------------------- auth server


@dataclass
class AuthServer:
    """A minimal OAuth2 authorization server: metadata and a JWKS, tokens minted locally."""

    key: rsa.RSAPrivateKey = field(
        default_factory=lambda: rsa.generate_private_key(public_exponent=65537, key_size=2048)
    )
    issuer: str = ""

    def token(self, *, scope: str = "items.read", audience: str = "https://api.example.test"):
        now = int(time.time())
        claims = {
            "iss": self.issuer,
            "aud": audience,
            "sub": "u1",
            "scope": scope,
            "iat": now,
            "exp": now + 300,
        }
        return jwt.encode(claims, self.key, algorithm="RS256", headers={"kid": "k1"})

    @property
    def app(self) -> Starlette:
        jwk = json.loads(jwt.algorithms.RSAAlgorithm.to_jwk(self.key.public_key()))
        jwk.update({"kid": "k1", "use": "sig", "alg": "RS256"})

        async def metadata(request: Request) -> Response:
            return JSONResponse({"issuer": self.issuer, "jwks_uri": f"{self.issuer}/jwks"})

        async def jwks(request: Request) -> Response:
            return JSONResponse({"keys": [jwk]})

        return Starlette(
            routes=[
                Route("/.well-known/oauth-authorization-server", metadata),
                Route("/jwks", jwks),
            ]
        )


@pytest.fixture
def auth_server() -> Iterator[AuthServer]:
    state = AuthServer()
    with ServerThread(state.app) as server:
        state.issuer = server.url
        yield state


AUTH_ENV = {
    "REST_TEST_TOKEN": "bearer-secret-1",
    "REST_TEST_API_KEY": "api-key-secret-2",
    "REST_TEST_USER": "alice",
    "REST_TEST_PASSWORD": "password-secret-3",
}


def _test_capability(
    echo_url: str, adapter: str = "open", *, issuer: str = "http://127.0.0.1:1", **engine: Any
) -> Any:
    return serve_capability(
        TEST_CAPABILITY,
        adapter,
        env={**AUTH_ENV, "REST_TEST_ISSUER": issuer},
        engine_settings=UpstreamSettings(base_uri_overrides={"echo": echo_url}, **engine),
    )


# --------------------------------------------------------------------------- test capability


async def test_path_query_and_header_reach_the_upstream(echo: LiveFake[Echo]) -> None:
    async with _test_capability(echo.url) as client:
        response = await client.get("/items/7/?verbose=true", headers={"X-Tenant": "acme"})
    assert response.status_code == 200, response.text
    (seen,) = echo.state.requests
    assert (seen["method"], seen["path"], seen["query"]) == ("GET", "/items/7", "verbose=true")
    assert seen["headers"]["x-tenant"] == "acme"
    assert response.json()["path"] == "/items/7"


async def test_resources_sharing_a_path_are_all_served(echo: LiveFake[Echo]) -> None:
    async with _test_capability(echo.url) as client:
        listed = await client.get("/notes")
        posted = await client.post("/notes", json={"text": "hi"})
        refused = await client.delete("/notes")
        openapi = (await client.get(OPENAPI_PATH)).json()
    assert listed.status_code == posted.status_code == 200
    assert [(r["method"], r["path"]) for r in echo.state.requests] == [
        ("GET", "/notes"),
        ("POST", "/notes"),
    ]
    assert refused.status_code == 405
    assert refused.headers["allow"] == "GET, HEAD, POST"
    assert set(openapi["paths"]["/notes"]) >= {"get", "post"}  # as served


async def test_a_get_takes_inputs_for_upstream_body_fields_from_its_query(
    echo: LiveFake[Echo],
) -> None:
    async with _test_capability(echo.url) as client:
        found = await client.get("/notes/search", params={"text": "hi there"})
        missing = await client.get("/notes/search")
        openapi = (await client.get(OPENAPI_PATH)).json()
    assert found.status_code == 200, found.text
    (seen,) = echo.state.requests  # the 400 never reached the upstream
    assert (seen["method"], seen["path"]) == ("POST", "/notes/search")
    assert json.loads(seen["body"]) == {"text": "hi there"}
    assert (missing.status_code, missing.json()["parameter"]) == (400, "text")
    operation = openapi["paths"]["/notes/search"]["get"]
    assert [(p["name"], p["in"], p["required"]) for p in operation["parameters"]] == [
        ("text", "query", True)
    ]
    assert "requestBody" not in operation


async def test_invalid_inputs_are_400_before_the_upstream(echo: LiveFake[Echo]) -> None:
    async with _test_capability(echo.url) as client:
        bad_path = await client.get("/items/seven")
        bad_query = await client.get("/items/7?verbose=maybe")
        missing = await client.put("/items/7", json={"count": 2})
        wrong_type = await client.put("/items/7", json={"name": "n", "count": "two"})
        text = await client.put("/items/7", content=b"n", headers={"content-type": "text/plain"})
    assert (bad_path.status_code, bad_path.json()["parameter"]) == (400, "id")
    assert (bad_query.status_code, bad_query.json()["parameter"]) == (400, "verbose")
    assert (missing.status_code, missing.json().get("parameter")) == (400, "name")
    assert wrong_type.status_code == 400
    assert text.status_code == 415
    assert echo.state.requests == []


async def test_json_bodies_and_declared_form_bodies(echo: LiveFake[Echo]) -> None:
    async with _test_capability(echo.url) as client:
        put = await client.put("/items/7", json={"name": "anchor", "count": 2})
        undeclared = await client.post("/notes", data={"text": "hello"})
        form = await client.post("/notes/form", data={"text": "hello", "tag": ["a", "b"]})
    assert put.status_code == 200, put.text
    assert json.loads(echo.state.requests[0]["body"])["name"] == "anchor"
    assert undeclared.status_code == 415  # /notes sends its body on as JSON
    assert form.status_code == 200, form.text
    sent = echo.state.requests[1]
    assert sent["path"] == "/notes/form"
    assert sent["headers"]["content-type"].startswith("application/x-www-form-urlencoded")
    assert sent["body"] == "text=hello&tag=a&tag=b"


async def test_upstream_error_status_and_body_pass_through(echo: LiveFake[Echo]) -> None:
    async with _test_capability(echo.url) as client:
        response = await client.get("/failures/418")
    assert response.status_code == 418
    assert response.json() == {"error": "teapot", "status": 418}


async def test_forward_keeps_method_query_body_and_trusted_headers(echo: LiveFake[Echo]) -> None:
    async with _test_capability(echo.url) as client:
        response = await client.patch(
            "/proxy/deep/er/path/?x=1&x=2",
            content=b"\x00raw",
            headers={
                "content-type": "application/x-custom",
                "X-Trace": "t-1",
                "X-Untrusted": "no",
                "Authorization": "Bearer caller-token",
            },
        )
    assert response.status_code == 200, response.text
    (seen,) = echo.state.requests
    assert (seen["method"], seen["path"], seen["query"]) == ("PATCH", "/deep/er/path/", "x=1&x=2")
    assert seen["headers"]["x-trace"] == "t-1"
    assert "x-untrusted" not in seen["headers"]
    assert "authorization" not in seen["headers"]
    assert seen["headers"]["content-type"] == "application/x-custom"
    assert seen["body"] == "\x00raw"


async def test_test_capability_http_edges(echo: LiveFake[Echo]) -> None:
    async with _test_capability(echo.url) as client:
        head = await client.head("/items/7")
        not_allowed = await client.delete("/items/7")
        not_found = await client.get("/elsewhere")
        malformed = await client.put(
            "/items/7", content=b'{"name":', headers={"content-type": "application/json"}
        )
        too_large = await client.put("/items/7", json={"name": "x" * (1024 * 1024)})
        request_id = await client.get("/items/7", headers={"X-Request-Id": "rid-9"})
    assert head.status_code == 200
    assert head.content == b""
    assert int(head.headers["content-length"]) > 0
    assert not_allowed.status_code == 405
    assert not_allowed.headers["allow"] == "GET, HEAD, PUT"
    assert not_found.status_code == 404
    assert malformed.status_code == 400
    assert too_large.status_code == 413
    assert request_id.headers["x-request-id"] == "rid-9"
    assert [r["method"] for r in echo.state.requests] == ["GET", "GET"]  # HEAD ran the GET


@pytest.mark.parametrize(
    ("adapter", "good", "bad"),
    [
        (
            "bearer",
            {"headers": {"Authorization": "Bearer bearer-secret-1"}},
            {"headers": {"Authorization": "Bearer nope"}},
        ),
        (
            "apikey-header",
            {"headers": {"X-API-Key": "api-key-secret-2"}},
            {"headers": {"X-API-Key": "nope"}},
        ),
        (
            "apikey-query",
            {"params": {"api_key": "api-key-secret-2"}},
            {"params": {"api_key": "nope"}},
        ),
        ("basic", {"auth": ("alice", "password-secret-3")}, {"auth": ("alice", "nope")}),
    ],
)
async def test_inbound_auth_of_each_static_kind(
    echo: LiveFake[Echo], adapter: str, good: dict[str, Any], bad: dict[str, Any]
) -> None:
    async with _test_capability(echo.url, adapter) as client:
        missing = await client.get("/items/1")
        wrong = await client.get("/items/1", **bad)
        allowed = await client.get("/items/1", **good)
        spec = await client.get(OPENAPI_PATH)
        spec_allowed = await client.get(OPENAPI_PATH, **good)
    for refused in (missing, wrong, spec):
        assert refused.status_code == 401
        assert refused.headers["x-request-id"]
        assert "secret" not in refused.text
    assert allowed.status_code == 200
    assert spec_allowed.status_code == 200
    assert len(echo.state.requests) == 1


async def test_inbound_oauth2_jwt(echo: LiveFake[Echo], auth_server: AuthServer) -> None:
    async with _test_capability(echo.url, "oauth2", issuer=auth_server.issuer) as client:
        missing = await client.get("/items/1")
        no_scope = await client.get(
            "/items/1", headers={"Authorization": f"Bearer {auth_server.token(scope='other')}"}
        )
        wrong_audience = await client.get(
            "/items/1",
            headers={"Authorization": f"Bearer {auth_server.token(audience='https://x')}"},
        )
        allowed = await client.get(
            "/items/1", headers={"Authorization": f"Bearer {auth_server.token()}"}
        )
    assert missing.status_code == 401
    assert no_scope.status_code == 403
    assert wrong_audience.status_code == 401
    assert allowed.status_code == 200, allowed.text


async def test_unresolvable_inbound_credential_refuses_to_start(echo: LiveFake[Echo]) -> None:
    from naftiko.adapters.http.auth import InboundAuthConfigError

    loaded = load_capability(as_served(TEST_CAPABILITY), env={}, require_binds=False)
    compiled = compile_capability(loaded, UpstreamSettings())
    plan = next(a for a in compiled.adapters if a.namespace == "bearer")
    assert isinstance(plan, RestAdapterPlan)
    with pytest.raises(InboundAuthConfigError):
        build_rest_app(Engine(compiled), plan, bindings=loaded.bindings)


# --------------------------------------------------------------------------- schemathesis


class _ServedCapability(BackgroundServer):
    """The test capability's open adapter, engine and all, in a thread of its own: the
    schemathesis run below is synchronous and would otherwise block the server's loop."""

    def __init__(self, echo_url: str) -> None:
        @asynccontextmanager
        async def factory() -> AsyncIterator[str]:
            async with _test_capability(echo_url) as client:
                yield str(client.base_url).rstrip("/")

        super().__init__(factory)


def test_schemathesis_finds_no_server_error_or_contract_violation(echo: LiveFake[Echo]) -> None:
    import schemathesis
    from schemathesis.checks import positive_data_acceptance

    with _ServedCapability(echo.url) as served:
        schema = schemathesis.openapi.from_url(served.url + OPENAPI_PATH)
        operations = [result.ok() for result in schema.get_all_operations()]
        assert len(operations) >= 8
        for operation in operations:

            @given(case=operation.as_strategy())
            @settings(
                max_examples=50,
                deadline=None,
                database=None,
                suppress_health_check=list(HealthCheck),
            )
            def check(case: Any) -> None:
                # Every default check but positive_data_acceptance: this API passes the
                # upstream's 4xx through by design (GET /failures/{code}), which that
                # check reads as "valid data rejected". The document says so.
                case.call_and_validate(
                    base_url=served.url, excluded_checks=[positive_data_acceptance]
                )

            check()
    assert len(echo.state.requests) > 50  # the run reached the upstream, not only our 400s
