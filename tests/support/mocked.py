"""A respx router as the engine's upstream, through the seam ``UpstreamSettings.transport``."""

from __future__ import annotations

from typing import Any

import httpx
import respx

from naftiko.upstream.settings import UpstreamSettings


def mocked_settings(router: respx.Router, **settings: Any) -> UpstreamSettings:
    """Settings whose clients send every call to ``router`` (nothing is patched: each
    namespace's client gets an ``httpx.MockTransport`` in place of our transport)."""
    return UpstreamSettings(transport=lambda: httpx.MockTransport(router.async_handler), **settings)
