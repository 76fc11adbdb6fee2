"""Credentials sent to consumed (upstream) APIs, as ``httpx.Auth`` objects.

The engine builds one auth object per request (``render`` sees binds and the caller's
inputs) and attaches it with ``client.send(request, auth=auth)``. Every credential field
is rendered through ``render``; a field that does not resolve sends *no* credential for
that part, so the upstream answers for itself (we never send a literal ``{{VAR}}``).

OAuth2 client-credentials tokens live in an :class:`OAuth2TokenCache` the engine keeps for
the life of the capability, so that tokens survive across requests. No secret (token,
password, client secret, API key) ever appears in a repr, a log line or an exception.
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import hashlib
import hmac
import json
import logging
import os
import re
import time
from collections.abc import AsyncGenerator, AsyncIterator, Callable, Generator
from dataclasses import dataclass
from typing import Any
from urllib.parse import quote

import httpx

from naftiko.errors import AuthError, LoadTimeError, ResponseTooLarge, UpstreamError
from naftiko.spec.models import Authentication
from naftiko.upstream.decoding import read_limited
from naftiko.upstream.tls import trust_context

__all__ = [
    "DEFAULT_TOKEN_TTL",
    "EARLY_REFRESH",
    "MAX_CACHED_TOKENS",
    "OAuth2TokenCache",
    "OutboundAuthConfigError",
    "OutboundAuthError",
    "build_outbound_auth",
    "check_outbound_auth",
]

log = logging.getLogger(__name__)

Render = Callable[[str | None], str | None]
ClientFactory = Callable[[], httpx.AsyncClient]

EARLY_REFRESH = 30.0  # seconds before ``expires_in`` at which a cached token is dropped
DEFAULT_TOKEN_TTL = 300.0  # cache time of a token whose response has no ``expires_in``
# Callers may supply the credentials, so they choose cache keys: the cache stays bounded.
MAX_CACHED_TOKENS = 1024
TOKEN_FETCH_TIMEOUT = 10.0
# A token response is a few hundred bytes; a token endpoint gets no more room than this.
MAX_TOKEN_RESPONSE_BYTES = 1024 * 1024
SUPPORTED_TYPES = ("basic", "bearer", "apikey", "digest", "oauth2")
APIKEY_PLACEMENTS = ("header", "query", "cookie")
TOKEN_AUTH_METHODS = ("client_secret_basic", "client_secret_post")
# RFC 6265 cookie-octets besides letters and digits: sent as they are, the rest encoded.
_COOKIE_SAFE = "!#$%&'()*+-./:<=>?@[]^_`{|}~"
_OAUTH_ERROR_CODE = re.compile(r"^[A-Za-z0-9_.\-]{1,64}$")


class OutboundAuthConfigError(ValueError, LoadTimeError):
    """The ``authentication`` block of a consumed API cannot work (unknown type, placement)."""


class OutboundAuthError(UpstreamError, AuthError):
    """An OAuth2 token could not be obtained.

    ``status`` is the token endpoint's HTTP status, or ``None`` when it was not reached.
    The message is safe to show: it never holds the client secret, the token or the
    token endpoint's body (only the registered OAuth ``error`` code, when there is one).
    """

    def __init__(self, message: str, *, status: int | None = None) -> None:
        super().__init__(message)
        self.status = status


def check_outbound_auth(spec: Authentication) -> None:
    """Raise :class:`OutboundAuthConfigError` for a block no request could ever use.

    Lets the compiler find it at load (the namespace then answers 501, or the load fails
    in strict mode) instead of failing, or going out unauthenticated, on every request.
    """
    kind = spec.type.strip().lower()
    if kind not in SUPPORTED_TYPES:
        raise OutboundAuthConfigError(
            f"authentication type {spec.type!r} is not supported "
            f"(supported: {', '.join(SUPPORTED_TYPES)})"
        )
    if kind == "apikey":
        _apikey_placement(spec)
    if kind == "oauth2":
        if not spec.token_endpoint:
            raise OutboundAuthConfigError("oauth2 authentication needs tokenEndpoint")
        if not spec.client_id:
            raise OutboundAuthConfigError("oauth2 authentication needs clientId")
        _token_auth_method(spec)


def _apikey_placement(spec: Authentication) -> str:
    # A missing placement means "header": it is the common case and the schema's example;
    # the Java reference refuses it, which only turns a plain document into an error.
    placement = (spec.placement or "header").strip().lower()
    if placement not in APIKEY_PLACEMENTS:
        raise OutboundAuthConfigError(
            f"apikey placement {spec.placement!r} is not supported "
            f"(supported: {', '.join(APIKEY_PLACEMENTS)})"
        )
    return placement


def _token_auth_method(spec: Authentication) -> str:
    extras = spec.model_extra or {}
    method = str(extras.get("tokenEndpointAuthMethod") or "client_secret_basic").lower()
    if method not in TOKEN_AUTH_METHODS:
        raise OutboundAuthConfigError(
            f"oauth2 tokenEndpointAuthMethod {method!r} is not supported "
            f"(supported: {', '.join(TOKEN_AUTH_METHODS)})"
        )
    return method


def _value(render: Render, template: str | None) -> str | None:
    """The rendered field, or None when it is unset, unresolved or empty."""
    if template is None:
        return None
    value = render(template)
    return value or None


def build_outbound_auth(
    spec: Authentication,
    render: Render,
    *,
    token_cache: OAuth2TokenCache | None = None,
    client_factory: ClientFactory | None = None,
) -> httpx.Auth | None:
    """The ``httpx.Auth`` for one request to a consumed API, or None to send nothing.

    ``render`` turns a field's template into its value (None when it does not resolve).
    ``token_cache`` should be shared by all requests of a capability (a private cache is
    used otherwise); ``client_factory`` makes the client for a token request (closed
    after it). Raises :class:`OutboundAuthConfigError` for an unusable block.
    """
    check_outbound_auth(spec)
    kind = spec.type.strip().lower()
    if kind in ("basic", "digest"):
        username = _value(render, spec.username)
        # An unset password is an empty one; a set one that does not resolve sends nothing.
        password = "" if spec.password is None else render(spec.password)
        if username is None or password is None:
            return None
        if kind == "basic":
            return BasicOutboundAuth(username, password)
        return DigestOutboundAuth(username, password)
    if kind == "bearer":
        token = _value(render, spec.token)
        return None if token is None else BearerOutboundAuth(token)
    if kind == "apikey":
        placement = _apikey_placement(spec)
        key, value = _value(render, spec.key), _value(render, spec.value)
        if key is None or value is None:
            return None
        return ApiKeyOutboundAuth(key, value, placement=placement)
    # oauth2
    endpoint = _value(render, spec.token_endpoint)
    client_id = _value(render, spec.client_id)
    secret = None if spec.client_secret is None else _value(render, spec.client_secret)
    if endpoint is None or client_id is None or (spec.client_secret and secret is None):
        return None
    method = _token_auth_method(spec)
    scopes = tuple(s for s in (_value(render, t) for t in spec.scopes) if s)
    client = OAuth2ClientCredentials(
        token_endpoint=endpoint,
        client_id=client_id,
        client_secret=secret,
        scopes=scopes,
        audience=_value(render, spec.audience),
        resource=_value(render, spec.resource),
        secret_in_body=method == "client_secret_post",
    )
    cache = token_cache if token_cache is not None else OAuth2TokenCache()  # empty is falsy
    return OAuth2OutboundAuth(client, cache, client_factory or _default_client)


def _default_client() -> httpx.AsyncClient:
    # No proxy from the environment, as for upstream calls (upstream.client): the client
    # secret must not go to whatever HTTP(S)_PROXY says.
    return httpx.AsyncClient(
        timeout=TOKEN_FETCH_TIMEOUT, follow_redirects=False, trust_env=False, verify=trust_context()
    )


# --------------------------------------------------------------------------- simple types


class _AuthorizationHeader(httpx.Auth):
    """A credential sent as one fixed ``Authorization`` header on every request."""

    single_pass = True  # one yield, never reads the response: see upstream.client
    _header: str

    def header(self) -> tuple[str, str]:
        """The one header this auth adds (``upstream.wire`` writes it without httpx)."""
        return "Authorization", self._header

    def auth_flow(self, request: httpx.Request) -> Generator[httpx.Request, httpx.Response, None]:
        request.headers["Authorization"] = self._header
        yield request

    def __repr__(self) -> str:
        return f"{type(self).__name__}(<redacted>)"


class BasicOutboundAuth(_AuthorizationHeader):
    """``Authorization: Basic base64(user:pass)`` on every request (no challenge needed)."""

    def __init__(self, username: str, password: str) -> None:
        raw = f"{username}:{password}".encode()
        self._header = "Basic " + base64.b64encode(raw).decode("ascii")


class BearerOutboundAuth(_AuthorizationHeader):
    """``Authorization: Bearer <token>``."""

    def __init__(self, token: str) -> None:
        self._header = f"Bearer {token}"


class ApiKeyOutboundAuth(httpx.Auth):
    """An API key as a header (any name, ``Authorization`` included), a query parameter
    or a cookie.

    The query form merges into the URL's parameters, so the value is percent-encoded and
    an existing parameter of the same name is replaced rather than duplicated. The cookie
    form joins the request's ``Cookie`` header (replacing a cookie of the same name);
    characters that are not cookie-octets are percent-encoded.
    """

    single_pass = True  # one yield, never reads the response: see upstream.client

    def __init__(self, key: str, value: str, *, placement: str = "header") -> None:
        self._key = key
        self._value = value
        self._placement = placement

    def header(self) -> tuple[str, str] | None:
        """The header this auth adds; None when it goes in the query or a cookie."""
        return (self._key, self._value) if self._placement == "header" else None

    def query_param(self) -> tuple[str, str] | None:
        """The query parameter this auth merges into the URL; None for a header or cookie."""
        return (self._key, self._value) if self._placement == "query" else None

    def auth_flow(self, request: httpx.Request) -> Generator[httpx.Request, httpx.Response, None]:
        if self._placement == "query":
            request.url = request.url.copy_merge_params({self._key: self._value})
        elif self._placement == "cookie":
            request.headers["Cookie"] = self._cookie_header(request.headers.get("Cookie"))
        else:
            request.headers[self._key] = self._value
        yield request

    def _cookie_header(self, existing: str | None) -> str:
        name = quote(self._key, safe=_COOKIE_SAFE.replace("=", ""))
        pairs = [
            pair.strip()
            for pair in (existing or "").split(";")
            if pair.strip() and pair.split("=", 1)[0].strip() != name
        ]
        pairs.append(f"{name}={quote(self._value, safe=_COOKIE_SAFE)}")
        return "; ".join(pairs)

    def __repr__(self) -> str:
        return (
            f"ApiKeyOutboundAuth(key={self._key!r}, placement={self._placement!r}, "
            "value=<redacted>)"
        )


class DigestOutboundAuth(httpx.DigestAuth):
    """HTTP Digest: httpx answers the upstream's 401 challenge (MD5/SHA-256, qop=auth)."""

    def __repr__(self) -> str:
        return "DigestOutboundAuth(<redacted>)"


