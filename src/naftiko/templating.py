"""Mustache templates and ``with`` values, compiled once at load time.

Templates are parsed with pystache (HTML escaping off). Most templates of the corpus are
plain text with ``{{name}}`` tags, so those are compiled to a flat list of text and names
and rendered without pystache's machinery; templates with sections use pystache's render
engine with our own name resolution. Name resolution lives in :class:`Scope`, so that a
bound secret always wins over a caller input and ``env.KEY``, ``tools.x``, ``$this.ns.x``
and step outputs (``get-ship.vessel_name``) all resolve the same way everywhere.

A template compiled for a body *context* (``json``, ``xml``, ``form``) escapes what each
``{{x}}`` renders for that context, so a value lands as data, never as syntax (issue 15):
inside a JSON string it is JSON-string escaped; elsewhere in JSON it is one JSON value (a
list, an object, a number or a boolean as such, a string quoted, nothing ``null``); in
XML ``& < > " '`` become entities; in a form body it is percent-encoded. Triple braces
``{{{x}}}`` (or ``{{& x}}``) render the text as is: the author's way to say "raw". A lone
``{{x}}`` (the whole body) keeps its value, as everywhere.
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable, Collection, Mapping, Sequence
from functools import lru_cache
from typing import Any, Final
from urllib.parse import quote_plus
from xml.sax.saxutils import escape as _xml_escape

from pystache import parser as _pystache_parser
from pystache.context import ContextStack
from pystache.renderengine import RenderEngine

from naftiko.errors import LoadTimeError
from naftiko.template_syntax import has_tags

__all__ = [
    "CONTEXTS",
    "EMPTY_SCOPE",
    "INPUT_PREFIXES",
    "MISSING",
    "Scope",
    "Template",
    "TemplateError",
    "ValueExpr",
    "compile_template",
    "compile_value",
    "format_value",
    "render_or_none",
]


class _Missing:
    """The type of :data:`MISSING`: falsy, a singleton, with a readable repr."""

    _instance: _Missing | None = None

    def __new__(cls) -> _Missing:
        if cls._instance is None:
            cls._instance = super().__new__(cls)
        return cls._instance

    def __bool__(self) -> bool:
        return False

    def __repr__(self) -> str:
        return "MISSING"

    def __reduce__(self) -> str:
        return "MISSING"


MISSING: Final = _Missing()
"""A name that resolves to nothing (distinct from a resolved ``None``)."""

INPUT_PREFIXES: Final = frozenset({"rest", "tools"})
"""Namespaces that always mean "the caller's inputs", whatever the exposed namespace
(``rest.x`` and ``tools.x`` resolve like ``<exposeNamespace>.x``, as the corpus uses them)."""


class TemplateError(ValueError, LoadTimeError):
    """A template that cannot be parsed; the caller adds the file and line."""


# --------------------------------------------------------------------------- values


def format_value(value: Any) -> str:
    """The text of a value inside a rendered template.

    Lists and dicts become compact JSON so that ``"ids": {{ids}}`` yields valid JSON;
    booleans are JSON's ``true``/``false``; ``None`` and missing values are empty.
    """
    if type(value) is str:
        return value
    if value is None or value is MISSING:
        return ""
    if value is True:
        return "true"
    if value is False:
        return "false"
    if isinstance(value, (list, tuple, dict)):
        return json.dumps(value, separators=(",", ":"), ensure_ascii=False, default=str)
    if isinstance(value, bytes):
        return value.decode("utf-8", "replace")
    return str(value)


# --------------------------------------------------------------------------- escaping

Escaper = Callable[[Any], str]
"""A resolved value (or MISSING) -> the text a tag renders."""

# A string that is already one JSON scalar: rendered bare, it is that number or literal.
_JSON_SCALAR = re.compile(r"-?(?:0|[1-9][0-9]*)(?:\.[0-9]+)?(?:[eE][+-]?[0-9]+)?|true|false|null")
# Text that needs no escaping inside a JSON string (most ids, names, dates).
_JSON_PLAIN = re.compile(r'[^"\\\x00-\x1f]*')


def _json_in_string(value: Any) -> str:
    """Inside a JSON string literal: the text, JSON-string escaped (quotes, ``\\``,
    control characters), so it cannot close the string."""
    text = format_value(value)
    if _JSON_PLAIN.fullmatch(text):
        return text
    return json.dumps(text, ensure_ascii=False)[1:-1]


def _json_bare(value: Any) -> str:
    """Outside a JSON string: exactly one JSON value. Lists, objects, numbers and
    booleans as such; a string that is one JSON number or literal as it is (``7``); any
    other string quoted; nothing (missing or null) ``null``."""
    if value is MISSING or value is None:
        return "null"
    if type(value) is str:
        return value if _JSON_SCALAR.fullmatch(value) else json.dumps(value, ensure_ascii=False)
    if isinstance(value, bytes):
        return json.dumps(value.decode("utf-8", "replace"), ensure_ascii=False)
    try:
        return json.dumps(
            value, ensure_ascii=False, separators=(",", ":"), default=str, allow_nan=False
        )
    except (ValueError, RecursionError):  # NaN and infinities are no JSON: their text
        return json.dumps(format_value(value), ensure_ascii=False)


def _xml_text(value: Any) -> str:
    """XML character data or an attribute value (either quote): entities for markup."""
    return _xml_escape(format_value(value), {'"': "&quot;", "'": "&apos;"})


def _form_text(value: Any) -> str:
    """One ``application/x-www-form-urlencoded`` key or value: ``&``, ``=`` and ``+``
    cannot start another pair."""
    return quote_plus(format_value(value))


CONTEXTS: Final = frozenset({"text", "json", "xml", "form"})
"""Where a template's output goes (see the module docstring); ``text`` escapes nothing."""


