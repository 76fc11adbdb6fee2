"""The engine's shortcuts agree with the slow path they skip (property-based).

``surely_valid_schema`` stands in for jsonschema's metaschema check at load, ``quick_check``
for the validator on each call, ``_with_query`` for ``URL.copy_merge_params``: each may
only answer where the slow path would answer the same.
"""

from __future__ import annotations

from typing import Any

import httpx
from hypothesis import given, settings
from hypothesis import strategies as st
from jsonschema import Draft202012Validator
from jsonschema.exceptions import SchemaError

from naftiko.adapters.rest.routes import OPENAPI_PATH, route_pattern, shadowing_reserved_path
from naftiko.compile.inputs import surely_valid_schema
from naftiko.compile.validators import quick_check
from naftiko.upstream.request import _with_query

TYPES = ["string", "integer", "number", "boolean", "object", "array", "null", "strnig", 3]
scalars = st.one_of(st.none(), st.booleans(), st.integers(), st.floats(), st.text(max_size=5))
values = st.recursive(
    scalars,
    lambda inner: (
        st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=3), inner, max_size=3)
    ),
    max_leaves=6,
)
type_values = st.sampled_from(TYPES) | st.lists(st.sampled_from(TYPES), max_size=3)


def schemas(depth: int = 2) -> st.SearchStrategy[Any]:
    keyword = {
        "type": type_values,
        "description": st.text(max_size=3) | st.integers(),
        "format": st.sampled_from(["email", "uri"]) | st.none(),
        "enum": st.lists(scalars, max_size=3) | st.integers(),
        "default": values,
        "required": st.lists(st.sampled_from(["a", "b", "c"]), max_size=3) | st.text(max_size=2),
        "minLength": st.integers(-1, 3),
        "maxItems": st.integers(-1, 3) | st.floats(0, 3) | st.booleans(),
        "minProperties": st.integers(0, 3) | st.text(max_size=1),
    }
    if depth:
        keyword["items"] = schemas(depth - 1) | st.booleans() | st.integers()
        keyword["properties"] = st.dictionaries(
            st.sampled_from(["a", "b", "c"]), schemas(depth - 1), max_size=3
        )
    return st.dictionaries(st.sampled_from(sorted(keyword)), st.none(), max_size=4).flatmap(
        lambda keys: st.fixed_dictionaries({k: keyword[k] for k in keys})
    )


@settings(max_examples=400, deadline=None)
@given(schemas())
def test_surely_valid_schema_schemas_pass_the_metaschema(schema: dict[str, Any]) -> None:
    if surely_valid_schema(schema):
        Draft202012Validator.check_schema(schema)


def test_length_bounds_take_the_fast_path() -> None:
    # Published documents put ``minLength`` on half their inputs; the metaschema check
    # they would otherwise get dominates loading a folder of documents.
    assert surely_valid_schema({"type": "string", "minLength": 1, "maxLength": 64})
    assert surely_valid_schema({"type": "array", "items": {"type": "string"}, "minItems": 0})


def test_surely_valid_schema_refuses_what_the_metaschema_refuses() -> None:
    cases = ({"minLength": -1}, {"maxItems": True}, {"maxLength": "3"})
    for schema in ({"type": "strnig"}, {"required": ["a", "a"]}, {"items": 3}, {"enum": 1}, *cases):
        assert not surely_valid_schema(schema)
        try:
            Draft202012Validator.check_schema(schema)
        except SchemaError:
            continue
        raise AssertionError(f"{schema} should not be a valid schema")


object_schemas = st.fixed_dictionaries(
    {
        "type": st.just("object"),
        "properties": st.dictionaries(st.sampled_from(["a", "b", "c"]), schemas(1), max_size=3),
    },
    optional={
        "required": st.lists(st.sampled_from(["a", "b", "c"]), unique=True, max_size=3),
        "additionalProperties": st.booleans(),
    },
)


@settings(max_examples=400, deadline=None)
@given(object_schemas, st.dictionaries(st.sampled_from(["a", "b", "c", "d"]), values, max_size=4))
def test_quick_check_passes_only_what_the_validator_passes(
    schema: dict[str, Any], instance: dict[str, Any]
) -> None:
    try:
        Draft202012Validator.check_schema(schema)
    except SchemaError:
        return
    check = quick_check(schema)
    if check is not None and check(instance):
        assert Draft202012Validator(schema).is_valid(instance)


def test_quick_check_covers_the_common_shape() -> None:
    schema = {
        "type": "object",
        "properties": {"code": {"type": "string", "description": "d"}, "n": {"type": "number"}},
        "required": ["code"],
    }
    check = quick_check(schema)
    assert check is not None
    assert check({"code": "x", "n": 1, "other": [1]})
    assert not check({"n": 1})  # missing: the validator words the error
    assert not check({"code": "x", "n": True})
    assert quick_check({"type": "object", "properties": {"e": {"enum": [1]}}}) is None


def test_quick_check_of_a_closed_schema_passes_no_unknown_name() -> None:
    """A tool that declares its inputs (``additionalProperties: false``, issue 15)."""
    schema = {
        "type": "object",
        "properties": {"code": {"type": "string"}, "any": {}},
        "additionalProperties": False,
    }
    check = quick_check(schema)
    assert check is not None
    assert check({"code": "x", "any": [1]})
    assert not check({"code": "x", "get-profile": {"tenant": "B"}})
    assert not Draft202012Validator(schema).is_valid({"get-profile": {}})


pairs = st.lists(st.tuples(st.text(max_size=4), st.text(max_size=6)), max_size=4)
paths = st.text(alphabet="abc/%20é-_.~:@!$&'()*+,;=", max_size=12)


@settings(max_examples=400, deadline=None)
@given(paths, pairs)
def test_with_query_is_copy_merge_params(path: str, query: list[tuple[str, str]]) -> None:
    target = "https://api.example.com/v1/" + path
    expected = httpx.URL(target).copy_merge_params(query) if query else httpx.URL(target)
    assert str(httpx.URL(_with_query(target, query))) == str(expected)


@settings(max_examples=400, deadline=None)
@given(
    st.lists(
        st.sampled_from(["/", ".well-known", "openapi.json", "well", "-known", "%2E", "{x}", "a"]),
        max_size=5,
    ).map("".join)
)
def test_reserved_path_shortcut_agrees_with_the_pattern(path: str) -> None:
    pattern, _ = route_pattern(path)
    expected = OPENAPI_PATH if pattern.fullmatch(OPENAPI_PATH) else None
    assert shadowing_reserved_path(path) == expected
