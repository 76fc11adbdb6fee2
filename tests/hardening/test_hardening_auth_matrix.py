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
