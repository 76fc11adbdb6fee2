"""Ikanos 1.0.0-alpha3 .. beta5 documents: read first-class, strict per version, tunnels."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import yaml

from naftiko.adapters.exposes import compile_capability
from naftiko.cli.validate import validate_file
from naftiko.spec.diagnostics import LoadError
from naftiko.spec.loader import load_capability
from naftiko.spec.normalize import IKANOS_VERSIONS
from naftiko.spec.strict import SCHEMA_DIR, schema_file

ROOT = Path(__file__).resolve().parents[2]
EXAMPLES = ROOT / ".." / "shared" / "ikanos" / "examples"
# The reference's own documents that are meant to fail, and the error each must give.
INVALID = {
    "ikanos-spec/src/test/resources/capabilities/capability-spurious-name.yml": "valid tuple",
    "ikanos-spec/src/test/resources/imports/aggregate-duplicate-function-name.yaml": (
        "declared twice"
    ),
    "ikanos-spec/src/test/resources/imports/capability-aggregates-namespace-missing.yaml": (
        "aggregate has no namespace"
    ),
    "ikanos-spec/src/test/resources/imports/capability-exposes-namespace-missing.yaml": (
        "rest adapter has no namespace"
    ),
    "ikanos-spec/src/test/resources/imports/import-duplicate-alias.yaml": "cannot import",
    "ikanos-spec/src/test/resources/imports/import-from-self.yaml": "is a directory",
    "ikanos-spec/src/test/resources/imports/import-missing-fields.yaml": "is required",
    "ikanos-engine/src/test/resources/imports/invalid/malformed.yml": "YAML syntax error",
}
# What a format warning says (the loader's rewrites of a format it does not expect).
FORMAT_WORDS = ("written as a map", "is Ikanos", "read as 'label'", "unknown property")
FORMAT_WORDS += ("version", "read as naftiko", "read as a list", "should be")


def _examples() -> list[Path]:
    found = sorted(p for p in EXAMPLES.rglob("*") if p.suffix in (".yaml", ".yml"))
    return [p for p in found if "ikanos" in p.read_text(encoding="utf-8")[:2000]]


def test_every_valid_reference_example_loads_with_no_format_warning_and_compiles() -> None:
    loaded = 0
    for path in _examples():
        if str(path.relative_to(EXAMPLES)) in INVALID:
            continue
        status, diagnostics = validate_file(path)  # loads and compiles, as naftiko-run
        if status == "skipped":
            continue  # a fragment file: others import it
        assert status != "failed", [d.format() for d in diagnostics]
        format_warnings = [
            d.format() for d in diagnostics if any(w in d.message for w in FORMAT_WORDS)
        ]
        assert format_warnings == [], path
        loaded += 1
    assert loaded >= 30


@pytest.mark.parametrize("name", sorted(INVALID))
def test_deliberately_invalid_reference_examples_fail_with_their_error(name: str) -> None:
    status, diagnostics = validate_file(EXAMPLES / name)
    assert status == "failed"
    errors = [d.message for d in diagnostics if d.severity == "error"]
    assert any(INVALID[name] in e for e in errors), errors


def _doc(version: str = "1.0.0-beta5", **extra: Any) -> dict[str, Any]:
    doc: dict[str, Any] = {
        "ikanos": version,
        "info": {"display": "Shipyard", "description": "Ships.", "tags": ["fleet"]},
        "capability": {
            "consumes": [
                {
                    "type": "http",
                    "namespace": "registry",
                    "baseUri": "https://registry.example.com",
                    "resources": {
                        "ships": {
                            "path": "/ships",
                            "display": "Ships",
                            "tags": ["fleet"],
                            "operations": {
                                "list-ships": {
                                    "method": "GET",
                                    "tags": ["read"],
                                    "outputParameters": {
                                        "ships": {"type": "array", "value": "$.ships"}
                                    },
                                }
                            },
                        }
                    },
                }
            ],
            "exposes": [
                {
                    "type": "mcp",
                    "namespace": "tools",
                    "port": 3001,
                    "tools": {
                        "list-ships": {
                            "display": "List ships",
                            "description": "List the ships.",
                            "tags": ["fleet"],
                            "steps": {"fetch": {"type": "call", "call": "registry.list-ships"}},
                            "mappings": [{"target": "ships", "value": "$.fetch.ships"}],
                            "outputParameters": {
                                "ships": {
                                    "type": "array",
                                    "items": {
                                        "imo": {"type": "string"},
                                        "name": {"type": "string"},
                                    },
                                }
                            },
                        }
                    },
                }
            ],
        },
    }
    doc.update(extra)
    return doc


def _write(tmp_path: Path, doc: Any, name: str = "cap.yaml") -> Path:
    path = tmp_path / name
    path.write_text(yaml.safe_dump(doc, sort_keys=False))
    return path


@pytest.mark.parametrize("version", IKANOS_VERSIONS)
def test_every_ikanos_release_loads_without_a_warning(tmp_path: Path, version: str) -> None:
    loaded = load_capability(_write(tmp_path, _doc(version)), env={})
    assert loaded.diagnostics == ()
    tool = loaded.document.capability.exposes[0].tools[0]
    assert (tool.name, tool.label, tool.tags) == ("list-ships", "List ships", ("fleet",))
    assert tool.mappings[0].target_name == "ships"
    assert loaded.document.info.label == "Shipyard"


def test_array_items_as_named_properties_become_an_object_schema(tmp_path: Path) -> None:
    loaded = load_capability(_write(tmp_path, _doc()), env={})
    (output,) = loaded.document.capability.exposes[0].tools[0].output_parameters
    assert output.items is not None and output.items.type == "object"
    assert set(output.items.properties or {}) == {"imo", "name"}
    compile_capability(loaded)


def test_a_naftiko_document_writing_ikanos_forms_is_still_warned(tmp_path: Path) -> None:
    doc = _doc()
    doc["naftiko"] = "1.0.0-alpha2"
    del doc["ikanos"]
    messages = [d.message for d in load_capability(_write(tmp_path, doc), env={}).diagnostics]
    assert any("written as a map" in m for m in messages)
    assert any("'display' is Ikanos" in m for m in messages)


def test_an_unknown_ikanos_version_loads_with_one_warning(tmp_path: Path) -> None:
    loaded = load_capability(_write(tmp_path, _doc("1.0.0-rc1")), env={})
    assert [d.message for d in loaded.diagnostics] == [
        "unknown ikanos version '1.0.0-rc1': read as 1.0.0-beta5"
    ]


def test_every_release_has_its_schema_bundled() -> None:
    for version in IKANOS_VERSIONS:
        assert (SCHEMA_DIR / f"ikanos-schema-{version}.json").is_file()
    assert (SCHEMA_DIR / "naftiko-schema-1.0.0-alpha2.json").is_file()
    assert schema_file({"naftiko": "1.0.0-alpha1"}).name == "naftiko-schema-1.0.0-alpha2.json"
    assert schema_file({"ikanos": "9"}).name == "ikanos-schema-1.0.0-beta5.json"


def test_strict_checks_each_document_against_its_own_release(tmp_path: Path) -> None:
    doc = _doc("1.0.0-beta4")
    doc["capability"]["exposes"][0]["ttlMs"] = 1000  # beta4
    assert load_capability(_write(tmp_path, doc), env={}, strict=True).diagnostics == ()
    doc["ikanos"] = "1.0.0-beta3"
    with pytest.raises(LoadError) as exc:
        load_capability(_write(tmp_path, doc), env={}, strict=True)
    (error,) = exc.value.diagnostics
    assert error.message == "schema: property not allowed here: ttlMs"
    assert error.line == 28 and error.path == "capability.exposes[0]"  # file:line as ever


def test_strict_accepts_alpha1_against_the_alpha2_schema(tmp_path: Path) -> None:
    from test_loader_tolerance import base_doc

    doc = base_doc()
    doc["naftiko"] = "1.0.0-alpha1"
    errors = []
    try:
        load_capability(_write(tmp_path, doc), env={}, strict=True)
    except LoadError as exc:
        errors = [d.message for d in exc.diagnostics]
    assert not any("naftiko" in e and "expected one of" in e for e in errors), errors


# --------------------------------------------------------------------------- imports


def test_imports_from_fragment_files_in_every_section(tmp_path: Path) -> None:
    doc = _doc()
    consumes = doc["capability"].pop("consumes")
    exposes = doc["capability"].pop("exposes")
    _write(tmp_path, {"ikanos": "1.0.0-beta5", "consumes": consumes}, "api.consumes.yml")
    _write(tmp_path, {"ikanos": "1.0.0-beta5", "exposes": exposes}, "tools.exposes.yml")
    binds = [{"namespace": "secrets", "keys": {"TOKEN": "TOKEN"}}]
    _write(tmp_path, {"ikanos": "1.0.0-beta5", "binds": binds}, "env.binds.yml")
    doc["capability"]["consumes"] = [{"from": "./api.consumes.yml", "import": "registry"}]
    doc["capability"]["exposes"] = [{"from": "tools.exposes.yml", "import": "tools", "as": "fleet"}]
    doc["binds"] = [{"from": "./env.binds.yml", "import": "secrets"}]
    loaded = load_capability(_write(tmp_path, doc), env={"TOKEN": "t"})
    assert loaded.diagnostics == ()
    capability = loaded.document.capability
    assert capability.consumes[0].namespace == "registry"
    assert capability.exposes[0].namespace == "fleet"
    assert capability.exposes[0].tools[0].name == "list-ships"
    assert loaded.document.binds[0].namespace == "secrets"


def test_ikanos_imports_are_not_transitive(tmp_path: Path) -> None:
    doc = _doc()
    consumes = doc["capability"]["consumes"]
    _write(tmp_path, {"ikanos": "1.0.0-beta5", "consumes": consumes}, "leaf.yml")
    middle = [{"from": "./leaf.yml", "import": "registry"}]
    _write(tmp_path, {"ikanos": "1.0.0-beta5", "consumes": middle}, "middle.yml")
    doc["capability"]["consumes"] = [{"from": "./middle.yml", "import": "registry"}]
    with pytest.raises(LoadError) as exc:
        load_capability(_write(tmp_path, doc), env={})
    assert any("not transitive" in d.message for d in exc.value.diagnostics)


def test_file_scope_sections_join_the_capability(tmp_path: Path) -> None:
    doc = _doc()
    doc["exposes"] = doc["capability"].pop("exposes")
    loaded = load_capability(_write(tmp_path, doc), env={})
    assert loaded.diagnostics == ()
    assert loaded.document.capability.exposes[0].namespace == "tools"


# --------------------------------------------------------------------------- tunnels


def _tunnel_doc(**tunnel: str) -> dict[str, Any]:
    doc = _doc()
    doc["capability"]["consumes"][0]["tunnel"] = {
        "type": "ziti",
        "service": "registry",
        "identity": "/etc/ziti/id.json",
        **tunnel,
    }
    return doc


def test_a_ziti_tunnel_makes_its_namespace_answer_501_with_a_warning(tmp_path: Path) -> None:
    compiled = compile_capability(load_capability(_write(tmp_path, _tunnel_doc()), env={}))
    reason = compiled.consumes["registry"].unavailable
    assert reason is not None and "'ziti' tunnel" in reason and "fallback: direct" in reason
    assert any("answer 501" in d.message for d in compiled.warnings)


def test_fallback_direct_calls_the_base_uri_with_a_warning(tmp_path: Path) -> None:
    doc = _tunnel_doc(fallback="direct")
    compiled = compile_capability(load_capability(_write(tmp_path, doc), env={}))
    assert compiled.consumes["registry"].unavailable is None
    assert any("called directly" in d.message for d in compiled.warnings)


def _valid_examples() -> list[Path]:
    return [
        p
        for p in _examples()
        if str(p.relative_to(EXAMPLES)) not in INVALID and validate_file(p)[0] != "skipped"
    ]


@pytest.mark.parametrize("path", _valid_examples(), ids=lambda p: p.name)
async def test_every_valid_reference_example_serves(path: Path) -> None:
    """Each REST, MCP and skill adapter of each valid example, on a real loopback server,
    answers its listing: the OpenAPI document, ``tools/list`` through the official MCP
    client, the skill catalogue. (Control adapters need the runtime's state: the
    runtime's own tests serve them.)"""
    import contextlib

    import httpx
    import httpx2
    from mcp import Client
    from mcp.client.streamable_http import streamable_http_client

    from naftiko.adapters.mcp.plan import McpAdapterPlan
    from naftiko.adapters.mcp.server import build_mcp_app
    from naftiko.adapters.rest.app import build_rest_app
    from naftiko.adapters.rest.plan import RestAdapterPlan
    from naftiko.adapters.rest.routes import OPENAPI_PATH
    from naftiko.adapters.skill.app import build_skill_app
    from naftiko.adapters.skill.plan import SkillAdapterPlan
    from naftiko.engine.invoke import Engine
    from support.servers import serve_asgi

    loaded = load_capability(path, env={}, require_binds=False)
    compiled = compile_capability(loaded)
    answered = 0
    async with Engine(compiled) as engine, contextlib.AsyncExitStack() as stack:
        for plan in compiled.adapters:
            if plan.authentication is not None:
                continue  # its credentials are binds the example does not ship
            if isinstance(plan, RestAdapterPlan):
                url = await stack.enter_async_context(serve_asgi(build_rest_app(engine, plan)))
                async with httpx.AsyncClient(base_url=url) as http:
                    answer = await http.get(OPENAPI_PATH)
                assert answer.status_code == 200, answer.text
                assert answer.json()["openapi"].startswith("3.")
            elif isinstance(plan, McpAdapterPlan):
                if plan.transport == "stdio":
                    continue  # served over stdio by tests/adapters/test_mcp.py's subprocess
                url = await stack.enter_async_context(serve_asgi(build_mcp_app(engine, plan)))
                async with (
                    httpx2.AsyncClient() as http,
                    Client(streamable_http_client(url + "/mcp", http_client=http)) as client,
                ):
                    tools = (await client.list_tools()).tools
                declared = {
                    u.name
                    for u in compiled.units.values()
                    if u.adapter_namespace == plan.namespace and u.kind == "tool"
                }
                assert {t.name for t in tools} == declared
            elif isinstance(plan, SkillAdapterPlan):
                app = build_skill_app(engine, plan)
                url = await stack.enter_async_context(serve_asgi(app))
                async with httpx.AsyncClient(base_url=url) as http:
                    answer = await http.get("/skills")
                assert answer.status_code == 200, answer.text
            else:
                continue
            answered += 1
    kinds = {p.type for p in compiled.adapters}
    assert (
        answered
        or kinds <= {"control"}
        or all(
            p.authentication is not None or getattr(p, "transport", "") == "stdio"
            for p in compiled.adapters
            if p.type != "control"
        )
    ), kinds
