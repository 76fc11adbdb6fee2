"""Output shaping: ``outputParameters`` compiled once into a tree of small nodes.

JSONPath expressions are compiled at load time. Almost every expression of the corpus
is a plain ``$.a.b[0].c`` path, so those are walked directly; anything else (wildcards,
filters, recursive descent, slices) goes through jsonpath-ng and yields a list.

Our choices where the reference is unclear: nested ``properties`` are
evaluated relative to the parent's mapped node (or the parent's own node when the parent
has no ``mapping``); ``items`` shape each array element at any depth; ``const`` wins over
everything; ``value`` is a static value or a mustache template; a declared scalar
``type`` converts strings losslessly (XML and CSV only give strings); one root parameter
is the body itself, several named roots are assembled into an object by name.
"""

from __future__ import annotations

import math
import re
import weakref
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any, Final

from naftiko.errors import LoadTimeError
from naftiko.spec.models import OutputParameter
from naftiko.templating import (
    EMPTY_SCOPE,
    MISSING,
    Scope,
    TemplateError,
    ValueExpr,
    compile_template,
    compile_value,
)

__all__ = [
    "MappingError",
    "OutputMapper",
    "coerce_scalar",
    "compile_jsonpath",
    "compile_outputs",
]


class MappingError(ValueError, LoadTimeError):
    """An output parameter that cannot be compiled (bad JSONPath, bad template)."""


# --------------------------------------------------------------------------- JSONPath

_INDEFINITE = re.compile(r"\*|\.\.|\?|\[[^\]'\"]*[:,][^\]'\"]*\]")
_SIMPLE_INDEX = re.compile(r"\[\s*(-?\d+)\s*\]")
_QUOTED_KEY = re.compile(r"\[\s*(?:'([^']*)'|\"([^\"]*)\")\s*\]")
_COMPLEX_CHARS = frozenset("*?(),")


def _simple_steps(expr: str) -> list[str | int] | None:
    """``$.a.b[0]['c d']`` -> ``["a", "b", 0, "c d"]``; None when not a plain path."""
    text = expr.strip()
    if text.startswith("$"):
        text = text[1:]
    elif text and text[0] not in ".[":
        text = "." + text  # the corpus writes ``body.name`` for ``$.body.name``
    steps: list[str | int] = []
    pos = 0
    length = len(text)
    while pos < length:
        char = text[pos]
        if char == ".":
            if pos + 1 < length and text[pos + 1] == ".":
                return None  # recursive descent
            end = pos + 1
            while end < length and text[end] not in ".[":
                end += 1
            key = text[pos + 1 : end].strip()
            if key:
                if _COMPLEX_CHARS.intersection(key):
                    return None
                steps.append(key)
            elif end < length:
                return None  # ``a..b`` / ``.[``
            pos = end
        elif char == "[":
            match = _SIMPLE_INDEX.match(text, pos) or _QUOTED_KEY.match(text, pos)
            if match is None:
                return None
            if match.re is _SIMPLE_INDEX:
                steps.append(int(match.group(1)))
            else:
                steps.append(match.group(1) if match.group(1) is not None else match.group(2))
            pos = match.end()
        else:
            return None
    return steps


def _walk_steps(steps: tuple[str | int, ...]) -> Callable[[Any], Any]:
    if len(steps) == 1 and type(steps[0]) is str:
        return _key_getter(steps[0])

    def evaluate(document: Any) -> Any:
        node = document
        for step in steps:
            if type(step) is str:
                if not isinstance(node, dict):
                    return None
                node = node.get(step)
                if node is None:
                    return None
            else:
                if not isinstance(node, list):
                    return None
                try:
                    node = node[step]  # type: ignore[index]
                except IndexError:
                    return None
        return node

    return evaluate


def _key_getter(key: str) -> Callable[[Any], Any]:
    """``$.key``, the commonest path of all: one dict lookup, no loop."""

    def get(document: Any) -> Any:
        return document.get(key) if isinstance(document, dict) else None

    _KEYS[get] = key
    return get


