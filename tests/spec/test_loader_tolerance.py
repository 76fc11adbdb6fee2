"""The lenient loader: published deviations load, each with a warning at its line."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import yaml

from naftiko.spec.diagnostics import Diagnostic, LoadError
from naftiko.spec.loader import LoadedCapability, load_capability
from naftiko.spec.models import Authentication, ConsumesHttp, ExposesMcp, ExposesRest


def base_doc(**capability: Any) -> dict[str, Any]:
    """A minimal runnable document; ``capability`` keys replace the defaults."""
    doc: dict[str, Any] = {
        "naftiko": "1.0.0-alpha2",
        "info": {"label": "Test", "description": "A test capability."},
        "capability": {
            "consumes": [
                {
                    "type": "http",
                    "namespace": "api",
                    "baseUri": "https://api.example.com",
                    "resources": [
                        {
                            "name": "items",
                            "path": "/items",
                            "operations": [{"name": "list-items", "method": "GET"}],
                        }
                    ],
                }
            ],
            "exposes": [
                {
                    "type": "rest",
                    "namespace": "api-rest",
                    "port": 8080,
                    "resources": [
                        {
                            "name": "items",
                            "path": "/items",
                            "operations": [{"method": "GET", "call": "api.list-items"}],
                        }
                    ],
                }
            ],
        },
    }
    doc["capability"].update(capability)
    return doc


def write(tmp_path: Path, doc: Any, name: str = "cap.yaml") -> Path:
    path = tmp_path / name
    path.write_text(doc if isinstance(doc, str) else yaml.safe_dump(doc, sort_keys=False))
    return path


def load(path: Path, **kwargs: Any) -> LoadedCapability:
    kwargs.setdefault("env", {})
    return load_capability(path, **kwargs)


def warnings_of(loaded: LoadedCapability) -> list[Diagnostic]:
    return [d for d in loaded.diagnostics if d.severity == "warning"]


def has(diagnostics: Any, text: str, path: str | None = None) -> bool:
    return any(text in d.message and (path is None or d.path == path) for d in diagnostics)


def test_clean_document_loads_without_diagnostics(tmp_path: Path) -> None:
    loaded = load(write(tmp_path, base_doc()))
    assert loaded.diagnostics == ()
    assert loaded.base_dir == tmp_path.resolve()
    assert [c.namespace for c in loaded.document.consumed()] == ["api"]


def test_json_documents_load(tmp_path: Path) -> None:
    import json

    loaded = load(write(tmp_path, json.dumps(base_doc(), indent=2), "cap.json"))
    assert loaded.diagnostics == ()


def test_alpha1_is_first_class(tmp_path: Path) -> None:
    doc = base_doc()
    doc["naftiko"] = "1.0.0-alpha1"
    assert load(write(tmp_path, doc)).diagnostics == ()


@pytest.mark.parametrize("version", ["1.0.0-alpha3", "0.5"])
def test_other_known_versions_warn(tmp_path: Path, version: str) -> None:
    doc = base_doc()
    doc["naftiko"] = version
    loaded = load(write(tmp_path, doc))
    assert has(loaded.diagnostics, f"naftiko {version}: read as 1.0.0-alpha2", "naftiko")


@pytest.mark.parametrize(
    "value", [{"schema": "https://naftiko.io/schema.json"}, {"version": "1.0.0-alpha1"}, "9.9"]
)
def test_odd_version_forms_warn_and_load(tmp_path: Path, value: Any) -> None:
    doc = base_doc()
    doc["naftiko"] = value
    loaded = load(write(tmp_path, doc))
    assert any(d.path == "naftiko" for d in warnings_of(loaded))


def test_unknown_version_fails_in_strict_mode(tmp_path: Path) -> None:
    doc = base_doc()
    doc["naftiko"] = "9.9"
    with pytest.raises(LoadError) as exc:
        load(write(tmp_path, doc), strict=True)
    assert any(d.path == "naftiko" and d.severity == "error" for d in exc.value.diagnostics)


def test_unknown_properties_are_kept_and_reported_with_position(tmp_path: Path) -> None:
    doc = base_doc()
    doc["capability"]["exposes"][0]["colour"] = "blue"
    loaded = load(write(tmp_path, doc))
    (warning,) = [d for d in loaded.diagnostics if "colour" in d.message]
    assert warning.path == "capability.exposes[0].colour"
    assert warning.line is not None and warning.line > 1
    assert loaded.document.capability.exposes[0].model_extra == {"colour": "blue"}


def test_info_title_is_read_as_label(tmp_path: Path) -> None:
    doc = base_doc()
    doc["info"] = {"title": "Old style", "description": "d"}
    loaded = load(write(tmp_path, doc))
    assert loaded.document.info.label == "Old style"
    assert has(loaded.diagnostics, "info.title")


def test_missing_descriptions_warn(tmp_path: Path) -> None:
    doc = base_doc()
    del doc["info"]["description"]
    assert has(load(write(tmp_path, doc)).diagnostics, "'info.description' is missing")


def test_untyped_object_and_array_outputs_warn(tmp_path: Path) -> None:
    doc = base_doc()
    op = doc["capability"]["exposes"][0]["resources"][0]["operations"][0]
    op["outputParameters"] = [
        {"type": "object", "mapping": "$."},
        {"type": "object"},
        {"type": "array"},
    ]
    loaded = load(write(tmp_path, doc))
    found = [d.path[-19:] for d in loaded.diagnostics if "output without" in d.message]
    assert found == ["outputParameters[1]", "outputParameters[2]"]


def test_identifier_pattern_violations_warn(tmp_path: Path) -> None:
    doc = base_doc()
    doc["capability"]["exposes"][0]["namespace"] = "api_rest v2"
    assert has(load(write(tmp_path, doc)).diagnostics, "not kebab-case")


def test_openapi_style_apikey_becomes_placement_and_key(tmp_path: Path) -> None:
    doc = base_doc()
    doc["capability"]["consumes"][0]["authentication"] = {
        "type": "apiKey",
        "in": "header",
        "name": "X-Api-Key",
        "value": "{{API_KEY}}",
    }
    loaded = load(write(tmp_path, doc))
    auth = loaded.document.consumed()[0].authentication
    assert isinstance(auth, Authentication)
    assert (auth.type, auth.placement, auth.key) == ("apikey", "header", "X-Api-Key")
    assert has(loaded.diagnostics, "read as 'placement'")


def test_per_operation_path_and_consumed_parameter_fields_load(tmp_path: Path) -> None:
    doc = base_doc()
    op = doc["capability"]["consumes"][0]["resources"][0]["operations"][0]
    op["path"] = "/items/all"
    op["inputParameters"] = [
        {"name": "q", "in": "query", "type": "string", "required": True, "description": "d"}
    ]
    loaded = load(write(tmp_path, doc))
    consumed = loaded.document.consumed()[0].resources[0].operations[0]
    assert consumed.path == "/items/all"
    assert consumed.input_parameters[0].required is True


def test_mcp_without_port_or_transport_loads_with_a_warning(tmp_path: Path) -> None:
    doc = base_doc()
    doc["capability"]["exposes"].append(
        {
            "type": "mcp",
            "namespace": "api-mcp",
            "tools": [{"name": "list", "description": "List.", "call": "api.list-items"}],
        }
    )
    loaded = load(write(tmp_path, doc))
    mcp = loaded.document.capability.exposes[1]
    assert isinstance(mcp, ExposesMcp) and mcp.port is None and mcp.transport is None
    assert has(loaded.diagnostics, "MCP adapter has no port")


def test_unknown_enum_values_are_kept_and_reported(tmp_path: Path) -> None:
    doc = base_doc()
    op = doc["capability"]["consumes"][0]["resources"][0]["operations"][0]
    op["outputRawFormat"] = "ndjson"
    op["method"] = "get"
    loaded = load(write(tmp_path, doc))
    consumed = loaded.document.consumed()[0].resources[0].operations[0]
    assert consumed.output_raw_format == "ndjson" and consumed.method == "GET"
    assert has(loaded.diagnostics, "unknown outputRawFormat 'ndjson'")
    assert has(loaded.diagnostics, "should be upper case")


def test_items_given_as_one_element_list_is_reduced(tmp_path: Path) -> None:
    doc = base_doc()
    op = doc["capability"]["exposes"][0]["resources"][0]["operations"][0]
    op["outputParameters"] = [
        {"type": "array", "mapping": "$.items", "items": [{"type": "string", "mapping": "$."}]}
    ]
    loaded = load(write(tmp_path, doc))
    out = loaded.document.capability.exposes[0].resources[0].operations[0].output_parameters[0]
    assert out.items is not None and out.items.type == "string"
    assert has(loaded.diagnostics, "'items' should be one schema")


MINIMAL = """\
naftiko: 1.0.0-alpha2
info:
  label: Test
  description: A test capability.
  created: 2026-05-01
  tags: [NO, yes]