def _escapers(context: str, nodes: Sequence[Any]) -> list[Escaper]:
    """The escaper of each ``{{x}}`` tag of ``nodes`` (in document order, sections
    included), for ``context``. In JSON a tag inside a string literal gets string
    escaping and one outside gets a JSON value: a scan of the literal text in order
    tracks whether a string is open (sections are assumed to close what they open)."""
    if context == "xml":
        return [_xml_text] * _count_tags(nodes)
    if context == "form":
        return [_form_text] * _count_tags(nodes)
    escapers: list[Escaper] = []
    _scan_json(nodes, [False], escapers)
    return escapers


def _count_tags(nodes: Sequence[Any]) -> int:
    count = 0
    for node in nodes:
        if isinstance(node, _pystache_parser._EscapeNode):
            count += 1
        elif (inner := _inner_tree(node)) is not None:
            count += _count_tags(inner)
    return count


def _scan_json(nodes: Sequence[Any], in_string: list[bool], into: list[Escaper]) -> None:
    for node in nodes:
        if type(node) is str:
            in_string[0] = _json_string_state(node, in_string[0])
        elif isinstance(node, _pystache_parser._EscapeNode):
            into.append(_json_in_string if in_string[0] else _json_bare)
        elif (inner := _inner_tree(node)) is not None:
            _scan_json(inner, in_string, into)


def _json_string_state(text: str, in_string: bool) -> bool:
    """Whether a JSON string is open after ``text`` (given whether one was before)."""
    escaped = False
    for char in text:
        if escaped:
            escaped = False
        elif in_string and char == "\\":
            escaped = True
        elif char == '"':
            in_string = not in_string
    return in_string


def _inner_tree(node: Any) -> list[Any] | None:
    """The parse tree inside a section or inverted section node, else None."""
    inner = getattr(node, "parsed", None) or getattr(node, "parsed_section", None)
    return None if inner is None else inner._parse_tree


class _ContextTag:
    """A ``{{x}}`` node of a section template compiled for a context: renders the
    resolved value through its escaper (pystache's own node would stringify it first)."""

    __slots__ = ("escape", "key")

    def __init__(self, key: str, escape: Escaper) -> None:
        self.key = key
        self.escape = escape

    def render(self, engine: RenderEngine, context: ContextStack) -> str:
        return self.escape(engine.resolve_context(context, self.key))


def _install_escapers(nodes: list[Any], escapers: list[Escaper]) -> None:
    """Replace each ``{{x}}`` node, in document order, by a :class:`_ContextTag`."""
    for index, node in enumerate(nodes):
        if isinstance(node, _pystache_parser._EscapeNode):
            nodes[index] = _ContextTag(node.key, escapers.pop(0))
        elif (inner := _inner_tree(node)) is not None:
            _install_escapers(inner, escapers)


