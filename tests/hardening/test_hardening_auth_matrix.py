"""Inbound authentication: every kind refuses every bad credential on every route.

One REST and one MCP adapter per kind (bearer, apikey header, apikey query, basic,
oauth2 JWT with a local JWKS) serve the same things in front of a recorder. Each bad
credential (missing, wrong, malformed, in the wrong place; for JWTs also expired,
wrong audience, wrong issuer, wrong key, ``alg: none``, HS256 with the public key) is
sent to every route and method, the OpenAPI document and the MCP endpoint included:
all 401, the presented credential never echoed, and the recorder sees nothing. A
positive control per adapter shows the refusals are not a misconfiguration.

A second walk sends every path (the RFC 9728 metadata paths included) x method x
encoding (queries, ``%xx``, ``//``, ``/./``, case, trailing slash, ``;params``) over a raw
socket: without a credential only GET/HEAD on the exact metadata path pass; with one,
MCP answers on ``/mcp``, ``/mcp/`` and ``/`` only and everything else is a 404 problem.
"""

from __future__ import annotations

import base64
import json
import socket
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import quote, unquote, urlsplit

import httpx
import jwt
import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa
from hardening_kit import (
    CAPABILITIES,
    MCP_HEADERS,
    CapabilityThread,
    RuntimeProcess,
    recorder_thread,
)
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from naftiko.upstream.settings import UpstreamSettings
from support.servers import ServerThread

AUTH_CAPABILITY = CAPABILITIES / "auth.yaml"
AUDIENCE = "https://api.hardening.test"
TOKEN = "hard-bearer-Zq81c"
API_KEY = "hard-apikey-Wm42x"
USER, PASSWORD = "hard-user", "hard-password-Kp03v"
KINDS = ("bearer", "apikey-header", "apikey-query", "basic", "oauth2")


def _key() -> rsa.RSAPrivateKey:
    return rsa.generate_private_key(public_exponent=65537, key_size=2048)


@dataclass
class AuthServer:
    """OAuth2 authorization server metadata and a JWKS; tokens are minted locally."""

    key: rsa.RSAPrivateKey = field(default_factory=_key)
    other_key: rsa.RSAPrivateKey = field(default_factory=_key)
    issuer: str = ""

    def token(self, **overrides: Any) -> str:
        now = int(time.time())
        claims: dict[str, Any] = {
            "iss": self.issuer,
            "aud": AUDIENCE,
            "sub": "u1",
            "scope": "items.read",
            "iat": now,
            "exp": now + 300,
        }
        key = overrides.pop("key", self.key)
        algorithm = overrides.pop("algorithm", "RS256")
        claims.update(overrides)
        claims = {k: v for k, v in claims.items() if v is not None}
        return jwt.encode(claims, key, algorithm=algorithm, headers={"kid": "k1"})

    def unsigned(self) -> str:
        header = {"alg": "none", "typ": "JWT", "kid": "k1"}
        claims = jwt.decode(self.token(), options={"verify_signature": False})

        def part(value: dict[str, Any]) -> str:
            return base64.urlsafe_b64encode(json.dumps(value).encode()).rstrip(b"=").decode()

        return f"{part(header)}.{part(claims)}."

    def hs256_with_public_key(self) -> str:
        """The classic algorithm confusion: HMAC keyed with the RSA public key."""
        public = self.key.public_key().public_bytes(
            serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
        )
        claims = jwt.decode(self.token(), options={"verify_signature": False})
        segments = [
            base64.urlsafe_b64encode(json.dumps(v).encode()).rstrip(b"=")
            for v in ({"alg": "HS256", "typ": "JWT", "kid": "k1"}, claims)
        ]
        import hashlib
        import hmac

        signing_input = b".".join(segments)
        signature = hmac.new(public, signing_input, hashlib.sha256).digest()
        return (signing_input + b"." + base64.urlsafe_b64encode(signature).rstrip(b"=")).decode()

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


@dataclass
class Matrix:
    rest: dict[str, str]
    mcp: dict[str, str]
    auth: AuthServer
    recorded: list[Any]


@pytest.fixture(scope="module")
def matrix() -> Iterator[Matrix]:
    auth = AuthServer()
    with ServerThread(auth.app) as issuer, recorder_thread() as (backend, recorder):
        auth.issuer = issuer.url
        env = {
            "HARD_AUTH_TOKEN": TOKEN,
            "HARD_AUTH_API_KEY": API_KEY,
            "HARD_AUTH_USER": USER,
            "HARD_AUTH_PASSWORD": PASSWORD,
            "HARD_AUTH_ISSUER": issuer.url,
        }
        settings = UpstreamSettings(base_uri_overrides={"backend": backend})
        with CapabilityThread(AUTH_CAPABILITY, env=env, engine_settings=settings) as served:
            rest = {k: served.served.rest[f"rest-{k}"] for k in KINDS}
            mcp = {k: served.served.mcp[f"mcp-{k}"] for k in KINDS}
            yield Matrix(rest, mcp, auth, recorder.requests)


def _basic(user: str, password: str) -> str:
    return "Basic " + base64.b64encode(f"{user}:{password}".encode()).decode()


