"""Inbound ``oauth2`` authentication: a resource server checking bearer JWTs against the
authorization server's published keys (JWKS), fetched and cached here."""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable, Mapping
from typing import Any

import httpx
from starlette.requests import HTTPConnection

from naftiko.adapters.http.auth.base import (
    CALLER_SCOPE_KEY,
    AuthFailure,
    InboundAuth,
    bearer_token,
    challenge,
    credential_identity,
)
from naftiko.errors import InboundAuthError
from naftiko.upstream.tls import trust_context

__all__ = ["HttpClientFactory", "OAuth2ResourceServer"]

# The name log filters already know for inbound authentication.
log = logging.getLogger("naftiko.adapters.http.inbound_auth")

HttpClientFactory = Callable[[], httpx.AsyncClient]

JWKS_TTL = 300.0  # seconds a fetched JWKS is trusted
JWKS_MIN_REFRESH = 30.0  # at most one fetch attempt per this many seconds (rotation, outage)
CLOCK_LEEWAY = 30  # seconds of clock skew accepted on exp / nbf / iat
ALLOWED_ALGORITHMS = frozenset(
    {"RS256", "RS384", "RS512", "PS256", "PS384", "PS512", "ES256", "ES384", "ES512"}
)
_EC_CURVES = {"ES256": "P-256", "ES384": "P-384", "ES512": "P-521"}


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
        raw = bearer_token(conn)
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
                return AuthFailure(403, challenge("Bearer", params), "Forbidden", description)
        conn.scope[CALLER_SCOPE_KEY] = _subject(claims, raw)
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


def _subject(claims: Mapping[str, Any], token: bytes) -> str:
    """Who the token speaks for: its ``sub`` (else ``client_id``/``azp``), else a hash of
    the token itself (the caller is then that token)."""
    for name in ("sub", "client_id", "azp"):
        value = claims.get(name)
        if isinstance(value, str) and value:
            return f"{name}:{value}"
    return credential_identity("token", token)


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