def _walk(value: Any, parts: Sequence[str]) -> Any:
    """Follow dotted ``parts`` into nested dicts (and lists by numeric index)."""
    for part in parts:
        if isinstance(value, Mapping):
            if part not in value:
                return MISSING
            value = value[part]
        elif isinstance(value, list) and part.lstrip("-").isdigit():
            try:
                value = value[int(part)]
            except IndexError:
                return MISSING
        else:
            return MISSING
    return value


@lru_cache(maxsize=4096)
def _split(name: str) -> tuple[str, str, tuple[str, ...]]:
    """``"a.b.c"`` -> ``("a", "b.c", ["a", "b", "c"])``; cached: names repeat forever."""
    head, _, rest = name.partition(".")
    return head, rest, tuple(name.split("."))


def _this_remainder(rest: str) -> str:
    """``$this.<ns>.x`` -> ``x`` (the part after the namespace), or ``""``."""
    _, _, remainder = rest.partition(".")
    return remainder


# --------------------------------------------------------------------------- scope


class Scope:
    """The names a template or ``with`` value can see during one invocation.

    Layers, highest precedence first: ``binds`` (so that a caller input can never shadow
    a secret), ``with`` values (written by the document), step outputs, caller
    ``inputs`` (so that a caller can never replace what a step looked up: issue 15). A
    name is looked up exactly first (keys may contain dots), then through the special
    forms ``env.KEY``, ``<bindNamespace>.KEY``,
    ``rest.x``/``tools.x``/``<inputNamespace>.x``/``$this.ns.x`` (caller inputs: ``with``
    values, then inputs), then by a dotted walk into nested values
    (``get-ship.specs.length``). A dotted name whose head is a step output is that
    step's, found or not: no caller input answers ``get-profile.tenant`` once step
    ``get-profile`` has produced something. The engine hands a scope only the caller
    inputs the document declares or derives. The layers are held, not copied: building
    a scope per request costs a few attribute stores.
    """

    __slots__ = (
        "_bind_namespaces",
        "_binds",
        "_input_namespaces",
        "_inputs",
        "_steps",
        "_with",
    )

    def __init__(
        self,
        binds: Mapping[str, str] | None = None,
        bind_namespaces: Mapping[str, Mapping[str, str]] | None = None,
        with_values: Mapping[str, Any] | None = None,
        inputs: Mapping[str, Any] | None = None,
        steps: Mapping[str, Any] | None = None,
        input_namespaces: Collection[str] = (),
    ) -> None:
        self._binds: Mapping[str, str] = binds or {}
        self._bind_namespaces: Mapping[str, Mapping[str, str]] = bind_namespaces or {}
        self._with: Mapping[str, Any] = with_values or {}
        self._inputs: Mapping[str, Any] = inputs or {}
        self._steps: Mapping[str, Any] = steps or {}
        self._input_namespaces: frozenset[str] = (
            input_namespaces
            if isinstance(input_namespaces, frozenset)
            else frozenset(input_namespaces)
        )

    @property
    def with_values(self) -> Mapping[str, Any]:
        return self._with

    @property
    def inputs(self) -> Mapping[str, Any]:
        return self._inputs

    @property
    def steps(self) -> Mapping[str, Any]:
        return self._steps

    @property
    def input_namespaces(self) -> frozenset[str]:
        return self._input_namespaces

    def __repr__(self) -> str:
        # Never show values: binds are secrets and inputs may hold tokens.
        return (
            f"Scope(binds={len(self._binds)}, with={sorted(self._with)}, "
            f"inputs={sorted(self._inputs)}, steps={sorted(self._steps)})"
        )

    def with_child(
        self,
        *,
        with_values: Mapping[str, Any] | None = None,
        inputs: Mapping[str, Any] | None = None,
        steps: Mapping[str, Any] | None = None,
    ) -> Scope:
        """A scope sharing this one's binds and namespaces, with the given layers replaced."""
        child = Scope.__new__(Scope)
        child._binds = self._binds
        child._bind_namespaces = self._bind_namespaces
        child._input_namespaces = self._input_namespaces
        child._with = self._with if with_values is None else with_values
        child._inputs = self._inputs if inputs is None else inputs
        child._steps = self._steps if steps is None else steps
        return child

    def with_step(self, name: str, output: Any) -> Scope:
        """A child scope where step ``name`` produced ``output`` (visible to later steps)."""
        return self.with_child(steps={**self._steps, name: output})

    def lookup(self, name: str) -> Any:
        """The value of ``name``, or :data:`MISSING`."""
        # Exact keys first, in precedence order (the common case: one dict hit).
        if name in self._binds:
            return self._binds[name]
        if name in self._with:
            return self._with[name]
        steps = self._steps
        if name in steps:
            return steps[name]
        if name in self._inputs and not ("." in name and self._owned(name)):
            return self._inputs[name]
        head, rest, parts = _split(name)
        if not rest:
            return MISSING
        if head == "env":
            return self._binds.get(rest, MISSING)
        if head in self._bind_namespaces:
            return self._bind_namespaces[head].get(rest, MISSING)
        if head in INPUT_PREFIXES or head in self._input_namespaces:
            return self.lookup_input(rest)
        if head == "$this":
            remainder = _this_remainder(rest)
            return self.lookup_input(remainder) if remainder else MISSING
        if head in self._with:
            found = _walk(self._with[head], parts[1:])
            if found is not MISSING:
                return found
        if head in steps:  # a step's output answers for its own name, found or not
            return _walk(steps[head], parts[1:])
        if head in self._inputs:
            return _walk(self._inputs[head], parts[1:])
        return MISSING

    def _owned(self, name: str) -> bool:
        """A dotted name a caller's key of the same spelling must not answer: one under a
        step output, ``env`` or a bind namespace (``cfg.TOKEN`` is the bind's)."""
        head = _split(name)[0]
        return head in self._steps or head == "env" or head in self._bind_namespaces

    def lookup_input(self, name: str) -> Any:
        """A caller input (``with`` values first, then inputs): exact, then dotted walk."""
        if name in self._with:
            return self._with[name]
        if name in self._inputs:
            return self._inputs[name]
        _, rest, parts = _split(name)
        if rest:
            for layer in (self._with, self._inputs):
                if parts[0] in layer:
                    found = _walk(layer[parts[0]], parts[1:])
                    if found is not MISSING:
                        return found
        return MISSING