def good(kind: str, auth: AuthServer) -> dict[str, Any]:
    """httpx keyword arguments carrying the right credential for ``kind``."""
    return {
        "bearer": {"headers": {"Authorization": f"Bearer {TOKEN}"}},
        "apikey-header": {"headers": {"X-API-Key": API_KEY}},
        "apikey-query": {"params": {"api_key": API_KEY}},
        "basic": {"headers": {"Authorization": _basic(USER, PASSWORD)}},
        "oauth2": {"headers": {"Authorization": f"Bearer {auth.token()}"}},
    }[kind]


def bad(kind: str, auth: AuthServer) -> dict[str, dict[str, Any]]:
    """Named bad credentials for ``kind``, as httpx keyword arguments."""
    missing: dict[str, Any] = {}
    common = {"missing": missing, "bare-scheme": {"headers": {"Authorization": "Bearer"}}}
    if kind == "bearer":
        return {
            **common,
            "wrong": {"headers": {"Authorization": "Bearer nope-Xq"}},
            "prefix": {"headers": {"Authorization": f"Bearer {TOKEN[:-1]}"}},
            "suffix": {"headers": {"Authorization": f"Bearer {TOKEN}x"}},
            "basic-scheme": {"headers": {"Authorization": f"Basic {TOKEN}"}},
            "in-query": {"params": {"access_token": TOKEN}},
        }
    if kind == "apikey-header":
        return {
            **common,
            "wrong": {"headers": {"X-API-Key": "nope-Xq"}},
            "empty": {"headers": {"X-API-Key": ""}},
            "in-query": {"params": {"X-API-Key": API_KEY}},
            "as-bearer": {"headers": {"Authorization": f"Bearer {API_KEY}"}},
        }
    if kind == "apikey-query":
        return {
            **common,
            "wrong": {"params": {"api_key": "nope-Xq"}},
            "empty": {"params": {"api_key": ""}},
            "in-header": {"headers": {"api_key": API_KEY}},
            "case": {"params": {"API_KEY": API_KEY}},
        }
    if kind == "basic":
        return {
            **common,
            "wrong-password": {"headers": {"Authorization": _basic(USER, "nope-Xq")}},
            "wrong-user": {"headers": {"Authorization": _basic("nope-Xq", PASSWORD)}},
            "no-colon": {"headers": {"Authorization": "Basic " + base64.b64encode(b"x").decode()}},
            "not-base64": {"headers": {"Authorization": "Basic !!!not-base64!!!"}},
            "swapped": {"headers": {"Authorization": _basic(PASSWORD, USER)}},
        }
    now = int(time.time())

    def bearer(token: str) -> dict[str, Any]:
        return {"headers": {"Authorization": f"Bearer {token}"}}

    return {
        **common,
        "garbage": bearer("not.a.jwt"),
        "expired": bearer(auth.token(exp=now - 3600, iat=now - 7200)),
        "wrong-audience": bearer(auth.token(aud="https://other.test")),
        "no-audience": bearer(auth.token(aud=None)),
        "wrong-issuer": bearer(auth.token(iss="https://evil.test")),
        "wrong-key": bearer(auth.token(key=auth.other_key)),
        "no-exp": bearer(auth.token(exp=None)),
        "not-yet-valid": bearer(auth.token(nbf=now + 3600)),
        "alg-none": bearer(auth.unsigned()),
        "hs256-public-key": bearer(auth.hs256_with_public_key()),
    }


REST_ROUTES = [
    ("GET", "/items/1"),
    ("HEAD", "/items/1"),
    ("PUT", "/items/1"),
    ("DELETE", "/items/1"),
    ("PATCH", "/items/1"),
    ("OPTIONS", "/items/1"),
    ("POST", "/items"),
    ("GET", "/items"),
    ("GET", "/proxy/x"),
    ("POST", "/proxy/x"),
    ("DELETE", "/proxy/a/b"),
    ("GET", "/nope"),
    ("GET", "/.well-known/openapi.json"),
    ("HEAD", "/.well-known/openapi.json"),
    ("GET", "/.well-known/openapi.json/"),
    ("POST", "/.well-known/openapi.json"),
    ("GET", "/"),
]
MCP_REQUESTS = [
    ("POST", "", {"jsonrpc": "2.0", "id": 1, "method": "tools/list", "params": {}}),
    (
        "POST",
        "",
        {
            "jsonrpc": "2.0",
            "id": 2,
            "method": "tools/call",
            "params": {"name": "get-item", "arguments": {"id": "1"}},
        },
    ),
    ("POST", "/", {"jsonrpc": "2.0", "id": 3, "method": "tools/list", "params": {}}),
    ("GET", "", None),
    ("DELETE", "", None),
]


def _merge(kwargs: dict[str, Any], extra_headers: dict[str, str]) -> dict[str, Any]:
    merged = dict(kwargs)
    merged["headers"] = {**extra_headers, **kwargs.get("headers", {})}
    return merged


