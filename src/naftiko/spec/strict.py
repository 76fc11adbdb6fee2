"""``--strict``: validate the raw document against the JSON schema of its own version.

Every release's official schema is bundled in ``schemas/`` beside this module (Naftiko
alpha2, Ikanos alpha3 .. beta5), each compiled once, when first needed. A ``naftiko:``
document is checked against alpha2 (alpha1 has no published schema and differs only in
its version value, which is accepted), an ``ikanos:`` one against its release; a version
that is none of these is checked against the latest schema of its root key, which then
reports the version value itself. ``oneOf``/``anyOf`` failures are reported as the errors
of the branch the document most plausibly meant (the one whose ``type``/``const``
matched, with the fewest errors), so each line points at the property to change rather
than at a whole adapter.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from functools import cache
from pathlib import Path
from typing import Any

from jsonschema import Draft202012Validator
from jsonschema.exceptions import ValidationError

from naftiko.spec.normalize import IKANOS_VERSIONS, LATEST_IKANOS, NAFTIKO_VERSIONS, is_ikanos
from naftiko.spec.source import Reporter

SCHEMA_DIR = Path(__file__).with_name("schemas")
_MAX_DEPTH = 12


def schema_file(raw: Any) -> Path:
    """The bundled schema that a (raw, not normalised) document is checked against."""
    if is_ikanos(raw):
        version = raw.get("ikanos")
        version = version if version in IKANOS_VERSIONS else LATEST_IKANOS
        return SCHEMA_DIR / f"ikanos-schema-{version}.json"
    return SCHEMA_DIR / "naftiko-schema-1.0.0-alpha2.json"


@cache
def _validator(path: Path) -> Draft202012Validator:
    schema = json.loads(path.read_text(encoding="utf-8"))
    if path.name.startswith("naftiko-"):
        version = schema["properties"]["naftiko"]
        schema["properties"]["naftiko"] = {k: v for k, v in version.items() if k != "const"} | {
            "enum": list(NAFTIKO_VERSIONS)
        }
    return Draft202012Validator(schema)


def check_schema(raw: Any, report: Reporter) -> int:
    """Report each schema violation of ``raw`` as an error; returns how many."""
    count = 0
    seen: set[tuple[tuple[Any, ...], str]] = set()
    for error in _validator(schema_file(raw)).iter_errors(raw):
        for leaf in _leaves(error, 0):
            path = tuple(leaf.absolute_path)
            message = f"schema: {_message(leaf)}"
            if (path, message) not in seen:
                seen.add((path, message))
                report.error(path, message)
                count += 1
    return count


def _leaves(error: ValidationError, depth: int) -> Iterator[ValidationError]:
    if not error.context or depth > _MAX_DEPTH:
        yield error
        return
    branches: dict[Any, list[ValidationError]] = {}
    for sub in error.context:
        branches.setdefault(sub.relative_schema_path[0], []).append(sub)

    def rank(errors: list[ValidationError]) -> tuple[int, int]:
        # a branch whose discriminator (a const/enum such as ``type``) failed was not meant;
        # a branch missing a required key is likelier, one with deeper errors likelier still
        short = [e for e in errors if len(e.relative_path) <= 1]
        if any(e.validator in ("const", "enum") for e in short):
            return (2, len(errors))
        if any(e.validator == "required" for e in short):
            return (1, len(errors))
        return (0, len(errors))

    best = min(branches.values(), key=rank)
    for sub in best:
        yield from _leaves(sub, depth + 1)


def _message(error: ValidationError) -> str:
    """jsonschema's message without the offending instance (which may be huge or secret)."""
    v = error.validator
    if v == "additionalProperties" and isinstance(error.instance, dict):
        allowed = error.schema.get("properties", {}) if isinstance(error.schema, dict) else {}
        extra = sorted(str(k) for k in error.instance if k not in allowed)
        return f"propert{'y' if len(extra) == 1 else 'ies'} not allowed here: {', '.join(extra)}"
    if v == "required":
        return error.message
    if v in ("const", "enum"):
        expected = error.validator_value if v == "enum" else [error.validator_value]
        return f"value not allowed; expected one of {', '.join(map(repr, expected))}"
    if v == "pattern":
        return f"does not match the pattern {error.validator_value}"
    if v == "type":
        return f"should be of type {error.validator_value}"
    if v in ("minItems", "minLength", "maxLength", "maxItems", "minimum", "maximum"):
        return f"{v} is {error.validator_value}"
    if v in ("oneOf", "anyOf"):
        return f"matches none of the allowed forms ({v})"
    return f"fails '{v}'"
