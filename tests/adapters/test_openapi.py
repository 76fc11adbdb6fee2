"""OpenAPI documents of REST adapters, and ``naftiko export openapi``."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
import yaml
from openapi_spec_validator import validate

from naftiko.adapters.exposes import compile_capability
from naftiko.adapters.rest.openapi import build_openapi, openapi_info, security_scheme
from naftiko.adapters.rest.plan import RestAdapterPlan
from naftiko.cli.entry import main
from naftiko.spec.loader import load_capability
from naftiko.spec.models import Authentication

TEST_CAPABILITY = Path(__file__).parent / "capabilities" / "rest-adapter-test.yaml"


def _plans(path: Path) -> dict[str, RestAdapterPlan]:
    loaded = load_capability(path, require_binds=False)
    compiled = compile_capability(loaded)
    return {a.namespace: a for a in compiled.adapters if isinstance(a, RestAdapterPlan)}


def _document(plan: RestAdapterPlan) -> dict[str, Any]:
    return build_openapi(plan, title="T", version="1", server_url="http://localhost:1")


def test_tiktok_document_validates_and_describes_the_three_routes(
    tiktok_capability_path: Path,
) -> None:
    (plan,) = _plans(tiktok_capability_path).values()
    document = _document(plan)
    validate(document)
    assert set(document["paths"]) == {
        "/v1/v2/oauth/revoke",
        "/v1/v2/oauth/token",
        "/v1/v2/oauth/token/refresh",
        "/.well-known/openapi.json",
    }
    token = document["paths"]["/v1/v2/oauth/token"]["post"]
    assert token["operationId"] == "exchangetoken"
    # ``with: {body: rest.body}``: the whole body is the object, not a ``body`` property.
    body = token["requestBody"]
    assert body["required"] is True
    assert body["content"]["application/json"]["schema"]["type"] == "object"
    assert "properties" not in body["content"]["application/json"]["schema"]
    assert list(body["content"]) == ["application/json"]  # no form body is declared
    problem = token["responses"]["502"]["content"]["application/problem+json"]["schema"]
    assert problem == {"$ref": "#/components/schemas/Problem"}
    assert "security" not in document


def test_test_capability_documents_parameters_and_forward() -> None:
    plans = _plans(TEST_CAPABILITY)
    document = _document(plans["open"])
    validate(document)
    get_item = document["paths"]["/items/{id}"]["get"]
    params = {(p["in"], p["name"]): p for p in get_item["parameters"]}
    assert params["path", "id"] == {
        "name": "id",
        "in": "path",
        "required": True,
        "schema": {"type": "integer"},
    }
    assert params["query", "verbose"]["schema"] == {"type": "boolean"}
    assert params["header", "X-Tenant"]["description"] == "The tenant, sent upstream."
    put_item = document["paths"]["/items/{id}"]["put"]
    schema = put_item["requestBody"]["content"]["application/json"]["schema"]
    assert schema["required"] == ["name"]
    assert schema["properties"]["count"] == {"type": "integer"}
    proxy = document["paths"]["/proxy/{path}"]
    assert set(proxy) == {"get", "post", "put", "patch", "delete"}
    assert proxy["post"]["x-naftiko-forward"] == "echo"
    assert proxy["get"]["parameters"][0]["name"] == "path"


@pytest.mark.parametrize(
    ("adapter", "scheme"),
    [
        ("bearer", {"type": "http", "scheme": "bearer"}),
        ("apikey-header", {"type": "apiKey", "in": "header", "name": "X-API-Key"}),
        ("apikey-query", {"type": "apiKey", "in": "query", "name": "api_key"}),
        ("basic", {"type": "http", "scheme": "basic"}),
    ],
)
def test_security_schemes(adapter: str, scheme: dict[str, Any]) -> None:
    document = _document(_plans(TEST_CAPABILITY)[adapter])
    validate(document)
    assert document["components"]["securitySchemes"] == {"inbound": scheme}
    assert document["security"] == [{"inbound": []}]
    assert "401" in document["paths"]["/items/{id}"]["get"]["responses"]


def test_oauth2_is_a_jwt_bearer_scheme() -> None:
    document = _document(_plans(TEST_CAPABILITY)["oauth2"])
    validate(document)
    scheme = document["components"]["securitySchemes"]["inbound"]
    assert scheme["type"] == "http"
    assert scheme["bearerFormat"] == "JWT"
    assert "items.read" in scheme["description"]


def test_security_scheme_never_holds_a_credential() -> None:
    auth = Authentication(type="apikey", key="X-Key", value="s3cret", placement="header")
    assert "s3cret" not in json.dumps(security_scheme(auth))


def test_openapi_info_prefers_label_and_adapter_description(tiktok_capability_path: Path) -> None:
    loaded = load_capability(tiktok_capability_path, require_binds=False)
    (plan,) = _plans(tiktok_capability_path).values()
    title, version, description = openapi_info(plan, loaded.document.info)
    assert title == "TikTok Login Kit API — OAuth"
    assert version == "2026-05-19"
    assert description is not None and description.startswith("REST adapter for TikTok")


# --------------------------------------------------------------------------- export command


def test_export_writes_json_that_validates(tiktok_capability_path: Path, tmp_path: Path) -> None:
    out = tmp_path / "openapi.json"
    assert main(["export", "openapi", str(tiktok_capability_path), "-o", str(out)]) == 0
    document = json.loads(out.read_text())
    validate(document)
    assert document["servers"] == [{"url": "http://localhost:8080"}]


def test_export_yaml_to_stdout(
    tiktok_capability_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["export", "openapi", str(tiktok_capability_path), "--format", "yaml"]) == 0
    document = yaml.safe_load(capsys.readouterr().out)
    validate(document)


def test_export_needs_adapter_choice_when_several(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    out = tmp_path / "o.yaml"
    assert main(["export", "openapi", str(TEST_CAPABILITY), "-o", str(out)]) == 2
    assert "--adapter" in capsys.readouterr().err
    args = ["export", "openapi", str(TEST_CAPABILITY), "-o", str(out), "--adapter", "basic"]
    assert main(args) == 0
    document = yaml.safe_load(out.read_text())  # YAML chosen from the extension
    assert document["components"]["securitySchemes"]["inbound"]["scheme"] == "basic"


def test_export_load_error_prints_diagnostics_exit_2(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    broken = tmp_path / "broken.yaml"
    broken.write_text("naftiko: 1.0.0-alpha2\ncapability: [\n")
    assert main(["export", "openapi", str(broken)]) == 2
    err = capsys.readouterr().err
    assert f"{broken}:" in err
    assert "error" in err
    assert "Traceback" not in err