def _assert_refused(response: httpx.Response, credential: dict[str, Any], what: str) -> None:
    assert response.status_code == 401, (what, response.status_code, response.text[:300])
    presented = [*credential.get("headers", {}).values(), *credential.get("params", {}).values()]
    for value in presented:
        secret = value.split(" ", 1)[-1]
        if len(secret) >= 6 and secret not in ("Bearer", "Basic"):
            assert secret not in response.text, what
            assert all(secret not in v for v in response.headers.values()), what


@pytest.mark.parametrize("kind", KINDS)
def test_rest_refuses_every_bad_credential_on_every_route(matrix: Matrix, kind: str) -> None:
    before = len(matrix.recorded)
    with httpx.Client(base_url=matrix.rest[kind], timeout=30.0) as client:
        for name, credential in bad(kind, matrix.auth).items():
            for method, path in REST_ROUTES:
                response = client.request(method, path, **credential)
                _assert_refused(response, credential, f"{kind}/{name} {method} {path}")
        assert len(matrix.recorded) == before, "a refused request reached the upstream"
        allowed = client.get("/items/1", **good(kind, matrix.auth))
        spec = client.get("/.well-known/openapi.json", **good(kind, matrix.auth))
    assert allowed.status_code == 200, allowed.text
    assert spec.status_code == 200 and spec.json()["openapi"].startswith("3.")
    assert len(matrix.recorded) == before + 1


@pytest.mark.parametrize("kind", KINDS)
def test_mcp_refuses_every_bad_credential_on_every_method(matrix: Matrix, kind: str) -> None:
    before = len(matrix.recorded)
    url = matrix.mcp[kind]
    with httpx.Client(timeout=30.0) as client:
        for name, credential in bad(kind, matrix.auth).items():
            for method, suffix, payload in MCP_REQUESTS:
                target = url.removesuffix("/mcp") + suffix if suffix else url
                kwargs = _merge(credential, MCP_HEADERS)
                response = client.request(method, target, json=payload, **kwargs)
                _assert_refused(response, credential, f"{kind}/{name} {method} {target}")
        assert len(matrix.recorded) == before, "a refused request reached the upstream"
        allowed = client.post(
            url,
            json=MCP_REQUESTS[1][2],
            **_merge(good(kind, matrix.auth), MCP_HEADERS),
        )
    assert allowed.status_code == 200, allowed.text
    assert allowed.json()["result"].get("isError") is not True, allowed.text
    assert len(matrix.recorded) == before + 1


def test_oauth2_missing_scope_is_403_everywhere(matrix: Matrix) -> None:
    before = len(matrix.recorded)
    token = matrix.auth.token(scope="other.scope")
    headers = {"Authorization": f"Bearer {token}"}
    with httpx.Client(base_url=matrix.rest["oauth2"], timeout=30.0) as client:
        for method, path in REST_ROUTES:
            assert client.request(method, path, headers=headers).status_code == 403, path
        response = client.post(
            matrix.mcp["oauth2"], json=MCP_REQUESTS[0][2], headers={**MCP_HEADERS, **headers}
        )
    assert response.status_code == 403
    assert len(matrix.recorded) == before


# --------------------------------------------------------------------------- paths x encodings
#
# Issue 15, item 1: the RFC 9728 metadata path was exempt from authentication for every
# method, and every path served MCP, so ``POST /.well-known/oauth-protected-resource/mcp``
# ran a tool without a token. The walk below sends requests exactly as written (a raw
# socket: httpx would normalise ``/./`` and friends) to every path, method and encoding.

METADATA_PATH = "/.well-known/oauth-protected-resource/mcp"
MCP_PATHS = frozenset({"/mcp", "/mcp/", "/"})
WALK_METHODS = ("GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS")
MCP_BASE_PATHS = (
    "/mcp",
    "/mcp/",
    "/",
    METADATA_PATH,
    "/.well-known/oauth-protected-resource",
    "/.well-known/oauth-authorization-server",
    "/mcp/x",
    "/mcpx",
    "/nope",
)
REST_BASE_PATHS = (
    "/items/1",
    "/items",
    "/proxy/x",
    "/.well-known/openapi.json",
    METADATA_PATH,
    "/",
    "/nope",
)
TOOL_CALL = json.dumps(MCP_REQUESTS[1][2]).encode()


def _encodings(path: str) -> list[tuple[str, str | None]]:
    """``(raw path, query)`` variants of ``path``: queries, ``%xx``, ``//``, case, slashes.

    A query of ``None`` sends no ``?``; ``""`` sends a bare one.
    """
    variants: list[tuple[str, str | None]] = [
        (path, None),
        (path, "x=1"),
        (path, ""),
        (path + ";x=1", None),
    ]
    letters = [i for i, c in enumerate(path) if c.isalnum()]
    if letters:
        i = letters[-1]
        for fmt in ("%{:02x}", "%{:02X}"):
            variants.append((path[:i] + fmt.format(ord(path[i])) + path[i + 1 :], None))
    slash = path.rfind("/")
    if slash > 0:
        variants.append((path[:slash] + "%2F" + path[slash + 1 :], None))
        variants.append((path[:slash] + "/" + path[slash:], None))
    variants += [
        ("/" + path, None),
        ("/." + path, None),
        (path.upper(), None),
        (path[:-1] if path.endswith("/") and path != "/" else path + "/", None),
    ]
    return variants


