"""A body the caller sends is never dropped silently (issue 20 item 2).

An exposed POST/PUT/PATCH/DELETE that declares no body, calling a consumed operation
that declares none either, forwards the caller's body as sent (the document's author
evidently meant it; the served OpenAPI document advertises it), with a load warning.
An operation that cannot take one (it calls a GET) does not advertise one.
"""

from __future__ import annotations

from pathlib import Path

import httpx
from hardening_kit import CLIENT_TIMEOUT, recorder_thread, serve_capability

from naftiko.adapters.exposes import compile_capability
from naftiko.spec.loader import load_capability
from naftiko.upstream.settings import UpstreamSettings

CAPABILITY = Path(__file__).parent / "capabilities" / "forward_body.yaml"


def test_a_load_warning_names_each_unit_that_forwards_the_body() -> None:
    compiled = compile_capability(load_capability(CAPABILITY))
    messages = [w.message for w in compiled.warnings]
    for unit, target in (
        ("pages-rest.create-page", "pages-api.create-page"),
        ("pages-rest.update-page", "pages-api.update-page"),
    ):
        (line,) = [m for m in messages if f"'{unit}'" in m]
        assert "request body is forwarded" in line and f"'{target}'" in line
    assert not [m for m in messages if "touch-page" in m]


async def test_the_caller_s_body_reaches_the_upstream_as_sent() -> None:
    with recorder_thread() as (url, recorder):
        settings = UpstreamSettings(base_uri_overrides={"pages-api": url})
        async with (
            serve_capability(CAPABILITY, engine_settings=settings) as served,
            httpx.AsyncClient(base_url=served.rest["pages-rest"], timeout=CLIENT_TIMEOUT) as rest,
        ):
            created = await rest.post("/pages", json={"parent": {"page_id": "p1"}, "n": 1})
            assert created.status_code == 200, created.text
            sent = recorder.requests[-1]
            assert sent.method == "POST" and sent.header("content-type") == ["application/json"]
            assert httpx.Response(200, content=sent.body).json() == {
                "parent": {"page_id": "p1"},
                "n": 1,
            }
            updated = await rest.patch("/pages/p1", json={"archived": True})
            assert updated.status_code == 200, updated.text
            sent = recorder.requests[-1]
            assert sent.raw_path == "/pages/p1" and sent.body == b'{"archived":true}'
            # The document declares no form body: a form is refused, not forwarded (CSRF).
            form = await rest.patch("/pages/p1", data={"archived": "true"})
            assert form.status_code == 415 and recorder.requests[-1] is sent
            empty = await rest.post("/pages")
            assert empty.status_code == 200 and recorder.requests[-1].body == b""

            document = (await rest.get("/.well-known/openapi.json")).json()
            assert "requestBody" in document["paths"]["/pages"]["post"]
            assert "requestBody" in document["paths"]["/pages/{page_id}"]["patch"]
            # It calls a GET: no body goes anywhere, so none is advertised.
            assert "requestBody" not in document["paths"]["/pages/{page_id}"]["post"]


async def test_a_body_nothing_reads_is_refused_not_dropped() -> None:
    with recorder_thread() as (url, recorder):
        settings = UpstreamSettings(base_uri_overrides={"pages-api": url})
        async with (
            serve_capability(CAPABILITY, engine_settings=settings) as served,
            httpx.AsyncClient(base_url=served.rest["pages-rest"], timeout=CLIENT_TIMEOUT) as rest,
        ):
            refused = await rest.post("/pages/p1", json={"archived": True})
            assert refused.status_code == 400, refused.text
            assert refused.headers["content-type"] == "application/problem+json"
            assert "reads no request body" in refused.json()["detail"]
            assert not recorder.requests
            assert (await rest.post("/pages/p1")).status_code == 200  # no body: served
            assert (await rest.post("/pages/p1", json={})).status_code == 200  # nothing in it
