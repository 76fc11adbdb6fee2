"""``naftiko.spec.source``'s shortcuts agree with the PyYAML code they replace.

``_Loader.resolve`` stands in for ``BaseResolver.resolve``, ``_construct_plain`` for
``construct_document`` and ``_lookup`` for the position index; ``iter_models`` keeps its
order. Documents are generated from a small YAML grammar that mixes what the shortcuts
take (plain maps, lists, scalars) with what they hand back (tags, merge keys, complex and
duplicate keys, anchors).
"""

from __future__ import annotations

import math
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml
from hypothesis import given, settings
from hypothesis import strategies as st
from pydantic import BaseModel

from naftiko.spec import source
from naftiko.spec.checks import iter_models
from naftiko.spec.diagnostics import LoadError
from naftiko.spec.loader import load_capability
from naftiko.spec.models import SpecModel

REPO = Path(__file__).resolve().parents[2]


class _Reference(yaml.CSafeLoader):
    """Our resolver table with PyYAML's own ``resolve`` (no override)."""


_Reference.yaml_implicit_resolvers = source._Loader.yaml_implicit_resolvers

SCALARS = [
    "a", "text with spaces", "1", "-2", "0x1F", "0o17", "1_000", "1:20", "3.5", "-.inf",
    ".NaN", "1e3", "true", "False", "yes", "on", "NO", "~", "null", "Null", "''", '"q"',
    "2026-05-01", "=", "<<", "!!str 12", "!!int 7", "!!int abc", "!!float 2", "!!bool yes",
    "!!bool maybe", "!!binary aGk=", "!!null ''", "!custom x", "'it''s'", '"\\n"', "-",
]  # fmt: skip
KEYS = ["a", "b", "a", "1", "'1'", "true", "~", "<<", "=", "!!int 3", "? [x]", "? {k: v}"]


def _node(depth: int) -> st.SearchStrategy[str]:
    scalar = st.sampled_from(SCALARS)
    if depth == 0:
        return scalar
    inner = _node(depth - 1)
    flow_seq = st.lists(inner, max_size=3).map(lambda items: "[" + ", ".join(items) + "]")
    flow_map = st.lists(st.tuples(st.sampled_from(KEYS[:8]), inner), max_size=3).map(
        lambda pairs: "{" + ", ".join(f"{k}: {v}" for k, v in pairs) + "}"
    )
    tagged = st.sampled_from(["!!set {a, b}", "!!omap [{a: 1}]", "!!map {a: 1}", "!!seq [1]"])
    return st.one_of(scalar, flow_seq, flow_map, tagged)


documents = st.lists(
    st.tuples(st.sampled_from(KEYS), _node(2), st.booleans()), min_size=1, max_size=6
).map(
    lambda entries: "".join(
        f"{key}: {value}\n" if not block else f"{key}:\n  - {value}\n  - x\n"
        for key, value, block in entries
    )
)
with_aliases = documents.map(lambda text: "base: &b {a: 1, b: [2]}\n" + text + "c: *b\n")


def _outcome(fn: Any, *args: Any) -> tuple[str, Any]:
    try:
        return "ok", fn(*args)
    except Exception as exc:  # compared, not hidden
        return "error", (type(exc).__name__, str(exc))


def _same(a: Any, b: Any) -> bool:
    """Equal with types: ``True`` is not ``1``, a ``nan`` equals a ``nan``."""
    if type(a) is not type(b):
        return False
    if isinstance(a, dict):
        return len(a) == len(b) and all(
            _same(ka, kb) and _same(a[ka], b[kb]) for ka, kb in zip(a, b, strict=True)
        )
    if isinstance(a, list | tuple):
        return len(a) == len(b) and all(_same(x, y) for x, y in zip(a, b, strict=True))
    if isinstance(a, float) and math.isnan(a):
        return math.isnan(b)
    return bool(a == b)


def _tags(node: yaml.Node | None) -> Any:
    if node is None or isinstance(node, yaml.ScalarNode):
        return node and (node.tag, node.value)
    if isinstance(node, yaml.MappingNode):
        children = [child for pair in node.value for child in pair]
    else:
        children = node.value
    return (node.tag, [_tags(c) for c in children])


def _plain(text: str) -> Any:
    loader = source._Loader(text)
    try:
        return source._construct_plain(loader, loader.get_single_node())
    finally:
        loader.dispose()


def _with_fallback(text: str) -> Any:
    loader = source._Loader(text)
    try:
        return source._construct(loader, loader.get_single_node())
    finally:
        loader.dispose()


def _reference(text: str) -> Any:
    loader = _Reference(text)
    try:
        return loader.construct_document(loader.get_single_node())
    finally:
        loader.dispose()


@settings(max_examples=300, deadline=None)
@given(documents)
def test_resolve_tags_every_node_as_pyyaml_does(text: str) -> None:
    def compose(loader_class: type[yaml.CSafeLoader]) -> Any:
        loader = loader_class(text)
        try:
            return _tags(loader.get_single_node())
        finally:
            loader.dispose()

    assert _outcome(compose, source._Loader) == _outcome(compose, _Reference)


@settings(max_examples=400, deadline=None)
@given(documents)
def test_plain_construction_equals_construct_document(text: str) -> None:
    ours, theirs = _outcome(_with_fallback, text), _outcome(_reference, text)
    assert ours[0] == theirs[0], (ours, theirs)
    if ours[0] == "ok":
        assert _same(ours[1], theirs[1]), (ours, theirs)
    else:
        assert ours == theirs


