"""Request body media types on loopback (issue 15 item 7: CSRF through simple bodies).

A browser sends ``application/x-www-form-urlencoded``, ``multipart/form-data`` and
``text/plain`` cross-site without a preflight. An operation whose body is JSON must not
run on them (nor on a body without ``Content-Type``): 415 problem+json, and the
upstream, which holds a bound bearer token, sees nothing. Form and multipart are taken
only where the consumed operation declares that body type. Real engine, real uvicorn,
a recording upstream.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterator
from contextlib import asynccontextmanager
from pathlib import Path

import httpx
import pytest
from hardening_kit import RawRecorder, recorder_thread, serve_capability

from naftiko.adapters.rest.app import OPENAPI_PATH
from naftiko.engine.types import PROBLEM_MEDIA_TYPE
from naftiko.upstream.settings import UpstreamSettings

CAPABILITY = Path(__file__).parent / "capabilities" / "rest-media-types.yaml"
TOKEN = "media-token-5d1c9e"
FORM = "application/x-www-form-urlencoded"


@pytest.fixture
def recorder() -> Iterator[tuple[str, RawRecorder]]:
    with recorder_thread() as found:
        yield found


@asynccontextmanager
async def rest_client(upstream: str) -> AsyncIterator[httpx.AsyncClient]:
    settings = UpstreamSettings(base_uri_overrides={"up": upstream})
    env = {"MEDIA_TEST_TOKEN": TOKEN}
    async with (
        serve_capability(CAPABILITY, env=env, engine_settings=settings) as served,
        httpx.AsyncClient(base_url=served.rest["media-rest"], timeout=30.0) as client,
    ):
        yield client


# What a cross-site page can send without a preflight, and a body with no Content-Type.
SIMPLE_BODIES = [
    pytest.param({"content-type": FORM}, b"name=x", id="form"),
    pytest.param({"content-type": f"{FORM}; charset=utf-8"}, b"name=x", id="form-charset"),
    pytest.param(
        {"content-type": "multipart/form-data; boundary=b"},
        b'--b\r\nContent-Disposition: form-data; name="name"\r\n\r\nx\r\n--b--\r\n',
        id="multipart",
    ),
    pytest.param({"content-type": "text/plain"}, b'{"name": "x"}', id="text-plain"),
    pytest.param({"content-type": "text/plain;charset=UTF-8"}, b'{"name":"x"}', id="text-utf8"),
    pytest.param({}, b'{"name": "x"}', id="no-content-type"),
    pytest.param({"content-type": "application/octet-stream"}, b'{"name":"x"}', id="octets"),
]


@pytest.mark.parametrize("path", ["/things", "/notes", "/raw"])
@pytest.mark.parametrize(("headers", "payload"), SIMPLE_BODIES)
async def test_json_operations_refuse_other_media_types(
    recorder: tuple[str, RawRecorder], path: str, headers: dict[str, str], payload: bytes
) -> None:
    url, seen = recorder
    async with rest_client(url) as client:
        response = await client.post(path, content=payload, headers=headers)
    assert response.status_code == 415, response.text
    assert response.headers["content-type"] == PROBLEM_MEDIA_TYPE
    problem = response.json()
    assert problem["status"] == 415
    assert "application/json" in problem["detail"]
    assert seen.requests == []  # the upstream (and its bearer token) never used


@pytest.mark.parametrize(
    "media", ["application/json", "application/json; charset=utf-8", "application/vnd.x+json"]
)
async def test_json_operations_take_json(recorder: tuple[str, RawRecorder], media: str) -> None:
    url, seen = recorder
    async with rest_client(url) as client:
        things = await client.post(
            "/things", content=b'{"name": "x"}', headers={"content-type": media}
        )
        raw = await client.post("/raw", content=b'{"a": 1}', headers={"content-type": media})
    assert things.status_code == 200, things.text
    assert raw.status_code == 200, raw.text
    assert [r.raw_path for r in seen.requests] == ["/things", "/raw"]
    assert seen.requests[0].body == b'{"name":"x"}'


async def test_an_optional_body_may_be_left_out(recorder: tuple[str, RawRecorder]) -> None:
    url, seen = recorder
    async with rest_client(url) as client:
        bare = await client.post("/notes")
        empty_form = await client.post("/notes", content=b"", headers={"content-type": FORM})
    assert bare.status_code == 200, bare.text
    assert empty_form.status_code == 200, empty_form.text  # no body: nothing to refuse
    assert len(seen.requests) == 2


async def test_a_declared_form_operation_takes_forms_and_json(
    recorder: tuple[str, RawRecorder],
) -> None:
    url, seen = recorder
    async with rest_client(url) as client:
        form = await client.post("/form", data={"name": "by form"})
        as_json = await client.post("/form", json={"name": "by json"})
        header_form = await client.post("/form-header", data={"a": "1"})
        text = await client.post("/form", content=b"name=x", headers={"content-type": "text/plain"})
        multipart = await client.post("/form", data={"name": "x"}, files={"f": ("f", b"1")})
    assert (form.status_code, as_json.status_code, header_form.status_code) == (200, 200, 200)
    assert (text.status_code, multipart.status_code) == (415, 415)
    bodies = [r.body for r in seen.requests]
    assert bodies == [b"name=by+form", b"name=by+json", b"a=1"]


async def test_a_declared_multipart_operation_takes_multipart(
    recorder: tuple[str, RawRecorder],
) -> None:
    url, seen = recorder
    async with rest_client(url) as client:
        multipart = await client.post("/upload", data={"name": "up"}, files={"f": ("f", b"1")})
        form = await client.post("/upload", data={"name": "up"})
    assert multipart.status_code == 200, multipart.text
    assert form.status_code == 415
    (sent,) = seen.requests
    assert b'name="name"\r\n\r\nup' in sent.body


async def test_openapi_lists_only_the_media_types_taken(recorder: tuple[str, RawRecorder]) -> None:
    url, _ = recorder
    async with rest_client(url) as client:
        paths = (await client.get(OPENAPI_PATH)).json()["paths"]

    def content(path: str) -> list[str]:
        return sorted(paths[path]["post"]["requestBody"]["content"])

    assert content("/things") == ["application/json"]
    assert content("/raw") == ["application/json"]
    assert content("/form") == ["application/json", FORM]
    assert content("/form-header") == ["application/json", FORM]
    assert content("/upload") == ["application/json", "multipart/form-data"]
