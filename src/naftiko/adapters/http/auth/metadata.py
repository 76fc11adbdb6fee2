"""The OAuth 2.0 protected resource metadata (RFC 9728) an MCP adapter serves."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any
from urllib.parse import urlsplit

from naftiko.adapters.http.auth.base import InboundAuthConfigError
from naftiko.adapters.http.auth.credentials import resolve_credential
from naftiko.spec.models import Authentication

__all__ = [
    "WELL_KNOWN_PROTECTED_RESOURCE",
    "protected_resource_metadata",
    "protected_resource_metadata_path",
    "protected_resource_metadata_url",
]

WELL_KNOWN_PROTECTED_RESOURCE = "/.well-known/oauth-protected-resource"


def _metadata_fields(
    spec: Authentication,
    binds: Mapping[str, str] | None,
    bind_namespaces: Mapping[str, Mapping[str, str]] | None,
) -> tuple[str, str]:
    if binds is None:
        resource, issuer = spec.resource, spec.authorization_server_uri
    else:
        namespaces = bind_namespaces or {}
        resource = resolve_credential("resource", spec.resource, binds, namespaces)
        issuer = resolve_credential(
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