@dataclass(frozen=True)
class RawAnswer:
    status: int
    headers: dict[str, str]
    body: bytes


def _send_raw(
    base: str, method: str, target: str, headers: dict[str, str], body: bytes
) -> RawAnswer:
    """One HTTP/1.1 request with ``target`` exactly as given, on its own connection.

    The body is read to the end of the connection, except for an event stream (a GET
    that reached MCP opens one that stays open): its head is the answer.
    """
    parts = urlsplit(base)
    lines = [
        f"{method} {target} HTTP/1.1",
        f"Host: {parts.netloc}",
        "Connection: close",
        f"Content-Length: {len(body)}",
        *(f"{k}: {v}" for k, v in headers.items()),
    ]
    answer: RawAnswer | None = None
    with socket.create_connection((parts.hostname, parts.port), timeout=30.0) as sock:
        sock.sendall(("\r\n".join(lines) + "\r\n\r\n").encode("latin-1") + body)
        data = b""
        while chunk := sock.recv(65536):
            data += chunk
            if answer is None and b"\r\n\r\n" in data:
                answer = _parse_head(data)
                if answer.headers.get("content-type", "").startswith("text/event-stream"):
                    return answer
    return _parse_head(data)


def _parse_head(data: bytes) -> RawAnswer:
    head, _, rest = data.partition(b"\r\n\r\n")
    status_line, *header_lines = head.decode("latin-1").split("\r\n")
    fields = dict(line.split(":", 1) for line in header_lines)
    return RawAnswer(
        int(status_line.split(" ", 2)[1]),
        {k.strip().lower(): v.strip() for k, v in fields.items()},
        rest,
    )


def _walk(
    base: str, paths: tuple[str, ...], credential: dict[str, Any]
) -> Iterator[tuple[str, str, str, RawAnswer]]:
    """Every method x path x encoding with ``credential``: ``(method, target, path, answer)``.

    ``path`` is the decoded path the server sees (what routing and the exemption test).
    """
    headers = {**MCP_HEADERS, "Content-Type": "application/json", **credential.get("headers", {})}
    extra = "&".join(f"{k}={quote(v, safe='')}" for k, v in credential.get("params", {}).items())
    for path in paths:
        for raw, query in _encodings(path):
            joined = "&".join(q for q in (query, extra) if q)
            target = raw + ("?" + joined if joined or query is not None else "")
            decoded = unquote(raw)
            for method in WALK_METHODS:
                body = b"" if method in ("GET", "HEAD") else TOOL_CALL
                yield method, target, decoded, _send_raw(base, method, target, headers, body)


def _is_metadata_request(kind: str, method: str, decoded: str) -> bool:
    return kind == "oauth2" and method in ("GET", "HEAD") and decoded == METADATA_PATH


@pytest.mark.parametrize("kind", KINDS)
def test_mcp_without_credentials_every_path_method_and_encoding(matrix: Matrix, kind: str) -> None:
    """Only GET/HEAD on the exact metadata path pass without a credential."""
    before = len(matrix.recorded)
    base = matrix.mcp[kind].removesuffix("/mcp")
    for name in ("missing", "bare-scheme"):
        credential = bad(kind, matrix.auth)[name]
        for method, target, decoded, answer in _walk(base, MCP_BASE_PATHS, credential):
            what = f"{kind}/{name} {method} {target} -> {answer.status}"
            if _is_metadata_request(kind, method, decoded):
                assert answer.status == 200, what
                if method == "GET":
                    assert json.loads(answer.body)["resource"] == AUDIENCE + "/mcp", what
            else:
                assert answer.status == 401, what
    assert len(matrix.recorded) == before, "a request without a credential reached the upstream"


@pytest.mark.parametrize("kind", KINDS)
def test_mcp_answers_only_on_its_own_paths(matrix: Matrix, kind: str) -> None:
    """With a good credential, MCP runs on /mcp, /mcp/ and / only; anything else is 404."""
    before = len(matrix.recorded)
    base = matrix.mcp[kind].removesuffix("/mcp")
    tool_calls = 0
    for method, target, decoded, answer in _walk(base, MCP_BASE_PATHS, good(kind, matrix.auth)):
        what = f"{kind} {method} {target} -> {answer.status}"
        if decoded in MCP_PATHS:
            if method == "POST":
                tool_calls += 1
                assert answer.status == 200, what
            continue
        if _is_metadata_request(kind, method, decoded):
            assert answer.status == 200, what
            continue
        expected = 405 if kind == "oauth2" and decoded == METADATA_PATH else 404
        assert answer.status == expected, what
        if method != "HEAD":
            assert answer.headers["content-type"] == "application/problem+json", what
            assert json.loads(answer.body)["status"] == expected, what
        assert len(matrix.recorded) == before + tool_calls, f"{what}: reached the upstream"
    assert tool_calls > 0 and len(matrix.recorded) == before + tool_calls


@pytest.mark.parametrize("kind", KINDS)
def test_rest_without_credentials_every_path_method_and_encoding(matrix: Matrix, kind: str) -> None:
    before = len(matrix.recorded)
    base = matrix.rest[kind]
    for method, target, _, answer in _walk(base, REST_BASE_PATHS, {}):
        assert answer.status == 401, f"{kind} {method} {target} -> {answer.status}"
    assert len(matrix.recorded) == before, "a request without a credential reached the upstream"


