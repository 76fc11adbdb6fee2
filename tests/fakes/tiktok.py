"""A faithful fake of TikTok's OAuth v2 token API (``/v2/oauth/token/``, ``/v2/oauth/revoke/``).

Built from /work/shared/docs/tiktok-oauth.md so the runtime is tested against what the
real host accepts (form-urlencoded only, refresh on the token URL, rotating refresh
tokens), not against what the published capability assumed.
"""

from __future__ import annotations

import asyncio
import contextlib
import secrets
import string
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, PlainTextResponse, Response
from starlette.routing import Route

from fakes import ALL_METHODS, RecordedRequest, record

TOKEN_PATH = "/v2/oauth/token/"
REVOKE_PATH = "/v2/oauth/revoke/"
# Only in third-party code and the published capability; the real host has no such path.
REFRESH_PATH = "/v2/oauth/token/refresh/"

DEFAULT_CLIENT_KEY = "awk3fake9client2key"
DEFAULT_CLIENT_SECRET = "fake-tiktok-client-secret-7f3a9c"
DEFAULT_REDIRECT_URI = "https://app.example.com/auth/tiktok/callback"
DEFAULT_SCOPE = "user.info.basic,video.list"

MALFORMED = "The request parameters are malformed."
MISSING = "The request is missing a required parameter."

# RFC 6749 section 5.2 statuses; TikTok does not document its own (see errors_as_200).
ERROR_STATUS: dict[str, int] = {
    "invalid_request": 400,
    "invalid_grant": 400,
    "unsupported_grant_type": 400,
    "invalid_scope": 400,
    "unauthorized_client": 400,
    "invalid_client": 401,
    "access_denied": 403,
    "server_error": 500,
    "temporarily_unavailable": 503,
}

_ALNUM = string.ascii_letters + string.digits


def _alnum(n: int) -> str:
    return "".join(secrets.choice(_ALNUM) for _ in range(n))


def _token(prefix: str) -> str:
    """Shaped like real tokens (``act.…!1234.va``); the ``!`` exercises form encoding."""
    return f"{prefix}.{secrets.token_hex(16)}{_alnum(24)}!{secrets.randbelow(9000) + 1000}.va"


def _code() -> str:
    """Real codes carry ``*`` and ``!``, which a client must percent-encode exactly once."""
    return f"{_alnum(40)}*0!{secrets.randbelow(9000) + 1000}.va"


def new_log_id() -> str:
    """Like ``202206221854370101130062072500FFA2``: a UTC timestamp and 20 hex digits."""
    return time.strftime("%Y%m%d%H%M%S", time.gmtime()) + secrets.token_hex(10).upper()


class OAuthError(Exception):
    """An OAuth error answer: ``{"error", "error_description", "log_id"}``."""

    def __init__(self, error: str, description: str) -> None:
        super().__init__(f"{error}: {description}")
        self.error = error
        self.description = description


@dataclass
class IssuedCode:
    """An authorization code as the authorize step would have issued it."""

    code: str
    client_key: str
    redirect_uri: str
    code_verifier: str | None
    scope: str
    open_id: str
    expires_at: float
    used: bool = False


@dataclass
class Grant:
    """One user's authorization of one client: its current refresh token and state."""

    client_key: str
    open_id: str
    scope: str
    refresh_token: str
    refresh_expires_at: float
    revoked: bool = False
    access_tokens: list[str] = field(default_factory=list)


@dataclass
class AccessToken:
    value: str
    expires_at: float
    grant: Grant | None  # None for client_credentials tokens
    client_key: str


