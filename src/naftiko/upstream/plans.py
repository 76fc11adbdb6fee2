"""The frozen plans of consumed APIs: what ``naftiko.upstream.request`` builds requests from.

Consumed APIs become :class:`ConsumesPlan`/:class:`OperationPlan`, compiled once by
``naftiko.compile.consumes`` and never mutated.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

import httpx

from naftiko.spec.models import Authentication
from naftiko.templating import Template, ValueExpr

__all__ = [
    "BinaryLimit",
    "BodyPlan",
    "ConsumesPlan",
    "OperationPlan",
    "ParamPlan",
    "PartPlan",
    "PathTemplate",
    "binary_limit",
    "find_operation",
]


@dataclass(frozen=True, slots=True)
class ParamPlan:
    """A consumed ``inputParameter``: where it goes and how its value is found."""

    name: str
    location: str  # path | query | header | cookie | body | environment | ...
    value: ValueExpr | None  # ``value``/``template``; None: the scope value of ``name``
    type: str | None
    required: bool
    description: str | None
    # Where it lands on the request: a later level's parameter with the same slot replaces
    # an earlier one (header names compare without case).
    slot: tuple[str, str] = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        name = self.name.lower() if self.location == "header" else self.name
        object.__setattr__(self, "slot", (self.location, name))


@dataclass(frozen=True, slots=True)
class PathTemplate:
    """A URL path with ``{x}``/``{{x}}`` variables: literal text and ``(name, shown)``
    parts (``shown``: the name a caller knows, ``id`` for ``tools.id``)."""

    text: str
    parts: tuple[str | tuple[str, str], ...]

    @property
    def variables(self) -> tuple[str, ...]:
        return tuple(p[0] for p in self.parts if isinstance(p, tuple))


@dataclass(frozen=True, slots=True)
class PartPlan:
    """One ``multipartForm`` part."""

    name: str
    value: Any  # compiled tree (see ``naftiko.compile.consumes.compile_tree``)
    filename: Template | None
    content_type: str | None


@dataclass(frozen=True, slots=True)
class BodyPlan:
    """An explicit request body. ``kind``: json, text, xml, sparql, form, multipart, raw."""

    kind: str
    data: Any  # compiled tree: Template leaves inside dicts/lists, or one Template
    parts: tuple[PartPlan, ...] = ()

    @property
    def references(self) -> set[str]:
        """Every reference its templates read (inputs a caller may have to send)."""
        refs = _tree_references(self.data)
        for part in self.parts:
            refs |= _tree_references(part.value)
        return refs


def _tree_references(tree: Any) -> set[str]:
    if isinstance(tree, Template):
        return set(tree.references)
    if isinstance(tree, Mapping):
        return {ref for value in tree.values() for ref in _tree_references(value)}
    if isinstance(tree, list):
        return {ref for value in tree for ref in _tree_references(value)}
    return set()


@dataclass(frozen=True, slots=True)
class BinaryLimit:
    """A ``maxBinarySize``: the byte count, and the size as the document writes it."""

    max_bytes: int
    text: str

    @property
    def described(self) -> str:
        """Names the limit in error messages: ``maxBinarySize 5MiB (5242880 bytes)``."""
        return f"maxBinarySize {self.text} ({self.max_bytes} bytes)"


_SIZE = re.compile(r"^(\d+(?:\.\d+)?)(B|KiB|MiB|GiB)$")
_UNITS = {"B": 1, "KiB": 1024, "MiB": 1024**2, "GiB": 1024**3}


def binary_limit(text: str) -> BinaryLimit | None:
    """``5MiB`` -> its byte count (the schema's ``BinarySize`` pattern), else None."""
    found = _SIZE.match(text.strip())
    if found is None:
        return None
    return BinaryLimit(int(float(found.group(1)) * _UNITS[found.group(2)]), text.strip())


@dataclass(frozen=True, slots=True)
class OperationPlan:
    """A consumed operation, ready to build requests (see ``naftiko.upstream.request``)."""

    namespace: str
    name: str
    method: str
    path: PathTemplate
    params: tuple[ParamPlan, ...]  # consumes-, resource-, then operation-level
    body: BodyPlan | None
    output_raw_format: str | None
    output_schema: str | None
    base_dir: str
    # Why its body cannot be read (protobuf, avro without schema...): units that map it
    # answer 501, passthrough units still forward the bytes.
    format_problem: str | None = None
    where: tuple[str | int, ...] = ()  # its position in the document, for diagnostics
    # Origin, Host header and target offset shared by every URL built from its namespace's
    # base URI and ``path``, when none needs httpx's URL rules
    # (``naftiko.upstream.wire.fixed_origin_of``); None: each URL is examined on its own.
    fixed_origin: tuple[tuple[bytes, str, int], bytes, int] | None = None
    # ``outputRawFormat: binary``: the body is bytes that nothing parses or maps. Its
    # declared ``outputMediaType`` (None: the upstream's Content-Type) and its own
    # ``maxBinarySize`` (bytes, and the text as written, for messages), if any.
    binary: bool = False
    media_type: str | None = None
    max_binary: BinaryLimit | None = None

    @property
    def id(self) -> str:
        return f"{self.namespace}.{self.name}"

    @property
    def label(self) -> str:
        """``POST /v2/oauth/token/``: names the call in messages (no rendered values)."""
        return f"{self.method} {self.path.text or '/'}"


@dataclass(frozen=True, slots=True)
class ConsumesPlan:
    """A consumed API: base URI (binds already rendered), auth, operations by name."""

    namespace: str
    base_uri: str | None  # None: it references something that is not bound
    params: tuple[ParamPlan, ...]  # consumes-level: applied to every request and forward
    authentication: Authentication | None
    static_auth: httpx.Auth | None  # built once when every field is bind-only or literal
    auth_is_static: bool
    operations: Mapping[str, OperationPlan]
    # Why no request may be sent (unsupported authentication...): every operation of the
    # namespace answers 501 with it rather than going out without credentials.
    unavailable: str | None = None


def find_operation(
    operations: Mapping[str, OperationPlan], consumes: Mapping[str, ConsumesPlan], target: str
) -> OperationPlan | None:
    """The consumed operation ``ns.op``; namespaces may hold dots (longest one wins)."""
    found = operations.get(target)
    if found is not None:
        return found
    for namespace in sorted(consumes, key=len, reverse=True):
        if target.startswith(namespace + "."):
            return consumes[namespace].operations.get(target[len(namespace) + 1 :])
    return None