def test_naftiko_run_metadata_path_does_not_reach_mcp() -> None:
    """The issue's reproduction against ``naftiko run`` itself: no token, no tool."""
    exploit = [
        "/.well-known/oauth-protected-resource/mcp",
        "/.well-known/oauth-protected-resource/mcp?x=1",
        "/.well-known/oauth-protected-resource/%6dcp",
        "/.well-known/oauth-protected-resource",
    ]
    with recorder_thread() as (backend, recorder):
        args = [str(AUTH_CAPABILITY), "--host", "127.0.0.1", "--base-uri", f"backend={backend}"]
        for kind in KINDS:
            args += ["--port", f"rest-{kind}=0", "--port", f"mcp-{kind}=0"]
        env = {
            "HARD_AUTH_TOKEN": TOKEN,
            "HARD_AUTH_API_KEY": API_KEY,
            "HARD_AUTH_USER": USER,
            "HARD_AUTH_PASSWORD": PASSWORD,
            "HARD_AUTH_ISSUER": "http://127.0.0.1:9",  # never reached: no token is sent
        }
        with RuntimeProcess(args, env) as run:
            base = run.wait_ready()["mcp-oauth2"].removesuffix("/mcp")
            headers = {**MCP_HEADERS, "Content-Type": "application/json"}
            for target in exploit:
                for method in ("POST", "PUT", "DELETE"):
                    answer = _send_raw(base, method, target, headers, TOOL_CALL)
                    assert answer.status == 401, (method, target, answer.status, answer.body)
            metadata = _send_raw(base, "GET", exploit[0], headers, b"")
        assert metadata.status == 200 and json.loads(metadata.body)["resource"]
        assert recorder.requests == [], "the gateway's upstream was called without a token"


# --------------------------------------------------------------------------- gateway layout
#
# Issue 17: the same adapters behind one ``--gateway`` port, under ``/NS``, next to the
# open and protected adapters of gateway-mixed.yaml. Every path of a protected adapter is
# behind its own check: its operations, its OpenAPI document, the gateway's ``/NS/docs``
# page, ``/NS/mcp``, skill paths; the aggregate ``/mcp`` lists and serves a protected
# adapter's tools, resources and prompts only to callers its check passes; the catalogue
# and ``/status`` name it without its contents.

MIXED_CAPABILITY = CAPABILITIES / "gateway-mixed.yaml"
SECRET_WORDS = ("secret-plan", "Secret plan", "Secret-plan", "secret_plan")
OPEN_TOOL = "open-mcp__get-open-item"
GUARD_TOOL = "guard-mcp__secret-plan-tool"
DOCS_ROUTES = [
    ("GET", "/docs"),
    ("HEAD", "/docs"),
    ("GET", "/docs/"),
    ("POST", "/docs"),
    ("PUT", "/docs"),
    ("DELETE", "/docs"),
    ("OPTIONS", "/docs"),
]


@dataclass
class Gateway:
    url: str
    auth: AuthServer
    recorded: list[Any]
    process: RuntimeProcess


def _auth_env(issuer: str) -> dict[str, str]:
    return {
        "HARD_AUTH_TOKEN": TOKEN,
        "HARD_AUTH_API_KEY": API_KEY,
        "HARD_AUTH_USER": USER,
        "HARD_AUTH_PASSWORD": PASSWORD,
        "HARD_AUTH_ISSUER": issuer,
    }


@pytest.fixture(scope="module")
def gateway() -> Iterator[Gateway]:
    auth = AuthServer()
    with ServerThread(auth.app) as issuer, recorder_thread() as (backend, recorder):
        auth.issuer = issuer.url
        args = [
            str(AUTH_CAPABILITY),
            str(MIXED_CAPABILITY),
            "--gateway",
            "0",
            "--host",
            "127.0.0.1",
            "--base-uri",
            f"backend={backend}",
            "--base-uri",
            f"mixed-backend={backend}",
        ]
        with RuntimeProcess(args, _auth_env(issuer.url)) as process:
            url = process.wait_ready()["gateway"]
            yield Gateway(url, auth, recorder.requests, process)


def _rpc(
    client: httpx.Client,
    url: str,
    method: str,
    params: dict[str, Any],
    credential: dict[str, Any] | None = None,
) -> httpx.Response:
    payload = {"jsonrpc": "2.0", "id": 1, "method": method, "params": params}
    return client.post(url, json=payload, **_merge(credential or {}, MCP_HEADERS))


def _no_secret_words(text: str, what: str) -> None:
    for word in SECRET_WORDS:
        assert word not in text, f"{what}: {word!r} shown"


