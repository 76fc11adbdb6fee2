"""Authentication of callers of exposed adapters: one module per scheme, the middleware
and the RFC 9728 metadata.

``build_inbound_auth`` (``build``) turns an ``authentication`` block into an
:class:`~naftiko.adapters.http.auth.base.InboundAuth` once, at start-up;
:class:`~naftiko.adapters.http.auth.middleware.InboundAuthMiddleware` applies it to
every HTTP and websocket request of an adapter. Credentials resolve from binds only
(``credentials``), and a credential that does not resolve refuses to start: we never
accept everything and never compare with the literal ``{{VAR}}``.

Decisions: ``digest`` and OAuth2 ``tokenValidation: introspection`` are refused at build
time (digest needs server nonce state and MD5; introspection is not implemented). An
apikey without ``placement`` is read from a header. OAuth2 needs ``audience`` or
``resource`` (a token for any API would otherwise pass) and tokens must carry ``exp``.
Presented credentials never appear in a response, an exception or a log line.
"""

from naftiko.adapters.http.auth.base import AuthFailure, InboundAuth, InboundAuthConfigError
from naftiko.adapters.http.auth.build import build_inbound_auth
from naftiko.adapters.http.auth.metadata import (
    protected_resource_metadata,
    protected_resource_metadata_path,
    protected_resource_metadata_url,
)
from naftiko.adapters.http.auth.middleware import InboundAuthMiddleware

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
