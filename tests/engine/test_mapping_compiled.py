"""The compiled output shapers against the interpreter they replaced, as an oracle.

``OutputMapper.apply`` runs one function per parameter, decided at load time. Below is
the tree-walking interpreter that served before (``_Node.shape``, kept verbatim): for
generated parameter trees and documents, both must give the same output, to the type.
"""

from __future__ import annotations

from typing import Any

from hypothesis import example, given, settings
from hypothesis import strategies as st

from naftiko.engine.mapping import (
    _NO_VALUE,
    _SCALAR_TYPES,
    OutputMapper,
    _Node,
    coerce_scalar,
    compile_outputs,
)
from naftiko.spec.models import OutputParameter
from naftiko.templating import EMPTY_SCOPE, Scope


def finish(node: _Node, value: Any) -> Any:
    """``_Node._finish`` as it was."""
    if node.type in _SCALAR_TYPES:
        value = coerce_scalar(value, node.type)
    if node.max_length is not None and type(value) is str:
        value = value[: node.max_length]
    return value


def interpret(node: _Node, document: Any, scope: Scope, in_container: bool) -> Any:
    """``_Node.shape`` as it was."""
    if node.const is not _NO_VALUE:
        return node.const
    if node.value is not None and node.path is None:
        return finish(node, node._mock_value(scope))
    type_ = node.type
    if node.path is not None:
        document = node.path(document)
    elif (
        not in_container and node.properties is None and node.items is None and node.values is None
    ):
        return None
    if type_ == "array" or (type_ is None and node.items is not None):
        if document is None:
            return None
        if not isinstance(document, list):
            document = [document]
        if node.items is None:
            return document
        return [interpret(node.items, element, scope, True) for element in document]
    if node.values is not None:
        if not isinstance(document, dict):
            return None
        return {key: interpret(node.values, item, scope, True) for key, item in document.items()}
    if node.properties is not None:
        if document is None:
            return None
        return {name: interpret(prop, document, scope, False) for name, prop in node.properties}
    return finish(node, document)


def interpret_all(mapper: OutputMapper, document: Any) -> Any:
    roots = mapper._roots
    if len(roots) == 1:
        return interpret(roots[0], document, EMPTY_SCOPE, True)
    return {root.name or "value": interpret(root, document, EMPTY_SCOPE, True) for root in roots}


KEYS = ["a", "b", "id", "items", "n"]
scalars = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(-5, 5),
    st.floats(allow_nan=False, allow_infinity=False, width=16),
    st.sampled_from(["", "7", "-3", "2.5", "1e3", "true", "FALSE", "x", "abcdefgh", "0"]),
)
trees = st.recursive(
    scalars,
    lambda inner: st.one_of(
        st.lists(inner, max_size=3), st.dictionaries(st.sampled_from(KEYS), inner, max_size=5)
    ),
    max_leaves=16,
)
documents = st.one_of(st.dictionaries(st.sampled_from(KEYS), trees, min_size=2), trees)
paths = st.one_of(
    st.none(),
    st.sampled_from(
        [
            "$",
            "$.a",
            "$.b",
            "a",
            "$.a.b",
            "$.items[0]",
            "$.id",
            "$['n']",
            "$.a[*]",
            "$..id",
            "$.items[-1].a",
        ]
    ),
)
types = st.sampled_from([None, "string", "integer", "number", "boolean", "object", "array"])


def parameters(depth: int) -> st.SearchStrategy[dict[str, Any]]:
    leaf = st.fixed_dictionaries(
        {"type": types, "mapping": paths},
        optional={
            "maxLength": st.integers(0, 4),
            "const": st.sampled_from(["k", 3]),
            "value": st.sampled_from(["fixed", "{{missing}}"]),
        },
    )
    if depth == 0:
        return leaf
    child = parameters(depth - 1)
    return st.one_of(
        leaf,
        st.fixed_dictionaries(
            {"type": types},
            optional={
                "mapping": paths,
                "properties": st.dictionaries(st.sampled_from(KEYS), child, max_size=3),
                "items": child,
                "values": child,
            },
        ),
    )


roots = st.one_of(
    parameters(3).map(lambda p: [p]),
    st.lists(
        parameters(2).flatmap(lambda p: st.sampled_from(KEYS).map(lambda n: {**p, "name": n})),
        min_size=2,
        max_size=3,
    ),
)


@settings(max_examples=2000, deadline=None)
@given(roots, documents)
@example([{"type": "integer", "mapping": "$.a"}], {"a": "7"})
@example([{"type": "number", "mapping": "$.a"}], {"a": "2.5"})
@example([{"type": "boolean", "mapping": "$.a"}], {"a": "FALSE"})
@example([{"type": "string", "mapping": "$.a"}], {"a": True})
@example([{"type": "integer", "mapping": "$.a"}], {"a": 3.0})
@example([{"type": "string", "mapping": "$.a", "maxLength": 2}], {"a": 12345})
def test_compiled_shapers_give_what_the_interpreter_gave(
    params: list[dict[str, Any]], document: Any
) -> None:
    mapper = compile_outputs([OutputParameter.model_validate(p) for p in params])
    expected = interpret_all(mapper, document)
    got = mapper.apply(document)
    assert got == expected
    assert repr(got) == repr(expected)  # same types too: 1 vs 1.0 vs True


key_leaf = st.fixed_dictionaries(
    {"type": types, "mapping": st.sampled_from(["$.a", "$.b", "id", "$['n']", "$.items"])},
    optional={"maxLength": st.integers(0, 4), "value": st.sampled_from(["fixed"])},
)
key_leaf_objects = st.fixed_dictionaries(
    {
        "type": st.sampled_from([None, "object"]),
        "properties": st.dictionaries(st.sampled_from(KEYS), key_leaf, min_size=1, max_size=4),
    },
    optional={"mapping": st.sampled_from(["$", "$.a", "$.items[0]"])},
)


@settings(max_examples=1000, deadline=None)
@given(key_leaf_objects, documents)
@example(
    {
        "type": "object",
        "properties": {
            "a": {"type": "integer", "mapping": "$.a"},
            "b": {"type": "string", "mapping": "$.b", "maxLength": 1},
        },
    },
    {"a": "7", "b": 123},
)
@example(
    {"mapping": "$.a", "properties": {"n": {"type": "string", "mapping": "$.n"}}},
    {"a": "text", "b": 1},
)
def test_objects_of_key_leaves_give_what_the_interpreter_gave(
    param: dict[str, Any], document: Any
) -> None:
    """The commonest shape (every property ``$.key`` of a scalar) has its own shaper."""
    mapper = compile_outputs([OutputParameter.model_validate(param)])
    expected = interpret_all(mapper, document)
    got = mapper.apply(document)
    assert repr(got) == repr(expected)
