"""Parse YAML/JSON text once and keep where every value came from.

The document is composed by libyaml (C) into a node tree; the plain data is constructed
from that tree and the tree is kept, so positions cost nothing until a diagnostic asks
for one (the index is built on first use). JSON files are parsed with :mod:`json` and
composed as YAML only if a position is needed.

Scalars follow YAML 1.2 rather than 1.1: ``on``/``yes``/``no`` stay strings (``on:``
as a ``with`` key, country code ``NO``) and dates stay strings (``created: 2026-05-01``),
because that is what the documents mean.

Aliases are checked on the composed graph before construction: one that contains itself,
or aliases expanding past ``MAX_ALIAS_EXPANSION`` nodes, are a :class:`SourceError`.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

from naftiko.errors import InternalSignal, LoadTimeError
from naftiko.spec.diagnostics import Diagnostic, Severity

PathT = tuple[str | int, ...]

_BOOL = "tag:yaml.org,2002:bool"
_TIMESTAMP = "tag:yaml.org,2002:timestamp"


class _Loader(yaml.CSafeLoader):
    """libyaml loader with YAML 1.2 booleans and no implicit timestamps."""

    def resolve(self, kind: Any, value: Any, implicit: Any) -> Any:
        """``BaseResolver.resolve`` for plain scalars, minus its per-call list building.

        libyaml calls this for every node (15,000 in a 6,000-line document).
        """
        if kind is yaml.ScalarNode and implicit[0] and not self.yaml_path_resolvers:
            for tag, regexp in _IMPLICIT.get(value[:1], _WILDCARD):
                if regexp.match(value):
                    return tag
            return self.DEFAULT_SCALAR_TAG
        return super().resolve(kind, value, implicit)


_Loader.yaml_implicit_resolvers = {
    first: [(tag, rx) for tag, rx in resolvers if tag not in (_BOOL, _TIMESTAMP)]
    for first, resolvers in yaml.CSafeLoader.yaml_implicit_resolvers.items()
}
_Loader.add_implicit_resolver(
    _BOOL, re.compile(r"^(?:true|True|TRUE|false|False|FALSE)$"), list("tTfF")
)
# What BaseResolver.resolve tries for a plain scalar, by its first character ("" if empty).
_WILDCARD = tuple(_Loader.yaml_implicit_resolvers.get(None, ()))
_IMPLICIT = {
    first: (*resolvers, *_WILDCARD)
    for first, resolvers in _Loader.yaml_implicit_resolvers.items()
    if first is not None
}


class SourceError(LoadTimeError):
    """The text cannot be parsed; carries a 1-based position when the parser gave one."""

    def __init__(self, message: str, line: int | None = None, column: int | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.line = line
        self.column = column


def format_path(path: Sequence[str | int]) -> str:
    """``("capability", "exposes", 1, "call")`` -> ``capability.exposes[1].call``."""
    out = ""
    for part in path:
        if isinstance(part, int):
            out += f"[{part}]"
        else:
            out += f".{part}" if out else str(part)
    return out


class SourceMap:
    """Positions of the values of one parsed file, addressed by path tuples."""

    def __init__(
        self,
        file: str,
        node: yaml.Node | None = None,
        text: str | None = None,
        *,
        shared: bool = True,
        recomposable: bool = False,
    ) -> None:
        self.file = file
        self._node = node
        self._text = text  # JSON source composed on demand
        self._shared = shared  # False: no aliases, ``node`` is a tree
        self._recomposable = recomposable  # composing the text again gives ``node`` back
        self._index: dict[PathT, tuple[int, int]] | None = None
        self._scanned = 0  # children examined by lookups so far

    @classmethod
    def empty(cls, file: str = "") -> SourceMap:
        return cls(file)

    def release(self, text: str) -> None:
        """Drop the node tree, keeping ``text`` (the file's) to compose it again if asked.

        A served document rarely needs a position after it is compiled, and its tree
        (a node and two marks per value) is several times the size of its text: a
        folder of a thousand documents would hold hundreds of megabytes of them.
        """
        if self._node is None or self._index is not None:
            return
        if not self._recomposable:  # rare (aliases, merge keys): index it while we can
            self._index = self._build()
        self._node, self._text = None, text

    def position(self, path: Sequence[str | int]) -> tuple[int, int] | None:
        """1-based ``(line, column)`` of the value at ``path`` (of its key in a mapping)."""
        if self._index is None:
            if self._node is not None and not self._shared and self._scanned < _LOOKUP_BUDGET:
                scanned = [0]
                found = _lookup(self._node, tuple(path), scanned)
                self._scanned += scanned[0]
                return found
            self._index = self._build()
        return self._index.get(tuple(path))

    def locate(self, path: Sequence[str | int]) -> dict[str, Any]:
        """Diagnostic fields for ``path``; falls back to the nearest ancestor that exists."""
        path = tuple(path)
        for cut in range(len(path), -1, -1):
            pos = self.position(path[:cut])
            if pos is not None:
                return {"path": format_path(path), "line": pos[0], "column": pos[1]}
        return {"path": format_path(path), "line": None, "column": None}

    def diagnostic_at(
        self, path: Sequence[str | int], severity: Severity, message: str
    ) -> Diagnostic:
        """A diagnostic in this file at ``path`` (used by the engine compiler too)."""
        return Diagnostic(severity=severity, file=self.file, message=message, **self.locate(path))

    def _build(self) -> dict[PathT, tuple[int, int]]:
        node = self._node
        if node is None and self._text is not None:
            try:
                node = yaml.compose(self._text, Loader=_Loader)
            except (yaml.YAMLError, RecursionError):
                node = None
            self._text = None
        index: dict[PathT, tuple[int, int]] = {}
        if node is not None:
            index[()] = (node.start_mark.line + 1, node.start_mark.column + 1)
            for path, mark in _walk(node, ()):
                index.setdefault(path, (mark.line + 1, mark.column + 1))
        return index


_LOOKUP_BUDGET = 20_000
"""Children that lookups may examine before indexing the whole tree is the cheaper way
(a 6,000-line document has ~15,000 nodes; its ~100 warnings examine ~1,000)."""


def _lookup(root: yaml.Node, path: PathT, scanned: list[int]) -> tuple[int, int] | None:
    """What ``SourceMap._build()``'s index holds for ``path``, found without building it.

    Indexing walks every node of the document; a lookup walks one path. Valid for a
    tree (no aliases). The index keeps the first entry ``_walk`` yields for a path:
    ``_walk`` pops the last child first, so among nodes with the same path (duplicate
    mapping keys) the one in the later subtree wins, and a mapping's keys come in order.
    Adds the mapping entries it examined to ``scanned[0]``.
    """
    if not path:
        return _position(root)
    last = path[-1]
    for parent in _candidates(root, path[:-1], scanned):
        if isinstance(parent, yaml.MappingNode):
            scanned[0] += len(parent.value)
            for key, _ in parent.value:
                if isinstance(key, yaml.ScalarNode) and key.value == last:
                    return _position(key)
        elif isinstance(parent, yaml.SequenceNode) and last in range(len(parent.value)):
            return _position(parent.value[int(last)])
    return None


def _candidates(node: yaml.Node, path: PathT, scanned: list[int]) -> Iterator[yaml.Node]:
    """The nodes at ``path`` below ``node``, in the order ``_walk`` pops them."""
    if not path:
        yield node
        return
    first, rest = path[0], path[1:]
    if isinstance(node, yaml.MappingNode):
        scanned[0] += len(node.value)
        children = [
            value
            for key, value in node.value
            if isinstance(key, yaml.ScalarNode) and key.value == first
        ]
    elif isinstance(node, yaml.SequenceNode) and first in range(len(node.value)):
        children = [node.value[int(first)]]
    else:
        return
    for child in reversed(children):
        yield from _candidates(child, rest, scanned)


def _walk(node: yaml.Node, prefix: PathT) -> Iterator[tuple[PathT, yaml.Mark]]:
    stack: list[tuple[yaml.Node, PathT]] = [(node, prefix)]
    seen: set[int] = set()
    while stack:
        current, path = stack.pop()
        if id(current) in seen:  # anchors/aliases: index the first occurrence only
            continue
        seen.add(id(current))
        if isinstance(current, yaml.MappingNode):
            for key, value in current.value:
                if isinstance(key, yaml.ScalarNode):
                    child = (*path, key.value)
                    yield child, key.start_mark
                    stack.append((value, child))
        elif isinstance(current, yaml.SequenceNode):
            for i, item in enumerate(current.value):
                child = (*path, i)
                yield child, item.start_mark
                stack.append((item, child))


MAX_ALIAS_EXPANSION = 100_000
"""Nodes that aliases may add to a document once expanded as a tree.

libyaml shares an aliased node instead of copying it, but everything after the parser
(normalisation, the models, the JSON schema) walks the data as a tree: 20 nested
aliases in 400 bytes are 2**20 nodes, 30 would take minutes. Sharing a schema a few
hundred times stays far below this.
"""


def _check_aliases(root: yaml.Node) -> None:
    """Refuse an alias that contains itself, or aliases expanding past the limit.

    One iterative depth-first pass over the composed graph's collections (an aliased one
    is entered once): a collection's expanded size is itself, its scalars and its child
    collections expanded; what exceeds the unique nodes seen so far came from aliases.
    Raises :class:`SourceError` at the anchored node at fault.
    """
    sizes: dict[int, int] = {}  # id(collection) -> nodes in its expanded tree
    active: set[int] = set()  # collections whose children are still being sized
    unique = 0  # nodes of the collections sized so far, each counted once
    stack: list[tuple[yaml.Node, list[yaml.Node] | None]] = [(root, None)]
    while stack:
        node, nested = stack.pop()
        key = id(node)
        if nested is not None:  # leaving: every nested collection is sized
            active.discard(key)
            own = 1 + _width(node) - len(nested)
            size = own + sum(sizes[id(child)] for child in nested)
            sizes[key] = size
            unique += own
            if size - unique > MAX_ALIAS_EXPANSION:
                raise SourceError(
                    f"YAML aliases expand to more than {MAX_ALIAS_EXPANSION} nodes "
                    "(an alias bomb?): refused",
                    *_position(node),
                )
            continue
        if key in sizes:
            continue
        if key in active:  # reached again from below itself
            raise SourceError("YAML alias refers to a node that contains it", *_position(node))
        if isinstance(node, yaml.MappingNode):
            children = [child for pair in node.value for child in pair]
        elif isinstance(node, yaml.SequenceNode):
            children = node.value
        else:
            continue
        active.add(key)
        nested = [child for child in children if not isinstance(child, yaml.ScalarNode)]
        stack.append((node, nested))
        stack.extend((child, None) for child in nested)


def _width(node: yaml.Node) -> int:
    """Direct children of a collection (keys and values of a mapping)."""
    return 2 * len(node.value) if isinstance(node, yaml.MappingNode) else len(node.value)


def _position(node: yaml.Node) -> tuple[int, int]:
    return node.start_mark.line + 1, node.start_mark.column + 1


def parse_source(text: str, file: str, *, json_syntax: bool = False) -> tuple[Any, SourceMap]:
    """Parse YAML (or JSON when ``json_syntax``) into plain data and its :class:`SourceMap`.

    Raises :class:`SourceError` with the parser's position; never another exception.
    """
    if json_syntax:
        try:
            return json.loads(text), SourceMap(file, text=text)
        except json.JSONDecodeError as exc:
            raise SourceError(f"JSON syntax error: {exc.msg}", exc.lineno, exc.colno) from None
        except RecursionError:
            raise SourceError("JSON nested too deeply") from None
    loader = _Loader(text)
    recomposable = True
    try:
        node = loader.get_single_node()
        aliases = "*" in text and "&" in text  # no alias without both
        if node is not None and aliases:
            _check_aliases(node)
        if node is None:
            data = None
        elif aliases:  # shared nodes: PyYAML's constructor decides what is shared
            data = loader.construct_document(node)
        else:
            try:
                data = _construct_plain(loader, node)
            except _Unusual:
                # PyYAML's constructor rewrites the tree (it flattens merge keys in place):
                # composing the text again would not give these positions back.
                recomposable = False
                data = _construct(loader, node)
    except yaml.MarkedYAMLError as exc:
        mark = exc.problem_mark or exc.context_mark
        problem = exc.problem or exc.context or "invalid YAML"
        detail = f" ({exc.context})" if exc.context and exc.problem else ""
        line = mark.line + 1 if mark else None
        column = mark.column + 1 if mark else None
        raise SourceError(f"YAML syntax error: {problem}{detail}", line, column) from None
    except yaml.YAMLError as exc:
        raise SourceError(f"YAML error: {str(exc).splitlines()[0]}") from None
    except RecursionError:
        raise SourceError("YAML nested too deeply") from None
    finally:
        loader.dispose()
    return data, SourceMap(
        file, node=node, shared=aliases, recomposable=recomposable and not aliases
    )


_STR = "tag:yaml.org,2002:str"
_NULL = "tag:yaml.org,2002:null"
_MAP = "tag:yaml.org,2002:map"
_SEQ = "tag:yaml.org,2002:seq"
_DELEGATED_SCALARS = frozenset({"tag:yaml.org,2002:int", "tag:yaml.org,2002:float", _BOOL})


class _Unusual(InternalSignal):
    """A node :func:`_construct_plain` leaves to PyYAML's constructor."""