EMPTY_SCOPE: Final = Scope()


# --------------------------------------------------------------------------- templates

_SIMPLE_NODES = (_pystache_parser._EscapeNode, _pystache_parser._LiteralNode)
_IGNORED_NODES = (_pystache_parser._CommentNode, _pystache_parser._ChangeNode)


def _resolve_in_stack(stack: ContextStack, name: str) -> Any:
    """pystache name resolution over section items, falling back to the :class:`Scope`."""
    items = stack._stack
    if name == ".":
        top = items[-1] if items else None
        return None if isinstance(top, Scope) else top
    for item in reversed(items):
        if isinstance(item, Scope):
            value = item.lookup(name)
            return None if value is MISSING else value
        if isinstance(item, Mapping):
            if name in item:
                return item[name]
            head, _, parts = _split(name)
            if head in item:
                value = _walk(item[head], parts[1:])
                return None if value is MISSING else value
    return None


def _no_partials(name: str) -> str:
    raise TemplateError(f"partials are not supported ({{{{>{name}}}}})")


_ENGINE: Final = RenderEngine(
    literal=str,
    escape=str,
    resolve_context=_resolve_in_stack,
    resolve_partial=_no_partials,
    to_str=format_value,
)


def _collect_references(nodes: list[Any], into: set[str]) -> bool:
    """Add every tag name under ``nodes`` to ``into``; True when only simple tags are used."""
    simple = True
    for node in nodes:
        if type(node) is str or isinstance(node, _IGNORED_NODES):
            continue
        if isinstance(node, _SIMPLE_NODES):
            if node.key != ".":
                into.add(node.key)
            continue
        simple = False
        key = getattr(node, "key", None)
        if key is not None and key != ".":
            into.add(key)
        inner = getattr(node, "parsed", None) or getattr(node, "parsed_section", None)
        if inner is not None:
            _collect_references(inner._parse_tree, into)
        if isinstance(node, _pystache_parser._PartialNode):
            raise TemplateError(f"partials are not supported ({{{{>{node.key}}}}})")
    return simple