# The key of every function ``_key_getter`` made, so that an object whose properties
# read one key each can do the lookups itself (``_key_leaves``).
_KEYS: weakref.WeakKeyDictionary[Callable[[Any], Any], str] = weakref.WeakKeyDictionary()


def _identity(document: Any) -> Any:
    return document


def _bracket_spaces(expr: str) -> str:
    """``$.user details.email`` -> ``$['user details'].email`` (reference retry rule)."""
    return re.sub(
        r"\.([^.\[\]'\"]*\s[^.\[\]'\"]*)",
        lambda m: "['" + m.group(1).strip() + "']",
        expr,
    )


def compile_jsonpath(expr: str) -> Callable[[Any], Any]:
    """Compile a JSONPath into ``document -> value``; never raises when evaluated.

    ``$``, ``$.`` and ``""`` select the whole document; a missing path gives None;
    wildcards, filters, slices and recursive descent give a list of matches. Raises
    :class:`MappingError` (with the expression) when it cannot be parsed.
    """
    text = (expr or "").strip()
    if text in ("", "$", "$."):
        return _identity
    steps = _simple_steps(text)
    if steps is not None:
        return _identity if not steps else _walk_steps(tuple(steps))
    # Imported here, at load time, not at the top: plain paths never need it, and it
    # pulls in a parser generator and a score of modules.
    from jsonpath_ng.ext import parse as parse_jsonpath

    compiled = None
    for candidate in (text, _bracket_spaces(text)):
        try:
            compiled = parse_jsonpath(candidate)
            break
        except Exception:  # jsonpath-ng raises several unrelated types
            continue
    if compiled is None:
        raise MappingError(f"invalid JSONPath expression {expr!r}")
    find = compiled.find
    indefinite = _INDEFINITE.search(text) is not None

    def evaluate(document: Any) -> Any:
        try:
            matches = find(document)
        except Exception:  # evaluation errors mean "nothing there", as in the reference
            return [] if indefinite else None
        if indefinite:
            return [match.value for match in matches]
        return matches[0].value if matches else None

    return evaluate


# --------------------------------------------------------------------------- typing

_INTEGER = re.compile(r"-?(?:0|[1-9]\d*)")
_NUMBER = re.compile(r"-?(?:0|[1-9]\d*)(?:\.\d+)?(?:[eE][+-]?\d+)?")
_SCALAR_TYPES: Final = frozenset({"string", "number", "integer", "boolean"})


def coerce_scalar(value: Any, type_: str | None) -> Any:
    """Convert ``value`` to the declared scalar type when that loses nothing.

    Strings become numbers/booleans (``"42"`` -> 42, ``"true"`` -> True); numbers and
    booleans become strings for ``type: string``. Anything lossy or impossible is kept
    as it is, so no data is ever silently dropped.
    """
    if value is None or type_ is None:
        return value
    if type(value) is str:
        if type_ == "integer":
            return int(value) if _INTEGER.fullmatch(value) else value
        if type_ == "number":
            if _INTEGER.fullmatch(value):
                return int(value)
            if _NUMBER.fullmatch(value):
                number = float(value)
                return number if math.isfinite(number) else value
            return value
        if type_ == "boolean":
            lowered = value.lower()
            if lowered == "true":
                return True
            if lowered == "false":
                return False
        return value
    if type_ == "string":
        if type(value) is bool:
            return "true" if value else "false"
        if type(value) in (int, float):
            return str(value)
    elif type_ == "integer" and type(value) is float and value.is_integer():
        return int(value)
    return value


# --------------------------------------------------------------------------- nodes


def _effective_mapping(param: OutputParameter) -> str | None:
    """The JSONPath of a parameter; ``{name, value: "$.x"}`` is the consumed form."""
    if param.mapping is not None:
        return param.mapping
    value = param.value
    if param.name and isinstance(value, str) and (value == "$" or value.startswith(("$.", "$["))):
        return value
    return None


_NO_VALUE: Final = object()


