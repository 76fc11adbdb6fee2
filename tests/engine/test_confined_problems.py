"""Problems confined to some units: a load warning and 501 for those units (lenient), an
error in strict mode. Nothing is ever sent without the credentials the document asked
for. Script steps stay a load error in both modes."""

from __future__ import annotations

import dataclasses
from pathlib import Path
from typing import Any

import pytest
import respx
import yaml

from naftiko.adapters.exposes import compile_capability
from naftiko.adapters.rest.plan import RestRoute
from naftiko.engine.invoke import Engine
from naftiko.engine.plans import CompiledCapability, NotImplementedPlan
from naftiko.engine.types import ErrorKind, Inputs, Result
from naftiko.spec.diagnostics import Diagnostic, LoadError
from naftiko.spec.loader import load_capability
from support.mocked import mocked_settings

LOCKED = "https://locked.example.com"
OPEN = "https://open.example.com"


def consumes(namespace: str, base: str, **extra: Any) -> dict[str, Any]:
    operations = [
        {"name": "get", "method": "GET"},
        {"name": "get-proto", "method": "GET", "outputRawFormat": "protobuf"},
        {"name": "get-avro", "method": "GET", "outputRawFormat": "avro"},
    ]
    resources = [{"name": "r", "path": "/r", "operations": operations}]
    return {
        "type": "http",
        "namespace": namespace,
        "baseUri": base,
        "resources": resources,
        **extra,
    }


MAPPED = [{"type": "object", "properties": {"a": {"type": "string", "mapping": "$.a"}}}]


def document(*, locked_auth: dict[str, Any] | None = None, tools: list[Any]) -> dict[str, Any]:
    extra = {"authentication": locked_auth} if locked_auth else {}
    return {
        "naftiko": "1.0.0-alpha2",
        "info": {"label": "t", "description": "t"},
        "capability": {
            "consumes": [consumes("locked", LOCKED, **extra), consumes("open", OPEN)],
            "exposes": [
                {"type": "mcp", "namespace": "mcp", "port": 9001, "tools": tools},
                {
                    "type": "rest",
                    "namespace": "rest",
                    "port": 9002,
                    "resources": [{"path": "/fwd", "forward": {"targetNamespace": "locked"}}],
                },
            ],
        },
    }


def tool(name: str, **fields: Any) -> dict[str, Any]:
    return {"name": name, "description": "d", **fields}


OPEN_TOOL = tool("healthy", call="open.get")


def write(tmp_path: Path, doc: dict[str, Any]) -> Path:
    path = tmp_path / "cap.yaml"
    path.write_text(yaml.safe_dump(doc, sort_keys=False))
    return path


def compile_file(path: Path, *, strict: bool = False) -> CompiledCapability:
    return compile_capability(load_capability(path, env={}), strict=strict)


def only(warnings: tuple[Diagnostic, ...], words: str) -> Diagnostic:
    [found] = [w for w in warnings if words in w.message]
    return found


async def invoke_all(
    compiled: CompiledCapability, upstream: respx.Router, *names: str
) -> dict[str, Result]:
    async with Engine(compiled, mocked_settings(upstream)) as engine:
        return {n: await engine.invoke(compiled.units[f"mcp.{n}"], Inputs()) for n in names}


def assert_501(result: Result, *words: str) -> None:
    assert (result.status, result.is_error) == (501, True), result
    assert result.problem is not None and result.problem.kind is ErrorKind.NOT_IMPLEMENTED
    for word in words:
        assert word in result.problem.detail


# --------------------------------------------------------------------------- authentication


@pytest.mark.parametrize(
    ("auth", "reason"),
    [
        ({"type": "oauth1", "consumerKey": "k"}, "authentication type 'oauth1' is not supported"),
        ({"type": "aws-sig-v4"}, "authentication type 'aws-sig-v4' is not supported"),
        (
            {"type": "apikey", "key": "k", "value": "v", "placement": "body"},
            "apikey placement 'body' is not supported",
        ),
        ({"type": "oauth2", "clientId": "c"}, "oauth2 authentication needs tokenEndpoint"),
    ],
    ids=["oauth1", "aws-sig-v4", "apikey-body", "oauth2-no-endpoint"],
)
async def test_unusable_authentication_makes_its_namespace_answer_501(
    tmp_path: Path, auth: dict[str, Any], reason: str
) -> None:
    upstream = respx.Router(assert_all_called=False)
    locked = upstream.route(url__startswith=LOCKED).respond(200, json={"a": "leak"})
    upstream.get(f"{OPEN}/r").respond(200, json={"a": "ok"})
    steps = [{"type": "call", "name": "s", "call": "locked.get"}]
    tools = [tool("direct", call="locked.get"), tool("chain", steps=steps), OPEN_TOOL]
    path = write(tmp_path, document(locked_auth=auth, tools=tools))

    compiled = compile_file(path)
    warning = only(compiled.warnings, "answer 501")
    assert warning.message.startswith(f"operations of namespace 'locked' answer 501: {reason}")
    assert warning.line is not None and warning.file == str(path)
    assert warning.path == "capability.consumes[0].authentication"

    results = await invoke_all(compiled, upstream, "direct", "chain", "healthy")
    assert_501(results["direct"], "'locked' cannot be called", reason)
    assert_501(results["chain"], reason)
    assert results["chain"].problem.step == "s"  # type: ignore[union-attr]
    assert (results["healthy"].status, results["healthy"].body) == (200, {"a": "ok"})
    async with Engine(compiled, mocked_settings(upstream)) as engine:
        route = compiled.adapters[1].routes[0]  # type: ignore[attr-defined]
        assert isinstance(route, RestRoute) and route.forward is not None
        assert_501(await engine.forward(route.forward, Inputs(path="x")), reason)
    assert not locked.called  # never sent without its credentials

    with pytest.raises(LoadError) as strict:
        compile_file(path, strict=True)
    [error] = [d for d in strict.value.diagnostics if d.severity == "error"]
    assert reason in error.message and error.line == warning.line


