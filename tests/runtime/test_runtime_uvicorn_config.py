"""How the runtime configures uvicorn for every adapter server."""

from __future__ import annotations

from typing import Any

from naftiko.runtime.config import RuntimeConfig
from naftiko.runtime.http_protocol import CoalescingHttpToolsProtocol
from naftiko.runtime.logs import Redactor
from naftiko.runtime.metrics import Metrics
from naftiko.runtime.process import Runtime


def runtime() -> Runtime:
    return Runtime(RuntimeConfig(paths=()), [], [], redactor=Redactor(), metrics=Metrics())


async def test_forwarded_headers_are_not_trusted_by_default() -> None:
    """A local peer's ``X-Forwarded-For``/``-Proto`` change neither client nor scheme."""
    seen: list[dict[str, Any]] = []

    async def app(scope, receive, send) -> None:  # type: ignore[no-untyped-def]
        seen.append(scope)

    config = runtime()._uvicorn_config(app)
    config.load()
    scope = {
        "type": "http",
        "scheme": "http",
        "client": ("127.0.0.1", 50000),
        "headers": [(b"x-forwarded-for", b"203.0.113.7"), (b"x-forwarded-proto", b"https")],
    }

    async def never(*_: object) -> None:
        raise AssertionError("not expected")

    await config.loaded_app(dict(scope), never, never)
    assert seen[0]["client"] == ("127.0.0.1", 50000)
    assert seen[0]["scheme"] == "http"


def test_responses_go_out_through_the_coalescing_protocol() -> None:
    """Head and body of each response in one write (tests/runtime/test_http_protocol.py)."""

    async def app(scope, receive, send) -> None:  # type: ignore[no-untyped-def]
        pass

    config = runtime()._uvicorn_config(app)
    config.load()
    assert config.http_protocol_class is CoalescingHttpToolsProtocol