@pytest.mark.parametrize("kind", KINDS)
def test_gateway_rest_refuses_every_bad_credential_on_every_route_and_its_docs(
    gateway: Gateway, kind: str
) -> None:
    before = len(gateway.recorded)
    base = f"{gateway.url}/rest-{kind}"
    with httpx.Client(base_url=base, timeout=30.0) as client:
        for name, credential in bad(kind, gateway.auth).items():
            for method, path in [*REST_ROUTES, *DOCS_ROUTES]:
                response = client.request(method, path, **credential)
                _assert_refused(response, credential, f"{kind}/{name} {method} /rest-{kind}{path}")
                if method != "HEAD":
                    assert response.headers["content-type"] == "application/problem+json"
        assert len(gateway.recorded) == before, "a refused request reached the upstream"
        allowed = client.get("/items/1", **good(kind, gateway.auth))
        spec = client.get("/.well-known/openapi.json", **good(kind, gateway.auth))
        docs = client.get("/docs", **good(kind, gateway.auth))
        docs_post = client.post("/docs", **good(kind, gateway.auth))
    assert allowed.status_code == 200, allowed.text
    assert spec.status_code == 200 and spec.json()["servers"] == [{"url": f"/rest-{kind}"}]
    assert docs.status_code == 200 and "swagger-ui" in docs.text
    assert docs_post.status_code == 405  # past the check: the page answers GET and HEAD
    assert len(gateway.recorded) == before + 1


@pytest.mark.parametrize("kind", KINDS)
def test_gateway_namespace_mcp_refuses_every_bad_credential(gateway: Gateway, kind: str) -> None:
    before = len(gateway.recorded)
    url = f"{gateway.url}/mcp-{kind}/mcp"
    with httpx.Client(timeout=30.0) as client:
        for name, credential in bad(kind, gateway.auth).items():
            for method, suffix, payload in MCP_REQUESTS:
                target = url.removesuffix("/mcp") + suffix if suffix else url
                kwargs = _merge(credential, MCP_HEADERS)
                response = client.request(method, target, json=payload, **kwargs)
                _assert_refused(response, credential, f"{kind}/{name} {method} {target}")
        assert len(gateway.recorded) == before, "a refused request reached the upstream"
        allowed = client.post(
            url, json=MCP_REQUESTS[1][2], **_merge(good(kind, gateway.auth), MCP_HEADERS)
        )
    assert allowed.status_code == 200, allowed.text
    assert allowed.json()["result"].get("isError") is not True, allowed.text
    assert len(gateway.recorded) == before + 1


def test_gateway_protected_skill_every_path_and_method(gateway: Gateway) -> None:
    token = {"Authorization": f"Bearer {TOKEN}"}
    paths = ("", "/", "/skills", "/skills/secret-plan-skill", "/skills/secret-plan-skill/download")
    with httpx.Client(base_url=gateway.url + "/guard-skill", timeout=30.0) as client:
        for path in (*paths, "/skills/secret-plan-skill/contents", "/nope"):
            for method in WALK_METHODS:
                for credential in bad("bearer", gateway.auth).values():
                    response = client.request(method, path, **credential)
                    _assert_refused(response, credential, f"{method} /guard-skill{path}")
                    _no_secret_words(response.text, f"{method} /guard-skill{path}")
        listed = client.get("/skills", headers=token)
    assert listed.status_code == 200 and "secret-plan-skill" in listed.text


def _prefix_encodings(prefix: str, path: str) -> list[tuple[str, bool]]:
    """``(raw target, reaches the adapter)``: spellings of ``/PREFIX<path>`` that must not
    reach another adapter or get past the prefix's check (the gateway routes on the raw
    first segment, exactly)."""
    exact = [(raw + ("?" + q if q is not None else ""), True) for raw, q in _encodings(path)]
    reaching = [(f"/{prefix}{raw}", ok) for raw, ok in exact if not raw.startswith("//")]
    first = prefix[0]
    return [
        *reaching,
        (f"/%{ord(first):02x}{prefix[1:]}{path}", False),  # percent-encoded prefix
        (f"/{prefix[:-1]}%{ord(prefix[-1]):02X}{path}", False),
        (f"/{prefix}%2F{path.lstrip('/')}", False),  # %2F after the prefix
        (f"/{prefix}%2f{path.lstrip('/')}", False),
        (f"//{prefix}{path}", False),  # double slash before the prefix
        (f"/{prefix.upper()}{path}", False),  # case of the prefix
        (f"/{prefix.capitalize()}{path}", False),
        (f"/{prefix}x{path}", False),  # /NSx vs /NS
        (f"/{prefix[:-1]}{path}", False),  # /N vs /NS
        (f"/./{prefix}{path}", False),  # dot segments before the prefix
        (f"/open-rest/../{prefix}{path}", False),  # through an open adapter's prefix
        (f"/open-mcp/../{prefix}{path}", False),
        (f"/{prefix}/../{prefix}{path}", True),  # its own prefix: its own check first
        (f"/{prefix}/./{path.lstrip('/')}", True),
        (f"/{prefix};x=1{path}", False),
    ]


def _raw(base: str, method: str, target: str, credential: dict[str, Any]) -> RawAnswer:
    headers = {**MCP_HEADERS, "Content-Type": "application/json", **credential.get("headers", {})}
    extra = "&".join(f"{k}={quote(v, safe='')}" for k, v in credential.get("params", {}).items())
    if extra:
        target += ("&" if "?" in target else "?") + extra
    body = b"" if method in ("GET", "HEAD") else TOOL_CALL
    return _send_raw(base, method, target, headers, body)


