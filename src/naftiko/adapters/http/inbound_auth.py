"""Authentication of callers of exposed adapters (REST, MCP, skill, control).

``build_inbound_auth`` turns an ``authentication`` block into an :class:`InboundAuth` once,
at start-up; :class:`InboundAuthMiddleware` applies it to every HTTP and websocket
request of an adapter. Credentials resolve from binds only, and a credential that does not
resolve refuses to start: we never accept everything and never compare with the literal
``{{VAR}}``.

Decisions: ``digest`` and OAuth2 ``tokenValidation: introspection`` are refused at build
time (digest needs server nonce state and MD5; introspection is not implemented). An
apikey without ``placement`` is read from a header. OAuth2 needs ``audience`` or
``resource`` (a token for any API would otherwise pass) and tokens must carry ``exp``.
Presented credentials never appear in a response, an exception or a log line.
"""

from __future__ import annotations

import asyncio
import base64
import binascii
import hmac
import json
import logging
import re
import time
from abc import ABC, abstractmethod
from collections.abc import Callable, Collection, Mapping
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlsplit

import httpx
from starlette.requests import HTTPConnection
from starlette.responses import Response
from starlette.types import ASGIApp, Receive, Scope, Send

from naftiko.engine.types import PROBLEM_MEDIA_TYPE
from naftiko.errors import InboundAuthError, LoadTimeError
from naftiko.spec.models import Authentication
from naftiko.template_syntax import VARIABLE_TAG
from naftiko.upstream.tls import trust_context

__all__ = [
    "AuthFailure",
    "InboundAuth",
    "InboundAuthConfigError",
    "InboundAuthMiddleware",
    "build_inbound_auth",
    "protected_resource_metadata",
    "protected_resource_metadata_path",
    "protected_resource_metadata_url",
]

log = logging.getLogger(__name__)

HttpClientFactory = Callable[[], httpx.AsyncClient]

REALM = "naftiko"
WELL_KNOWN_PROTECTED_RESOURCE = "/.well-known/oauth-protected-resource"
EXEMPT_METHODS = frozenset({"GET", "HEAD"})  # exempt paths only ever serve reads
JWKS_TTL = 300.0  # seconds a fetched JWKS is trusted
JWKS_MIN_REFRESH = 30.0  # at most one fetch attempt per this many seconds (rotation, outage)
CLOCK_LEEWAY = 30  # seconds of clock skew accepted on exp / nbf / iat
ALLOWED_ALGORITHMS = frozenset(
    {"RS256", "RS384", "RS512", "PS256", "PS384", "PS512", "ES256", "ES384", "ES512"}
)
_EC_CURVES = {"ES256": "P-256", "ES384": "P-384", "ES512": "P-521"}


class InboundAuthConfigError(ValueError, LoadTimeError):
    """The adapter's ``authentication`` block cannot be enforced; the adapter must not start."""


# --------------------------------------------------------------------------- failures


@dataclass(frozen=True, slots=True)
class AuthFailure:
    """A refused request: status, challenge and an RFC 9457 problem (never the credential)."""

    status: int
    www_authenticate: str | None
    title: str
    detail: str

    def response(self) -> Response:
        kind = {401: "unauthorized", 403: "forbidden"}.get(self.status, "auth-unavailable")
        body = {
            "type": f"https://naftiko.dev/problems/{kind}",
            "title": self.title,
            "status": self.status,
            "detail": self.detail,
        }
        headers = {"WWW-Authenticate": self.www_authenticate} if self.www_authenticate else {}
        return Response(
            json.dumps(body),
            status_code=self.status,
            headers=headers,
            media_type=PROBLEM_MEDIA_TYPE,
        )


def _quote(value: str) -> str:
    """An auth-param quoted-string (RFC 9110 §5.6.4)."""
    return '"' + value.replace("\\", "\\\\").replace('"', '\\"') + '"'


def _challenge(scheme: str, params: Mapping[str, str | None]) -> str:
    parts = [f"{k}={_quote(v)}" for k, v in params.items() if v is not None]
    return f"{scheme} {', '.join(parts)}" if parts else scheme


# --------------------------------------------------------------------------- base


