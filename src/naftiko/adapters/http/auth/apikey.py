"""Inbound ``apikey`` authentication: a key in a header or a query parameter."""

from __future__ import annotations

from typing import Any

from starlette.requests import HTTPConnection

from naftiko.adapters.http.auth.base import (
    CALLER_SCOPE_KEY,
    REALM,
    AuthFailure,
    InboundAuth,
    credential_identity,
    equal,
    raw_header,
)

__all__ = ["ApiKeyInboundAuth"]


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
        self._identity = credential_identity("apikey", key.lower().encode(), self._value)

    async def check(self, conn: HTTPConnection) -> AuthFailure | None:
        if self._in_query:
            presented = [v.encode() for v in conn.query_params.getlist(self._key)]
        else:
            presented = raw_header(conn, self._key)
        where = "query parameter" if self._in_query else "header"
        if not presented:
            return self._unauthorized(
                "ApiKey", f"The API key {where} {self._key!r} is required.", realm=REALM
            )
        if len(presented) != 1 or not equal(presented[0], self._value):
            return self._unauthorized(
                "ApiKey", f"The API key in {where} {self._key!r} is not valid.", realm=REALM
            )
        conn.scope[CALLER_SCOPE_KEY] = self._identity
        return None
