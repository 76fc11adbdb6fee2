"""REST adapter unit tests: HTTP <-> Inputs/Result translation with an engine double.

The double records what the adapter handed it and answers with a canned Result, so each
test pins one translation rule. End-to-end behaviour (real engine, uvicorn, upstream) is
in test_rest_e2e.py.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any
from urllib.parse import parse_qsl

import httpx
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from naftiko.adapters.http.auth import InboundAuthConfigError
from naftiko.adapters.http.common import new_request_id, request_id_of, sane_request_id
from naftiko.adapters.http.settings import AdapterSettings
from naftiko.adapters.rest.app import build_rest_app
from naftiko.adapters.rest.inputs import parse_query
from naftiko.adapters.rest.plan import RestAdapterPlan, RestRoute
from naftiko.adapters.rest.routes import route_pattern
from naftiko.engine.types import (
    FORM_MEDIA_TYPE,
    MULTIPART_MEDIA_TYPE,
    PROBLEM_MEDIA_TYPE,
    ErrorKind,
    ForwardPlan,
    InputField,
    Inputs,
    Problem,
    Result,
    Unit,
)
from naftiko.observability import NullObserver, set_observer
from naftiko.spec.binds import Bindings
from naftiko.spec.models import Authentication


def unit(name: str, *inputs: InputField, body_media: frozenset[str] = frozenset()) -> Unit:
    return Unit(
        id=f"api.{name}",
        kind="operation",
        name=name,
        adapter_namespace="api",
        inputs=inputs,
        input_schema={"type": "object"},
        body_media=body_media,
    )


def field(name: str, location: str, kind: str = "string", **extra: Any) -> InputField:
    return InputField(name=name, location=location, schema={"type": kind}, **extra)  # type: ignore[arg-type]


class FakeEngine:
    """Records every call; answers with ``respond(inputs)`` (default: echo as JSON)."""

    def __init__(self, respond: Callable[[Inputs], Result] | None = None) -> None:
        self.calls: list[tuple[str, str, Inputs]] = []
        self.respond = respond or (lambda inputs: Result(status=200, body={"ok": True}))

    async def invoke(self, unit: Unit, inputs: Inputs) -> Result:
        self.calls.append(("invoke", unit.name, inputs))
        return self.respond(inputs)

    async def forward(self, forward: ForwardPlan, inputs: Inputs) -> Result:
        self.calls.append(("forward", forward.path, inputs))
        return self.respond(inputs)

    @property
    def last(self) -> Inputs:
        return self.calls[-1][2]


ITEM = unit(
    "getItem",
    field("id", "path", "integer"),
    field("verbose", "query", "boolean"),
    field("X-Tenant", "header"),
    field("session", "cookie"),
    field("tags", "query", "array"),
)
CREATE = unit("createItem", field("name", "body", required=True), field("count", "body", "integer"))
# The same inputs, where the document declares form and multipart bodies.
FORM_CREATE = unit(
    "createByForm",
    field("name", "body", required=True),
    field("count", "body", "integer"),
    body_media=frozenset({FORM_MEDIA_TYPE, MULTIPART_MEDIA_TYPE}),
)
# ``rest.body``: the whole request body, as the compiler derives it for a token exchange.
WHOLE_BODY = InputField(name="body", location="body", schema={}, derived=True)
TOKEN = unit("exchangetoken", WHOLE_BODY)
REFRESH = unit("refreshtoken", WHOLE_BODY)


def plan(*routes: RestRoute, auth: Authentication | None = None) -> RestAdapterPlan:
    return RestAdapterPlan(
        type="rest",
        namespace="api",
        address=None,
        port=None,
        description=None,
        authentication=auth,
        routes=routes,
    )


ROUTES = (
    RestRoute("/items/{id}", "item", None, {"GET": ITEM}),
    RestRoute("/items", "items", None, {"POST": CREATE}),
    RestRoute("/forms", "forms", None, {"POST": FORM_CREATE}),
    RestRoute("/v1/v2/oauth/token", "token", None, {"POST": TOKEN}),
    RestRoute("/v1/v2/oauth/token/refresh", "refresh", None, {"POST": REFRESH}),
    RestRoute(
        "/proxy/{path}", "proxy", None, {}, ForwardPlan("upstream", ("X-Trace",), "/proxy/{path}")
    ),
)


def client(engine: FakeEngine, *routes: RestRoute, **kwargs: Any) -> httpx.AsyncClient:
    settings = kwargs.pop("settings", None)
    app = build_rest_app(engine, plan(*(routes or ROUTES), **kwargs), settings)
    return httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://t")


# --------------------------------------------------------------------------- routing


def test_route_pattern_matches_with_and_without_trailing_slash() -> None:
    pattern, names = route_pattern("/v1/v2/oauth/token")
    assert names == ()
    assert pattern.fullmatch("/v1/v2/oauth/token")
    assert pattern.fullmatch("/v1/v2/oauth/token/")
    assert not pattern.fullmatch("/v1/v2/oauth/token/refresh")
    assert not pattern.fullmatch("/v1/v2/oauth/token//")


def test_route_pattern_path_variable_takes_the_rest() -> None:
    pattern, names = route_pattern("/proxy/{{path}}")
    assert names == ("path",)
    assert pattern.fullmatch("/proxy/a/b/c/").group("v0") == "a/b/c/"
    assert pattern.fullmatch("/proxy").group("v0") is None
    single, _ = route_pattern("/items/{id}")
    assert not single.fullmatch("/items/a/b")


@pytest.mark.parametrize("path", ["/v1/v2/oauth/token", "/v1/v2/oauth/token/"])
async def test_token_route_with_or_without_slash_no_redirect(path: str) -> None:
    engine = FakeEngine()
    async with client(engine) as c:
        response = await c.post(path, json={"code": "x"})
    assert response.status_code == 200
    assert engine.calls[-1][:2] == ("invoke", "exchangetoken")
    assert engine.last.body == {"code": "x"}


@pytest.mark.parametrize("path", ["/v1/v2/oauth/token/refresh", "/v1/v2/oauth/token/refresh/"])
async def test_refresh_route_is_not_swallowed_by_token(path: str) -> None:
    engine = FakeEngine()
    async with client(engine) as c:
        assert (await c.post(path, json={})).status_code == 200
    assert engine.calls[-1][1] == "refreshtoken"


async def test_unknown_path_is_404_problem() -> None:
    async with client(FakeEngine()) as c:
        response = await c.get("/nope")
    assert response.status_code == 404
    assert response.headers["content-type"] == PROBLEM_MEDIA_TYPE
    assert response.json()["status"] == 404


@pytest.mark.parametrize("path", ["/nope%0Ax", "/items/1/%0A/x", "/%0D%0A"])
async def test_unknown_path_with_encoded_newline_is_our_404_problem(path: str) -> None:
    async with client(FakeEngine()) as c:
        response = await c.get(httpx.URL("http://t" + path))
    assert response.status_code == 404
    assert response.headers["content-type"] == PROBLEM_MEDIA_TYPE
    assert "x-request-id" in response.headers


async def test_segment_with_encoded_newline_reaches_the_route() -> None:
    engine = FakeEngine()
    async with client(engine, RestRoute("/notes/{key}", "note", None, {"GET": unit("n")})) as c:
        response = await c.get(httpx.URL("http://t/notes/a%0Ab"))
    assert response.status_code == 200
    assert engine.last.values["key"] == "a\nb"


async def test_unknown_method_is_405_with_allow() -> None:
    engine = FakeEngine()
    async with client(engine) as c:
        response = await c.delete("/items/1")
    assert response.status_code == 405
    assert response.headers["allow"] == "GET, HEAD"
    assert response.headers["content-type"] == PROBLEM_MEDIA_TYPE
    assert engine.calls == []


LIST = unit("listThings")
ADD = unit("addThing", field("name", "body"))
GET_THING = unit("getThing", field("id", "path"))
PUT_THING = unit("putThing", field("thingId", "path"))
# A resource per operation, as many published documents have it: four resources, two paths.
SPLIT = (
    RestRoute("/things", "list", None, {"GET": LIST}),
    RestRoute("/things", "add", None, {"POST": ADD}),
    RestRoute("/things/{id}", "get", None, {"GET": GET_THING}),
    RestRoute("/things/{thingId}", "put", None, {"PUT": PUT_THING}),
)


async def test_resources_sharing_a_path_split_its_methods() -> None:
    engine = FakeEngine()
    async with client(engine, *SPLIT) as c:
        assert (await c.get("/things")).status_code == 200
        assert (await c.post("/things", json={"name": "n"})).status_code == 200
        assert (await c.head("/things")).status_code == 200
        assert (await c.put("/things/7", json={})).status_code == 200
        assert (await c.get("/things/8")).status_code == 200
    assert [(name, inputs.values) for _, name, inputs in engine.calls] == [
        ("listThings", {}),
        ("addThing", {"name": "n"}),
        ("listThings", {}),
        ("putThing", {"thingId": "7"}),  # the variable names of the route that serves it
        ("getThing", {"id": "8"}),
    ]


async def test_405_on_a_shared_path_allows_what_every_resource_there_serves() -> None:
    engine = FakeEngine()
    async with client(engine, *SPLIT) as c:
        on_list = await c.delete("/things")
        on_item = await c.post("/things/7", json={})
    assert on_list.status_code == on_item.status_code == 405
    assert on_list.headers["allow"] == "GET, HEAD, POST"
    assert on_item.headers["allow"] == "GET, HEAD, PUT"
    detail = "This resource does not accept DELETE; it accepts GET, HEAD, POST."
    assert on_list.json()["detail"] == detail
    assert engine.calls == []


async def test_a_forward_on_a_shared_path_takes_the_methods_no_earlier_resource_serves() -> None:
    engine = FakeEngine()
    routes = (
        RestRoute("/p/{path}", "read", None, {"GET": unit("read")}),
        RestRoute("/p/{path}", "proxy", None, {}, ForwardPlan("upstream", (), "/p/{path}")),
        RestRoute("/p/{path}", "late", None, {"PUT": unit("late")}),  # shadowed by the forward
    )
    async with client(engine, *routes) as c:
        for method in ("GET", "POST", "PUT"):
            assert (await c.request(method, "/p/a/b")).status_code == 200
    assert [call[:2] for call in engine.calls] == [
        ("invoke", "read"),
        ("forward", "/p/{path}"),
        ("forward", "/p/{path}"),
    ]


async def test_head_runs_get_without_body() -> None:
    engine = FakeEngine(lambda i: Result(status=200, body={"id": 1}))
    async with client(engine) as c:
        response = await c.head("/items/1")
    assert response.status_code == 200
    assert response.content == b""
    assert response.headers["content-length"] == str(len(b'{"id":1}'))
    assert engine.calls[-1][1] == "getItem"


# --------------------------------------------------------------------------- inputs


@settings(max_examples=500, deadline=None)
@given(st.text(st.sampled_from(list("ab=&;%+ 1é/?"))))
def test_query_parsing_is_parse_qsl(query: str) -> None:
    assert parse_query(query) == parse_qsl(query, keep_blank_values=True)


async def test_path_query_header_cookie_are_coerced() -> None:
    engine = FakeEngine()
    async with client(engine) as c:
        c.cookies.set("session", "s1")
        await c.get(
            "/items/42?verbose=true&tags=a&tags=b&extra=1&extra=2",
            headers={"X-Tenant": "acme"},
        )
    values = engine.last.values
    assert values["id"] == 42
    assert values["verbose"] is True
    assert values["tags"] == ["a", "b"]
    assert values["X-Tenant"] == "acme"
    assert values["session"] == "s1"
    assert values["extra"] == "1"  # undeclared query: lenient, first value
    assert engine.last.query_string.startswith("verbose=true")


async def test_bad_text_value_is_400_naming_parameter() -> None:
    engine = FakeEngine()
    async with client(engine) as c:
        response = await c.get("/items/abc")
    assert response.status_code == 400
    problem = response.json()
    assert problem["parameter"] == "id"
    assert "integer" in problem["detail"]
    assert engine.calls == []


async def test_declared_inputs_win_over_lenient_ones() -> None:
    engine = FakeEngine()
    route = RestRoute("/things/{a}", "t", None, {"POST": unit("t", field("b", "query"))})
    async with client(engine, route) as c:
        await c.post("/things/p?a=q&b=q2&c=q3", json={"a": "body", "b": "body", "d": 4})
    values = engine.last.values
    assert values["a"] == "p"  # undeclared: path beats query beats body
    assert values["b"] == "q2"  # declared in query: the body's b does not replace it
    assert values["c"] == "q3"
    assert values["d"] == 4


async def test_json_body_fields_and_whole_body() -> None:
    engine = FakeEngine()
    async with client(engine) as c:
        await c.post("/items", json={"name": "n", "count": 3})
    assert engine.last.values == {"name": "n", "count": 3}
    assert engine.last.body == {"name": "n", "count": 3}
    assert engine.last.media_type == "application/json"


async def test_missing_body_field_is_absent_not_whole_body() -> None:
    engine = FakeEngine()
    async with client(engine) as c:
        await c.post("/items", json={"count": 3})
    assert "name" not in engine.last.values  # the engine, not the adapter, validates `required`


async def test_form_body_repeated_keys_and_coercion() -> None:
    engine = FakeEngine()
    async with client(engine) as c:
        await c.post(
            "/forms",
            content=b"name=n&count=7&x=1&x=2",
            headers={"content-type": "application/x-www-form-urlencoded"},
        )
    assert engine.last.body == {"name": "n", "count": "7", "x": ["1", "2"]}
    assert engine.last.values["count"] == 7
    assert engine.last.media_type == "application/x-www-form-urlencoded"


async def test_multipart_fields_and_files() -> None:
    engine = FakeEngine()
    async with client(engine) as c:
        await c.post("/forms", data={"name": "n"}, files={"doc": ("a.bin", b"\x00\x01")})
    assert engine.last.body == {"name": "n", "doc": b"\x00\x01"}


@pytest.mark.parametrize(
    ("content_type", "payload"),
    [
        (
            "multipart/form-data; boundary=b",
            b"--b\r\nContent-Disposition: form-data\r\n\r\nv\r\n--b--",
        ),
        ("multipart/form-data", b"name=n"),
        ("multipart/form-data; boundary=b", b"--b\r\nno header end"),
        ("multipart/form-data; boundary=b", b"garbage without any boundary"),
    ],
    ids=["part-without-name", "no-boundary", "truncated", "garbage"],
)
async def test_malformed_multipart_is_400_problem(content_type: str, payload: bytes) -> None:
    engine = FakeEngine()
    async with client(engine) as c:
        response = await c.post("/forms", content=payload, headers={"content-type": content_type})
    assert response.status_code == 400, response.text
    assert response.headers["content-type"] == PROBLEM_MEDIA_TYPE
    assert response.json()["title"] == "Malformed multipart body"
    assert engine.calls == []


@pytest.mark.parametrize(
    ("path", "content_type", "payload"),
    [
        ("/v1/v2/oauth/token", "text/plain; charset=utf-8", "héllo".encode()),
        ("/v1/v2/oauth/token", "application/octet-stream", b"\xff\x00"),
        ("/v1/v2/oauth/token", None, b'{"a": 1}'),
        ("/v1/v2/oauth/token", "application/x-www-form-urlencoded", b"a=1"),
        ("/items", "multipart/form-data; boundary=b", b"garbage, never parsed"),
        ("/forms", "text/plain", b"name=n"),
    ],
)
async def test_undeclared_media_types_are_415_before_parsing(
    path: str, content_type: str | None, payload: bytes
) -> None:
    engine = FakeEngine()
    headers = {"content-type": content_type} if content_type else {}
    async with client(engine) as c:
        response = await c.post(path, content=payload, headers=headers)
    assert response.status_code == 415, response.text
    assert response.headers["content-type"] == PROBLEM_MEDIA_TYPE
    assert response.json()["type"].endswith("/unsupported-media-type")
    assert engine.calls == []


async def test_malformed_json_is_400() -> None:
    engine = FakeEngine()
    async with client(engine) as c:
        response = await c.post(
            "/items", content=b'{"name": ', headers={"content-type": "application/json"}
        )
    assert response.status_code == 400
    assert response.headers["content-type"] == PROBLEM_MEDIA_TYPE
    assert engine.calls == []


async def test_text_body_for_declared_json_fields_is_415() -> None:
    async with client(FakeEngine()) as c:
        response = await c.post("/items", content=b"name", headers={"content-type": "text/plain"})
    assert response.status_code == 415


async def test_json_body_of_wrong_shape_is_left_to_validation() -> None:
    engine = FakeEngine()
    async with client(engine) as c:
        response = await c.post("/items", json=["not", "an", "object"])
    assert response.status_code == 200  # the double does not validate; the engine would
    assert engine.last.body == ["not", "an", "object"]


async def test_body_over_limit_is_413_by_length_and_by_count() -> None:
    engine = FakeEngine()
    settings = AdapterSettings(max_body_bytes=10)
    async with client(engine, settings=settings) as c:
        json_type = {"content-type": "application/json"}
        by_length = await c.post("/v1/v2/oauth/token", content=b"x" * 11, headers=json_type)

        async def chunks():  # no Content-Length: counted while reading
            yield b"x" * 6
            yield b"x" * 6

        by_count = await c.post("/v1/v2/oauth/token", content=chunks(), headers=json_type)
        at_limit = await c.post(
            "/v1/v2/oauth/token", content=b'"' + b"x" * 8 + b'"', headers=json_type
        )
    assert by_length.status_code == 413
    assert by_count.status_code == 413
    assert at_limit.status_code == 200
    assert len(engine.calls) == 1


# --------------------------------------------------------------------------- forward


async def test_forward_passes_method_query_body_and_headers() -> None:
    engine = FakeEngine(lambda i: Result(status=201, body=b"raw", media_type="text/csv"))
    async with client(engine) as c:
        response = await c.put(
            "/proxy/a/b%20c/?q=1&q=2",
            content=b"\x01\x02",
            headers={"content-type": "application/x-thing", "X-Trace": "t"},
        )
    kind, _, inputs = engine.calls[-1]
    assert kind == "forward"
    assert inputs.method == "PUT"
    assert inputs.values["path"] == "a/b c/"
    assert inputs.path == "a/b c/"  # the remainder, decoded: the engine re-encodes segments
    assert inputs.query_string == "q=1&q=2"
    assert inputs.body == b"\x01\x02"
    assert inputs.media_type == "application/x-thing"
    assert inputs.headers["x-trace"] == "t"
    assert response.status_code == 201
    assert response.content == b"raw"
    assert response.headers["content-type"] == "text/csv"


# --------------------------------------------------------------------------- responses


@pytest.mark.parametrize(
    ("kind", "status"),
    [
        (ErrorKind.VALIDATION, 400),
        (ErrorKind.UNREACHABLE, 502),
        (ErrorKind.TIMEOUT, 504),
        (ErrorKind.BAD_UPSTREAM_RESPONSE, 502),
        (ErrorKind.NOT_IMPLEMENTED, 501),
        (ErrorKind.INTERNAL, 500),
    ],
)
async def test_problems_become_problem_json(kind: ErrorKind, status: int) -> None:
    problem = Problem(kind, "T", "D", status, parameter="p" if status == 400 else None)
    engine = FakeEngine(lambda i: Result.failure(problem))
    async with client(engine) as c:
        response = await c.post("/v1/v2/oauth/token", json={})
    assert response.status_code == status
    assert response.headers["content-type"] == PROBLEM_MEDIA_TYPE
    assert response.json() == problem.as_json()


async def test_upstream_error_keeps_status_and_body() -> None:
    body = {"error": "invalid_grant", "error_description": "bad code", "log_id": "L1"}
    engine = FakeEngine(lambda i: Result(status=400, body=body, is_error=True, upstream_status=400))
    async with client(engine) as c:
        response = await c.post("/v1/v2/oauth/token", json={})
    assert response.status_code == 400
    assert response.headers["content-type"] == "application/json"
    assert response.content == json.dumps(body, separators=(",", ":")).encode()


def step_failure(body: Any) -> Result:
    """What orchestration answers when its step ``get-ship`` meets an upstream 404."""
    problem = Problem(
        ErrorKind.UPSTREAM,
        "Upstream error",
        "step 'get-ship' (registry.get-ship): the upstream answered 404",
        404,
        step="get-ship",
    )
    return Result(
        status=404,
        body=body,
        headers={"retry-after": "5"},
        is_error=True,
        problem=problem,
        upstream_status=404,
    )


@pytest.mark.parametrize(
    ("upstream", "embedded"),
    [({"error": "not_found"}, {"error": "not_found"}), (b"no such ship", "no such ship")],
)
async def test_failed_step_is_a_problem_naming_it_with_the_upstream_body(
    upstream: Any, embedded: Any
) -> None:
    engine = FakeEngine(lambda i: step_failure(upstream))
    async with client(engine) as c:
        response = await c.post("/v1/v2/oauth/token", json={})
    assert response.status_code == 404
    assert response.headers["content-type"] == PROBLEM_MEDIA_TYPE
    assert response.headers["retry-after"] == "5"
    assert response.json() == {
        "type": "https://naftiko.dev/problems/upstream",
        "title": "Upstream error",
        "status": 404,
        "detail": "step 'get-ship' (registry.get-ship): the upstream answered 404",
        "step": "get-ship",
        "upstream": embedded,
    }


async def test_none_body_keeps_204_empty() -> None:
    engine = FakeEngine(lambda i: Result(status=204, body=None))
    async with client(engine) as c:
        response = await c.post("/v1/v2/oauth/token", json={})
    assert response.status_code == 204
    assert response.content == b""


async def test_request_id_echoed_generated_and_passed_to_engine() -> None:
    engine = FakeEngine()
    async with client(engine) as c:
        echoed = await c.post("/v1/v2/oauth/token", json={}, headers={"X-Request-Id": "abc-1"})
        assert engine.last.request_id == "abc-1"
        generated = await c.post("/v1/v2/oauth/token", json={}, headers={"X-Request-Id": "a b"})
        missing = await c.get("/nowhere")
    assert echoed.headers["x-request-id"] == "abc-1"
    assert len(generated.headers["x-request-id"]) == 32
    assert generated.headers["x-request-id"] == engine.last.request_id
    assert len(missing.headers["x-request-id"]) == 32


def test_request_id_of_is_stable_per_scope() -> None:
    scope: dict[str, Any] = {"type": "http", "headers": []}
    assert request_id_of(scope) == request_id_of(scope)


def test_new_request_ids_are_unique_random_hex() -> None:
    ids = {new_request_id() for _ in range(10_000)}
    assert len(ids) == 10_000
    for request_id in list(ids)[:100]:
        assert len(request_id) == 32
        assert int(request_id, 16) >= 0 and request_id == request_id.lower()
        assert sane_request_id(request_id) == request_id  # safe to echo and forward


@pytest.mark.parametrize(
    ("result", "expected"),
    [
        (
            Result(status=200, body={"a": 1}),
            {"content-type": "application/json", "content-length": "7"},
        ),
        (
            Result(status=200, body={"a": 1}, media_type="application/vnd.api+json"),
            {"content-type": "application/vnd.api+json", "content-length": "7"},
        ),
        (
            Result(status=200, body={"a": 1}, media_type="text/plain"),
            {"content-type": "application/json", "content-length": "7"},
        ),
        (
            Result(status=201, body=b"a,b", media_type="text/csv"),
            {"content-type": "text/csv", "content-length": "3"},
        ),
        (
            Result(status=200, body=b"\x00", media_type=""),
            {"content-type": "application/octet-stream", "content-length": "1"},
        ),
        (Result(status=200, body=None), {"content-length": "0"}),
        (Result(status=204, body={"ignored": True}), {}),
        (
            Result(
                status=200,
                body=[],
                headers={
                    "ETag": "e1",
                    "X-Request-Id": "up",
                    "Content-Length": "99",
                    "Connection": "x",
                },
            ),
            {"etag": "e1", "content-type": "application/json", "content-length": "2"},
        ),
    ],
)
async def test_result_headers_exactly(result: Result, expected: dict[str, str]) -> None:
    async with client(FakeEngine(lambda i: result)) as c:
        response = await c.post("/v1/v2/oauth/token", json={}, headers={"X-Request-Id": "r-1"})
    assert response.status_code == result.status
    assert sorted(response.headers.multi_items()) == sorted(
        {**expected, "x-request-id": "r-1"}.items()
    )


async def test_unrepresentable_number_is_502_problem() -> None:
    engine = FakeEngine(lambda i: Result(status=200, body={"x": float("nan")}))
    async with client(engine) as c:
        response = await c.post("/v1/v2/oauth/token", json={})
    assert response.status_code == 502
    assert response.headers["content-type"] == PROBLEM_MEDIA_TYPE
    assert response.json()["title"] == "Bad upstream response"
    assert "x-request-id" in response.headers


async def test_refused_and_unknown_heads_keep_status_and_headers_without_body() -> None:
    async with client(FakeEngine()) as c:
        missing = await c.head("/nowhere")
        not_allowed = await c.head("/items")
    assert missing.status_code == 404
    assert not_allowed.status_code == 405
    for response in (missing, not_allowed):
        assert response.content == b""
        assert response.headers["content-type"] == PROBLEM_MEDIA_TYPE
        assert int(response.headers["content-length"]) > 0
        assert len(response.headers["x-request-id"]) == 32


class Recorder(NullObserver):
    def __init__(self) -> None:
        self.requests: list[dict[str, Any]] = []

    def request_finished(self, **fields: Any) -> None:
        self.requests.append(fields)


async def test_observer_told_once_per_request() -> None:
    recorder = Recorder()
    set_observer(recorder)
    try:
        engine = FakeEngine(lambda i: Result(status=201, body={}, upstream_status=201))
        async with client(engine) as c:
            await c.post("/v1/v2/oauth/token", json={}, headers={"X-Request-Id": "r1"})
            await c.get("/missing")
    finally:
        set_observer(NullObserver())
    first, second = recorder.requests
    assert first["adapter_type"] == "rest"
    assert first["adapter"] == "api"
    assert first["unit"] == "exchangetoken"
    assert first["status"] == 201
    assert first["upstream_status"] == 201
    assert first["is_error"] is False
    assert first["request_id"] == "r1"
    assert second["status"] == 404
    assert second["is_error"] is True


async def test_auth_refusal_is_observed_once_with_its_request_id() -> None:
    recorder = Recorder()
    set_observer(recorder)
    auth = Authentication(type="bearer", token="{{TOKEN}}")
    app = build_rest_app(
        FakeEngine(), plan(*ROUTES, auth=auth), bindings=Bindings([(None, "TOKEN", "t0k")])
    )
    try:
        async with httpx.AsyncClient(
            transport=httpx.ASGITransport(app=app), base_url="http://t"
        ) as c:
            refused = await c.post("/v1/v2/oauth/token", json={}, headers={"X-Request-Id": "r9"})
    finally:
        set_observer(NullObserver())
    assert refused.status_code == 401
    assert refused.headers["x-request-id"] == "r9"
    assert refused.headers["www-authenticate"].startswith("Bearer")
    (seen,) = recorder.requests
    assert (seen["status"], seen["unit"], seen["request_id"]) == (401, "", "r9")
    assert seen["is_error"] is True


async def test_engine_defect_is_500_problem_without_details() -> None:
    def boom(inputs: Inputs) -> Result:
        raise RuntimeError("secret-token-xyz")

    async with client(FakeEngine(boom)) as c:
        response = await c.post("/v1/v2/oauth/token", json={})
    assert response.status_code == 500
    assert "secret-token-xyz" not in response.text
    assert response.headers["content-type"] == PROBLEM_MEDIA_TYPE


# --------------------------------------------------------------------------- auth, openapi


def test_unresolvable_credential_refuses_to_build() -> None:
    auth = Authentication(type="bearer", token="{{MISSING_TOKEN}}")
    with pytest.raises(InboundAuthConfigError):
        build_rest_app(FakeEngine(), plan(*ROUTES, auth=auth))


async def test_bearer_protects_routes_and_openapi() -> None:
    auth = Authentication(type="bearer", token="{{TOKEN}}")
    bindings = Bindings([(None, "TOKEN", "t0k")])
    app = build_rest_app(FakeEngine(), plan(*ROUTES, auth=auth), bindings=bindings)
    transport = httpx.ASGITransport(app=app)
    async with httpx.AsyncClient(transport=transport, base_url="http://t") as c:
        refused = await c.get("/.well-known/openapi.json", headers={"X-Request-Id": "rid"})
        allowed = await c.get("/.well-known/openapi.json", headers={"Authorization": "Bearer t0k"})
    assert refused.status_code == 401
    assert refused.headers["x-request-id"] == "rid"
    assert "t0k" not in refused.text
    assert allowed.status_code == 200
    assert allowed.json()["openapi"] == "3.1.0"


async def test_openapi_path_rejects_other_methods() -> None:
    async with client(FakeEngine()) as c:
        response = await c.post("/.well-known/openapi.json")
    assert response.status_code == 405
    assert response.headers["allow"] == "GET, HEAD"


def test_kept_upstream_headers_are_encoded_never_refused() -> None:
    """Not Latin-1: sent as the UTF-8 bytes the upstream sent; a control character
    (which the server would refuse, a 500): that header is dropped, the others kept."""
    from naftiko.adapters.rest.replies import kept_headers

    kept = kept_headers({"ETag": '"v\u2713"', "X-RateLimit-Note": "a\x01b", "Retry-After": "5"})
    assert kept == [(b"etag", '"v\u2713"'.encode()), (b"retry-after", b"5")]