class InboundAuth(ABC):
    """One adapter's caller check; built once, shared by all requests, holds no secret in repr."""

    type: str = ""

    def __init__(self, *, resource_metadata_url: str | None = None) -> None:
        self._resource_metadata = resource_metadata_url

    @abstractmethod
    async def check(self, conn: HTTPConnection) -> AuthFailure | None:
        """None when the caller may proceed, otherwise why not."""

    def _unauthorized(self, scheme: str, detail: str, **params: str | None) -> AuthFailure:
        if scheme == "Bearer":
            params["resource_metadata"] = self._resource_metadata
        return AuthFailure(401, _challenge(scheme, params), "Unauthorized", detail)

    def __repr__(self) -> str:
        return f"{type(self).__name__}(<redacted>)"


def _raw_header(conn: HTTPConnection, name: str) -> list[bytes]:
    """Every value of a header as the bytes the caller sent (Starlette decodes latin-1)."""
    return [v.encode("latin-1") for v in conn.headers.getlist(name)]


def _equal(presented: bytes, expected: bytes) -> bool:
    return hmac.compare_digest(presented, expected)


def _bearer_token(conn: HTTPConnection) -> bytes | None:
    values = _raw_header(conn, "authorization")
    if len(values) != 1:
        return None
    scheme, _, credentials = values[0].strip().partition(b" ")
    if scheme.lower() != b"bearer":
        return None
    return credentials.strip() or None