# --------------------------------------------------------------------------- oauth2


@dataclass(frozen=True, slots=True, repr=False)
class OAuth2ClientCredentials:
    """What a client-credentials token request needs (rendered values)."""

    token_endpoint: str
    client_id: str
    client_secret: str | None
    scopes: tuple[str, ...] = ()
    audience: str | None = None
    resource: str | None = None
    secret_in_body: bool = False

    @property
    def cache_key(self) -> tuple[str, ...]:
        """Everything that shapes the token, so a cached token only ever goes to a caller
        who would have been issued it (documents may take the credentials from callers:
        the same client id with another secret must not be served it).

        The secret is there only as a keyed hash (:func:`_secret_digest`).
        """
        return (
            self.token_endpoint,
            self.client_id,
            _secret_digest(self.client_secret),
            "client_secret_post" if self.secret_in_body else "client_secret_basic",
            " ".join(sorted(self.scopes)),
            self.audience or "",
            self.resource or "",
        )

    def token_request(self) -> tuple[dict[str, str], dict[str, str]]:
        """The form fields and headers of the token request (RFC 6749 §4.4.2, §2.3.1)."""
        form = {"grant_type": "client_credentials"}
        headers = {"Accept": "application/json"}
        if self.scopes:
            form["scope"] = " ".join(self.scopes)
        if self.audience:
            form["audience"] = self.audience
        if self.resource:
            form["resource"] = self.resource
        if self.client_secret is None:
            form["client_id"] = self.client_id  # a public client authenticates with its id
        elif self.secret_in_body:
            form["client_id"] = self.client_id
            form["client_secret"] = self.client_secret
        else:
            # RFC 6749 §2.3.1: id and secret are form-encoded before the Basic encoding.
            raw = f"{quote(self.client_id, safe='')}:{quote(self.client_secret, safe='')}"
            headers["Authorization"] = "Basic " + base64.b64encode(raw.encode()).decode()
        return form, headers

    def __repr__(self) -> str:
        return (
            f"OAuth2ClientCredentials(token_endpoint={self.token_endpoint!r}, "
            f"client_id={self.client_id!r}, scopes={self.scopes!r}, client_secret=<redacted>)"
        )


