"""Secret masking in upstream answers (``naftiko.engine.masking``): what is masked, how
a JSON body stays JSON, and what load time decides."""

from __future__ import annotations

import base64
import json
from pathlib import Path

import pytest

from naftiko.adapters.exposes import compile_capability
from naftiko.engine.masking import MASK, SecretMask, load_secrets
from naftiko.spec.loader import load_capability
from naftiko.upstream.outbound_auth import OAuth2TokenCache
from naftiko.upstream.settings import UpstreamSettings

SECRET = 'tok"en/+x9'


def test_nothing_to_mask_is_falsy_and_finds_nothing() -> None:
    empty = SecretMask()
    assert not empty
    assert not SecretMask(["abc"])  # shorter than four characters: never masked
    assert SecretMask([SECRET]).content(b'{"a": "clean"}', True) is None


@pytest.mark.parametrize(
    "spelled",
    [SECRET, json.dumps(SECRET)[1:-1], "tok%22en%2F%2Bx9", "tok%22en/%2Bx9"],
)
def test_every_spelling_is_masked_in_text_bodies(spelled: str) -> None:
    masked = SecretMask([SECRET]).content(f"echo: {spelled}!".encode(), False)
    assert masked == f"echo: {MASK}!".encode()


def test_a_json_body_stays_json_with_its_numbers() -> None:
    raw = json.dumps({"n": 12345678, "f": 1.5, "h": {"authorization": f"Bearer {SECRET}"}})
    masked = SecretMask([SECRET, "12345678"]).content(raw.encode(), True)
    assert masked is not None
    assert json.loads(masked) == {"n": 12345678, "f": 1.5, "h": {"authorization": "Bearer ***"}}


def test_a_body_that_only_claims_json_is_masked_as_bytes() -> None:
    masked = SecretMask([SECRET]).content(f"<p>{SECRET}</p>".encode(), True)
    assert masked == b"<p>***</p>"


def test_a_secret_holding_another_is_masked_whole() -> None:
    mask = SecretMask(["abcd", "abcd-efgh"])
    assert mask.text("x abcd-efgh y abcd") == "x *** y ***"


def test_plus_adds_run_time_tokens_and_keeps_encoded_spellings() -> None:
    basic = base64.b64encode(b"user:pass-word").decode()
    mask = SecretMask(["pass-word"], [basic]).plus(["access-123"])
    assert mask.text(f"{basic} access-123 pass-word") == "*** *** ***"


def test_load_secrets_takes_binds_credentials_and_spares_base_uris(tmp_path: Path) -> None:
    document = tmp_path / "capability.yaml"
    document.write_text(
        """
naftiko: 1.0.0-alpha2
info: {label: Masking, description: Masking at load.}
binds:
  - namespace: m
    keys: {BASE: M_BASE, USER: M_USER, PASS: M_PASS, TENANT: M_TENANT}
capability:
  consumes:
    - type: http
      namespace: up
      baseUri: "{{BASE}}/v1"
      authentication: {type: basic, username: "{{USER}}", password: "{{PASS}}"}
      resources:
        - name: r
          path: /r
          operations: [{name: get, method: GET}]
    - type: http
      namespace: keyed
      baseUri: https://keyed.example
      authentication: {type: bearer, token: literal-token-1}
      resources:
        - name: r
          path: /r
          operations: [{name: get, method: GET}]
  exposes:
    - type: mcp
      namespace: tools
      port: 9000
      tools:
        - {name: get, description: Get., call: up.get}
"""
    )
    env = {
        "M_BASE": "https://api.example.com",
        "M_USER": "svc-user",
        "M_PASS": "p4ss-word",
        "M_TENANT": "tenant-42",
    }
    loaded = load_capability(document, env=env)
    compiled = compile_capability(loaded, UpstreamSettings())
    secrets, encoded = load_secrets(loaded.bindings, compiled.consumes)
    assert secrets == {"svc-user", "p4ss-word", "tenant-42", "literal-token-1"}
    assert encoded == {base64.b64encode(b"svc-user:p4ss-word").decode()}


def test_the_token_cache_lists_its_tokens() -> None:
    cache = OAuth2TokenCache()
    assert cache.tokens() == ()
    cache.put(("endpoint", "client"), "access-1", 3600)
    assert cache.tokens() == ("access-1",)