capability:
  consumes:
  - type: http
    namespace: api
    baseUri: https://api.example.com
    resources:
    - name: items
      path: /items
      operations:
      - name: list-items
  exposes:
  - type: rest
    namespace: api-rest
    port: 8080
    resources:
    - path: /items
      operations:
      - method: GET
        call: api.list-items
        with:
          on: true
          flag: false
"""


def test_with_values_keep_booleans_and_yaml11_keys_stay_text(tmp_path: Path) -> None:
    loaded = load(write(tmp_path, MINIMAL))
    op = loaded.document.capability.exposes[0].resources[0].operations[0]
    assert op.with_ == {"on": True, "flag": False}


def test_dates_and_yes_no_stay_strings(tmp_path: Path) -> None:
    info = load(write(tmp_path, MINIMAL)).document.info
    assert info.created == "2026-05-01" and info.tags == ("NO", "yes")


def test_resource_with_null_name_loads(tmp_path: Path) -> None:
    doc = base_doc()
    doc["capability"]["exposes"][0]["resources"][0]["name"] = None
    loaded = load(write(tmp_path, doc))
    assert has(loaded.diagnostics, "'name' is empty")


def test_base_uri_trailing_slash_is_only_a_warning(tmp_path: Path) -> None:
    doc = base_doc()
    doc["capability"]["consumes"][0]["baseUri"] = "https://api.example.com/v1/"
    loaded = load(write(tmp_path, doc))
    assert has(loaded.diagnostics, "baseUri ends with '/'", "capability.consumes[0].baseUri")


def test_repeated_consumes_namespace_with_same_settings_is_merged(tmp_path: Path) -> None:
    doc = base_doc()
    second = {
        "type": "http",
        "namespace": "api",
        "baseUri": "https://api.example.com",
        "resources": [{"name": "users", "path": "/users", "operations": [{"name": "list-users"}]}],
    }
    doc["capability"]["consumes"].append(second)
    doc["capability"]["exposes"][0]["resources"][0]["operations"][0]["call"] = "api.list-users"
    loaded = load(write(tmp_path, doc))
    (api,) = loaded.document.consumed()
    assert [r.name for r in api.resources] == ["items", "users"]
    assert has(loaded.diagnostics, "resources merged")


def test_rest_and_mcp_sharing_a_namespace_warn(tmp_path: Path) -> None:
    doc = base_doc()
    doc["capability"]["exposes"].append(
        {"type": "mcp", "namespace": "api-rest", "port": 9090, "tools": []}
    )
    assert has(load(write(tmp_path, doc)).diagnostics, "already used by exposes[0] (rest)")


def test_unknown_call_target_warns_with_suggestion_in_lenient_mode(tmp_path: Path) -> None:
    doc = base_doc()
    doc["capability"]["exposes"][0]["resources"][0]["operations"][0]["call"] = "api.list-item"
    loaded = load(write(tmp_path, doc))
    (d,) = [d for d in loaded.diagnostics if "call target" in d.message]
    assert d.severity == "warning"
    assert "did you mean 'api.list-items'?" in d.message
    assert d.path == "capability.exposes[0].resources[0].operations[0].call"
    assert d.line is not None


def test_with_reference_to_unknown_namespace_warns(tmp_path: Path) -> None:
    doc = base_doc()
    op = doc["capability"]["exposes"][0]["resources"][0]["operations"][0]
    op["with"] = {"a": "rest.x", "b": "api-rest.x", "c": "nowhere.x", "d": "v1.2"}
    loaded = load(write(tmp_path, doc))
    found = [d.path for d in loaded.diagnostics if "names no known namespace" in d.message]
    assert found == ["capability.exposes[0].resources[0].operations[0].with.c"]


def test_ikanos_document_is_normalised(tmp_path: Path) -> None:
    doc = {
        "ikanos": "1.0.0-beta2",
        "info": {"display": "Ikanos", "description": "d"},
        "capability": {
            "consumes": [
                {
                    "type": "http",
                    "namespace": "api",
                    "baseUri": "https://api.example.com",
                    "resources": {
                        "items": {"path": "/items", "operations": {"list-items": {"method": "GET"}}}
                    },
                }
            ],
            "exposes": [
                {
                    "type": "mcp",
                    "namespace": "mcp",
                    "port": 9000,
                    "tools": {"list": {"description": "List.", "call": "api.list-items"}},
                }
            ],
        },
    }
    loaded = load(write(tmp_path, doc))
    assert loaded.document.info.label == "Ikanos"
    tool = loaded.document.capability.exposes[0].tools[0]
    assert tool.name == "list" and tool.call == "api.list-items"
    assert not any("call target" in d.message for d in loaded.diagnostics)


def test_exposes_types_are_modelled(tmp_path: Path) -> None:
    loaded = load(write(tmp_path, base_doc()))
    assert isinstance(loaded.document.capability.exposes[0], ExposesRest)
    assert all(isinstance(c, ConsumesHttp) for c in loaded.document.capability.consumes)