@dataclass(frozen=True, slots=True)
class _Node:
    """One compiled output parameter."""

    name: str | None
    type: str | None
    description: str | None
    path: Callable[[Any], Any] | None  # None: the node is the parent's node
    const: Any
    value: ValueExpr | None
    max_length: int | None
    properties: tuple[tuple[str, _Node], ...] | None
    items: _Node | None
    values: _Node | None
    finish: Callable[[Any], Any]  # the declared type and maxLength applied (_finisher)

    # ------------------------------------------------------------------ mock

    def _mock_value(self, scope: Scope) -> Any:
        value = self.value.evaluate(scope)  # type: ignore[union-attr]
        return None if value is MISSING else value

    def mock(self, scope: Scope) -> Any:
        """Reference-semantics §4.5, typed: nulls omitted, one element per array."""
        if self.const is not _NO_VALUE:
            return self.const
        if self.value is not None:
            return self.finish(self._mock_value(scope))
        if self.type == "array" or (self.type is None and self.items is not None):
            element = self.items.mock(scope) if self.items is not None else None
            return [] if element is None else [element]
        if self.properties is not None:
            built = {}
            for name, prop in self.properties:
                value = prop.mock(scope)
                if value is not None:
                    built[name] = value
            return built or None
        return None

    @property
    def is_mock_capable(self) -> bool:
        if self.const is not _NO_VALUE or self.value is not None:
            return True
        return any(child.is_mock_capable for child in self._children())

    def _children(self) -> list[_Node]:
        children = [prop for _, prop in self.properties or ()]
        return children + [child for child in (self.items, self.values) if child is not None]

    def references(self) -> set[str]:
        """The names its ``value`` templates read (and its children's)."""
        found = set(self.value.references) if self.value is not None else set()
        for child in self._children():
            found |= child.references()
        return found

    # ------------------------------------------------------------------ schema

    def schema(self) -> dict[str, Any]:
        """JSON Schema of this node's output; leaves are nullable (missing paths)."""
        result: dict[str, Any] = {}
        type_ = self.type
        if self.const is not _NO_VALUE:
            result["const"] = self.const
        elif type_ == "array" or (type_ is None and self.items is not None):
            result["type"] = ["array", "null"]
            if self.items is not None:
                result["items"] = self.items.schema()
        elif type_ == "object" or self.properties is not None or self.values is not None:
            result["type"] = ["object", "null"]
            if self.properties is not None:
                result["properties"] = {name: prop.schema() for name, prop in self.properties}
            if self.values is not None:
                result["additionalProperties"] = self.values.schema()
        elif type_ in _SCALAR_TYPES:
            result["type"] = [type_, "null"]
        if self.description:
            result["description"] = self.description
        return result


def _compile_node(param: OutputParameter, where: str) -> _Node:
    mapping = _effective_mapping(param)
    path = None
    if mapping is not None:
        try:
            path = compile_jsonpath(mapping)
        except MappingError as exc:
            raise MappingError(f"{exc} at {where}") from None
    value_expr = None
    if param.value is not None and param.value != mapping:
        try:
            value_expr = _compile_output_value(param.value)
        except TemplateError as exc:
            raise MappingError(f"{exc} at {where}") from None
    properties = None
    if param.properties is not None:
        properties = tuple(
            (name, _compile_node(prop, f"{where}.properties.{name}"))
            for name, prop in param.properties.items()
        )
    type_ = param.type.lower() if isinstance(param.type, str) else None
    return _Node(
        name=param.name,
        type=type_,
        description=param.description,
        path=path,
        const=_NO_VALUE if param.const is None else param.const,
        value=value_expr,
        max_length=param.max_length,
        properties=properties,
        items=_compile_node(param.items, f"{where}.items") if param.items else None,
        values=_compile_node(param.values, f"{where}.values") if param.values else None,
        finish=_finisher(type_, param.max_length),
    )


_Shaper = Callable[[Any, Scope], Any]
"""``(parent's node, scope) -> output`` of one parameter."""