@pytest.mark.parametrize(
    "text",
    ["a: 1\nb: [x, {c: ~}]\n", "- 1\n- 2.5\n- true\n", "plain", "a: 1\na: 2\n", "1: x\n"],
)
def test_plain_documents_take_the_shortcut(text: str) -> None:
    assert _same(_plain(text), _reference(text))


@pytest.mark.parametrize(
    "text", ["<<: {a: 1}\nb: 2\n", "a: !!binary aGk=\n", "? [a]\n: b\n", "a: !!int abc\n", "=: 1\n"]
)
def test_unusual_documents_are_left_to_pyyaml(text: str) -> None:
    with pytest.raises(source._Unusual):
        _plain(text)


@settings(max_examples=200, deadline=None)
@given(with_aliases)
def test_documents_with_aliases_keep_pyyaml_sharing(text: str) -> None:
    ours = _outcome(source.parse_source, text, "x.yaml")
    if ours[0] == "ok":
        data = ours[1][0]
        assert data["c"] is data["base"]  # one object, as PyYAML builds it


# ---------------------------------------------------------------------- positions


def _probes(index: dict[source.PathT, Any]) -> Iterator[source.PathT]:
    for path in index:
        yield path
        yield (*path, "zz")
        yield (*path, 0)
        yield (*path, True)
        if path:
            yield (*path[:-1], "absent")
            last = path[-1]
            yield (*path[:-1], str(last) if isinstance(last, int) else 5)


@settings(max_examples=300, deadline=None)
@given(documents)
def test_lookup_finds_what_the_index_holds(text: str) -> None:
    try:
        _, source_map = source.parse_source(text, "x.yaml")
    except Exception:  # SourceError, or PyYAML's KeyError for ``!!bool maybe``
        return
    node = source_map._node
    if node is None:
        return
    index = source_map._build()
    for path in _probes(index):
        assert source._lookup(node, path, [0]) == index.get(path), path


def test_lookup_with_duplicate_keys_matches_the_index() -> None:
    text = "a: {b: {c: 1}}\na: {b: {d: 2}}\na: {b: {c: 3}}\nl:\n  - k: 1\n    k: 2\n"
    _, source_map = source.parse_source(text, "x.yaml")
    index = source_map._build()
    for path in [("a",), ("a", "b"), ("a", "b", "c"), ("a", "b", "d"), ("l", 0, "k")]:
        assert source_map.position(path) == index[path]
    assert source_map._index is None  # looked up, never built


def test_many_costly_lookups_build_the_index() -> None:
    text = "".join(f"k{i}: {i}\n" for i in range(3000))
    _, source_map = source.parse_source(text, "x.yaml")
    for i in range(20):
        assert source_map.position((f"k{i}",)) == (i + 1, 1)
    assert source_map._index is not None  # 20 scans of 3,000 keys: indexing is cheaper
    assert source_map.position(("k2999",)) == (3000, 1)


def test_a_document_with_aliases_uses_the_index() -> None:
    _, source_map = source.parse_source("a: &x {b: 1}\nc: *x\n", "x.yaml")
    index = source_map._build()  # a shared node is indexed under one of its paths
    for path in [("a",), ("a", "b"), ("c", "b"), ("c",)]:
        assert source_map.position(path) == index.get(path)
    assert source_map._index is not None


@settings(max_examples=200, deadline=None)
@given(documents)
def test_a_released_map_gives_the_same_positions(text: str) -> None:
    try:
        _, source_map = source.parse_source(text, "x.yaml")
    except Exception:  # SourceError, or PyYAML's KeyError for ``!!bool maybe``
        return
    index = source_map._build()
    source_map.release(text)
    assert source_map._node is None  # the tree is gone until a position is asked for
    for path in _probes(index):
        assert source_map.position(path) == index.get(path), path


# ---------------------------------------------------------------------- iter_models


def _reference_iter_models(model: Any, path: source.PathT = ()) -> Iterator[Any]:
    """``iter_models`` as it was written first (nested generators)."""
    if isinstance(model, SpecModel):
        yield path, model
        for name, info in type(model).model_fields.items():
            value = getattr(model, name)
            if value is None or value == () or isinstance(value, str | int | float | bool):
                continue
            yield from _reference_iter_models(value, (*path, info.alias or name))
    elif isinstance(model, tuple):
        for i, item in enumerate(model):
            if isinstance(item, BaseModel):
                yield from _reference_iter_models(item, (*path, i))
    elif isinstance(model, dict):
        for key, item in model.items():
            if isinstance(item, BaseModel):
                yield from _reference_iter_models(item, (*path, key))


class _AnyEnv(dict[str, str]):
    """Every bind variable is set (to a dummy value)."""

    def get(self, key: str, default: Any = None) -> str:
        return "x"


DOCUMENTS = [
    REPO / "capabilities" / "tiktok-login-kit-oauth.yaml",
    *sorted((REPO / "tests" / "adapters" / "capabilities").glob("*.yaml"))[:8],
]


@pytest.mark.parametrize("document", DOCUMENTS, ids=lambda p: p.name)
def test_iter_models_keeps_its_order(document: Path) -> None:
    try:
        loaded = load_capability(document, env=_AnyEnv())
    except LoadError:
        pytest.skip("not loadable on its own")
    ours = [(path, id(model)) for path, model in iter_models(loaded.document)]
    theirs = [(path, id(model)) for path, model in _reference_iter_models(loaded.document)]
    assert len(ours) > 1
    assert ours == theirs
