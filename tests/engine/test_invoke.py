"""Engine.invoke: validation, modes (call, mock, steps, ref), forward, never raising."""

from __future__ import annotations

import json
import logging
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import httpx
import pytest
import respx
import yaml

from naftiko.adapters.exposes import compile_capability
from naftiko.adapters.rest.coerce import coerce_text
from naftiko.adapters.rest.plan import RestAdapterPlan
from naftiko.engine import invoke as invoke_module
from naftiko.engine.invoke import Engine
from naftiko.engine.types import ErrorKind, InputField, Inputs
from naftiko.spec.loader import load_capability
from support.mocked import mocked_settings

BASE = "https://api.example.com"

CONSUMES = {
    "type": "http",
    "namespace": "up",
    "baseUri": BASE,
    "inputParameters": [{"name": "X-Key", "in": "header", "value": "{{API_KEY}}"}],
    "resources": [
        {
            "name": "items",
            "path": "/items",
            "operations": [
                {
                    "name": "list",
                    "method": "GET",
                    "outputRawFormat": "json",
                    "inputParameters": [
                        {"name": "limit", "in": "query", "type": "integer"},
                        {"name": "kind", "in": "query", "type": "string"},
                    ],
                }
            ],
        }
    ],
}

TOOLS = [
    {
        "name": "list",
        "call": "up.list",
        "inputParameters": [
            {"name": "limit", "type": "integer", "required": False},
            {"name": "kind", "type": "string", "enum": ["a", "b"], "default": "a"},
            {"name": "body", "type": "object", "required": False},
        ],
        "outputParameters": [
            {
                "type": "object",
                "properties": {"names": {"type": "array", "mapping": "$.items[*].name"}},
            }
        ],
    },
    {
        "name": "mock",
        "inputParameters": [{"name": "imo", "type": "string"}],
        "outputParameters": [
            {
                "type": "object",
                "properties": {
                    "imo": {"type": "string", "value": "{{tools.imo}}"},
                    "name": {"type": "string", "value": "Northern Star"},
                },
            }
        ],
    },
    {"name": "steps", "steps": [{"type": "call", "name": "s", "call": "up.list"}]},
    {"name": "broken", "call": "up.missing"},
    {"name": "via-ref", "ref": "fleet.find", "with": {"q": "tools.query"}},
]

AGGREGATES = [
    {
        "namespace": "fleet",
        "functions": [
            {
                "name": "find",
                "inputParameters": [{"name": "q", "type": "string"}],
                "call": "up.list",
                "with": {"kind": "fleet.q"},
            }
        ],
    }
]

REST = {
    "type": "rest",
    "namespace": "api",
    "resources": [
        {
            "path": "/proxy/{path}",
            "forward": {"targetNamespace": "up", "trustedHeaders": ["X-Trace"]},
        },
    ],
}


@pytest.fixture
def router() -> respx.Router:
    """The engine's upstream: every namespace's client sends to it."""
    return respx.Router(assert_all_called=False)


@pytest.fixture
async def engine(tmp_path: Path, router: respx.Router) -> AsyncIterator[Engine]:
    doc = {
        "naftiko": "1.0.0-alpha2",
        "info": {"label": "t", "description": "t"},
        "binds": [{"namespace": "env", "keys": {"API_KEY": "API_KEY"}}],
        "capability": {
            "consumes": [CONSUMES],
            "aggregates": AGGREGATES,
            "exposes": [{"type": "mcp", "namespace": "mcp", "tools": TOOLS}, REST],
        },
    }
    file = tmp_path / "cap.yaml"
    file.write_text(yaml.safe_dump(doc, sort_keys=False))
    compiled = compile_capability(load_capability(file, env={"API_KEY": "k-secret"}))
    async with Engine(compiled, mocked_settings(router)) as running:
        yield running


@pytest.fixture
def upstream(router: respx.Router) -> respx.Router:
    router.get(f"{BASE}/items").mock(
        return_value=httpx.Response(200, json={"items": [{"name": "a"}, {"name": "b"}]})
    )
    return router


async def run(engine: Engine, tool: str, **values: Any) -> Any:
    return await engine.invoke(engine.units[f"mcp.{tool}"], Inputs(values=values))


# --------------------------------------------------------------------------- validation


@pytest.mark.parametrize(
    ("values", "parameter", "detail"),
    [
        ({"limit": "abc"}, "limit", "argument 'limit' must be integer, got \"abc\""),
        ({"kind": "c"}, "kind", 'argument \'kind\' must be one of "a", "b", got "c"'),
        ({"body": []}, "body", "argument 'body' must be object, got []"),
    ],
)
async def test_invalid_arguments_never_reach_the_upstream(
    engine: Engine, upstream: respx.Router, values: dict[str, Any], parameter: str, detail: str
) -> None:
    result = await run(engine, "list", **values)
    assert result.problem is not None
    assert (result.status, result.problem.kind) == (400, ErrorKind.VALIDATION)
    assert (result.problem.parameter, result.problem.detail) == (parameter, detail)
    assert not upstream.calls


async def test_required_argument_message_names_the_type(engine: Engine) -> None:
    result = await run(engine, "via-ref")
    assert result.problem is not None
    assert result.problem.detail == "argument 'query' is required (string)"
    mock = await engine.invoke(engine.units["mcp.mock"], Inputs())
    assert mock.problem is not None and mock.problem.detail == "argument 'imo' is required (string)"


