"""Inbound ``bearer`` authentication: a static token, compared in constant time."""

from __future__ import annotations

from typing import Any

from starlette.requests import HTTPConnection

from naftiko.adapters.http.auth.base import (
    CALLER_SCOPE_KEY,
    REALM,
    AuthFailure,
    InboundAuth,
    bearer_token,
    credential_identity,
    equal,
)

__all__ = ["BearerInboundAuth"]


class BearerInboundAuth(InboundAuth):
    """A static bearer token, compared in constant time."""

    type = "bearer"

    def __init__(self, token: str, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self._token = token.encode()
        self._identity = credential_identity("bearer", self._token)

    async def check(self, conn: HTTPConnection) -> AuthFailure | None:
        token = bearer_token(conn)
        if token is None:
            return self._unauthorized("Bearer", "A bearer token is required.", realm=REALM)
        if not equal(token, self._token):
            return self._unauthorized(
                "Bearer",
                "The bearer token is not valid.",
                realm=REALM,
                error="invalid_token",
                error_description="Invalid token",
            )
        conn.scope[CALLER_SCOPE_KEY] = self._identity
        return None