def _compile_shaper(node: _Node, in_container: bool) -> _Shaper:
    """The output of ``node`` over its parent's node, as one function decided at load time.

    Every branch below depends only on the parameter's declaration and on where it sits
    (``in_container``: a root, an array's ``items`` or a map's ``values``, rather than
    a property), so it is taken once here instead of on every call. Semantics, in order:
    ``const`` wins; a ``value`` without a path is a mock value; a path selects from the
    parent's node (no path: the parent's node itself, except for a property leaf, which
    has nothing to read and gives None); then arrays (a lone element is one item), maps
    (``values``), objects (``properties``, None over None) or a typed scalar.
    """
    if node.const is not _NO_VALUE:
        const = node.const
        return lambda _document, _scope: const
    if node.value is not None and node.path is None:
        finish = node.finish
        return lambda _document, scope: finish(node._mock_value(scope))
    select = node.path or _identity
    if (
        node.path is None
        and not in_container
        and node.properties is None
        and node.items is None
        and node.values is None
    ):
        return lambda _document, _scope: None
    if node.type == "array" or (node.type is None and node.items is not None):
        return _array_shaper(select, node.items)
    if node.values is not None:
        each = _compile_shaper(node.values, True)

        def shape_map(document: Any, scope: Scope) -> Any:
            found = select(document)
            if not isinstance(found, dict):
                return None
            return {key: each(item, scope) for key, item in found.items()}

        return shape_map
    if node.properties is not None:
        leaves = _key_leaves(node.properties)
        if leaves is not None:
            return _key_leaves_shaper(select, leaves)
        properties = tuple((name, _compile_shaper(prop, False)) for name, prop in node.properties)

        def shape_object(document: Any, scope: Scope) -> Any:
            found = select(document)
            if found is None:
                return None
            return {name: shape(found, scope) for name, shape in properties}

        return shape_object
    finish = node.finish
    if finish is _identity:
        return lambda document, _scope: select(document)
    return lambda document, _scope: finish(select(document))


_Leaf = tuple[str, str, "tuple[type, ...] | None", Callable[[Any], Any]]


def _key_leaves(properties: tuple[tuple[str, _Node], ...]) -> tuple[_Leaf, ...] | None:
    """``(name, key, passes, finish)`` of each property when every one is a scalar read
    from one key of the object (``mapping: $.key``), the commonest shape; else None.
    ``passes``: the types its finisher returns unchanged (None: every value), so that
    the usual value, already of the declared type, skips the call."""
    leaves = []
    for name, prop in properties:
        key = _KEYS.get(prop.path) if prop.path is not None else None
        if (
            key is None
            or prop.const is not _NO_VALUE
            or prop.type == "array"
            or prop.items is not None
            or prop.values is not None
            or prop.properties is not None
        ):
            return None
        passes: tuple[type, ...] | None = ()
        if prop.finish is _identity:
            passes = None
        elif prop.type in _SCALAR_TYPES and prop.max_length is None:
            passes = _NATIVE_OF[prop.type]  # what ``_finisher``'s coerce keeps as it is
        leaves.append((name, key, passes, prop.finish))
    return tuple(leaves)


def _key_leaves_shaper(select: Callable[[Any], Any], leaves: tuple[_Leaf, ...]) -> _Shaper:
    """What the general object shaper gives for :func:`_key_leaves` properties, with
    the lookups and type checks done here instead of through one shaper, one getter
    and one finisher per property."""

    def shape_key_leaves(document: Any, _scope: Scope) -> Any:
        found = select(document)
        if found is None:
            return None
        if not isinstance(found, dict):
            return {name: finish(None) for name, _, _, finish in leaves}
        get = found.get
        shaped = {}
        for name, key, passes, finish in leaves:
            value = get(key)
            shaped[name] = value if passes is None or type(value) in passes else finish(value)
        return shaped

    return shape_key_leaves


def _array_shaper(select: Callable[[Any], Any], items: _Node | None) -> _Shaper:
    each = _compile_shaper(items, True) if items is not None else None

    def shape_array(document: Any, scope: Scope) -> Any:
        found = select(document)
        if found is None:
            return None
        if not isinstance(found, list):
            found = [found]  # XML gives one object where there is a single element
        if each is None:
            return found
        return [each(element, scope) for element in found]

    return shape_array