async def test_call_maps_output_and_applies_defaults(
    engine: Engine, upstream: respx.Router
) -> None:
    result = await run(engine, "list", limit=5, body={})
    assert (result.status, result.body, result.is_error) == (200, {"names": ["a", "b"]}, False)
    request = upstream.calls.last.request
    assert dict(request.url.params) == {"limit": "5", "kind": "a"}
    assert request.headers["X-Key"] == "k-secret"


# --------------------------------------------------------------------------- modes


async def test_mock_mode_renders_values_without_any_call(
    engine: Engine, upstream: respx.Router
) -> None:
    result = await run(engine, "mock", imo="IMO-1")
    assert (result.status, result.body) == (200, {"imo": "IMO-1", "name": "Northern Star"})
    assert not upstream.calls


async def test_steps_answer_not_implemented_until_orchestration_exists(
    engine: Engine, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(invoke_module.importlib.util, "find_spec", lambda name: None)
    result = await run(engine, "steps")
    assert result.problem is not None
    assert (result.status, result.problem.kind) == (501, ErrorKind.NOT_IMPLEMENTED)
    assert "'mcp.steps'" in result.problem.detail


async def test_missing_call_target_is_501(engine: Engine) -> None:
    result = await run(engine, "broken")
    assert result.problem is not None and result.status == 501
    assert "up.missing" in result.problem.detail


async def test_ref_delegates_to_the_function(engine: Engine, upstream: respx.Router) -> None:
    result = await run(engine, "via-ref", query="b")
    assert result.status == 200
    assert result.body == {"items": [{"name": "a"}, {"name": "b"}]}
    assert upstream.calls.last.request.url.params["kind"] == "b"


async def test_unexpected_exception_is_a_generic_500(
    engine: Engine,
    upstream: respx.Router,
    monkeypatch: pytest.MonkeyPatch,
    caplog: pytest.LogCaptureFixture,
) -> None:
    def boom(*_: Any, **__: Any) -> Any:
        raise RuntimeError("defect")

    monkeypatch.setattr(invoke_module, "build_request", boom)
    with caplog.at_level(logging.ERROR, logger="naftiko.engine"):
        result = await run(engine, "list")
    assert result.problem is not None
    assert (result.status, result.problem.kind) == (500, ErrorKind.INTERNAL)
    assert "defect" not in json.dumps(result.body)
    assert "mcp.list" in caplog.text and "Traceback" in caplog.text
    assert "k-secret" not in caplog.text


# --------------------------------------------------------------------------- forward


async def test_forward_keeps_query_and_only_trusted_headers(
    engine: Engine, router: respx.Router
) -> None:
    [plan] = [a for a in engine.adapters if isinstance(a, RestAdapterPlan)]
    [route] = plan.routes
    target = router.post(f"{BASE}/a/b%20c").mock(
        return_value=httpx.Response(201, json={"ok": 1}, headers={"set-cookie": "s=1"})
    )
    result = await engine.forward(
        route.forward,
        Inputs(
            method="POST",
            path="a/b c",
            query_string="x=1&y=2",
            headers={"X-Trace": "t1", "Authorization": "Bearer caller", "Cookie": "c=1"},
            body={"a": "1"},
            media_type="application/x-www-form-urlencoded",
        ),
    )
    assert (result.status, result.body, dict(result.headers)) == (201, {"ok": 1}, {})
    request = target.calls.last.request
    assert request.url.query == b"x=1&y=2"
    assert request.headers["X-Trace"] == "t1"
    assert request.headers["X-Key"] == "k-secret"  # consumes-level parameters apply
    assert "authorization" not in request.headers and "cookie" not in request.headers
    assert (request.headers["content-type"], request.content) == (
        "application/x-www-form-urlencoded",
        b"a=1",
    )


@pytest.mark.parametrize("path", ["../admin", "a/../../b", "."])
async def test_forward_refuses_dot_segments(
    engine: Engine, router: respx.Router, path: str
) -> None:
    [plan] = [a for a in engine.adapters if isinstance(a, RestAdapterPlan)]
    result = await engine.forward(plan.routes[0].forward, Inputs(method="GET", path=path))
    assert not router.calls
    assert result.problem is not None and result.problem.kind == ErrorKind.VALIDATION


# --------------------------------------------------------------------------- coerce


def field(kind: str, **schema: Any) -> InputField:
    return InputField(name="x", location="query", schema={"type": kind, **schema})


@pytest.mark.parametrize(
    ("f", "text", "expected"),
    [
        (field("integer"), "42", 42),
        (field("integer"), "4.0", 4),
        (field("number"), "2.5", 2.5),
        (field("boolean"), "TRUE", True),
        (field("boolean"), "0", False),
        (field("array", items={"type": "integer"}), "1, 2,3", [1, 2, 3]),
        (field("array"), ["a", "b"], ["a", "b"]),
        (field("object"), '{"a": 1}', {"a": 1}),
        (field("string"), "007", "007"),
        (InputField(name="x", location="query", schema={}), "t", "t"),
    ],
)
def test_coerce_text(f: InputField, text: Any, expected: Any) -> None:
    assert coerce_text(f, text) == expected


@pytest.mark.parametrize(
    ("f", "text", "reason"),
    [
        (field("integer"), "abc", "must be integer, got 'abc'"),
        (field("integer"), "1.5", "must be integer"),
        (field("number"), "nan", "finite"),
        (field("boolean"), "maybe", "must be boolean"),
        (field("object"), "[1]", "must be a JSON object"),
        (field("array", items={"type": "integer"}), "1,x", "must be integer, got 'x'"),
    ],
)
def test_coerce_text_reasons(f: InputField, text: str, reason: str) -> None:
    with pytest.raises(ValueError, match=reason.replace("(", r"\(")):
        coerce_text(f, text)
