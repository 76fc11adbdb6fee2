"""Which certificate authorities outbound HTTPS trusts: the operating system's store.

One trust source for every outbound connection (upstream calls, OAuth2 token fetches,
JWKS downloads), so a CA added the usual way for the machine or the container image is
honoured everywhere:

- the store OpenSSL is configured with (Debian and the container image:
  ``/etc/ssl/certs/ca-certificates.crt`` and the hashed ``/etc/ssl/certs`` directory,
  which ``update-ca-certificates`` maintains);
- ``SSL_CERT_FILE`` / ``SSL_CERT_DIR`` name another bundle or directory (OpenSSL reads
  them itself), for a CA added without rebuilding an image.

httpx's default would be certifi's bundle, which ignores both. certifi is used only
where OpenSSL's configured store does not exist at all (python.org's macOS build before
its "Install Certificates" step), so HTTPS still verifies there instead of failing.
``truststore`` was not chosen: on Linux it reloads the store for every new connection.
"""

from __future__ import annotations

import functools
import ssl


@functools.cache
def trust_context() -> ssl.SSLContext:
    """The client TLS context every outbound connection uses (built once: loading costs)."""
    paths = ssl.get_default_verify_paths()  # None where the file or directory is missing
    if paths.cafile or paths.capath:
        return ssl.create_default_context()
    import certifi

    return ssl.create_default_context(cafile=certifi.where())