GATEWAY_WALK = {
    "rest": (*REST_BASE_PATHS, "/docs", "/docs/"),
    "mcp": MCP_BASE_PATHS,
}


@pytest.mark.parametrize("kind", KINDS)
@pytest.mark.parametrize("adapter", ["rest", "mcp"])
def test_gateway_without_credentials_every_path_method_and_encoding(
    gateway: Gateway, kind: str, adapter: str
) -> None:
    """No spelling of a protected prefix's path gets an answer of the adapter without a
    credential: 401 where the gateway routes to it, a 404 problem where it routes nowhere
    (or to an open adapter, which knows no such path), and the upstream sees nothing."""
    before = len(gateway.recorded)
    prefix = f"{adapter}-{kind}"
    for path in GATEWAY_WALK[adapter]:
        for target, reaches in _prefix_encodings(prefix, path):
            for method in WALK_METHODS:
                answer = _raw(gateway.url, method, target, {})
                what = f"{method} {target} -> {answer.status}"
                route = unquote(target.split("?", 1)[0]).removeprefix(f"/{prefix}")
                if (
                    reaches
                    and adapter == "mcp"
                    and _is_metadata_request(kind, method, route)
                    and target.startswith(f"/{prefix}/.well-known")
                ):
                    assert answer.status == 200, what
                elif reaches:
                    assert answer.status == 401, what
                else:
                    assert answer.status == 404, what
                if method != "HEAD" and answer.status != 200:
                    assert answer.headers["content-type"] == "application/problem+json", what
                _no_secret_words(answer.body.decode("latin-1"), what)
    assert len(gateway.recorded) == before, "a request without a credential reached the upstream"


def test_gateway_prefix_confusion_never_reaches_the_adapter_with_a_credential(
    gateway: Gateway,
) -> None:
    """With a good credential, a spelling that is not exactly ``/PREFIX`` reaches no
    adapter's operation, tool or docs (404), and the upstream sees nothing."""
    before = len(gateway.recorded)
    credential = good("bearer", gateway.auth)
    for adapter in ("rest", "mcp"):
        prefix = f"{adapter}-bearer"
        for path in ("/items/1", "/mcp", "/docs", "/.well-known/openapi.json"):
            for target, reaches in _prefix_encodings(prefix, path):
                if reaches:
                    continue
                for method in ("GET", "POST"):
                    answer = _raw(gateway.url, method, target, credential)
                    assert answer.status == 404, f"{method} {target} -> {answer.status}"
    assert len(gateway.recorded) == before


# --------------------------------------------------------------------------- aggregate /mcp


def _tool_names(response: httpx.Response) -> list[str]:
    assert response.status_code == 200, response.text
    return [t["name"] for t in response.json()["result"]["tools"]]


def _own_refusal(client: httpx.Client, gateway: Gateway, kind: str, cred: dict[str, Any]) -> str:
    """``Title: detail`` of the adapter's own ``/NS/mcp`` refusal for ``cred``."""
    own = _rpc(client, f"{gateway.url}/mcp-{kind}/mcp", "tools/list", {}, cred)
    assert own.status_code in (401, 403), own.text
    problem = own.json()
    return f"{problem['title']}: {problem['detail']}"


def test_aggregate_lists_only_open_tools_without_credentials(gateway: Gateway) -> None:
    with httpx.Client(timeout=30.0) as client:
        url = gateway.url + "/mcp"
        listed = _rpc(client, url, "tools/list", {})
        assert _tool_names(listed) == [OPEN_TOOL]
        for method in ("resources/list", "resources/templates/list", "prompts/list"):
            answer = _rpc(client, url, method, {})
            assert answer.status_code == 200, answer.text
            _no_secret_words(answer.text, method)
        _no_secret_words(listed.text, "tools/list")
        assert "mcp-bearer" not in listed.text
        opened = _rpc(client, url, "tools/call", {"name": OPEN_TOOL, "arguments": {"id": "5"}})
    assert opened.json()["result"].get("isError") is not True, opened.text


@pytest.mark.parametrize("kind", KINDS)
def test_aggregate_refuses_protected_tools_as_their_own_endpoint_does(
    gateway: Gateway, kind: str
) -> None:
    """Every bad credential: the kind's tool is not listed and a call is an isError with
    the reason its own ``/NS/mcp`` gives, nothing of the tool; a good one lists it and the
    call's answer is the same as through ``/NS/mcp``."""
    before = len(gateway.recorded)
    name = f"mcp-{kind}__get-item"
    url = gateway.url + "/mcp"
    call = {"name": name, "arguments": {"id": "1"}}
    with httpx.Client(timeout=30.0) as client:
        for label, credential in bad(kind, gateway.auth).items():
            what = f"{kind}/{label}"
            assert name not in _tool_names(_rpc(client, url, "tools/list", {}, credential)), what
            answer = _rpc(client, url, "tools/call", call, credential)
            assert answer.status_code == 200, (what, answer.text)
            result = answer.json()["result"]
            assert result["isError"] is True, (what, result)
            text = result["content"][0]["text"]
            assert text == _own_refusal(client, gateway, kind, credential), (what, text)
            assert "Get an item" not in answer.text, what
            _assert_no_echo(answer, credential, what)
        assert len(gateway.recorded) == before, "a refused call reached the upstream"
        credential = good(kind, gateway.auth)
        names = _tool_names(_rpc(client, url, "tools/list", {}, credential))
        # Its own and the open ones, no other kind's (guard-mcp takes the same bearer token).
        expected = [f"mcp-{kind}__get-item", OPEN_TOOL, *([GUARD_TOOL] if kind == "bearer" else [])]
        assert names == expected, names
        through_aggregate = _rpc(client, url, "tools/call", call, credential).json()["result"]
        own = _rpc(
            client,
            f"{gateway.url}/mcp-{kind}/mcp",
            "tools/call",
            {"name": "get-item", "arguments": {"id": "1"}},
            credential,
        ).json()["result"]
    assert through_aggregate.get("isError") is not True, through_aggregate
    assert through_aggregate == own
    assert len(gateway.recorded) == before + 2


