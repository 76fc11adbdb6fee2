"""Upstream requests: URL joining and encoding, parameter placement, bodies, auth."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator, Callable
from pathlib import Path
from typing import Any

import httpx
import pytest
import respx
import yaml

from naftiko.adapters.exposes import compile_capability
from naftiko.engine.invoke import Engine
from naftiko.engine.types import ErrorKind, Inputs, Result
from naftiko.spec.loader import load_capability
from support.mocked import mocked_settings

BASE = "https://api.example.com/v1"


def document(
    operation: dict[str, Any],
    tool: dict[str, Any],
    *,
    path: str = "/items",
    base: str = BASE,
    consumes: dict[str, Any] | None = None,
    binds: dict[str, str] | None = None,
    rest: dict[str, Any] | None = None,
) -> dict[str, Any]:
    doc: dict[str, Any] = {
        "naftiko": "1.0.0-alpha2",
        "info": {"label": "t", "description": "t"},
        "capability": {
            "consumes": [
                {
                    "type": "http",
                    "namespace": "up",
                    "baseUri": base,
                    **(consumes or {}),
                    "resources": [{"name": "r", "path": path, "operations": [operation]}],
                }
            ],
            "exposes": [{"type": "mcp", "namespace": "mcp", "tools": [tool]}],
        },
    }
    if rest is not None:
        doc["capability"]["exposes"].append(rest)
    if binds:
        doc["binds"] = [{"namespace": "env", "keys": {k: k for k in binds}}]
    return doc


Make = Callable[..., Engine]


@pytest.fixture
async def make(tmp_path: Path, upstream: respx.Router) -> AsyncIterator[Make]:
    engines: list[Engine] = []

    def build(doc: dict[str, Any], env: dict[str, str] | None = None, **settings: Any) -> Engine:
        file = tmp_path / f"cap{len(engines)}.yaml"
        file.write_text(yaml.safe_dump(doc, sort_keys=False))
        engine_settings = mocked_settings(upstream, **settings)
        loaded = load_capability(file, env=env or {})
        engine = Engine(compile_capability(loaded, engine_settings), engine_settings)
        engines.append(engine)
        return engine

    yield build
    for engine in engines:
        await engine.aclose()


async def call(engine: Engine, values: dict[str, Any], unit: str = "mcp.t", **kw: Any) -> Result:
    return await engine.invoke(engine.units[unit], Inputs(values=values, **kw))


def op(**fields: Any) -> dict[str, Any]:
    return {"name": "o", "method": "GET", **fields}


def tool(**fields: Any) -> dict[str, Any]:
    return {"name": "t", "description": "d", "call": "up.o", **fields}


@pytest.fixture
def upstream() -> respx.Router:
    router = respx.Router(assert_all_called=False)
    router.route().mock(return_value=httpx.Response(200, json={"ok": True}))
    return router


def sent(router: respx.Router) -> httpx.Request:
    return router.calls.last.request


# --------------------------------------------------------------------------- URL


@pytest.mark.parametrize(
    ("base", "path", "expected"),
    [
        ("https://h/v1", "users", "https://h/v1/users"),
        ("https://h/v1/", "/users", "https://h/v1/users"),
        ("https://h/v1", "/users", "https://h/v1/users"),
        ("https://h", "/", "https://h/"),
    ],
)
async def test_base_and_path_join_with_one_slash(
    make: Make, upstream: respx.Router, base: str, path: str, expected: str
) -> None:
    engine = make(document(op(), tool(), base=base, path=path))
    assert (await call(engine, {})).status == 200
    assert str(sent(upstream).url) == expected


async def test_both_brace_spellings_are_substituted(make: Make, upstream: respx.Router) -> None:
    engine = make(
        document(
            op(inputParameters=[{"name": "a", "in": "path"}, {"name": "b", "in": "path"}]),
            tool(**{"with": {"a": "tools.a", "b": "tools.b"}}),
            path="/x/{a}/y/{{b}}",
        )
    )
    await call(engine, {"a": "1", "b": 2})
    assert sent(upstream).url.path == "/v1/x/1/y/2"


@pytest.mark.parametrize(
    ("value", "raw_path"),
    [
        ("../../admin", b"/v1/items/..%2F..%2Fadmin"),
        ("%2e%2e", b"/v1/items/%252e%252e"),
        ("@evil.com", b"/v1/items/%40evil.com"),
        ("//evil.com", b"/v1/items/%2F%2Fevil.com"),
        ("https://evil.com/x?y=1#z", b"/v1/items/https%3A%2F%2Fevil.com%2Fx%3Fy%3D1%23z"),
        ("a b", b"/v1/items/a%20b"),
    ],
)
async def test_path_values_stay_one_segment_on_the_declared_host(
    make: Make, upstream: respx.Router, value: str, raw_path: bytes
) -> None:
    engine = make(document(op(), tool(), path="/items/{id}"))
    result = await call(engine, {"id": value})
    assert result.status == 200
    request = sent(upstream)
    assert request.url.host == "api.example.com"
    assert request.url.raw_path == raw_path
    assert request.url.query == b""


@pytest.mark.parametrize("value", [".", ".."])
async def test_dot_segments_are_refused(make: Make, upstream: respx.Router, value: str) -> None:
    engine = make(document(op(), tool(), path="/items/{id}/x"))
    result = await call(engine, {"id": value})
    assert result.problem is not None
    assert (result.problem.kind, result.problem.parameter) == (ErrorKind.VALIDATION, "id")
    assert not upstream.calls


async def test_base_uri_template_comes_from_binds_only(make: Make, upstream: respx.Router) -> None:
    doc = document(op(), tool(), base="https://{{REGION}}.example.com", binds={"REGION": ""})
    engine = make(doc, env={"REGION": "eu"})
    await call(engine, {"REGION": "evil.com/"})
    assert sent(upstream).url.host == "eu.example.com"


async def test_unbound_base_uri_answers_501(make: Make, upstream: respx.Router) -> None:
    engine = make(document(op(), tool(), base="https://{{tools.host}}/"))
    result = await call(engine, {"host": "evil.com"})
    assert result.problem is not None and result.problem.kind == ErrorKind.NOT_IMPLEMENTED
    assert not upstream.calls


async def test_base_uri_override(make: Make, upstream: respx.Router) -> None:
    engine = make(document(op(), tool()), base_uri_overrides={"up": "http://127.0.0.1:9"})
    await call(engine, {})
    assert str(sent(upstream).url) == "http://127.0.0.1:9/items"


# --------------------------------------------------------------------------- parameters


async def test_parameter_placements(make: Make, upstream: respx.Router) -> None:
    params = [
        {"name": "q", "in": "query"},
        {"name": "tags", "in": "query"},
        {"name": "flag", "in": "query"},
        {"name": "X-Trace", "in": "header", "value": "trace-{{tools.trace}}"},
        {"name": "session", "in": "cookie"},
        {"name": "optional", "in": "query"},
        {"name": "empty", "in": "header", "value": "{{tools.nothing}}"},
    ]
    engine = make(
        document(
            op(inputParameters=params),
            tool(**{"with": {"q": "tools.q", "tags": "tools.tags", "flag": "tools.flag"}}),
        )
    )
    result = await call(
        engine,
        {"q": "ice class", "tags": ["a", "b"], "flag": True, "trace": "abc", "session": "s1"},
    )
    assert result.status == 200
    request = sent(upstream)
    assert request.url.params.get_list("tags") == ["a", "b"]
    assert request.url.params["q"] == "ice class"
    assert request.url.params["flag"] == "true"
    assert "optional" not in request.url.params
    assert request.headers["X-Trace"] == "trace-abc"
    assert "empty" not in request.headers
    assert request.headers["cookie"] == "session=s1"
    assert b"{{" not in request.url.raw_path


async def test_consumes_level_headers_are_rendered_and_dropped_when_unresolved(
    make: Make, upstream: respx.Router
) -> None:
    consumes = {
        "inputParameters": [
            {"name": "Notion-Version", "in": "header", "value": "{{VERSION}}"},
            {"name": "X-Missing", "in": "header", "value": "{{NOT_BOUND}}"},
            {"name": "Accept", "in": "header", "value": "application/xml"},
            {"name": "User-Agent", "in": "header", "value": "custom/1"},
        ]
    }
    engine = make(
        document(op(), tool(), consumes=consumes, binds={"VERSION": ""}), env={"VERSION": "2022"}
    )
    await call(engine, {})
    headers = sent(upstream).headers
    assert headers["Notion-Version"] == "2022"
    assert "X-Missing" not in headers
    assert headers["Accept"] == "application/xml"
    assert headers["User-Agent"] == "custom/1"


async def test_header_with_line_break_is_refused(make: Make, upstream: respx.Router) -> None:
    engine = make(document(op(inputParameters=[{"name": "X-A", "in": "header"}]), tool()))
    result = await call(engine, {"X-A": "v\r\nX-Injected: 1"})
    assert result.problem is not None
    assert (result.problem.kind, result.problem.parameter) == (ErrorKind.VALIDATION, "X-A")
    assert not upstream.calls


async def test_bind_wins_over_caller_input(make: Make, upstream: respx.Router) -> None:
    params = [{"name": "key", "in": "query", "value": "{{API_KEY}}"}]
    engine = make(
        document(op(inputParameters=params), tool(), binds={"API_KEY": ""}),
        env={"API_KEY": "secret"},
    )
    await call(engine, {"API_KEY": "attacker"})
    assert sent(upstream).url.params["key"] == "secret"


# --------------------------------------------------------------------------- bodies


def _body(request: httpx.Request) -> tuple[str, bytes]:
    return request.headers.get("content-type", ""), request.content


async def test_json_body_keeps_types_and_omits_unresolved_fields(
    make: Make, upstream: respx.Router
) -> None:
    data = {
        "ids": "{{tools.ids}}",
        "n": "{{tools.n}}",
        "name": "x-{{tools.name}}",
        "gone": "{{tools.no}}",
    }
    engine = make(document(op(method="POST", body={"type": "json", "data": data}), tool()))
    await call(engine, {"ids": [1, 2], "n": 3, "name": "a"})
    media, content = _body(sent(upstream))
    assert media == "application/json"
    assert json.loads(content) == {"ids": [1, 2], "n": 3, "name": "x-a"}


async def test_form_body_is_really_url_encoded(make: Make, upstream: respx.Router) -> None:
    data = {"grant_type": "authorization_code", "code": "{{tools.code}}", "verifier": "{{tools.v}}"}
    engine = make(
        document(op(method="POST", body={"type": "formUrlEncoded", "data": data}), tool())
    )
    await call(engine, {"code": "a&b=c"})
    assert _body(sent(upstream)) == (
        "application/x-www-form-urlencoded",
        b"grant_type=authorization_code&code=a%26b%3Dc",
    )


async def test_multipart_body_has_real_parts(make: Make, upstream: respx.Router) -> None:
    data = [
        {
            "name": "file",
            "value": "{{tools.text}}",
            "filename": "a.txt",
            "contentType": "text/plain",
        },
        {"name": "note", "value": "hi"},
    ]
    engine = make(document(op(method="POST", body={"type": "multipartForm", "data": data}), tool()))
    await call(engine, {"text": "hello"})
    media, content = _body(sent(upstream))
    assert media.startswith("multipart/form-data; boundary=")
    assert b'name="file"; filename="a.txt"' in content
    assert b"Content-Type: text/plain" in content
    assert b"hello" in content
    assert b'name="note"\r\n\r\nhi' in content


@pytest.mark.parametrize(
    ("kind", "media"),
    [
        ("text", "text/plain; charset=utf-8"),
        ("xml", "application/xml"),
        ("sparql", "application/sparql-query"),
    ],
)
async def test_text_bodies(make: Make, upstream: respx.Router, kind: str, media: str) -> None:
    engine = make(
        document(op(method="POST", body={"type": kind, "data": "<q>{{tools.q}}</q>"}), tool())
    )
    await call(engine, {"q": "x"})
    assert _body(sent(upstream)) == (media, b"<q>x</q>")


@pytest.mark.parametrize(
    ("template", "media", "content"),
    [
        ('{"shipImo": "{{tools.imo}}"}\n', "application/json", b'{"shipImo": "IMO-1"}\n'),
        ("imo={{tools.imo}}", "text/plain; charset=utf-8", b"imo=IMO-1"),
    ],
)
async def test_raw_string_body(
    make: Make, upstream: respx.Router, template: str, media: str, content: bytes
) -> None:
    engine = make(document(op(method="POST", body=template), tool()))
    await call(engine, {"imo": "IMO-1"})
    assert _body(sent(upstream)) == (media, content)


def _body_op() -> dict[str, Any]:
    return op(
        method="POST",
        inputParameters=[{"name": "body", "in": "body", "type": "object", "required": True}],
    )


def _rest(with_: dict[str, Any]) -> dict[str, Any]:
    return {
        "type": "rest",
        "namespace": "api",
        "port": 8080,
        "resources": [
            {
                "path": "/x",
                "operations": [{"method": "POST", "name": "x", "call": "up.o", "with": with_}],
            }
        ],
    }


@pytest.mark.parametrize(
    ("body", "media", "expected_media", "expected"),
    [
        (
            {"a": "1", "b": "x y"},
            "application/x-www-form-urlencoded",
            "application/x-www-form-urlencoded",
            b"a=1&b=x+y",
        ),
        ({"a": 1}, "application/json", "application/json", b'{"a":1}'),
    ],
)
async def test_whole_body_forward_keeps_the_callers_media_type(
    make: Make,
    upstream: respx.Router,
    body: Any,
    media: str,
    expected_media: str,
    expected: bytes,
) -> None:
    engine = make(document(_body_op(), tool(), rest=_rest({"body": "rest.body"})))
    result = await engine.invoke(engine.units["api.x"], Inputs(body=body, media_type=media))
    assert result.status == 200
    assert _body(sent(upstream)) == (expected_media, expected)


async def test_whole_text_body_stays_text(make: Make, upstream: respx.Router) -> None:
    untyped = op(method="POST", inputParameters=[{"name": "body", "in": "body", "type": "string"}])
    engine = make(document(untyped, tool(), rest=_rest({"body": "rest.body"})))
    result = await engine.invoke(
        engine.units["api.x"], Inputs(body="plain words", media_type="text/csv")
    )
    assert result.status == 200
    assert _body(sent(upstream)) == ("text/csv", b"plain words")


async def test_whole_multipart_body_is_re_encoded(make: Make, upstream: respx.Router) -> None:
    engine = make(document(_body_op(), tool(), rest=_rest({"body": "rest.body"})))
    body = {"name": "n", "file": b"\x00bin"}
    await engine.invoke(
        engine.units["api.x"], Inputs(body=body, media_type="multipart/form-data; boundary=zz")
    )
    media, content = _body(sent(upstream))
    assert media.startswith("multipart/form-data; boundary=")
    assert b'name="name"\r\n\r\nn' in content
    assert b'name="file"; filename="file"' in content and b"\x00bin" in content


async def test_named_body_fields_build_a_json_object(make: Make, upstream: respx.Router) -> None:
    params = [{"name": "query", "in": "body"}, {"name": "variables", "in": "body"}]
    engine = make(document(op(method="POST", inputParameters=params), tool()))
    await call(engine, {"query": "{ a }", "variables": {"x": 1}})
    assert json.loads(sent(upstream).content) == {"query": "{ a }", "variables": {"x": 1}}


async def test_declared_form_content_type_encodes_a_dict_body(
    make: Make, upstream: respx.Router
) -> None:
    params = [
        {"name": "Content-Type", "in": "header", "value": "application/x-www-form-urlencoded"},
        {"name": "body", "in": "body", "type": "object"},
    ]
    engine = make(document(op(method="POST", inputParameters=params), tool()))
    await call(engine, {"body": {"a": "b"}})
    assert _body(sent(upstream)) == ("application/x-www-form-urlencoded", b"a=b")


# --------------------------------------------------------------------------- auth


async def test_bearer_from_binds(make: Make, upstream: respx.Router) -> None:
    consumes = {"authentication": {"type": "bearer", "token": "{{TOKEN}}"}}
    engine = make(
        document(op(), tool(), consumes=consumes, binds={"TOKEN": ""}), env={"TOKEN": "t0k"}
    )
    await call(engine, {})
    assert sent(upstream).headers["authorization"] == "Bearer t0k"


async def test_auth_sees_consumed_parameters_written_back(
    make: Make, upstream: respx.Router
) -> None:
    consumes = {
        "authentication": {
            "type": "apikey",
            "key": "X-Key",
            "value": "{{api_key}}",
            "placement": "header",
        },
    }
    params = [{"name": "api_key", "in": "query", "value": "{{tools.key}}"}]
    engine = make(document(op(inputParameters=params), tool(), consumes=consumes))
    await call(engine, {"key": "k1"})
    assert sent(upstream).headers["X-Key"] == "k1"