class Template:
    """A compiled mustache template. Immutable; render it as often as needed.

    ``context`` (``text``, ``json``, ``xml``, ``form``) says where the rendered text goes
    and so how each ``{{x}}`` is escaped (see the module docstring).
    """

    __slots__ = ("_lone", "_parsed", "_parts", "context", "is_constant", "references", "text")

    def __init__(self, text: str, context: str = "text") -> None:
        if context not in CONTEXTS:
            raise ValueError(f"unknown template context {context!r}")
        self.text = text
        self.context = context
        self._lone: str | None = None
        self._parsed: Any = None
        self._parts: tuple[str | tuple[str, Escaper], ...] | None = None
        if not has_tags(text):
            self.is_constant = True
            self.references: frozenset[str] = frozenset()
            self._parts = (text,)
            return
        try:
            parsed = _pystache_parser.parse(text, raise_on_mismatch=True)
        except _pystache_parser.ParsingError as exc:
            raise TemplateError(f"invalid mustache template: {exc}") from None
        except Exception as exc:  # pystache raises bare exceptions on odd delimiters
            raise TemplateError(f"invalid mustache template: {type(exc).__name__}") from None
        tree = parsed._parse_tree
        names: set[str] = set()
        simple = _collect_references(tree, names)
        self.references = frozenset(names)
        self.is_constant = False
        escapers = [] if context == "text" else _escapers(context, tree)
        if simple:
            parts: list[str | tuple[str, Escaper]] = []
            for node in tree:
                if type(node) is str:
                    parts.append(node)
                elif isinstance(node, _pystache_parser._EscapeNode) and escapers:
                    parts.append((node.key, escapers.pop(0)))
                elif not isinstance(node, _IGNORED_NODES):
                    parts.append((node.key, format_value))  # text, or {{{x}}}: as is
            self._parts = tuple(parts)
            if len(self._parts) == 1 and type(self._parts[0]) is tuple:
                self._lone = self._parts[0][0]
            self.is_constant = all(type(part) is str for part in self._parts)
        else:
            if escapers:
                _install_escapers(tree, escapers)
            self._parsed = parsed

    def __repr__(self) -> str:
        if self.context != "text":
            return f"Template({self.text!r}, {self.context!r})"
        return f"Template({self.text!r})"

    @property
    def lone_reference(self) -> str | None:
        """The name when the whole template is one ``{{name}}`` tag, else None."""
        return self._lone

    def render(self, scope: Scope) -> str:
        """The text; missing and null names render as ``""``, lists/dicts as JSON."""
        parts = self._parts
        if parts is None:
            return self._parsed.render(_ENGINE, ContextStack(scope))
        if len(parts) == 1 and type(parts[0]) is str:
            return parts[0]
        lookup = scope.lookup
        return "".join(
            part if type(part) is str else part[1](lookup(part[0]))  # type: ignore[misc]
            for part in parts
        )

    def resolve(self, scope: Scope) -> Any:
        """A lone ``{{name}}`` keeps the value's type (or MISSING); else :meth:`render`."""
        if self._lone is not None:
            return scope.lookup(self._lone)
        return self.render(scope)


@lru_cache(maxsize=8192)
def compile_template(text: str, context: str = "text") -> Template:
    """Parse ``text`` once, for ``context`` (see :class:`Template`). Raises
    :class:`TemplateError` on a syntax error.

    Cached because the same snippets (``{{tools.x}}``, header values) recur across units.
    """
    return Template(text, context)


# --------------------------------------------------------------------------- with values


def _input_reference(raw: str, input_namespaces: Collection[str]) -> str | None:
    """``tools.x`` / ``rest.x`` / ``<ns>.x`` / ``$this.<ns>.x`` -> ``x``; else None."""
    head, rest, _ = _split(raw)
    if not rest or any(c.isspace() for c in raw):
        return None
    if head in INPUT_PREFIXES or head in input_namespaces:
        return rest
    if head == "$this":
        return _this_remainder(rest) or None
    return None


def _template_input_names(template: Template, input_namespaces: Collection[str]) -> set[str]:
    names: set[str] = set()
    for ref in template.references:
        name = _input_reference(ref, input_namespaces)
        if name is not None:
            names.add(name)
    return names


