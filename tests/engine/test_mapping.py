"""Output shaping: JSONPath, nesting, typing, mocks and output schemas."""

from __future__ import annotations

from typing import Any

import jsonschema
import pytest

from naftiko.engine.mapping import (
    MappingError,
    coerce_scalar,
    compile_jsonpath,
    compile_outputs,
)
from naftiko.spec.models import OutputParameter
from naftiko.templating import Scope


def outputs(*params: dict[str, Any]):
    return compile_outputs([OutputParameter.model_validate(p) for p in params])


SHIP = {
    "imo_number": "IMO-9321483",
    "vessel_name": "Northern Star",
    "vessel_type": "cargo",
    "flag_code": "NO",
    "operational_status": "active",
    "year_built": 2015,
    "gross_tonnage": 45000.5,
    "dimensions": {"length_overall": 229, "beam": 32},
}

GET_SHIP = {  # tutorial step 4 get-ship: a nested object without mapping
    "type": "object",
    "properties": {
        "imo": {"type": "string", "mapping": "$.imo_number"},
        "name": {"type": "string", "mapping": "$.vessel_name"},
        "specs": {
            "type": "object",
            "properties": {
                "yearBuilt": {"type": "number", "mapping": "$.year_built"},
                "tonnage": {"type": "number", "mapping": "$.gross_tonnage"},
                "length": {"type": "number", "mapping": "$.dimensions.length_overall"},
            },
        },
    },
}

# --------------------------------------------------------------------------- JSONPath


@pytest.mark.parametrize(
    ("expr", "expected"),
    [
        ("$", {"a": 1}),
        ("$.", {"a": 1}),
        ("", {"a": 1}),
        ("$.a", 1),
        ("a", 1),
    ],
)
def test_root_and_simple(expr: str, expected: Any) -> None:
    assert compile_jsonpath(expr)({"a": 1}) == expected


DOC = {
    "a": {"b": [{"c": "first"}, {"c": "second"}]},
    "user details": {"email": "e@x"},
    "get-ship": {"x-y": 1},
    "items": [{"id": 1, "t": "a"}, {"id": 2, "t": "b"}],
    "zero": 0,
    "empty": "",
}


@pytest.mark.parametrize(
    ("expr", "expected"),
    [
        ("$.a.b[0].c", "first"),
        ("$.a.b[-1].c", "second"),
        ("$['a']['b'][1]['c']", "second"),
        ('$["user details"].email', "e@x"),
        ("$.user details.email", "e@x"),
        ("$.get-ship.x-y", 1),
        ("body.name", None),
        ("$.zero", 0),
        ("$.empty", ""),
        ("$.missing.deeper", None),
        ("$.a.b[5].c", None),
        ("$.a.b.c", None),
        ("$.zero.x", None),
        ("$.items[*].id", [1, 2]),
        ("$.items[?(@.id > 1)].t", ["b"]),
        ("$..c", ["first", "second"]),
        ("$.items[0:1]", [{"id": 1, "t": "a"}]),
        ("$.nothing[*].id", []),
    ],
)
def test_paths(expr: str, expected: Any) -> None:
    assert compile_jsonpath(expr)(DOC) == expected


def test_paths_over_non_objects_give_none() -> None:
    path = compile_jsonpath("$.a.b")
    for document in (None, "text", 3, [1, 2], {"a": "scalar"}):
        assert path(document) is None


@pytest.mark.parametrize("expr", ["$.items[?(@.id >", "$[", "$.a[?("])
def test_bad_jsonpath_fails_at_compile(expr: str) -> None:
    with pytest.raises(MappingError, match="JSONPath"):
        compile_jsonpath(expr)
    with pytest.raises(MappingError) as info:
        outputs({"type": "string", "mapping": expr})
    assert expr in str(info.value)


# --------------------------------------------------------------------------- shaping


def test_tutorial_get_ship_nested_object_without_mapping() -> None:
    result = outputs(GET_SHIP).apply(SHIP)
    assert result == {
        "imo": "IMO-9321483",
        "name": "Northern Star",
        "specs": {"yearBuilt": 2015, "tonnage": 45000.5, "length": 229},
    }
    assert isinstance(result["specs"]["yearBuilt"], int)


