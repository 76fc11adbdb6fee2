"""Compilation: units, derived inputs, schemas, hints, adapter plans, load errors."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import yaml

from naftiko.adapters.control.plan import ControlAdapterPlan
from naftiko.adapters.exposes import compile_capability
from naftiko.adapters.mcp.plan import DynamicResourcePlan, McpAdapterPlan, StaticResourcePlan
from naftiko.adapters.rest.plan import RestAdapterPlan
from naftiko.engine.plans import (
    CallPlan,
    CompiledCapability,
    MockPlan,
    NotImplementedPlan,
    RefPlan,
    StepsPlan,
)
from naftiko.spec.diagnostics import LoadError
from naftiko.spec.loader import load_capability


def compile_doc(tmp_path: Path, capability: dict[str, Any], **extra: Any) -> CompiledCapability:
    doc = {"naftiko": "1.0.0-alpha2", "info": {"label": "t", "description": "t"}, **extra}
    doc["capability"] = capability
    file = tmp_path / "cap.yaml"
    file.write_text(yaml.safe_dump(doc, sort_keys=False))
    return compile_capability(load_capability(file, env={}))


CONSUMES = {
    "type": "http",
    "namespace": "up",
    "baseUri": "https://api.example.com",
    "resources": [
        {
            "name": "items",
            "path": "/items/{itemId}",
            "operations": [
                {
                    "name": "update",
                    "method": "PUT",
                    "inputParameters": [
                        {"name": "itemId", "in": "path", "type": "string"},
                        {"name": "limit", "in": "query", "type": "integer", "description": "Max"},
                        {"name": "X-Mode", "in": "header", "type": "string", "required": True},
                        {"name": "body", "in": "body", "type": "object", "required": True},
                    ],
                },
            ],
        },
        {
            "name": "all-items",
            "path": "/items",
            "operations": [
                {
                    "name": "create",
                    "method": "POST",
                    "body": {"type": "json", "data": {"title": "{{tools.title}}"}},
                },
            ],
        },
    ],
}


def test_published_tiktok_tool_requires_a_body_object(tiktok_capability_path: Path) -> None:
    compiled = compile_capability(load_capability(tiktok_capability_path, env={}))
    tool = compiled.units["tiktok-login-kit-oauth-mcp.exchange-authorization-code-token"]
    assert tool.kind == "tool"
    assert tool.input_schema == {
        "type": "object",
        "properties": {"body": {"type": "object", "description": "Request body (JSON)."}},
        "required": ["body"],
    }
    [field] = tool.inputs
    assert (field.name, field.location, field.required, field.derived) == (
        "body",
        "argument",
        True,
        True,
    )
    assert tool.hints == {"read_only": False, "destructive": False, "idempotent": False}
    rest = compiled.units["tiktok-login-kit-oauth-rest.exchangetoken"]
    assert [(f.name, f.location, f.required) for f in rest.inputs] == [("body", "body", True)]
    assert isinstance(rest.plan, CallPlan) and rest.plan.passthrough
    assert rest.plan.operation.label == "POST /v2/oauth/token/"
    assert [type(a) for a in compiled.adapters] == [RestAdapterPlan, McpAdapterPlan]


def test_derived_inputs_are_typed_from_the_consumed_parameter(tmp_path: Path) -> None:
    tools = [
        {
            "name": "update",
            "label": "Update an item",
            "call": "up.update",
            "with": {
                "itemId": "tools.id",
                "limit": "{{tools.limit}}",
                "X-Mode": "$this.mcp.mode",
                "body": "mcp.payload",
            },
            "hints": {"readOnly": False, "openWorld": True},
        },
        {"name": "create", "call": "up.create"},
    ]
    compiled = compile_doc(
        tmp_path,
        {"consumes": [CONSUMES], "exposes": [{"type": "mcp", "namespace": "mcp", "tools": tools}]},
    )
    update = compiled.units["mcp.update"]
    props = update.input_schema["properties"]
    assert props["id"] == {"type": "string", "minLength": 1}  # it fills a path segment
    assert props["limit"] == {"type": "integer", "description": "Max"}
    assert props["mode"] == {"type": "string"}
    assert props["payload"] == {"type": "object"}
    assert update.input_schema["required"] == ["id", "mode", "payload"]
    assert all(f.derived and f.location == "argument" for f in update.inputs)
    assert update.title == "Update an item"
    assert update.hints == {"read_only": False, "open_world": True}
    # References inside the consumed body template are inputs too.
    create = compiled.units["mcp.create"]
    assert "title" in create.input_schema["properties"]


def test_rest_locations_of_derived_inputs(tmp_path: Path) -> None:
    rest = {
        "type": "rest",
        "namespace": "api",
        "port": 8080,
        "resources": [
            {
                "path": "/things/{{itemId}}",
                "operations": [
                    {
                        "method": "put",
                        "call": "up.update",
                        "with": {
                            "itemId": "rest.itemId",
                            "limit": "rest.limit",
                            "X-Mode": "rest.mode",
                            "body": "rest.body",
                        },
                    }
                ],
            }
        ],
    }
    compiled = compile_doc(tmp_path, {"consumes": [CONSUMES], "exposes": [rest]})
    [plan] = compiled.adapters
    assert isinstance(plan, RestAdapterPlan)
    [route] = plan.routes
    assert route.path == "/things/{itemId}"
    unit = route.operations["PUT"]
    assert unit.id == "api.PUT /things/{itemId}"
    locations = {f.name: (f.location, f.required) for f in unit.inputs}
    assert locations == {
        "itemId": ("path", True),
        "limit": ("query", False),
        "mode": ("header", True),
        "body": ("body", True),
    }


def test_declared_inputs_and_required_defaults(tmp_path: Path) -> None:
    params = [
        {"name": "q", "type": "string", "enum": ["a", "b"], "default": "a"},
        {"name": "n", "type": "int", "required": False},
        {"name": "tags", "type": "array", "items": {"type": "string"}},
        {"name": "odd", "type": "uuid-ish"},
    ]
    tool = {"name": "t", "inputParameters": params, "call": "up.create"}
    rest_params = [
        {"name": "id", "in": "path", "type": "string"},
        {"name": "q", "in": "query", "type": "string"},
        {"name": "must", "in": "query", "required": True},
    ]
    rest = {
        "type": "rest",
        "namespace": "api",
        "resources": [
            {
                "path": "/x/{id}",
                "inputParameters": rest_params,
                "operations": [{"method": "GET", "name": "x", "call": "up.create"}],
            }
        ],
    }
    compiled = compile_doc(
        tmp_path,
        {
            "consumes": [CONSUMES],
            "exposes": [{"type": "mcp", "namespace": "mcp", "tools": [tool]}, rest],
        },
    )
    schema = compiled.units["mcp.t"].input_schema
    assert schema["properties"]["q"] == {"type": "string", "enum": ["a", "b"], "default": "a"}
    assert schema["properties"]["n"] == {"type": "integer"}
    assert schema["properties"]["tags"] == {"type": "array", "items": {"type": "string"}}
    assert schema["properties"]["odd"] == {}  # unknown type: no constraint
    assert schema["required"] == ["q", "tags", "odd"]  # MCP: required unless false
    rest_unit = compiled.units["api.x"]
    assert rest_unit.input_schema["required"] == ["id", "must"]  # REST: path or true


def test_missing_call_target_compiles_to_501_plan(tmp_path: Path) -> None:
    tools = [
        {"name": "broken", "call": "up.nope"},
        {"name": "mock", "call": "up.nope", "outputParameters": [{"name": "a", "value": "x"}]},
        {"name": "mocked", "outputParameters": [{"type": "string", "value": "{{tools.x}}"}]},
        {"name": "steps", "steps": [{"type": "call", "name": "s", "call": "up.create"}]},
    ]
    compiled = compile_doc(
        tmp_path,
        {"consumes": [CONSUMES], "exposes": [{"type": "mcp", "namespace": "mcp", "tools": tools}]},
    )
    broken = compiled.units["mcp.broken"].plan
    assert isinstance(broken, NotImplementedPlan) and "up.nope" in broken.reason
    assert isinstance(compiled.units["mcp.mock"].plan, MockPlan)
    assert isinstance(compiled.units["mcp.mocked"].plan, MockPlan)
    assert isinstance(compiled.units["mcp.steps"].plan, StepsPlan)


def test_aggregate_ref_inherits_and_derives_hints(tmp_path: Path) -> None:
    aggregates = [
        {
            "namespace": "fleet",
            "functions": [
                {
                    "name": "find",
                    "description": "Find things",
                    "semantics": {"safe": True, "idempotent": True},
                    "inputParameters": [{"name": "q", "type": "string"}],
                    "call": "up.create",
                    "with": {"title": "fleet.q"},
                }
            ],
        }
    ]
    tools = [{"name": "", "ref": "fleet.find", "hints": {"destructive": True}}]
    compiled = compile_doc(
        tmp_path,
        {
            "consumes": [CONSUMES],
            "aggregates": aggregates,
            "exposes": [{"type": "mcp", "namespace": "mcp", "tools": tools}],
        },
    )
    function = compiled.functions["fleet.find"]
    assert function.kind == "function" and isinstance(function.plan, CallPlan)
    tool = compiled.units["mcp.find"]
    assert (tool.name, tool.description) == ("find", "Find things")
    assert isinstance(tool.plan, RefPlan) and tool.plan.function_id == "fleet.find"
    assert tool.hints == {"read_only": True, "destructive": True, "idempotent": True}
    assert tool.input_schema["required"] == ["q"]


def test_resources_and_other_adapters(tmp_path: Path) -> None:
    (tmp_path / "docs").mkdir()
    mcp = {
        "type": "mcp",
        "namespace": "mcp",
        "resources": [
            {"name": "docs", "uri": "docs://all", "location": "file://docs"},
            {"name": "item", "uri": "items://{itemId}", "call": "up.create"},
        ],
    }
    control = {"type": "control", "port": 9000, "management": {"health": True}}
    compiled = compile_doc(tmp_path, {"consumes": [CONSUMES], "exposes": [mcp, control]})
    mcp_plan, control_plan = compiled.adapters
    assert isinstance(mcp_plan, McpAdapterPlan) and isinstance(control_plan, ControlAdapterPlan)
    static, dynamic = mcp_plan.resources
    assert isinstance(static, StaticResourcePlan)
    assert Path(static.directory) == (tmp_path / "docs").resolve()
    assert isinstance(dynamic, DynamicResourcePlan) and dynamic.is_template
    assert dynamic.unit.kind == "resource"
    assert dynamic.unit.input_schema["required"] == ["itemId"]
    assert control_plan.management == {"health": True}


@pytest.mark.parametrize(
    ("patch", "message"),
    [
        ({"with": {"itemId": "{{#tools.id}}"}}, "invalid mustache"),
        ({"outputParameters": [{"type": "string", "mapping": "$.[[["}]}, "outputParameters"),
    ],
)
def test_document_errors_are_load_errors_with_lines(
    tmp_path: Path, patch: dict[str, Any], message: str
) -> None:
    tool = {"name": "t", "call": "up.update", **patch}
    with pytest.raises(LoadError) as caught:
        compile_doc(
            tmp_path,
            {
                "consumes": [CONSUMES],
                "exposes": [{"type": "mcp", "namespace": "mcp", "tools": [tool]}],
            },
        )
    [error] = [d for d in caught.value.diagnostics if d.severity == "error"]
    assert message in error.message
    assert error.line is not None and error.file.endswith("cap.yaml")


def test_unknown_format_makes_mapping_units_501_and_fails_only_strict(tmp_path: Path) -> None:
    consumes = yaml.safe_load(yaml.safe_dump(CONSUMES))
    consumes["resources"][1]["operations"][0]["outputRawFormat"] = "INI"
    mapped = [{"type": "object", "properties": {"a": {"type": "string", "mapping": "$.a"}}}]

    def exposes(outputs: list[Any]) -> list[dict[str, Any]]:
        tool = {"name": "t", "call": "up.create", "outputParameters": outputs}
        return [{"type": "mcp", "namespace": "mcp", "tools": [tool]}]

    compiled = compile_doc(tmp_path, {"consumes": [consumes], "exposes": exposes([])})
    assert any("INI" in w.message and "passes through" in w.message for w in compiled.warnings)
    compiled = compile_doc(tmp_path, {"consumes": [consumes], "exposes": exposes(mapped)})
    assert any("INI" in w.message and "answer 501" in w.message for w in compiled.warnings)
    with pytest.raises(LoadError, match="INI"):
        compile_capability(load_capability(tmp_path / "cap.yaml", env={}), strict=True)


def test_unusable_outbound_auth_is_a_warning_or_a_strict_error(tmp_path: Path) -> None:
    consumes = {**CONSUMES, "authentication": {"type": "kerberos"}}
    compiled = compile_doc(tmp_path, {"consumes": [consumes], "exposes": []})
    assert compiled.consumes["up"].unavailable is not None
    assert any("kerberos" in w.message for w in compiled.warnings)
    with pytest.raises(LoadError, match="kerberos"):
        compile_capability(load_capability(tmp_path / "cap.yaml", env={}), strict=True)


# --------------------------------------------------------------------------- load checks


def mcp_with(**fields: Any) -> dict[str, Any]:
    return {"consumes": [CONSUMES], "exposes": [{"type": "mcp", "namespace": "mcp", **fields}]}


def load_errors(tmp_path: Path, capability: dict[str, Any]) -> list[Any]:
    with pytest.raises(LoadError) as caught:
        compile_doc(tmp_path, capability)
    return [d for d in caught.value.diagnostics if d.severity == "error"]


@pytest.mark.parametrize(
    ("location", "message"),
    [("file://prompts/absent.md", "no such file"), ("file://../outside.md", "escapes")],
)
def test_prompt_file_must_exist_inside_the_capability_directory(
    tmp_path: Path, location: str, message: str
) -> None:
    prompts = [{"name": "review", "location": location}]
    [error] = load_errors(tmp_path, mcp_with(prompts=prompts))
    assert message in error.message and "prompt 'review'" in error.message
    assert error.path == "capability.exposes[0].prompts[0].location" and error.line is not None


def test_prompt_file_that_exists_compiles(tmp_path: Path) -> None:
    (tmp_path / "prompts").mkdir()
    (tmp_path / "prompts" / "review.md").write_text("Review {{topic}}.")
    prompts = [{"name": "review", "location": "file://prompts/review.md"}]
    compiled = compile_doc(tmp_path, mcp_with(prompts=prompts))
    assert [p.name for p in compiled.adapters[0].prompts] == ["review"]  # type: ignore[attr-defined]


def rest_on(path: str) -> dict[str, Any]:
    operation = {
        "method": "GET",
        "name": "doc",
        "outputParameters": [{"type": "string", "value": "x"}],
    }
    resource = {"name": "r", "path": path, "operations": [operation]}
    return {"exposes": [{"type": "rest", "namespace": "api", "resources": [resource]}]}


@pytest.mark.parametrize("path", ["/.well-known/openapi.json", "/.well-known/openapi.json/"])
def test_rest_resource_on_the_reserved_openapi_path_is_a_load_error(
    tmp_path: Path, path: str
) -> None:
    [error] = load_errors(tmp_path, rest_on(path))
    assert "is reserved" in error.message and "OpenAPI" in error.message
    assert error.path == "capability.exposes[0].resources[0].path"


def test_rest_resource_whose_variables_match_the_reserved_path_is_a_warning(
    tmp_path: Path,
) -> None:
    compiled = compile_doc(tmp_path, rest_on("/{section}/{file}"))
    assert any("also matches /.well-known/openapi.json" in w.message for w in compiled.warnings)
    assert not compile_doc(tmp_path, rest_on("/ships/{imo}")).warnings


def _static(method: str, name: str) -> dict[str, Any]:
    return {"method": method, "name": name, "outputParameters": [{"type": "string", "value": name}]}


def test_resources_sharing_a_path_warn_only_about_what_the_first_one_shadows(
    tmp_path: Path,
) -> None:
    resources = [
        {"name": "list", "path": "/things", "operations": [_static("GET", "list")]},
        {"name": "create", "path": "/things", "operations": [_static("POST", "create")]},
        {"name": "again", "path": "/things", "operations": [_static("GET", "again")]},
        {"name": "proxy", "path": "/p/{path}", "forward": {"targetNamespace": "up"}},
        {"name": "late", "path": "/p/{path}", "operations": [_static("PUT", "late")]},
    ]
    compiled = compile_doc(
        tmp_path,
        {
            "exposes": [{"type": "rest", "namespace": "api", "resources": resources}],
            "consumes": [CONSUMES],
        },
    )
    shadowed = {w.path: w.message for w in compiled.warnings if "never called" in w.message}
    assert shadowed == {
        "capability.exposes[0].resources[2].operations[0]": (
            "resources[0] already serves GET on /things: the first declared wins, so this "
            "operation is never called"
        ),
        "capability.exposes[0].resources[4].operations[0]": (
            "resources[3] already forwards /p/{path}: the first declared wins, so this "
            "operation is never called"
        ),
    }


def test_derived_inputs_for_upstream_body_fields_are_query_inputs_of_bodiless_methods(
    tmp_path: Path,
) -> None:
    consumes = {
        "type": "http",
        "namespace": "up",
        "baseUri": "https://api.example.com",
        "resources": [
            {
                "name": "s",
                "path": "/search",
                "operations": [
                    {
                        "name": "search",
                        "method": "POST",
                        "inputParameters": [
                            {"name": "text", "in": "body", "type": "string", "required": True},
                            {"name": "X-Mode", "in": "header", "type": "string"},
                        ],
                    }
                ],
            }
        ],
    }
    operations = [
        {"method": method, "name": method.lower(), "call": "up.search"}
        for method in ("GET", "DELETE", "POST", "PUT")
    ]
    compiled = compile_doc(
        tmp_path,
        {
            "consumes": [consumes],
            "exposes": [
                {
                    "type": "rest",
                    "namespace": "api",
                    "resources": [{"name": "r", "path": "/s", "operations": operations}],
                },
                {
                    "type": "mcp",
                    "namespace": "tools",
                    "tools": [{"name": "search", "description": "d", "call": "up.search"}],
                },
            ],
        },
    )
    located = {
        unit.name: [(f.name, f.location, f.required) for f in unit.inputs]
        for unit in compiled.units.values()
    }
    assert located == {
        "get": [("text", "query", True), ("X-Mode", "header", False)],
        "delete": [("text", "query", True), ("X-Mode", "header", False)],
        "post": [("text", "body", True), ("X-Mode", "header", False)],
        "put": [("text", "body", True), ("X-Mode", "header", False)],
        "search": [("text", "argument", True), ("X-Mode", "argument", False)],
    }


def test_declared_inputs_without_a_location_are_query_inputs_of_bodiless_methods(
    tmp_path: Path,
) -> None:
    def operation(method: str) -> dict[str, Any]:
        return {
            **_static(method, method.lower()),
            "inputParameters": [
                {"name": "q", "type": "string"},  # no ``in``
                {"name": "odd", "in": "formData", "type": "string"},  # not a REST location
                {"name": "b", "in": "body", "type": "string"},  # said: kept
            ],
        }

    adapter = {
        "type": "rest",
        "namespace": "api",
        "inputParameters": [{"name": "tenant", "type": "string"}],
        "resources": [
            {"name": "r", "path": "/r", "operations": [operation(m) for m in ("GET", "POST")]}
        ],
    }
    compiled = compile_doc(tmp_path, {"exposes": [adapter]})
    located = {
        unit.name: {f.name: f.location for f in unit.inputs} for unit in compiled.units.values()
    }
    assert located == {
        "get": {"tenant": "query", "q": "query", "odd": "query", "b": "body"},
        "post": {"tenant": "body", "q": "body", "odd": "body", "b": "body"},
    }


def test_step_compile_errors_point_at_the_mapping(tmp_path: Path) -> None:
    tool = {
        "name": "t",
        "steps": [{"type": "call", "name": "s", "call": "up.create"}],
        "mappings": [{"targetName": "bad", "value": "$.s[?(@.x ==]"}],
    }
    [error] = load_errors(tmp_path, mcp_with(tools=[tool]))
    assert "invalid JSONPath" in error.message
    assert error.path == "capability.exposes[0].tools[0].mappings[0]"


def test_steps_are_compiled_at_load(tmp_path: Path) -> None:
    tool = {"name": "t", "steps": [{"type": "call", "name": "s", "call": "up.create"}]}
    plan = compile_doc(tmp_path, mcp_with(tools=[tool])).units["mcp.t"].plan
    assert isinstance(plan, StepsPlan) and plan.steps.operations == ("up.create",)


def test_inputs_of_step_with_and_of_a_ref_function_steps_are_derived(tmp_path: Path) -> None:
    step = {
        "type": "call",
        "name": "s",
        "call": "up.update",
        "with": {"itemId": "fleet.itemId", "limit": "{{fleet.limit}}"},
    }
    aggregates = [{"namespace": "fleet", "functions": [{"name": "f", "steps": [step]}]}]
    tools = [{"name": "t", "ref": "fleet.f"}]
    compiled = compile_doc(tmp_path, {**mcp_with(tools=tools), "aggregates": aggregates})
    schema = compiled.units["mcp.t"].input_schema
    assert schema["properties"] == {
        "itemId": {"type": "string"},
        "limit": {"type": "integer", "description": "Max"},
    }
    assert schema["required"] == ["itemId"]  # feeds a path parameter


async def test_unknown_aggregate_ref_answers_501_naming_the_function(tmp_path: Path) -> None:
    from naftiko.engine.invoke import Engine
    from naftiko.engine.types import ErrorKind, Inputs

    compiled = compile_doc(tmp_path, mcp_with(tools=[{"name": "t", "ref": "fleet.nope"}]))
    async with Engine(compiled) as engine:
        result = await engine.invoke(compiled.units["mcp.t"], Inputs())
    assert result.is_error and result.status == 501
    assert result.problem is not None and result.problem.kind is ErrorKind.NOT_IMPLEMENTED
    assert result.problem.detail == "'mcp.t' refers to the unknown function 'fleet.nope'"
