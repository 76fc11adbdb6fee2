"""The typed models accept the published TikTok capability and round-trip it."""

from pathlib import Path

import yaml

from naftiko.spec.models import ConsumesHttp, Document, ExposesMcp, ExposesRest

ROOT = Path(__file__).resolve().parents[1]
TIKTOK = ROOT / "capabilities" / "tiktok-login-kit-oauth.yaml"


def test_tiktok_document_parses_into_models() -> None:
    doc = Document.model_validate(yaml.safe_load(TIKTOK.read_text()))
    assert doc.naftiko == "1.0.0-alpha2"
    consumes = doc.consumed()
    assert len(consumes) == 1 and isinstance(consumes[0], ConsumesHttp)
    assert consumes[0].base_uri == "https://open.tiktokapis.com"
    rest, mcp = doc.capability.exposes
    assert isinstance(rest, ExposesRest) and isinstance(mcp, ExposesMcp)
    assert [r.path for r in rest.resources][1] == "/v1/v2/oauth/token"
    assert mcp.tools[0].hints.read_only is False
    assert mcp.tools[0].with_ == {"body": "tools.body"}


def test_round_trip_keeps_the_document() -> None:
    raw = yaml.safe_load(TIKTOK.read_text())
    doc = Document.model_validate(raw)
    dumped = doc.model_dump(by_alias=True, exclude_none=True)
    assert Document.model_validate(dumped) == doc
    base_uri = raw["capability"]["consumes"][0]["baseUri"]
    assert dumped["capability"]["consumes"][0]["baseUri"] == base_uri
    assert dumped["capability"]["exposes"][1]["tools"][0]["with"] == {"body": "tools.body"}


def test_unknown_keys_are_kept() -> None:
    doc = Document.model_validate({"naftiko": "1.0.0-alpha2", "x-owner": "team", "capability": {}})
    assert doc.unknown_keys == ("x-owner",)