def _assert_no_echo(response: httpx.Response, credential: dict[str, Any], what: str) -> None:
    presented = [*credential.get("headers", {}).values(), *credential.get("params", {}).values()]
    for value in presented:
        secret = value.split(" ", 1)[-1]
        if len(secret) >= 6 and secret not in ("Bearer", "Basic"):
            assert secret not in response.text, what


def test_aggregate_resources_and_prompts_of_a_protected_adapter(gateway: Gateway) -> None:
    url = gateway.url + "/mcp"
    token = good("bearer", gateway.auth)
    wrong = bad("bearer", gateway.auth)["wrong"]
    read = {"uri": "data://secret-plan/3"}
    prompt = {"name": "guard-mcp__secret-plan-prompt", "arguments": {"topic": "x"}}
    before = len(gateway.recorded)
    with httpx.Client(timeout=30.0) as client:
        for credential in ({}, wrong):
            expected = _own_refusal(client, gateway, "bearer", credential)
            for method, params in (("resources/read", read), ("prompts/get", prompt)):
                answer = _rpc(client, url, method, params, credential)
                error = answer.json()["error"]
                assert error["message"] == expected, (method, error)
            assert len(gateway.recorded) == before
        listed = _rpc(client, url, "resources/templates/list", {}, token).text
        prompts = _rpc(client, url, "prompts/list", {}, token).text
        tools = _rpc(client, url, "tools/list", {}, token).text
        got = _rpc(client, url, "resources/read", read, token).json()
        rendered = _rpc(client, url, "prompts/get", prompt, token).json()
    assert "data://secret-plan/{id}" in listed
    assert "guard-mcp__secret-plan-prompt" in prompts and GUARD_TOOL in tools
    assert "Secret plan description." in tools
    assert got["result"]["contents"][0]["uri"] == "data://secret-plan/3", got
    assert rendered["result"]["messages"][0]["content"]["text"] == "Secret plan about x."
    assert len(gateway.recorded) == before + 1


async def test_aggregate_with_the_official_client_and_a_token(gateway: Gateway) -> None:
    import httpx2
    from mcp import Client
    from mcp.client.streamable_http import streamable_http_client

    async with Client(gateway.url + "/mcp") as client:
        names = [t.name for t in (await client.list_tools()).tools]
        refused = await client.call_tool(GUARD_TOOL, {"id": "9"})
    assert names == [OPEN_TOOL]
    assert (
        refused.is_error and refused.content[0].text == "Unauthorized: A bearer token is required."
    )
    http = httpx2.AsyncClient(headers={"Authorization": f"Bearer {TOKEN}"})
    async with Client(streamable_http_client(gateway.url + "/mcp", http_client=http)) as client:
        names = [t.name for t in (await client.list_tools()).tools]
        result = await client.call_tool(GUARD_TOOL, {"id": "9"})
    assert GUARD_TOOL in names and "mcp-bearer__get-item" in names
    assert "mcp-basic__get-item" not in names
    assert not result.is_error, result


# --------------------------------------------------------------------------- pages


def test_catalogue_and_status_name_protected_adapters_without_their_contents(
    gateway: Gateway,
) -> None:
    page = httpx.get(gateway.url + "/")
    status = httpx.get(gateway.url + "/status")
    assert page.status_code == 200 and status.status_code == 200
    for text, what in ((page.text, "catalogue"), (status.text, "/status")):
        _no_secret_words(text, what)
        for secret in (TOKEN, API_KEY, PASSWORD, USER):
            assert secret not in text, what
        assert "/items/{id}" not in text.replace("/open-rest/items/{id}", ""), what
        assert "Get an item" not in text and "Items as tools" not in text, what
        # the document all of whose adapters are protected keeps its description
        assert "Every inbound authentication kind" not in text, what
    assert page.text.count("requires authentication") == 2 * len(KINDS) + 2
    for kind in KINDS:
        assert f'href="/rest-{kind}"' in page.text and f'href="/mcp-{kind}/mcp"' in page.text
    assert "get-open-item" in page.text and "/open-rest/items/{id}" in page.text  # open: shown
    assert "Open and protected adapters" in page.text
