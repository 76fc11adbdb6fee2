"""Gateway at scale: what is made on first use answers as if made at start, and what a
1,000-document folder keeps is only what serving needs (issue 17, item 6).

Lazily made: the REST adapter's routing table and OpenAPI reply, the units' input
validators and the MCP tools' output validators. Checked eagerly still: every load and
compile error (a gateway start reports a compile-time error of any document).
"""

from __future__ import annotations

import argparse
import contextlib
import gc
from pathlib import Path
from typing import Any

import httpx
import pytest
import respx
import yaml
from jsonschema import Draft202012Validator

from naftiko.adapters.exposes import compile_capability
from naftiko.adapters.mcp.server import McpHandlers
from naftiko.adapters.rest.app import build_rest_app
from naftiko.adapters.rest.routes import shadowing_reserved_path
from naftiko.cli import run as run_command
from naftiko.compile.validators import LazyValidator
from naftiko.engine.invoke import Engine
from naftiko.runtime.config import resolve_config
from naftiko.runtime.placement import (
    PlacementError,
    load_all,
    load_one,
    override_typos,
    place_slots,
)
from naftiko.spec.loader import load_capability
from support.mocked import mocked_settings

BASE = "https://api.example.com"

DOC: dict[str, Any] = {
    "naftiko": "1.0.0-alpha2",
    "info": {"label": "Lazy", "description": "compiled on first use"},
    "capability": {
        "consumes": [
            {
                "type": "http",
                "namespace": "up",
                "baseUri": BASE,
                "resources": [
                    {
                        "name": "items",
                        "path": "/items/{{id}}",
                        "operations": [
                            {
                                "name": "get",
                                "method": "GET",
                                "outputRawFormat": "json",
                                "inputParameters": [{"name": "id", "in": "path"}],
                            }
                        ],
                    }
                ],
            }
        ],
        "exposes": [
            {
                "type": "rest",
                "namespace": "api",
                "resources": [
                    {
                        "path": "/items/{id}",
                        "operations": [
                            {
                                "method": "GET",
                                "name": "get-item",
                                "call": "up.get",
                                "inputParameters": [
                                    {"name": "id", "in": "path", "type": "string"},
                                    {"name": "limit", "in": "query", "type": "integer"},
                                ],
                                "outputParameters": [
                                    {
                                        "type": "object",
                                        "properties": {
                                            "name": {"type": "string", "mapping": "$.name"}
                                        },
                                    }
                                ],
                            }
                        ],
                    }
                ],
            },
            {
                "type": "mcp",
                "namespace": "tools",
                "tools": [
                    {
                        "name": "get-item",
                        "call": "up.get",
                        "inputParameters": [
                            {"name": "id", "type": "string", "minLength": 2},
                            {"name": "kind", "type": "string", "enum": ["a", "b"]},
                        ],
                        "outputParameters": [
                            {
                                "type": "object",
                                "properties": {"name": {"type": "string", "mapping": "$.name"}},
                            }
                        ],
                    }
                ],
            },
        ],
    },
}


def _write(folder: Path, name: str, doc: dict[str, Any]) -> Path:
    path = folder / name
    path.write_text(yaml.safe_dump(doc, sort_keys=False))
    return path


def _config(paths: list[str], *extra: str) -> Any:
    parser = argparse.ArgumentParser()
    run_command.add_arguments(parser)
    return resolve_config(parser.parse_args([*paths, "--gateway", "0", *extra]), {})


def _force(compiled: Any) -> None:
    """Make now everything the runtime makes on first use (the eager twin)."""
    for unit in compiled.units.values():
        validator = unit.plan.validator
        assert isinstance(validator, LazyValidator)
        assert validator.validator is not None


@pytest.fixture
def router() -> respx.Router:
    router = respx.Router(assert_all_called=False)
    router.get(url__regex=rf"{BASE}/items/.*").mock(
        side_effect=lambda request: httpx.Response(
            200, json={"name": request.url.path.rsplit("/", 1)[-1]}
        )
    )
    return router