# --------------------------------------------------------------------------- steps


@pytest.mark.parametrize(
    ("step", "reason"),
    [
        ({"type": "transform", "name": "t", "expression": "x"}, "unknown step type 'transform'"),
        ({"type": "call", "name": "c", "call": "nodot"}, "invalid call 'nodot'"),
    ],
    ids=["transform", "invalid-call"],
)
async def test_broken_steps_make_their_unit_answer_501(
    tmp_path: Path, step: dict[str, Any], reason: str
) -> None:
    steps = [{"type": "call", "name": "first", "call": "open.get"}, step]
    aggregates = [{"namespace": "fleet", "functions": [tool("fn", steps=steps)]}]
    doc = document(tools=[tool("broken", steps=steps), tool("via-ref", ref="fleet.fn"), OPEN_TOOL])
    doc["capability"]["aggregates"] = aggregates
    path = write(tmp_path, doc)

    compiled = compile_file(path)
    own = only(compiled.warnings, "'mcp.broken' answers 501")
    assert reason in own.message and own.path == "capability.exposes[0].tools[0].steps[1]"
    assert own.line is not None
    function = only(compiled.warnings, "function 'fleet.fn' and the units that use it answer 501")
    assert reason in function.message
    plan = compiled.units["mcp.broken"].plan
    assert isinstance(plan, NotImplementedPlan)

    upstream = respx.Router(assert_all_called=False)
    sent = upstream.get(f"{OPEN}/r").respond(200, json={"a": "ok"})
    results = await invoke_all(compiled, upstream, "broken", "via-ref", "healthy")
    assert_501(results["broken"], "'mcp.broken' cannot run", reason)
    assert_501(results["via-ref"], "'fleet.fn' cannot run", reason)
    assert results["healthy"].status == 200
    assert sent.call_count == 1  # only the healthy tool: no half-run chain

    with pytest.raises(LoadError, match=reason.split("'")[0]):
        compile_file(path, strict=True)


def test_a_script_step_is_still_a_load_error_when_lenient(tmp_path: Path) -> None:
    steps = [
        {"type": "transform", "name": "t"},
        {"type": "script", "name": "s", "language": "javascript", "file": "f.js"},
    ]
    path = write(tmp_path, document(tools=[tool("scripted", steps=steps), OPEN_TOOL]))
    with pytest.raises(LoadError) as refused:
        compile_file(path)
    errors = [d.message for d in refused.value.diagnostics if d.severity == "error"]
    assert any("script steps are not supported" in e for e in errors)


# --------------------------------------------------------------------------- formats


@pytest.mark.parametrize(
    ("operation", "reason"),
    [
        ("get-proto", "outputRawFormat 'protobuf' is not supported"),
        ("get-avro", "outputRawFormat 'avro' requires outputSchema"),
    ],
)
async def test_an_unreadable_format_makes_only_the_units_reading_it_answer_501(
    tmp_path: Path, operation: str, reason: str
) -> None:
    target = f"open.{operation}"
    steps = [{"type": "call", "name": "s", "call": target}]
    tools = [
        tool("mapped", call=target, outputParameters=MAPPED),
        tool("raw", call=target),
        tool("chain", steps=steps),
    ]
    path = write(tmp_path, document(tools=tools))

    compiled = compile_file(path)
    warning = only(compiled.warnings, f"units that read the body of '{target}' answer 501")
    assert reason in warning.message
    assert warning.path is not None and warning.path.endswith("outputRawFormat")
    assert warning.line is not None

    upstream = respx.Router(assert_all_called=False)
    sent = upstream.get(f"{OPEN}/r").respond(
        200, content=b"\x08\x96\x01", headers={"Content-Type": "application/x-protobuf"}
    )
    results = await invoke_all(compiled, upstream, "mapped", "raw", "chain")
    assert_501(results["mapped"], f"the body of '{target}' cannot be read", reason)
    assert_501(results["chain"], reason)
    assert (results["raw"].status, results["raw"].body) == (200, b"\x08\x96\x01")
    assert results["raw"].media_type == "application/x-protobuf"
    assert sent.call_count == 1  # only the passthrough unit called the upstream

    with pytest.raises(LoadError, match="outputRawFormat"):
        compile_file(path, strict=True)


def test_an_unreadable_format_that_only_passes_through_is_a_plain_warning(
    tmp_path: Path,
) -> None:
    path = write(tmp_path, document(tools=[tool("raw", call="open.get-proto")]))
    for strict in (False, True):
        compiled = compile_file(path, strict=strict)
        assert "(body passes through)" in only(compiled.warnings, "'open.get-proto'").message


def test_a_document_loaded_strictly_compiles_strictly(tmp_path: Path) -> None:
    """A document loaded with ``strict=True`` compiles strictly without being told again."""
    auth = {"type": "oauth1", "consumerKey": "k"}
    path = write(tmp_path, document(locked_auth=auth, tools=[OPEN_TOOL]))
    loaded = load_capability(path, env={})
    compile_capability(loaded)  # lenient: a warning, the namespace answers 501
    with pytest.raises(LoadError) as raised:
        compile_capability(dataclasses.replace(loaded, strict=True))
    assert any("oauth1" in d.message for d in raised.value.diagnostics if d.severity == "error")