def _finisher(type_: str | None, max_length: int | None) -> Callable[[Any], Any]:
    """A value as its parameter declares it: converted to the scalar ``type`` when that
    loses nothing (:func:`coerce_scalar`), then cut to ``maxLength`` if a string;
    :func:`_identity` when the declaration asks for neither.

    A value already of the declared type skips :func:`coerce_scalar` (which would return
    it unchanged): the usual case, a JSON string declared ``string``.
    """
    coerce: Callable[[Any], Any] | None = None
    if type_ in _SCALAR_TYPES:
        native = _NATIVE_OF[type_]

        def coerce(value: Any) -> Any:
            if type(value) in native:
                return value
            return coerce_scalar(value, type_)

    if max_length is None:
        return coerce or _identity
    if coerce is None:
        return lambda value: value[:max_length] if type(value) is str else value

    def coerce_and_cut(value: Any) -> Any:
        value = coerce(value)
        return value[:max_length] if type(value) is str else value

    return coerce_and_cut


# The types :func:`coerce_scalar` returns unchanged for each declared type (``bool`` is
# not an ``int`` here: ``type(True) is bool``).
_NATIVE_OF: Final = {
    "string": (str,),
    "integer": (int,),
    "number": (int, float),
    "boolean": (bool,),
}


def _compile_output_value(raw: Any) -> ValueExpr:
    """A mock ``value``: a string is a template (``tools.x`` stays literal text)."""
    if isinstance(raw, str):
        template = compile_template(raw)
        if template.is_constant:
            return ValueExpr("literal", raw)
        return ValueExpr("template", raw, template=template, references=template.references)
    return compile_value(raw, ())


# --------------------------------------------------------------------------- mapper


class OutputMapper:
    """Compiled ``outputParameters`` of one unit (see the module docstring)."""

    __slots__ = ("_roots", "_shapers", "_single")

    def __init__(self, roots: Sequence[_Node]) -> None:
        self._roots = tuple(roots)
        self._single = self._roots[0] if len(self._roots) == 1 else None
        self._shapers = tuple((root.name or "value", _compile_shaper(root, True)) for root in roots)

    def __repr__(self) -> str:
        return f"OutputMapper({[root.name for root in self._roots]})"

    @property
    def has_outputs(self) -> bool:
        """False when there is nothing to map: callers pass the upstream body through."""
        return bool(self._roots)

    @property
    def is_mock_capable(self) -> bool:
        """True when some parameter carries a ``value`` or ``const`` (mock mode works)."""
        return any(root.is_mock_capable for root in self._roots)

    @property
    def references(self) -> frozenset[str]:
        """Every name its ``value`` templates read (the inputs a mock may show)."""
        found: set[str] = set()
        for root in self._roots:
            found |= root.references()
        return frozenset(found)

    def apply(self, document: Any, scope: Scope | None = None) -> Any:
        """Shape an upstream document (already JSON). Missing paths give None, never errors.

        ``scope`` renders ``value`` templates (defaults to an empty scope).
        """
        scope = EMPTY_SCOPE if scope is None else scope
        shapers = self._shapers
        if self._single is not None:
            return shapers[0][1](document, scope)
        return {name: shape(document, scope) for name, shape in shapers}

    def mock(self, scope: Scope) -> Any:
        """Mock output from ``value``/``const`` (mustache over the inputs), typed."""
        if self._single is not None:
            return self._single.mock(scope)
        result: dict[str, Any] = {}
        for root in self._roots:
            value = root.mock(scope)
            if value is not None:
                result[root.name or "value"] = value
        return result

    def json_schema(self) -> dict[str, Any] | None:
        """An object-rooted JSON Schema of the output, or None when the root is not one."""
        if not self._roots:
            return None
        if self._single is not None:
            schema = self._single.schema()
            if schema.get("type") != ["object", "null"]:
                return None
            return {**schema, "type": "object"}
        return {
            "type": "object",
            "properties": {root.name or "value": root.schema() for root in self._roots},
        }


def compile_outputs(params: Sequence[OutputParameter]) -> OutputMapper:
    """Compile ``outputParameters``; raises :class:`MappingError` naming the expression."""
    return OutputMapper(
        [_compile_node(param, f"outputParameters[{index}]") for index, param in enumerate(params)]
    )