def _construct(loader: _Loader, root: yaml.Node) -> Any:
    """``loader.construct_document(root)`` of a tree (no aliases), the fast way if it can."""
    try:
        return _construct_plain(loader, root)
    except _Unusual:
        loader.constructed_objects, loader.recursive_objects = {}, {}  # a refused scalar's
        return loader.construct_document(root)


def _construct_plain(loader: _Loader, root: yaml.Node) -> Any:
    """``loader.construct_document(root)`` for documents of plain maps, lists and scalars.

    PyYAML's constructor spends most of its time per node in generators and checks that
    plain documents do not need; strings, nulls and containers are built here directly,
    other scalars by PyYAML's own constructor. Raises :class:`_Unusual` for anything else
    (merge keys, other tags, complex keys, a scalar PyYAML refuses): :func:`_construct` then
    starts over with ``construct_document``. Iterative, like PyYAML's (it defers
    collections), so nesting depth cannot make a difference.
    """
    pending: list[tuple[Any, yaml.Node]] = []

    def build(node: yaml.Node) -> Any:
        tag, cls = node.tag, node.__class__
        if cls is yaml.ScalarNode:
            if tag == _STR:
                return node.value
            if tag == _NULL:
                return None
            if tag in _DELEGATED_SCALARS:
                try:
                    return loader.construct_object(node)
                except Exception:  # ``!!int abc``: PyYAML's pass reports it, in its order
                    raise _Unusual from None
        elif cls is yaml.MappingNode and tag == _MAP:
            mapping: dict[Any, Any] = {}
            pending.append((mapping, node))
            return mapping
        elif cls is yaml.SequenceNode and tag == _SEQ:
            sequence: list[Any] = []
            pending.append((sequence, node))
            return sequence
        raise _Unusual

    data = build(root)
    while pending:
        container, node = pending.pop()
        if container.__class__ is list:
            container.extend([build(item) for item in node.value])
            continue
        for key_node, value_node in node.value:
            if key_node.__class__ is not yaml.ScalarNode:
                raise _Unusual
            key = key_node.value if key_node.tag == _STR else build(key_node)
            container[key] = build(value_node)
    return data