def test_tutorial_list_ships_array_of_objects() -> None:
    mapper = outputs(
        {
            "type": "array",
            "mapping": "$.",
            "items": {
                "type": "object",
                "properties": {
                    "imo": {"type": "string", "mapping": "$.imo_number"},
                    "status": {"type": "string", "mapping": "$.operational_status"},
                },
            },
        }
    )
    assert mapper.apply([SHIP, {"imo_number": "IMO-2"}]) == [
        {"imo": "IMO-9321483", "status": "active"},
        {"imo": "IMO-2", "status": None},
    ]
    assert mapper.apply({"not": "a list"}) == [{"imo": None, "status": None}]
    assert mapper.apply(None) is None


def test_nested_object_with_mapping_is_relative() -> None:
    mapper = outputs(
        {
            "type": "object",
            "mapping": "$.data",
            "properties": {
                "id": {"type": "string", "mapping": "$.id"},
                "dims": {
                    "type": "object",
                    "mapping": "$.dimensions",
                    "properties": {"length": {"type": "number", "mapping": "$.length_overall"}},
                },
                "ref": {"type": "string", "mapping": "$"},
            },
        }
    )
    document = {"data": {"id": "d1", "dimensions": {"length_overall": 229}}}
    assert mapper.apply(document) == {
        "id": "d1",
        "dims": {"length": 229},
        "ref": {"id": "d1", "dimensions": {"length_overall": 229}},
    }
    assert mapper.apply({"data": None}) is None
    assert mapper.apply({"data": {"id": "x"}}) == {"id": "x", "dims": None, "ref": {"id": "x"}}


def test_arrays_shaped_at_any_depth() -> None:
    mapper = outputs(
        {
            "type": "object",
            "properties": {
                "voyages": {
                    "type": "array",
                    "mapping": "$.voyages",
                    "items": {
                        "type": "object",
                        "properties": {
                            "id": {"type": "string", "mapping": "$.voyageId"},
                            "crew": {
                                "type": "array",
                                "mapping": "$.crew",
                                "items": {"type": "string", "mapping": "$.name"},
                            },
                            "port": {
                                "type": "object",
                                "properties": {"from": {"type": "string", "mapping": "$.dep"}},
                            },
                        },
                    },
                }
            },
        }
    )
    document = {
        "voyages": [
            {"voyageId": "V1", "crew": [{"name": "Ann"}, {"name": "Bo"}], "dep": "Oslo"},
            {"voyageId": "V2"},
        ]
    }
    assert mapper.apply(document) == {
        "voyages": [
            {"id": "V1", "crew": ["Ann", "Bo"], "port": {"from": "Oslo"}},
            {"id": "V2", "crew": None, "port": {"from": None}},
        ]
    }


def test_array_items_without_spec_keep_elements_and_xml_single_element_wraps() -> None:
    assert outputs({"type": "array", "mapping": "$.ids"}).apply({"ids": [1, 2]}) == [1, 2]
    mapper = outputs(
        {
            "type": "array",
            "mapping": "$.vessel",
            "items": {
                "type": "object",
                "properties": {"code": {"type": "string", "mapping": "$.vesselCode"}},
            },
        }
    )
    assert mapper.apply({"vessel": {"vesselCode": "V-1"}}) == [{"code": "V-1"}]
    assert outputs({"type": "array", "mapping": "$.x", "items": {"type": "integer"}}).apply(
        {"x": ["1", "2", "z"]}
    ) == [1, 2, "z"]


def test_map_values() -> None:
    mapper = outputs(
        {
            "type": "object",
            "mapping": "$.rates",
            "values": {
                "type": "object",
                "properties": {"v": {"type": "number", "mapping": "$.value"}},
            },
        }
    )
    assert mapper.apply({"rates": {"EUR": {"value": "1.1"}, "USD": {"value": 1}}}) == {
        "EUR": {"v": 1.1},
        "USD": {"v": 1},
    }
    assert mapper.apply({"rates": [1]}) is None
    plain = outputs({"type": "object", "mapping": "$.m", "values": {"type": "integer"}})
    assert plain.apply({"m": {"a": "1", "b": 2}}) == {"a": 1, "b": 2}


def test_object_with_mapping_and_no_properties_takes_subtree() -> None:
    mapper = outputs(
        {"type": "object", "properties": {"raw": {"type": "object", "mapping": "$.dimensions"}}}
    )
    assert mapper.apply(SHIP) == {"raw": {"length_overall": 229, "beam": 32}}


