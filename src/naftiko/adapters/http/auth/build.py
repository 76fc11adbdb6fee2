"""An adapter's ``authentication`` block turned into its check, once, at start-up."""

from __future__ import annotations

import time
from collections.abc import Callable, Mapping
from typing import Any

from naftiko.adapters.http.auth.apikey import ApiKeyInboundAuth
from naftiko.adapters.http.auth.base import InboundAuth, InboundAuthConfigError
from naftiko.adapters.http.auth.basic import BasicInboundAuth
from naftiko.adapters.http.auth.bearer import BearerInboundAuth
from naftiko.adapters.http.auth.credentials import resolve_credential
from naftiko.adapters.http.auth.oauth2 import HttpClientFactory, OAuth2ResourceServer
from naftiko.spec.models import Authentication

__all__ = ["build_inbound_auth"]


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
        return resolve_credential(field, template, binds, namespaces)

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
