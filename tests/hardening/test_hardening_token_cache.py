"""OAuth2 client credentials from callers: the token cache never crosses secrets.

Issue 15, item 3: the token cache was keyed without the client secret, so once one
caller had a token, anyone presenting the same client id with any secret was served it.
A real token endpoint that checks the secret, a recorder as the upstream, and the
runtime's loader, compiler, engine and REST adapter in between.
"""

from __future__ import annotations

import base64
from collections.abc import Iterator

import httpx
import pytest
from hardening_kit import CAPABILITIES, CapabilityThread, RawRecorder, recorder_thread
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from naftiko.upstream.settings import UpstreamSettings
from support.servers import ServerThread

CLIENT_ID = "shared-client"
SECRET = "right-Secret-7Hq2"


class TokenEndpoint:
    """Issues ``tok-<n>`` to the right secret only (HTTP Basic, RFC 6749 §2.3.1)."""

    def __init__(self) -> None:
        self.issued = 0

    async def token(self, request: Request) -> Response:
        header = request.headers.get("authorization", "")
        user, _, secret = base64.b64decode(header.removeprefix("Basic ")).decode().partition(":")
        if user != CLIENT_ID or secret != SECRET:
            return JSONResponse({"error": "invalid_client"}, status_code=401)
        self.issued += 1
        return JSONResponse({"access_token": f"tok-{self.issued}", "expires_in": 3600})

    @property
    def app(self) -> Starlette:
        return Starlette(routes=[Route("/token", self.token, methods=["POST"])])


@pytest.fixture(scope="module")
def served() -> Iterator[tuple[str, RawRecorder, TokenEndpoint]]:
    endpoint = TokenEndpoint()
    with ServerThread(endpoint.app) as tokens, recorder_thread() as (backend, recorder):
        settings = UpstreamSettings(base_uri_overrides={"backend": backend})
        env = {"HARD_CALLER_TOKEN_URL": tokens.url}
        path = CAPABILITIES / "caller-oauth.yaml"
        with CapabilityThread(path, env=env, engine_settings=settings) as thread:
            yield thread.served.rest["caller-oauth-rest"], recorder, endpoint


def test_a_wrong_secret_is_never_served_the_cached_token(
    served: tuple[str, RawRecorder, TokenEndpoint],
) -> None:
    rest, recorder, endpoint = served
    right = {"client_id": CLIENT_ID, "client_secret": SECRET}
    with httpx.Client(base_url=rest, timeout=30.0) as client:
        first = client.get("/items/1", headers=right)
        assert first.status_code == 200, first.text
        for wrong in ("guess", SECRET + "x", SECRET.upper()):
            refused = client.get("/items/2", headers={**right, "client_secret": wrong})
            assert refused.status_code == 502, refused.text
            assert "tok-1" not in refused.text and SECRET not in refused.text
        again = client.get("/items/3", headers=right)
        assert again.status_code == 200, again.text
    assert [r.raw_path for r in recorder.requests] == ["/items/1", "/items/3"]
    assert [r.header("authorization") for r in recorder.requests] == [["Bearer tok-1"]] * 2
    assert endpoint.issued == 1  # the right secret was served from the cache