MAX_BYTES = 32 * 1024 * 1024


@dataclass(frozen=True, slots=True)
class SourceFile:
    """A file read and parsed: its data (``None`` for an empty file) and positions."""

    data: Any
    source_map: SourceMap
    text: str


def read_source(path: Path, display: str | None = None) -> SourceFile:
    """Read, decode and parse ``path``; every failure is a :class:`SourceError`."""
    name = display or str(path)
    try:
        size = path.stat().st_size
        if size > MAX_BYTES:
            raise SourceError(f"file too large ({size} bytes; the limit is {MAX_BYTES})")
        raw = path.read_bytes()
    except FileNotFoundError:
        raise SourceError("file not found") from None
    except IsADirectoryError:
        raise SourceError("is a directory, not a file") from None
    except OSError as exc:
        raise SourceError(f"cannot read file: {exc.strerror or exc}") from None
    if b"\x00" in raw:
        raise SourceError("binary file (contains NUL bytes), not a YAML or JSON document")
    try:
        text = raw.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        raise SourceError(f"not UTF-8 text (invalid byte at offset {exc.start})") from None
    data, source_map = parse_source(text, name, json_syntax=path.suffix.lower() == ".json")
    return SourceFile(data, source_map, text)


class Reporter:
    """Collects diagnostics of one file into a shared list; paths become positions.

    ``remap`` sends paths under a prefix to another file's reporter: imported ``consumes``
    entries are reported where they were written, not at the import line.
    """

    def __init__(self, source_map: SourceMap, sink: list[Diagnostic]) -> None:
        self.source_map = source_map
        self.sink = sink
        self._remaps: list[tuple[PathT, Reporter, PathT]] = []
        self._renumbered: list[tuple[PathT, PathT]] = []

    def for_file(self, source_map: SourceMap) -> Reporter:
        return Reporter(source_map, self.sink)

    def remap(self, prefix: PathT, target: Reporter, target_prefix: PathT) -> None:
        self._remaps.append((prefix, target, target_prefix))

    def renumber(self, moved: list[tuple[PathT, PathT]]) -> None:
        """Paths of the rewritten data that stand for other paths of the original file."""
        self._renumbered = moved + self._renumbered

    def __call__(self, path: PathT, message: str, severity: Severity = "warning") -> None:
        for new, old in self._renumbered:
            if path[: len(new)] == new:
                path = (*old, *path[len(new) :])
                break
        for prefix, target, target_prefix in self._remaps:
            if path[: len(prefix)] == prefix:
                target((*target_prefix, *path[len(prefix) :]), message, severity)
                return
        self.sink.append(self.source_map.diagnostic_at(path, severity, message))

    def error(self, path: PathT, message: str) -> None:
        self(path, message, "error")

    def warning(self, path: PathT, message: str) -> None:
        self(path, message, "warning")