# A per-process random key: a cache key that leaks (a heap dump, a debug log) is no
# offline oracle for guessing a low-entropy client secret, as a plain hash would be.
_SECRET_DIGEST_KEY = os.urandom(32)


def _secret_digest(secret: str | None) -> str:
    if secret is None:
        return ""  # a public client: no secret at all, unlike an empty one
    return "hmac:" + hmac.new(_SECRET_DIGEST_KEY, secret.encode(), hashlib.sha256).hexdigest()


class OAuth2TokenCache:
    """Access tokens by :attr:`OAuth2ClientCredentials.cache_key`, until expiry.

    A token is dropped ``EARLY_REFRESH`` seconds before its ``expires_in`` (at most half
    its lifetime early, so short-lived tokens are still reused); a token without
    ``expires_in`` is kept ``DEFAULT_TOKEN_TTL`` seconds. One ``asyncio.Lock`` per key makes
    concurrent requests share one fetch; it is dropped when nobody holds or waits for it.
    At most ``MAX_CACHED_TOKENS`` tokens are kept (expired ones go first, then the
    oldest). ``clock`` is injectable for tests.
    """

    def __init__(self, *, clock: Callable[[], float] = time.monotonic) -> None:
        self._clock = clock
        self._tokens: dict[tuple[str, ...], tuple[str, float]] = {}
        self._locks: dict[tuple[str, ...], tuple[asyncio.Lock, list[int]]] = {}
        # Bumped whenever the set of tokens changes: who derives something from
        # :meth:`tokens` (the engine's mask) rebuilds it only then.
        self.generation = 0

    def get(self, key: tuple[str, ...]) -> str | None:
        entry = self._tokens.get(key)
        if entry is None:
            return None
        token, expires_at = entry
        if self._clock() >= expires_at:
            del self._tokens[key]
            self.generation += 1
            return None
        return token

    def put(self, key: tuple[str, ...], token: str, expires_in: float | None) -> None:
        if expires_in is None:
            ttl = DEFAULT_TOKEN_TTL
        else:
            ttl = max(expires_in - EARLY_REFRESH, expires_in / 2)
        if ttl > 0:
            if key not in self._tokens and len(self._tokens) >= MAX_CACHED_TOKENS:
                self._evict()
            self._tokens[key] = (token, self._clock() + ttl)
            self.generation += 1

    def _evict(self) -> None:
        now = self._clock()
        for key in [k for k, (_, expires_at) in self._tokens.items() if now >= expires_at]:
            del self._tokens[key]
        if len(self._tokens) >= MAX_CACHED_TOKENS:
            del self._tokens[next(iter(self._tokens))]  # dicts keep insertion order

    def invalidate(self, key: tuple[str, ...], token: str) -> None:
        """Forget ``token`` (rejected upstream) unless a newer one already replaced it."""
        entry = self._tokens.get(key)
        if entry is not None and entry[0] == token:
            del self._tokens[key]
            self.generation += 1

    def tokens(self) -> tuple[str, ...]:
        """Every cached token, for masking in upstream answers (``engine.masking``)."""
        return tuple(token for token, _ in self._tokens.values())

    @contextlib.asynccontextmanager
    async def locked(self, key: tuple[str, ...]) -> AsyncIterator[None]:
        """Hold ``key``'s lock; the lock is forgotten once its last user leaves."""
        lock, users = self._locks.setdefault(key, (asyncio.Lock(), [0]))
        users[0] += 1
        try:
            async with lock:
                yield
        finally:
            users[0] -= 1
            if users[0] == 0:
                del self._locks[key]

    def clear(self) -> None:
        self._tokens.clear()
        self.generation += 1

    def __len__(self) -> int:
        return len(self._tokens)

    def __repr__(self) -> str:
        return f"OAuth2TokenCache(entries={len(self._tokens)})"