class ValueExpr:
    """A compiled ``with`` entry or parameter ``value``.

    ``kind`` is ``"input"`` (a ``tools.x``-style reference), ``"template"``,
    ``"literal"`` or ``"structure"`` (a dict/list with template leaves).
    """

    __slots__ = (
        "_input",
        "_structure",
        "_template",
        "input_references",
        "kind",
        "raw",
        "references",
    )

    def __init__(
        self,
        kind: str,
        raw: Any,
        *,
        input_name: str | None = None,
        template: Template | None = None,
        structure: Any = None,
        references: frozenset[str] = frozenset(),
        input_references: frozenset[str] = frozenset(),
    ) -> None:
        self.kind = kind
        self.raw = raw
        self._input = input_name
        self._template = template
        self._structure = structure
        self.references = references
        self.input_references = input_references

    def __repr__(self) -> str:
        return f"ValueExpr({self.kind}, {self.raw!r})"

    @property
    def is_input_reference(self) -> bool:
        return self.kind == "input"

    @property
    def input_name(self) -> str | None:
        """The input read by an input reference (``tools.x`` -> ``x``)."""
        return self._input

    @property
    def is_constant(self) -> bool:
        return self.kind == "literal"

    def evaluate(self, scope: Scope) -> Any:
        """The value, types kept where the expression is a lone reference; or MISSING."""
        kind = self.kind
        if kind == "literal":
            return self.raw
        if kind == "input":
            return scope.lookup_input(self._input)  # type: ignore[arg-type]
        if kind == "template":
            return self._template.resolve(scope)  # type: ignore[union-attr]
        return _evaluate_structure(self._structure, scope)


def _evaluate_structure(node: Any, scope: Scope) -> Any:
    if isinstance(node, Template):
        value = node.resolve(scope)
        return None if value is MISSING else value
    if isinstance(node, dict):
        return {key: _evaluate_structure(value, scope) for key, value in node.items()}
    if isinstance(node, list):
        return [_evaluate_structure(value, scope) for value in node]
    return node


def _compile_structure(raw: Any, refs: set[str]) -> tuple[Any, bool]:
    """Replace template leaves by :class:`Template`s; returns (structure, has_templates)."""
    if isinstance(raw, str):
        if has_tags(raw):
            template = compile_template(raw)
            if not template.is_constant:
                refs.update(template.references)
                return template, True
        return raw, False
    if isinstance(raw, Mapping):
        out: dict[Any, Any] = {}
        dynamic = False
        for key, value in raw.items():
            out[key], leaf_dynamic = _compile_structure(value, refs)
            dynamic = dynamic or leaf_dynamic
        return out, dynamic
    if isinstance(raw, (list, tuple)):
        items = []
        dynamic = False
        for value in raw:
            item, leaf_dynamic = _compile_structure(value, refs)
            items.append(item)
            dynamic = dynamic or leaf_dynamic
        return items, dynamic
    return raw, False


def compile_value(raw: Any, input_namespaces: Collection[str] = ()) -> ValueExpr:
    """Compile a ``with`` entry or a parameter ``value`` (see :class:`ValueExpr`).

    A string ``<ns>.x`` (``rest``, ``tools``, ``$this.<ns>`` or one of
    ``input_namespaces``) reads input ``x``; a string with ``{{...}}`` is a template;
    other strings and non-strings are literals (dicts/lists may hold template leaves).
    """
    namespaces = frozenset(input_namespaces)
    if isinstance(raw, str):
        name = _input_reference(raw, namespaces)
        if name is not None:
            return ValueExpr("input", raw, input_name=name, input_references=frozenset({name}))
        if has_tags(raw):
            template = compile_template(raw)
            if not template.is_constant:
                return ValueExpr(
                    "template",
                    raw,
                    template=template,
                    references=template.references,
                    input_references=frozenset(_template_input_names(template, namespaces)),
                )
        return ValueExpr("literal", raw)
    if isinstance(raw, (Mapping, list, tuple)):
        refs: set[str] = set()
        structure, dynamic = _compile_structure(raw, refs)
        if dynamic:
            inputs = set()
            for ref in refs:
                input_name = _input_reference(ref, namespaces)
                if input_name is not None:
                    inputs.add(input_name)
            return ValueExpr(
                "structure",
                raw,
                structure=structure,
                references=frozenset(refs),
                input_references=frozenset(inputs),
            )
    return ValueExpr("literal", raw)


def render_or_none(text: str | None, scope: Scope) -> str | None:
    """A credential field rendered, or None when it references something unresolved."""
    if text is None:
        return None
    template = compile_template(text)
    for ref in template.references:
        value = scope.lookup(ref)
        if value is MISSING or value is None or value == "":
            return None
    return template.render(scope)