REST_REQUESTS = [
    ("GET", "/items/abc"),
    ("GET", "/items/abc?limit=2"),
    ("GET", "/items/abc?limit=x"),  # a validation problem, from the validator
    ("GET", "/items/abc/"),
    ("GET", "/items"),  # 404
    ("POST", "/items/abc"),  # 405
    ("GET", "/.well-known/openapi.json"),
    ("HEAD", "/.well-known/openapi.json"),
]


async def _rest_answers(app: Any) -> list[tuple[int, bytes]]:
    transport = httpx.ASGITransport(app=app)
    async with httpx.AsyncClient(transport=transport, base_url="http://localhost") as client:
        answers = []
        for method, path in REST_REQUESTS:
            response = await client.request(method, path)
            answers.append((response.status_code, response.content))
        return answers


async def test_rest_routes_and_openapi_are_made_on_first_use_and_answer_as_eager(
    tmp_path: Path, router: respx.Router
) -> None:
    file = _write(tmp_path, "lazy.yaml", DOC)
    apps = []
    for eager in (False, True):
        compiled = compile_capability(load_capability(file))
        if eager:
            _force(compiled)
        engine = Engine(compiled, mocked_settings(router))
        plan = next(p for p in compiled.adapters if p.type == "rest")
        app = build_rest_app(engine, plan, info=compiled.loaded.document.info)
        if eager:
            assert app.endpoint.routes and app.endpoint.openapi
        else:
            # Nothing of the routing table or the OpenAPI reply until a request needs it.
            assert "routes" not in vars(app.endpoint)
            assert "openapi" not in vars(app.endpoint)
        apps.append((app, engine))
    lazy, eager = [await _rest_answers(app) for app, _ in apps]
    for _, engine in apps:
        await engine.aclose()
    assert lazy == eager
    assert [status for status, _ in lazy] == [200, 200, 400, 200, 404, 405, 200, 200]


async def test_mcp_tools_with_lazy_validators_answer_as_eager(
    tmp_path: Path, router: respx.Router
) -> None:
    file = _write(tmp_path, "lazy.yaml", DOC)
    arguments: list[dict[str, Any]] = [
        {"id": "abc", "kind": "b"},
        {"id": "abc", "kind": "a"},
        {"id": "a"},  # minLength: the jsonschema validator words the error
        {"id": "abc", "kind": "c"},
        {"kind": "a"},  # id missing
        {"id": 3},
    ]
    answers = []
    for eager in (False, True):
        compiled = compile_capability(load_capability(file))
        unit = compiled.units["tools.get-item"]
        if eager:
            _force(compiled)
        else:
            assert unit.plan.validator._validator is None  # not made at compile time
        async with Engine(compiled, mocked_settings(router)) as engine:
            plan = next(p for p in compiled.adapters if p.type == "mcp")
            handlers = McpHandlers(engine, plan)
            entry = handlers.tools["get-item"]
            assert isinstance(entry.output_validator, LazyValidator)
            results = [await handlers.call_tool("get-item", a) for a in arguments]
        answers.append([r.model_dump(mode="json", by_alias=True) for r in results])
    lazy, eager = answers
    assert lazy == eager
    assert [a["isError"] for a in lazy] == [False, False, True, True, True, True]


def test_lazy_validator_is_the_jsonschema_validator() -> None:
    schema = {
        "type": "object",
        "properties": {"n": {"type": "integer", "minimum": 2}},
        "required": ["n"],
    }
    lazy = LazyValidator(schema)
    eager = Draft202012Validator(schema)
    for value in ({"n": 3}, {"n": 1}, {}, {"n": "x"}, []):
        assert [e.message for e in lazy.iter_errors(value)] == [
            e.message for e in eager.iter_errors(value)
        ]
        assert lazy.is_valid(value) == eager.is_valid(value)
    assert lazy.schema is schema