class OAuth2OutboundAuth(httpx.Auth):
    """Client-credentials bearer token: fetched once, cached, refreshed once on a 401."""

    def __init__(
        self,
        credentials: OAuth2ClientCredentials,
        cache: OAuth2TokenCache,
        client_factory: ClientFactory,
    ) -> None:
        self._credentials = credentials
        self._cache = cache
        self._client_factory = client_factory

    def sync_auth_flow(
        self, request: httpx.Request
    ) -> Generator[httpx.Request, httpx.Response, None]:
        raise RuntimeError("oauth2 outbound authentication needs an httpx.AsyncClient")

    async def async_auth_flow(
        self, request: httpx.Request
    ) -> AsyncGenerator[httpx.Request, httpx.Response]:
        token = await self._token(rejected=None)
        request.headers["Authorization"] = f"Bearer {token}"
        response = yield request
        if response.status_code != 401:
            return
        # The upstream rejected the token (revoked, rotated keys...): refresh and retry once.
        token = await self._token(rejected=token)
        request.headers["Authorization"] = f"Bearer {token}"
        yield request

    async def _token(self, *, rejected: str | None) -> str:
        key = self._credentials.cache_key
        if rejected is None and (token := self._cache.get(key)) is not None:
            return token
        async with self._cache.locked(key):
            if rejected is not None:
                self._cache.invalidate(key, rejected)
            # Another request may have fetched while we waited for the lock.
            if (token := self._cache.get(key)) is not None:
                return token
            token, expires_in = await self._fetch()
            self._cache.put(key, token, expires_in)
            return token

    async def _fetch(self) -> tuple[str, float | None]:
        creds = self._credentials
        form, headers = creds.token_request()
        try:
            async with (
                self._client_factory() as client,
                client.stream("POST", creds.token_endpoint, data=form, headers=headers) as response,
            ):
                # Bounded, and decoded by us: an endpoint's answer is as untrusted as any.
                codings = response.headers.get("content-encoding")
                content = await read_limited(response, MAX_TOKEN_RESPONSE_BYTES, codings)
        except ResponseTooLarge as exc:
            raise OutboundAuthError(f"token endpoint {exc}", status=exc.status) from None
        except httpx.HTTPError as exc:
            # ``from None``: the httpx error and its request (with the secret) stay out.
            raise OutboundAuthError(
                f"token endpoint unreachable ({type(exc).__name__})", status=None
            ) from None
        payload = _json(content)
        if response.status_code >= 400:
            raise OutboundAuthError(
                f"token endpoint answered {response.status_code}{_oauth_error(payload)}",
                status=response.status_code,
            )
        token = payload.get("access_token") if isinstance(payload, dict) else None
        if not isinstance(token, str) or not token:
            raise OutboundAuthError(
                "token endpoint response has no access_token", status=response.status_code
            )
        expires_in = _expires_in(payload.get("expires_in"))
        log.debug(
            "oauth2 token obtained for client %s at %s (expires_in=%s)",
            creds.client_id,
            creds.token_endpoint,
            expires_in,
        )
        return token, expires_in

    def __repr__(self) -> str:
        return f"OAuth2OutboundAuth({self._credentials!r})"


def _json(content: bytes) -> Any:
    """A token endpoint's JSON answer, or None when it is not JSON."""
    try:
        return json.loads(content)
    except ValueError:  # UnicodeDecodeError included
        return None


def _oauth_error(payload: Any) -> str:
    """The registered OAuth ``error`` code of a failed token response, never the body."""
    code = payload.get("error") if isinstance(payload, dict) else None
    if isinstance(code, str) and _OAUTH_ERROR_CODE.match(code):
        return f" ({code})"
    return ""


def _expires_in(raw: object) -> float | None:
    if isinstance(raw, bool):
        return None
    try:
        value = float(raw)  # type: ignore[arg-type]
    except (TypeError, ValueError):
        return None
    return value if value > 0 else None