class BearerInboundAuth(InboundAuth):
    """A static bearer token, compared in constant time."""

    type = "bearer"

    def __init__(self, token: str, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self._token = token.encode()

    async def check(self, conn: HTTPConnection) -> AuthFailure | None:
        token = _bearer_token(conn)
        if token is None:
            return self._unauthorized("Bearer", "A bearer token is required.", realm=REALM)
        if not _equal(token, self._token):
            return self._unauthorized(
                "Bearer",
                "The bearer token is not valid.",
                realm=REALM,
                error="invalid_token",
                error_description="Invalid token",
            )
        return None


class ApiKeyInboundAuth(InboundAuth):
    """An API key in a header (name matched case-insensitively) or a query parameter.

    A repeated header or parameter is refused: which copy counts would be ambiguous.
    The challenge uses the non-registered ``ApiKey`` scheme because a 401 must carry one.
    """

    type = "apikey"

    def __init__(self, key: str, value: str, *, in_query: bool, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self._key = key
        self._value = value.encode()
        self._in_query = in_query

    async def check(self, conn: HTTPConnection) -> AuthFailure | None:
        if self._in_query:
            presented = [v.encode() for v in conn.query_params.getlist(self._key)]
        else:
            presented = _raw_header(conn, self._key)
        where = "query parameter" if self._in_query else "header"
        if not presented:
            return self._unauthorized(
                "ApiKey", f"The API key {where} {self._key!r} is required.", realm=REALM
            )
        if len(presented) != 1 or not _equal(presented[0], self._value):
            return self._unauthorized(
                "ApiKey", f"The API key in {where} {self._key!r} is not valid.", realm=REALM
            )
        return None


class BasicInboundAuth(InboundAuth):
    """HTTP Basic; user name and password both compared in constant time."""

    type = "basic"

    def __init__(self, username: str, password: str, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self._username = username.encode()
        self._password = password.encode()

    async def check(self, conn: HTTPConnection) -> AuthFailure | None:
        values = _raw_header(conn, "authorization")
        scheme, _, encoded = (values[0].strip() if len(values) == 1 else b"").partition(b" ")
        if scheme.lower() != b"basic":
            return self._unauthorized("Basic", "Credentials are required.", realm=REALM)
        try:
            decoded = base64.b64decode(encoded.strip(), validate=True)
        except (binascii.Error, ValueError):
            decoded = b""
        username, sep, password = decoded.partition(b":")
        # Both comparisons always run: timing does not tell which part was wrong.
        user_ok = _equal(username, self._username)
        password_ok = _equal(password, self._password)
        if not (sep and user_ok & password_ok):
            return self._unauthorized("Basic", "Invalid credentials.", realm=REALM)
        return None


# --------------------------------------------------------------------------- oauth2


class _InvalidToken(InboundAuthError):
    """A rejected JWT; the message is one of a few fixed, credential-free reasons."""


class _KeysUnavailable(InboundAuthError):
    """The authorization server's metadata or JWKS could not be fetched."""


class OAuth2ResourceServer(InboundAuth):
    """Bearer JWTs signed by the authorization server's keys (RFC 9068-style checks).

    The JWKS is discovered from ``<issuer>/.well-known/oauth-authorization-server`` (falling
    back to ``/.well-known/openid-configuration``), trusted ``JWKS_TTL`` seconds, and
    refetched at most every ``JWKS_MIN_REFRESH`` seconds when a token names an unknown
    ``kid`` (key rotation) and no more often while the authorization server is down
    (requests meanwhile get 503 while no fresh keys are held). ``clock`` (monotonic
    seconds) is injectable for tests.
    """

    type = "oauth2"

    def __init__(
        self,
        *,
        issuer: str,
        audience: str,
        scopes: tuple[str, ...],
        http_client_factory: HttpClientFactory | None = None,
        clock: Callable[[], float] = time.monotonic,
        **kwargs: Any,
    ) -> None:
        super().__init__(**kwargs)
        # PyJWT (with cryptography) is slow to import: only oauth2 pays for it, and
        # at build time rather than on the first request.
        import jwt  # noqa: F401

        self.issuer = issuer
        self.audience = audience
        self.scopes = scopes
        base = issuer[:-1] if issuer.endswith("/") else issuer
        self._base = base
        self._issuers = (base, base + "/")
        self._client_factory = http_client_factory or _default_client
        self._clock = clock
        self._keys: list[dict[str, Any]] | None = None
        self._fetched_at = float("-inf")
        self._attempted_at = float("-inf")
        self._generation = 0
        self._lock = asyncio.Lock()

    async def check(self, conn: HTTPConnection) -> AuthFailure | None:
        raw = _bearer_token(conn)
        if raw is None:
            return self._unauthorized("Bearer", "A bearer token is required.")
        try:
            token = raw.decode("ascii")
            claims = await self._validate(token)
        except UnicodeDecodeError:
            return self._invalid("Token validation failed")
        except _InvalidToken as exc:
            return self._invalid(str(exc))
        except _KeysUnavailable:
            return AuthFailure(
                503,
                None,
                "Service Unavailable",
                "The authorization server's signing keys could not be obtained.",
            )
        granted = _granted_scopes(claims)
        for scope in self.scopes:
            if scope not in granted:
                description = f"Required scope '{scope}' not present in token"
                params = {
                    "error": "insufficient_scope",
                    "error_description": description,
                    "scope": " ".join(self.scopes),
                    "resource_metadata": self._resource_metadata,
                }
                return AuthFailure(403, _challenge("Bearer", params), "Forbidden", description)
        return None

    def _invalid(self, reason: str) -> AuthFailure:
        return self._unauthorized("Bearer", reason, error="invalid_token", error_description=reason)

    async def _validate(self, token: str) -> dict[str, Any]:
        import jwt  # already loaded by __init__: a dictionary lookup

        try:
            header = jwt.get_unverified_header(token)
        except jwt.PyJWTError:
            raise _InvalidToken("Token validation failed") from None
        alg = header.get("alg")
        if alg not in ALLOWED_ALGORITHMS:  # never "none", never HS* with a public key
            raise _InvalidToken("Token validation failed")
        kid = header.get("kid")
        jwk = await self._key(kid if isinstance(kid, str) else None, alg)
        try:
            key = jwt.PyJWK(jwk, algorithm=alg).key
        except jwt.PyJWTError:
            raise _InvalidToken("Signature verification failed") from None
        try:
            return jwt.decode(
                token,
                key,
                algorithms=[alg],
                audience=self.audience,
                issuer=self._issuers,
                leeway=CLOCK_LEEWAY,
                options={"require": ["exp"]},
            )
        except jwt.ExpiredSignatureError:
            raise _InvalidToken("Token expired") from None
        except jwt.ImmatureSignatureError:
            raise _InvalidToken("Token not yet valid") from None
        except jwt.InvalidIssuerError:
            raise _InvalidToken("Invalid issuer") from None
        except jwt.InvalidAudienceError:
            raise _InvalidToken("Invalid audience") from None
        except (jwt.InvalidSignatureError, jwt.InvalidKeyError):
            raise _InvalidToken("Signature verification failed") from None
        except jwt.MissingRequiredClaimError as exc:
            reason = {"aud": "Invalid audience", "iss": "Invalid issuer"}.get(exc.claim)
            raise _InvalidToken(reason or "Token validation failed") from None
        except jwt.PyJWTError:
            raise _InvalidToken("Token validation failed") from None

    def _fresh(self) -> bool:
        return self._keys is not None and self._clock() - self._fetched_at < JWKS_TTL

    async def _key(self, kid: str | None, alg: str) -> dict[str, Any]:
        if not self._fresh():
            await self._refresh()
            if not self._fresh():
                raise _KeysUnavailable
        key = _select_key(self._keys or [], kid, alg)
        if key is None and kid is not None:
            await self._refresh()  # maybe the keys rotated
            key = _select_key(self._keys or [], kid, alg)
        if key is None:
            raise _InvalidToken("Signature verification failed")
        return key

    async def _refresh(self) -> None:
        """Fetch the keys once for all requests waiting; failures keep the old keys.

        At most one attempt per ``JWKS_MIN_REFRESH`` seconds, whatever the reason (stale
        keys, an unknown ``kid``, an earlier failure): tokens with random ``kid`` s or an
        authorization server outage must not turn into a fetch per request.
        """
        generation = self._generation
        async with self._lock:
            if self._generation != generation:
                return  # another request fetched (or tried) while we waited
            now = self._clock()
            if now - self._attempted_at < JWKS_MIN_REFRESH:
                return
            self._generation += 1
            self._attempted_at = now
            try:
                keys = await self._fetch_keys()
            except _KeysUnavailable:
                return
            self._keys = keys
            self._fetched_at = now

    async def _fetch_keys(self) -> list[dict[str, Any]]:
        try:
            async with self._client_factory() as client:
                jwks_uri = None
                for suffix in (
                    "/.well-known/oauth-authorization-server",
                    "/.well-known/openid-configuration",
                ):
                    metadata = await _get_json(client, self._base + suffix)
                    if isinstance(metadata, dict) and isinstance(metadata.get("jwks_uri"), str):
                        jwks_uri = metadata["jwks_uri"]
                        break
                if jwks_uri is None:
                    log.warning("no jwks_uri in the metadata of %s", self._base)
                    raise _KeysUnavailable
                jwks = await _get_json(client, jwks_uri)
        except httpx.HTTPError as exc:
            log.warning("fetching the keys of %s failed: %s", self._base, type(exc).__name__)
            raise _KeysUnavailable from None
        keys = jwks.get("keys") if isinstance(jwks, dict) else None
        if not isinstance(keys, list):
            log.warning("the JWKS of %s has no keys", self._base)
            raise _KeysUnavailable
        return [k for k in keys if isinstance(k, dict)]


async def _get_json(client: httpx.AsyncClient, url: str) -> Any:
    response = await client.get(url, headers={"Accept": "application/json"})
    if response.status_code != 200:
        return None
    try:
        return response.json()
    except ValueError:
        return None


def _select_key(keys: list[dict[str, Any]], kid: str | None, alg: str) -> dict[str, Any] | None:
    """The signing key for ``kid`` (the first usable one when the token names none)."""
    kty = "EC" if alg.startswith("ES") else "RSA"
    for key in keys:
        if kid is not None and key.get("kid") != kid:
            continue
        if key.get("kty") != kty or key.get("use", "sig") != "sig":
            continue
        if key.get("alg") not in (None, alg):
            continue
        if kty == "EC" and key.get("crv") != _EC_CURVES[alg]:
            continue
        return key
    return None


def _granted_scopes(claims: Mapping[str, Any]) -> set[str]:
    granted: set[str] = set()
    for name in ("scope", "scp"):
        value = claims.get(name)
        if isinstance(value, str):
            granted.update(value.split())
        elif isinstance(value, list):
            granted.update(v for v in value if isinstance(v, str))
    return granted


def _default_client() -> httpx.AsyncClient:
    # No proxy from the environment, as for upstream calls (engine.client): the keys that
    # decide who gets in must not be fetched through whatever HTTP(S)_PROXY says.
    return httpx.AsyncClient(
        timeout=10.0, follow_redirects=False, trust_env=False, verify=trust_context()
    )


# --------------------------------------------------------------------------- building


def _resolve(
    field: str,
    template: str | None,
    binds: Mapping[str, str],
    namespaces: Mapping[str, Mapping[str, str]],
) -> str:
    """A credential field with its ``{{VAR}}`` / ``{{env.VAR}}`` / ``{{ns.VAR}}`` from binds.

    Raises when the field is missing, a variable is unbound, or the result is empty.
    """
    if template is None or not template.strip():
        raise InboundAuthConfigError(f"inbound authentication needs {field!r}")

    def substitute(match: re.Match[str]) -> str:
        name = match.group(1)
        value: str | None = None
        if "." in name:
            ns, _, var = name.partition(".")
            value = namespaces.get(ns, {}).get(var)
            if value is None and ns == "env":
                value = binds.get(var)
        if value is None:
            value = binds.get(name)
        if not value:
            raise InboundAuthConfigError(
                f"inbound authentication field {field!r}: variable {name!r} is not bound "
                "or is empty (declare it in binds)"
            )
        return value

    value = VARIABLE_TAG.sub(substitute, template)
    if "{{" in value or "}}" in value:
        raise InboundAuthConfigError(
            f"inbound authentication field {field!r} has a template that cannot be resolved"
        )
    return value


def build_inbound_auth(
    spec: Authentication | None,
    binds: Mapping[str, str],
    bind_namespaces: Mapping[str, Mapping[str, str]] | None = None,
    *,
    http_client_factory: HttpClientFactory | None = None,
    resource_metadata_url: str | None = None,
    clock: Callable[[], float] = time.monotonic,
) -> InboundAuth | None:
    """The check for an adapter's ``authentication`` block (None: no authentication).

    ``resource_metadata_url`` (MCP) is added to every Bearer challenge. Raises
    :class:`InboundAuthConfigError` when the block cannot be enforced.
    """
    if spec is None:
        return None
    namespaces = bind_namespaces or {}

    def resolve(field: str, template: str | None) -> str:
        return _resolve(field, template, binds, namespaces)

    kind = spec.type.strip().lower()
    common: dict[str, Any] = {"resource_metadata_url": resource_metadata_url}
    if kind == "bearer":
        return BearerInboundAuth(resolve("token", spec.token), **common)
    if kind == "apikey":
        placement = (spec.placement or "header").strip().lower()
        if placement not in ("header", "query"):
            raise InboundAuthConfigError(
                f"unsupported apikey placement {spec.placement!r} (expected header or query)"
            )
        return ApiKeyInboundAuth(
            resolve("key", spec.key),
            resolve("value", spec.value),
            in_query=placement == "query",
            **common,
        )
    if kind == "basic":
        return BasicInboundAuth(
            resolve("username", spec.username), resolve("password", spec.password), **common
        )
    if kind == "digest":
        raise InboundAuthConfigError(
            "digest authentication of exposed adapters is not supported; "
            "use basic (over TLS), bearer, apikey or oauth2"
        )
    if kind == "oauth2":
        validation = (spec.token_validation or "jwt").strip().lower()
        if validation == "introspection":
            raise InboundAuthConfigError(
                "oauth2 tokenValidation 'introspection' is not supported; use 'jwt'"
            )
        if validation != "jwt":
            raise InboundAuthConfigError(
                f"unsupported oauth2 tokenValidation {spec.token_validation!r} (expected jwt)"
            )
        issuer = resolve("authorizationServerUri", spec.authorization_server_uri)
        if spec.audience:
            audience = resolve("audience", spec.audience)
        elif spec.resource:
            audience = resolve("resource", spec.resource)
        else:
            raise InboundAuthConfigError(
                "oauth2 authentication needs 'audience' or 'resource' to check the token's aud"
            )
        scopes = tuple(resolve("scopes", s) for s in spec.scopes)
        return OAuth2ResourceServer(
            issuer=issuer,
            audience=audience,
            scopes=scopes,
            http_client_factory=http_client_factory,
            clock=clock,
            **common,
        )
    raise InboundAuthConfigError(f"unsupported inbound authentication type {spec.type!r}")


# --------------------------------------------------------------------------- middleware


class InboundAuthMiddleware:
    """Pure ASGI middleware: checks every http and websocket request except exempt ones.

    Only a GET or HEAD whose (decoded) path is exactly an exempt path, with or without the
    ``root_path`` prefix, is exempt: any other method or a websocket on the same path is
    checked, so an app that serves something else there (a catch-all mount) cannot be
    reached through the exemption. A refused websocket gets the problem response when the
    server supports the denial-response extension, otherwise a close with code 1008
    (policy violation).
    """

    def __init__(
        self, app: ASGIApp, auth: InboundAuth, *, exempt_paths: Collection[str] = ()
    ) -> None:
        self.app = app
        self.auth = auth
        self.exempt_paths = frozenset(exempt_paths)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] not in ("http", "websocket") or self._exempt(scope):
            await self.app(scope, receive, send)
            return
        failure = await self.auth.check(HTTPConnection(scope))
        if failure is None:
            await self.app(scope, receive, send)
            return
        can_respond = "websocket.http.response" in scope.get("extensions", {})
        if scope["type"] == "http" or can_respond:
            await failure.response()(scope, receive, send)
        else:
            await send({"type": "websocket.close", "code": 1008})

    def _exempt(self, scope: Scope) -> bool:
        if scope["type"] != "http" or scope.get("method") not in EXEMPT_METHODS:
            return False
        path: str = scope.get("path", "")
        root: str = scope.get("root_path", "")
        if path in self.exempt_paths:
            return True
        return bool(root) and path.startswith(root) and path[len(root) :] in self.exempt_paths


# --------------------------------------------------------------------------- MCP metadata


def _metadata_fields(
    spec: Authentication,
    binds: Mapping[str, str] | None,
    bind_namespaces: Mapping[str, Mapping[str, str]] | None,
) -> tuple[str, str]:
    if binds is None:
        resource, issuer = spec.resource, spec.authorization_server_uri
    else:
        namespaces = bind_namespaces or {}
        resource = _resolve("resource", spec.resource, binds, namespaces)
        issuer = _resolve(
            "authorizationServerUri", spec.authorization_server_uri, binds, namespaces
        )
    if not resource or not issuer:
        raise InboundAuthConfigError(
            "protected resource metadata needs 'resource' and 'authorizationServerUri'"
        )
    return resource, issuer


def protected_resource_metadata(
    spec: Authentication,
    binds: Mapping[str, str] | None = None,
    bind_namespaces: Mapping[str, Mapping[str, str]] | None = None,
) -> dict[str, Any]:
    """The RFC 9728 document served by the MCP adapter (templates resolved when binds given)."""
    resource, issuer = _metadata_fields(spec, binds, bind_namespaces)
    document: dict[str, Any] = {"resource": resource, "authorization_servers": [issuer]}
    if spec.scopes:
        document["scopes_supported"] = list(spec.scopes)
    document["bearer_methods_supported"] = ["header"]
    return document


def protected_resource_metadata_path(
    spec: Authentication,
    binds: Mapping[str, str] | None = None,
    bind_namespaces: Mapping[str, Mapping[str, str]] | None = None,
) -> str:
    """``/.well-known/oauth-protected-resource`` plus the resource's path unless it is ``/``."""
    resource, _ = _metadata_fields(spec, binds, bind_namespaces)
    path = urlsplit(resource).path
    return WELL_KNOWN_PROTECTED_RESOURCE + ("" if path in ("", "/") else path)


def protected_resource_metadata_url(
    spec: Authentication,
    binds: Mapping[str, str] | None = None,
    bind_namespaces: Mapping[str, Mapping[str, str]] | None = None,
) -> str:
    """The absolute metadata URL for ``resource_metadata=`` in challenges."""
    resource, _ = _metadata_fields(spec, binds, bind_namespaces)
    parts = urlsplit(resource)
    path = protected_resource_metadata_path(spec, binds, bind_namespaces)
    return f"{parts.scheme}://{parts.netloc}{path}"