def test_leaf_without_mapping_is_null() -> None:
    mapper = outputs(
        {"type": "object", "properties": {"doc": {"type": "string"}, "o": {"type": "object"}}}
    )
    assert mapper.apply(SHIP) == {"doc": None, "o": None}
    # a root without mapping is the whole document (the body itself)
    assert outputs({"type": "object"}).apply({"a": 1}) == {"a": 1}
    assert outputs({"type": "string"}).apply("body") == "body"


def test_max_length() -> None:
    mapper = outputs({"type": "string", "mapping": "$.s", "maxLength": 5})
    assert mapper.apply({"s": "abcdefgh"}) == "abcde"
    assert mapper.apply({"s": "abc"}) == "abc"
    assert mapper.apply({}) is None


def test_const_wins_and_value_is_static_or_template() -> None:
    mapper = outputs(
        {
            "type": "object",
            "properties": {
                "kind": {"type": "string", "const": "ship", "mapping": "$.vessel_type"},
                "source": {"type": "string", "value": "registry"},
                "year": {"type": "integer", "value": "2015"},
                "who": {"type": "string", "value": "{{imo}}"},
            },
        }
    )
    assert mapper.apply(SHIP) == {"kind": "ship", "source": "registry", "year": 2015, "who": None}
    assert mapper.apply(SHIP, Scope(inputs={"imo": "I"}))["who"] == "I"


def test_mapping_serves_real_data_and_value_serves_mocks() -> None:
    mapper = outputs({"type": "integer", "mapping": "$.year_built", "value": "1999"})
    assert mapper.apply(SHIP) == 2015
    assert mapper.mock(Scope()) == 1999
    assert mapper.is_mock_capable


def test_consumed_form_value_is_a_mapping() -> None:
    mapper = outputs({"name": "id", "type": "string", "value": "$.imo_number"})
    assert mapper.apply(SHIP) == "IMO-9321483"


def test_one_root_is_the_body_and_named_roots_assemble() -> None:
    assert outputs({"type": "string", "mapping": "$.vessel_name"}).apply(SHIP) == "Northern Star"
    assert outputs({"name": "n", "type": "string", "mapping": "$.vessel_name"}).apply(SHIP) == (
        "Northern Star"
    )
    mapper = outputs(
        {"name": "imo", "type": "string", "mapping": "$.imo_number"},
        {"name": "year", "type": "number", "mapping": "$.year_built"},
        {"name": "gone", "type": "string", "mapping": "$.nope"},
    )
    assert mapper.apply(SHIP) == {"imo": "IMO-9321483", "year": 2015, "gone": None}


def test_has_outputs() -> None:
    assert not compile_outputs([]).has_outputs
    assert outputs({"type": "string", "mapping": "$"}).has_outputs


# --------------------------------------------------------------------------- typing


@pytest.mark.parametrize(
    ("value", "type_", "expected"),
    [
        ("42", "integer", 42),
        ("-7", "number", -7),
        ("1.5", "number", 1.5),
        ("1e3", "number", 1000.0),
        ("true", "boolean", True),
        ("FALSE", "boolean", False),
        ("007", "integer", "007"),
        ("1.5", "integer", "1.5"),
        ("abc", "number", "abc"),
        ("nan", "number", "nan"),
        (" 42", "integer", " 42"),
        ("yes", "boolean", "yes"),
        (42, "string", "42"),
        (True, "string", "true"),
        (2.0, "integer", 2),
        (2.5, "integer", 2.5),
        ({"a": 1}, "string", {"a": 1}),
        (None, "integer", None),
        ("42", None, "42"),
        ("42", "string", "42"),
    ],
)
def test_coerce_scalar(value: Any, type_: str | None, expected: Any) -> None:
    result = coerce_scalar(value, type_)
    assert result == expected
    assert type(result) is type(expected)


def test_xml_strings_become_declared_types() -> None:
    mapper = outputs(
        {
            "type": "object",
            "properties": {
                "year": {"type": "integer", "mapping": "$.year"},
                "active": {"type": "boolean", "mapping": "$.active"},
                "code": {"type": "string", "mapping": "$.code"},
            },
        }
    )
    assert mapper.apply({"year": "2015", "active": "true", "code": "0042"}) == {
        "year": 2015,
        "active": True,
        "code": "0042",
    }


# --------------------------------------------------------------------------- mock


