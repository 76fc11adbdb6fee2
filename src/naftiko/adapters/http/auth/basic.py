"""Inbound ``basic`` authentication: HTTP Basic, both parts compared in constant time."""

from __future__ import annotations

import base64
import binascii
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

__all__ = ["BasicInboundAuth"]


class BasicInboundAuth(InboundAuth):
    """HTTP Basic; user name and password both compared in constant time."""

    type = "basic"

    def __init__(self, username: str, password: str, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self._username = username.encode()
        self._password = password.encode()
        self._identity = credential_identity("basic", self._username, self._password)

    async def check(self, conn: HTTPConnection) -> AuthFailure | None:
        values = raw_header(conn, "authorization")
        scheme, _, encoded = (values[0].strip() if len(values) == 1 else b"").partition(b" ")
        if scheme.lower() != b"basic":
            return self._unauthorized("Basic", "Credentials are required.", realm=REALM)
        try:
            decoded = base64.b64decode(encoded.strip(), validate=True)
        except (binascii.Error, ValueError):
            decoded = b""
        username, sep, password = decoded.partition(b":")
        # Both comparisons always run: timing does not tell which part was wrong.
        user_ok = equal(username, self._username)
        password_ok = equal(password, self._password)
        if not (sep and user_ok & password_ok):
            return self._unauthorized("Basic", "Invalid credentials.", realm=REALM)
        conn.scope[CALLER_SCOPE_KEY] = self._identity
        return None
