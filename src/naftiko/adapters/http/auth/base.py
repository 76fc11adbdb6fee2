"""What every inbound authentication scheme shares: the check's interface, a refusal and
its ``WWW-Authenticate`` challenge, and reading a presented credential."""

from __future__ import annotations

import hashlib
import hmac
import json
from abc import ABC, abstractmethod
from collections.abc import Mapping
from dataclasses import dataclass

from starlette.requests import HTTPConnection
from starlette.responses import Response

from naftiko.errors import LoadTimeError
from naftiko.media_types import PROBLEM_MEDIA_TYPE

__all__ = [
    "CALLER_SCOPE_KEY",
    "REALM",
    "AuthFailure",
    "InboundAuth",
    "InboundAuthConfigError",
    "bearer_token",
    "challenge",
    "credential_identity",
    "equal",
    "raw_header",
]

REALM = "naftiko"
# Where a successful check leaves who the caller is, in the ASGI scope (the rate limits
# key their buckets on it): a subject, or a hash of a static credential, never the secret.
CALLER_SCOPE_KEY = "naftiko.caller"


def credential_identity(kind: str, *parts: bytes) -> str:
    """A caller identity derived from a credential: a SHA-256 of it, never the credential."""
    digest = hashlib.sha256(b"\0".join(parts)).hexdigest()
    return f"{kind}:{digest[:32]}"


class InboundAuthConfigError(ValueError, LoadTimeError):
    """The adapter's ``authentication`` block cannot be enforced; the adapter must not start."""


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


def challenge(scheme: str, params: Mapping[str, str | None]) -> str:
    """A ``WWW-Authenticate`` value: the scheme and its set parameters, quoted."""
    parts = [f"{k}={_quote(v)}" for k, v in params.items() if v is not None]
    return f"{scheme} {', '.join(parts)}" if parts else scheme


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
        return AuthFailure(401, challenge(scheme, params), "Unauthorized", detail)

    def __repr__(self) -> str:
        return f"{type(self).__name__}(<redacted>)"


def raw_header(conn: HTTPConnection, name: str) -> list[bytes]:
    """Every value of a header as the bytes the caller sent (Starlette decodes latin-1)."""
    return [v.encode("latin-1") for v in conn.headers.getlist(name)]


def equal(presented: bytes, expected: bytes) -> bool:
    """Constant time: how long it takes does not tell how much of a credential matched."""
    return hmac.compare_digest(presented, expected)


def bearer_token(conn: HTTPConnection) -> bytes | None:
    """The token of the one ``Authorization: Bearer`` header; None when there is not
    exactly one such header."""
    values = raw_header(conn, "authorization")
    if len(values) != 1:
        return None
    scheme, _, credentials = values[0].strip().partition(b" ")
    if scheme.lower() != b"bearer":
        return None
    return credentials.strip() or None