class FakeTikTok:
    """State and Starlette app of the fake; every knob is read per request, so tests may
    change them while the server runs.

    Knobs: ``clients`` (client_key -> client_secret), ``access_lifetime_s``,
    ``refresh_lifetime_s``, ``client_token_lifetime_s``, ``code_lifetime_s``,
    ``accept_json`` (JSON bodies allowed, unlike the real host), ``errors_as_200``,
    ``refresh_path_alias`` (``/v2/oauth/token/refresh/`` acts as the token URL instead
    of 404), ``rotate_refresh_tokens``, ``reject_charset`` (a ``;charset=`` on the form
    content type is "malformed", as one developer reports), ``fail_with`` (answer every
    OAuth call with this ``(error, description)``), ``delay_s`` (pause before answering;
    ends early when the client disconnects).
    """

    def __init__(
        self,
        *,
        clients: dict[str, str] | None = None,
        access_lifetime_s: int = 86400,
        refresh_lifetime_s: int = 31536000,
        client_token_lifetime_s: int = 7200,
        code_lifetime_s: int = 600,
        accept_json: bool = False,
        errors_as_200: bool = False,
        refresh_path_alias: bool = False,
        rotate_refresh_tokens: bool = True,
        reject_charset: bool = False,
        fail_with: tuple[str, str] | None = None,
        delay_s: float = 0.0,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.clients = dict(clients or {DEFAULT_CLIENT_KEY: DEFAULT_CLIENT_SECRET})
        self.access_lifetime_s = access_lifetime_s
        self.refresh_lifetime_s = refresh_lifetime_s
        self.client_token_lifetime_s = client_token_lifetime_s
        self.code_lifetime_s = code_lifetime_s
        self.accept_json = accept_json
        self.errors_as_200 = errors_as_200
        self.refresh_path_alias = refresh_path_alias
        self.rotate_refresh_tokens = rotate_refresh_tokens
        self.reject_charset = reject_charset
        self.fail_with = fail_with
        self.delay_s = delay_s
        self._clock = clock
        self._offset = 0.0
        self.requests: list[RecordedRequest] = []
        self.codes: dict[str, IssuedCode] = {}
        self.grants: list[Grant] = []
        self.access_tokens: dict[str, AccessToken] = {}
        self.revoked_tokens: list[str] = []
        self.last_log_id = ""
        self._refresh_index: dict[str, Grant] = {}
        self._app: Starlette | None = None

    # ------------------------------------------------------------------ test helpers

    def now(self) -> float:
        return self._clock() + self._offset

    def advance(self, seconds: float) -> None:
        """Move the fake's clock forward, so expiry is testable without sleeping."""
        self._offset += seconds

    def issue_code(
        self,
        *,
        client_key: str = DEFAULT_CLIENT_KEY,
        redirect_uri: str = DEFAULT_REDIRECT_URI,
        code_verifier: str | None = None,
        scope: str = DEFAULT_SCOPE,
        open_id: str | None = None,
    ) -> str:
        """What the user's consent on the authorize page would produce; single-use."""
        code = _code()
        self.codes[code] = IssuedCode(
            code=code,
            client_key=client_key,
            redirect_uri=redirect_uri,
            code_verifier=code_verifier,
            scope=scope,
            open_id=open_id or str(uuid.uuid4()),
            expires_at=self.now() + self.code_lifetime_s,
        )
        return code

    def issue_tokens(
        self,
        *,
        client_key: str = DEFAULT_CLIENT_KEY,
        scope: str = DEFAULT_SCOPE,
        open_id: str | None = None,
    ) -> dict[str, Any]:
        """A token response as if a code had been exchanged (for refresh/revoke tests)."""
        return self._new_grant(client_key, scope, open_id or str(uuid.uuid4()))

    def access_token_valid(self, token: str) -> bool:
        record_ = self.access_tokens.get(token)
        if record_ is None or self.now() >= record_.expires_at:
            return False
        return record_.grant is None or not record_.grant.revoked

    def refresh_token_valid(self, token: str) -> bool:
        grant = self._refresh_index.get(token)
        return grant is not None and not grant.revoked and self.now() < grant.refresh_expires_at

    def requests_to(self, path: str) -> list[RecordedRequest]:
        return [r for r in self.requests if r.path == path]

    # ------------------------------------------------------------------ app

    @property
    def app(self) -> Starlette:
        if self._app is None:
            self._app = Starlette(
                routes=[
                    Route(TOKEN_PATH, self._token_endpoint, methods=ALL_METHODS),
                    Route(REVOKE_PATH, self._revoke_endpoint, methods=ALL_METHODS),
                    Route(REFRESH_PATH, self._refresh_path_endpoint, methods=ALL_METHODS),
                    Route("/{path:path}", self._not_found, methods=ALL_METHODS),
                ]
            )
        return self._app

    async def _receive(self, request: Request) -> RecordedRequest:
        recorded = await record(request)
        self.requests.append(recorded)
        if self.delay_s > 0:
            await _pause(request, self.delay_s)
        return recorded

    async def _not_found(self, request: Request) -> Response:
        await self._receive(request)
        return PlainTextResponse("Not Found", status_code=404)

    async def _refresh_path_endpoint(self, request: Request) -> Response:
        if self.refresh_path_alias:
            return await self._token_endpoint(request)
        return await self._not_found(request)

    async def _token_endpoint(self, request: Request) -> Response:
        recorded = await self._receive(request)
        if request.method != "POST":
            return PlainTextResponse("Method Not Allowed", status_code=405)
        try:
            params = self._params(recorded)
            client_key = self._authenticate(params)
            grant_type = params.get("grant_type")
            if not grant_type:
                raise OAuthError("invalid_request", MISSING)
            if grant_type == "authorization_code":
                body = self._exchange(params, client_key)
            elif grant_type == "refresh_token":
                body = self._refresh(params, client_key)
            elif grant_type == "client_credentials":
                body = self._client_credentials(client_key)
            else:
                raise OAuthError("unsupported_grant_type", "The grant type is not supported.")
        except OAuthError as err:
            return self._error(err)
        return self._ok(body)

    async def _revoke_endpoint(self, request: Request) -> Response:
        recorded = await self._receive(request)
        if request.method != "POST":
            return PlainTextResponse("Method Not Allowed", status_code=405)
        try:
            params = self._params(recorded)
            client_key = self._authenticate(params)
            token = params.get("token")
            if not token:
                raise OAuthError("invalid_request", MISSING)
        except OAuthError as err:
            return self._error(err)
        # RFC 7009: an unknown token is not an error; the grant behind a known one ends.
        known = self.access_tokens.get(token)
        if known is not None and known.client_key == client_key and known.grant is not None:
            known.grant.revoked = True
        self.revoked_tokens.append(token)
        return self._ok({})

    # ------------------------------------------------------------------ protocol

    def _params(self, recorded: RecordedRequest) -> dict[str, str]:
        if self.fail_with is not None:
            raise OAuthError(*self.fail_with)
        media = recorded.content_type.split(";")[0].strip().lower()
        if media == "application/x-www-form-urlencoded":
            if self.reject_charset and ";" in recorded.content_type:
                raise OAuthError("invalid_request", MALFORMED)
            return recorded.form or {}
        if media == "application/json" and self.accept_json and isinstance(recorded.json, dict):
            return {k: str(v) for k, v in recorded.json.items() if v is not None}
        raise OAuthError("invalid_request", MALFORMED)

    def _authenticate(self, params: dict[str, str]) -> str:
        key, secret = params.get("client_key"), params.get("client_secret")
        if not key or not secret:
            raise OAuthError("invalid_request", MISSING)
        if self.clients.get(key) != secret:
            raise OAuthError("invalid_client", "Client key or client secret is invalid.")
        return key

    def _exchange(self, params: dict[str, str], client_key: str) -> dict[str, Any]:
        code, redirect_uri = params.get("code"), params.get("redirect_uri")
        if not code or not redirect_uri:
            raise OAuthError("invalid_request", MISSING)
        issued = self.codes.get(code)
        if (
            issued is None
            or issued.used
            or issued.client_key != client_key
            or self.now() >= issued.expires_at
        ):
            raise OAuthError("invalid_grant", "Authorization code is expired or invalid.")
        if issued.redirect_uri != redirect_uri:
            raise OAuthError("invalid_grant", "Redirect URI does not match the authorization.")
        if issued.code_verifier is not None and params.get("code_verifier") != issued.code_verifier:
            raise OAuthError("invalid_grant", "Code verifier is invalid.")
        issued.used = True
        return self._new_grant(client_key, issued.scope, issued.open_id)

    def _refresh(self, params: dict[str, str], client_key: str) -> dict[str, Any]:
        token = params.get("refresh_token")
        if not token:
            raise OAuthError("invalid_request", MISSING)
        grant = self._refresh_index.get(token)
        if grant is None or grant.client_key != client_key or not self.refresh_token_valid(token):
            raise OAuthError("invalid_grant", "Refresh token is invalid or expired.")
        if self.rotate_refresh_tokens:
            del self._refresh_index[token]
            grant.refresh_token = _token("rft")
            grant.refresh_expires_at = self.now() + self.refresh_lifetime_s
            self._refresh_index[grant.refresh_token] = grant
        return self._token_body(grant, self._new_access_token(grant, client_key))

    def _client_credentials(self, client_key: str) -> dict[str, Any]:
        token = self._new_access_token(None, client_key, prefix="clt")
        lifetime = self.client_token_lifetime_s
        return {"access_token": token.value, "expires_in": lifetime, "token_type": "Bearer"}

    def _new_grant(self, client_key: str, scope: str, open_id: str) -> dict[str, Any]:
        grant = Grant(
            client_key=client_key,
            open_id=open_id,
            scope=scope,
            refresh_token=_token("rft"),
            refresh_expires_at=self.now() + self.refresh_lifetime_s,
        )
        self.grants.append(grant)
        self._refresh_index[grant.refresh_token] = grant
        return self._token_body(grant, self._new_access_token(grant, client_key))

    def _new_access_token(
        self, grant: Grant | None, client_key: str, *, prefix: str = "act"
    ) -> AccessToken:
        lifetime = self.client_token_lifetime_s if grant is None else self.access_lifetime_s
        token = AccessToken(_token(prefix), self.now() + lifetime, grant, client_key)
        self.access_tokens[token.value] = token
        if grant is not None:
            grant.access_tokens.append(token.value)
        return token

    def _token_body(self, grant: Grant, access: AccessToken) -> dict[str, Any]:
        return {
            "access_token": access.value,
            "expires_in": self.access_lifetime_s,
            "open_id": grant.open_id,
            "refresh_expires_in": max(0, round(grant.refresh_expires_at - self.now())),
            "refresh_token": grant.refresh_token,
            "scope": grant.scope,
            "token_type": "Bearer",
        }

    def _ok(self, body: dict[str, Any]) -> Response:
        self.last_log_id = new_log_id()
        return JSONResponse(body, headers={"x-tt-logid": self.last_log_id})

    def _error(self, err: OAuthError) -> Response:
        self.last_log_id = new_log_id()
        status = 200 if self.errors_as_200 else ERROR_STATUS.get(err.error, 400)
        body = {
            "error": err.error,
            "error_description": err.description,
            "log_id": self.last_log_id,
        }
        return JSONResponse(body, status_code=status, headers={"x-tt-logid": self.last_log_id})


async def _pause(request: Request, seconds: float) -> None:
    """Sleep up to ``seconds``, returning early when the client hangs up, so a test whose
    client timed out does not leave the server busy at teardown."""

    async def disconnected() -> None:
        while (await request.receive())["type"] != "http.disconnect":
            pass

    with contextlib.suppress(TimeoutError):
        await asyncio.wait_for(disconnected(), seconds)
