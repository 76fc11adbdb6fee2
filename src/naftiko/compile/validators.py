"""A unit's input validators, made at load time: the jsonschema validator and the
cheap check that spares it on the common shapes."""

from __future__ import annotations

from collections.abc import Callable, Iterator, Mapping
from typing import Any

from jsonschema import Draft202012Validator
from jsonschema.exceptions import SchemaError

from naftiko.compile.context import CompileContext, PathT
from naftiko.compile.inputs import surely_valid_schema

__all__ = ["LazyValidator", "quick_check", "schema_validator"]


class LazyValidator:
    """A ``Draft202012Validator`` made on first use, for a schema already checked.

    Making one (its resolver and registry) costs more than most documents' other
    compile steps together, and most units of a large folder are never called, or are
    answered by :func:`quick_check` alone; the schema is checked at load either way,
    so a lazily made validator answers exactly what an eager one would.
    """

    __slots__ = ("_validator", "schema")

    def __init__(self, schema: Mapping[str, Any]) -> None:
        self.schema = schema
        self._validator: Draft202012Validator | None = None

    @property
    def validator(self) -> Draft202012Validator:
        if self._validator is None:
            self._validator = Draft202012Validator(self.schema)
        return self._validator

    def iter_errors(self, instance: Any) -> Iterator[Any]:
        return self.validator.iter_errors(instance)

    def is_valid(self, instance: Any) -> bool:
        return self.validator.is_valid(instance)


def schema_validator(ctx: CompileContext, schema: Mapping[str, Any], path: PathT) -> LazyValidator:
    """The validator of a unit's input schema; an invalid schema is a load error (and
    the unit gets a validator that accepts any object, never used: the load fails)."""
    try:
        if not surely_valid_schema(schema):
            Draft202012Validator.check_schema(schema)
    except SchemaError as exc:
        ctx.error(path, f"input schema is not valid JSON Schema: {exc.message}")
        return LazyValidator({"type": "object"})
    return LazyValidator(schema)


_PYTHON_TYPES: dict[str, type] = {
    "string": str,
    "boolean": bool,
    "integer": int,
    "number": float,
    "object": dict,
    "array": list,
    "null": type(None),
}
_ANNOTATIONS = frozenset({"type", "description", "default", "format", "title"})
_UNKNOWN: frozenset[type] = frozenset()  # a name the schema does not list


def quick_check(schema: Mapping[str, Any]) -> Callable[[Mapping[str, Any]], bool] | None:
    """A check of a unit's inputs that says True only where the validator finds no error.

    jsonschema's ``iter_errors`` is costly on every request even for valid inputs; most
    input schemas are just required names and primitive types, which exact ``type()``
    tests decide. Anything else (enum, items, nested properties) returns None: always validate.
    A False is "not sure" (``1.0`` for an integer, a bool subclass...): the validator
    decides and words the error.
    """
    if schema.get("type") != "object" or set(schema) - {
        "type",
        "properties",
        "required",
        "additionalProperties",
    }:
        return None
    closed = schema.get("additionalProperties", True)
    if not isinstance(closed, bool):
        return None
    closed = not closed
    allowed: dict[str, frozenset[type] | None] = {}
    for name, prop in (schema.get("properties") or {}).items():
        if not isinstance(prop, dict) or set(prop) - _ANNOTATIONS:
            return None
        kind = prop.get("type")
        if kind is None:
            allowed[name] = None
            continue
        kinds = kind if isinstance(kind, list) else [kind]
        if not all(isinstance(k, str) and k in _PYTHON_TYPES for k in kinds):
            return None
        types = {_PYTHON_TYPES[k] for k in kinds}
        if float in types:  # "number" takes integers too (never bools)
            types.add(int)
        allowed[name] = frozenset(types)
    required = tuple(schema.get("required") or ())

    def check(values: Mapping[str, Any]) -> bool:
        if type(values) is not dict:
            return False
        for name in required:
            if name not in values:
                return False
        for name, value in values.items():
            types = allowed.get(name, _UNKNOWN)
            if types is None:
                continue
            if types is _UNKNOWN:
                if closed:
                    return False
                continue
            if type(value) not in types:
                return False
        return True

    return check