def test_tutorial_step1_mock_named_roots() -> None:
    mapper = outputs(
        {"name": "imo", "type": "string", "value": "{{imo_number}}"},
        {"name": "name", "type": "string", "value": "Northern Star"},
        {"name": "flag", "type": "string", "value": "NO"},
    )
    assert mapper.is_mock_capable
    assert mapper.mock(Scope(inputs={"imo_number": "IMO-9321483"})) == {
        "imo": "IMO-9321483",
        "name": "Northern Star",
        "flag": "NO",
    }
    assert mapper.mock(Scope()) == {"name": "Northern Star", "flag": "NO"}


def test_mock_typed_nested_objects_and_arrays() -> None:
    mapper = outputs(
        {
            "type": "object",
            "properties": {
                "status": {"type": "string", "value": "ready"},
                "payload": {
                    "type": "object",
                    "properties": {
                        "id": {"type": "number", "value": "42"},
                        "tags": {"type": "array", "items": {"type": "string", "value": "active"}},
                        "flags": {"type": "array", "items": {"type": "string"}},
                        "nothing": {"type": "object", "properties": {"x": {"type": "string"}}},
                        "on": {"type": "boolean", "const": True},
                    },
                },
            },
        }
    )
    assert mapper.mock(Scope()) == {
        "status": "ready",
        "payload": {"id": 42, "tags": ["active"], "flags": [], "on": True},
    }


def test_mock_single_root_and_templates_keep_types() -> None:
    assert outputs({"type": "string", "value": "ok"}).mock(Scope()) == "ok"
    assert outputs({"type": "array", "value": "{{ids}}"}).mock(Scope(inputs={"ids": [1]})) == [1]
    assert outputs({"type": "string", "value": "id-{{n}}"}).mock(Scope(inputs={"n": 3})) == "id-3"
    assert outputs({"type": "string", "value": "{{tools.n}}"}).mock(Scope(inputs={"n": "x"})) == "x"
    assert outputs({"type": "object", "value": {"a": "{{n}}"}}).mock(Scope(inputs={"n": 1})) == {
        "a": 1
    }


def test_mock_capability() -> None:
    assert not outputs({"type": "string", "mapping": "$.a"}).is_mock_capable
    assert not outputs({"name": "a", "value": "$.a"}).is_mock_capable
    assert outputs(
        {"type": "object", "properties": {"a": {"type": "array", "items": {"const": 1}}}}
    ).is_mock_capable


# --------------------------------------------------------------------------- schema


def test_schema_of_tutorial_get_ship_validates_mapped_output() -> None:
    mapper = outputs(GET_SHIP)
    schema = mapper.json_schema()
    assert schema is not None
    assert schema["type"] == "object"
    assert schema["properties"]["imo"] == {"type": ["string", "null"]}
    assert schema["properties"]["specs"]["properties"]["yearBuilt"] == {"type": ["number", "null"]}
    jsonschema.validate(mapper.apply(SHIP), schema)
    jsonschema.validate(mapper.apply({}), schema)  # every leaf may be null


def test_schema_details() -> None:
    mapper = outputs(
        {
            "type": "object",
            "description": "A ship",
            "properties": {
                "tags": {"type": "array", "description": "Tags", "items": {"type": "string"}},
                "rates": {"type": "object", "values": {"type": "number"}},
                "kind": {"const": "ship"},
                "anything": {"mapping": "$.x"},
            },
        }
    )
    assert mapper.json_schema() == {
        "type": "object",
        "description": "A ship",
        "properties": {
            "tags": {
                "type": ["array", "null"],
                "items": {"type": ["string", "null"]},
                "description": "Tags",
            },
            "rates": {
                "type": ["object", "null"],
                "additionalProperties": {"type": ["number", "null"]},
            },
            "kind": {"const": "ship"},
            "anything": {},
        },
    }


def test_schema_none_when_root_is_not_an_object() -> None:
    assert (
        outputs({"type": "array", "mapping": "$", "items": {"type": "string"}}).json_schema()
        is None
    )
    assert outputs({"type": "string", "mapping": "$.a"}).json_schema() is None
    assert compile_outputs([]).json_schema() is None


def test_schema_of_named_roots() -> None:
    schema = outputs(
        {"name": "imo", "type": "string", "value": "x"},
        {"name": "ids", "type": "array", "items": {"type": "integer"}},
    ).json_schema()
    assert schema == {
        "type": "object",
        "properties": {
            "imo": {"type": ["string", "null"]},
            "ids": {"type": ["array", "null"], "items": {"type": ["integer", "null"]}},
        },
    }