@pytest.mark.parametrize(
    ("path", "shadowing"),
    [
        ("/.well-known/openapi.json", "/.well-known/openapi.json"),
        ("/.well-known/{file}", "/.well-known/openapi.json"),
        ("/{a}/{b}", "/.well-known/openapi.json"),
        ("/{path}", "/.well-known/openapi.json"),
        ("/.well-known/{path}", "/.well-known/openapi.json"),
        ("{x}/openapi.json", "/.well-known/openapi.json"),
        ("/items/{id}", None),
        ("/.well-known/x/{id}", None),
        ("/.well/{id}", None),
        ("/items", None),
    ],
)
def test_reserved_path_check_skips_only_paths_that_cannot_match(
    path: str, shadowing: str | None
) -> None:
    assert shadowing_reserved_path(path) == shadowing


def test_a_compile_time_error_of_one_document_still_stops_the_gateway_start(
    tmp_path: Path,
) -> None:
    """Only the REST plan compiler finds this one (the loader accepts the path)."""
    _write(tmp_path, "good.yaml", DOC)
    bad = yaml.safe_load(yaml.safe_dump(DOC))
    for adapter in bad["capability"]["exposes"]:
        adapter["namespace"] += "-2"
    bad["capability"]["exposes"][0]["resources"][0]["path"] = "/.well-known/openapi.json"
    _write(tmp_path, "bad.yaml", bad)
    with pytest.raises(PlacementError) as raised:
        load_all(_config([str(tmp_path)]))
    (line,) = [line for line in raised.value.lines if "error" in line]
    assert "bad.yaml:" in line and "is reserved" in line


def test_a_template_error_in_a_document_stops_the_gateway_start(tmp_path: Path) -> None:
    bad = yaml.safe_load(yaml.safe_dump(DOC))
    tool = bad["capability"]["exposes"][1]["tools"][0]
    tool["outputParameters"][0]["properties"]["name"] = {"type": "string", "mapping": "$[?("}
    _write(tmp_path, "bad.yaml", bad)
    with pytest.raises(PlacementError) as raised:
        load_all(_config([str(tmp_path)]))
    assert any("bad.yaml:" in line for line in raised.value.lines)


def test_gateway_keeps_only_info_version_and_consumed_namespaces(tmp_path: Path) -> None:
    file = _write(tmp_path, "lazy.yaml", DOC)
    placed = load_one(file, _config([str(file)]))
    assert placed is not None
    document = placed.loaded.document
    assert document.capability is None  # the model tree is gone
    assert document.info is not None and document.info.label == "Lazy"
    assert document.naftiko == "1.0.0-alpha2"
    assert placed.label == "Lazy" and placed.spec_version == "1.0.0-alpha2"
    assert placed.consumed() == ("up",)
    assert placed.compiled.loaded is placed.loaded
    # --base-uri typos are still found against the consumed namespaces.
    config = _config([str(file)], "--base-uri", "upp=http://x")
    with pytest.raises(PlacementError, match="--base-uri upp: no consumed API"):
        place_slots([placed], config)
    config = _config([str(file)], "--base-uri", "up=http://x")
    slots, _ = place_slots([placed], config)
    assert override_typos(slots, config) == []


def test_loading_a_folder_leaves_no_cyclic_garbage(tmp_path: Path) -> None:
    """The collector is off while naftiko-run starts: whatever a load leaves in a cycle
    stays in memory until ready (a compiled document's whole model did)."""
    corpus = Path(__file__).resolve().parents[3] / "shared" / "corpus"
    files = sorted(corpus.rglob("*.yaml"))[:40] if corpus.is_dir() else []
    files = [*files, _write(tmp_path, "lazy.yaml", DOC)]
    config = _config([str(tmp_path)])
    gc.collect()
    was = gc.isenabled()
    gc.disable()
    try:
        kept = []
        for file in files:
            # A corpus file that does not load alone: its garbage counts too.
            with contextlib.suppress(Exception):
                kept.append(load_one(file, config, explicit=False))
        assert any(kept)
        assert gc.collect() == 0
    finally:
        if was:
            gc.enable()
