"""``--strict``: validate the raw document against the official alpha2 JSON schema.

The schema is bundled (``naftiko-schema-1.0.0-alpha2.json`` beside this module) and
compiled once. ``oneOf``/``anyOf`` failures are reported as the errors of the branch the
document most plausibly meant (the one whose ``type``/``const`` matched, with the fewest
errors), so each line points at the property to change rather than at a whole adapter.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from functools import cache
from pathlib import Path
from typing import Any

from jsonschema import Draft202012Validator
from jsonschema.exceptions import ValidationError

from naftiko.spec.source import Reporter

SCHEMA_FILE = Path(__file__).with_name("naftiko-schema-1.0.0-alpha2.json")
_MAX_DEPTH = 12


@cache
def _validator() -> Draft202012Validator:
    schema = json.loads(SCHEMA_FILE.read_text(encoding="utf-8"))
    return Draft202012Validator(schema)


def check_schema(raw: Any, report: Reporter) -> int:
    """Report each schema violation of ``raw`` as an error; returns how many."""
    count = 0
    seen: set[tuple[tuple[Any, ...], str]] = set()
    for error in _validator().iter_errors(raw):
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
