"""Turning text inputs (REST path, query, header values) into the declared JSON type.

REST callers can only send strings outside a JSON body; the engine validates against the
unit's JSON Schema, so adapters convert text first with :func:`coerce_text`. A value that
cannot be converted raises ``ValueError`` whose message says what was expected, so the
adapter can turn it into a VALIDATION problem a caller (or a model) can act on.
"""

from __future__ import annotations

import json
import math
from collections.abc import Mapping
from typing import Any

from naftiko.engine.types import InputField

__all__ = ["coerce_text", "schema_type"]

_TRUE = frozenset({"true", "1", "yes", "on"})
_FALSE = frozenset({"false", "0", "no", "off"})


def schema_type(schema: Mapping[str, Any]) -> str | None:
    """The single JSON type of a schema, or None when absent or a union."""
    kind = schema.get("type")
    return kind if isinstance(kind, str) else None


def coerce_text(field: InputField, text: str | list[str]) -> Any:
    """``text`` converted to ``field``'s JSON type; strings and untyped values pass through.

    ``integer``/``number``/``boolean`` parse one value; ``array`` takes repeated values
    (a list) or one comma-separated string, converting each item to ``items.type``;
    ``object`` parses JSON. Raises ``ValueError`` with the reason.
    """
    return _coerce(field.schema, text)


def _coerce(schema: Mapping[str, Any], text: str | list[str]) -> Any:
    kind = schema_type(schema)
    if kind == "array":
        parts = text if isinstance(text, list) else _split(text)
        items = schema.get("items")
        item_schema = items if isinstance(items, Mapping) else {}
        return [_coerce(item_schema, part) for part in parts]
    if isinstance(text, list):
        if len(text) != 1:
            raise ValueError(f"expected one {kind or 'value'}, got {len(text)} values")
        text = text[0]
    if kind == "integer":
        return _integer(text)
    if kind == "number":
        return _number(text)
    if kind == "boolean":
        return _boolean(text)
    if kind == "object":
        return _object(text)
    if kind == "null" and text == "":
        return None
    return text


def _split(text: str) -> list[str]:
    stripped = text.strip()
    if stripped.startswith("["):
        try:
            value = json.loads(stripped)
        except ValueError:
            value = None
        if isinstance(value, list):
            return [v if isinstance(v, str) else json.dumps(v) for v in value]
    return [] if text == "" else [part.strip() for part in text.split(",")]


def _integer(text: str) -> int:
    try:
        return int(text.strip(), 10)
    except ValueError:
        pass
    try:
        value = float(text)
    except ValueError:
        raise ValueError(f"must be integer, got {_show(text)}") from None
    if not math.isfinite(value) or not value.is_integer():
        raise ValueError(f"must be integer, got {_show(text)}")
    return int(value)


def _number(text: str) -> int | float:
    try:
        return int(text.strip(), 10)
    except ValueError:
        pass
    try:
        value = float(text)
    except ValueError:
        raise ValueError(f"must be number, got {_show(text)}") from None
    if not math.isfinite(value):
        raise ValueError(f"must be a finite number, got {_show(text)}")
    return value


def _boolean(text: str) -> bool:
    lowered = text.strip().lower()
    if lowered in _TRUE:
        return True
    if lowered in _FALSE:
        return False
    raise ValueError(f"must be boolean (true or false), got {_show(text)}")


def _object(text: str) -> Any:
    try:
        value = json.loads(text)
    except ValueError:
        raise ValueError(f"must be a JSON object, got {_show(text)}") from None
    if not isinstance(value, dict):
        raise ValueError(f"must be a JSON object, got {_show(text)}")
    return value


def _show(text: str) -> str:
    """The offending text, shortened: it came from the caller, so it is safe to echo."""
    return repr(text if len(text) <= 40 else text[:37] + "...")
