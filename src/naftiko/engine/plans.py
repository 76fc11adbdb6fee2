"""The frozen plans the compiler produces and the engine executes.

Consumed APIs become :class:`ConsumesPlan`/:class:`OperationPlan` (ready to build
requests); exposed things become :class:`~naftiko.engine.types.Unit` whose ``plan`` is
one :class:`UnitPlan` subclass per execution mode (call, mock, steps, ref, 501).
Everything here is built once by ``naftiko.engine.compile`` and never mutated.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

import httpx
from jsonschema import Draft202012Validator

from naftiko.engine.mapping import OutputMapper
from naftiko.engine.orchestration import CompiledSteps
from naftiko.engine.outbound_auth import OAuth2TokenCache
from naftiko.engine.templating import Scope, Template, ValueExpr
from naftiko.engine.types import AdapterPlan, Unit
from naftiko.spec.diagnostics import Diagnostic
from naftiko.spec.models import Authentication

__all__ = [
    "BodyPlan",
    "CallPlan",
    "CompiledCapability",
    "ConsumesPlan",
    "MockPlan",
    "NotImplementedPlan",
    "OperationPlan",
    "ParamPlan",
    "PartPlan",
    "PathTemplate",
    "RefPlan",
    "StepsPlan",
    "UnitPlan",
    "find_operation",
]

# --------------------------------------------------------------------------- consumes


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
    value: Any  # compiled tree (see ``naftiko.engine.consumes.compile_tree``)
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
class OperationPlan:
    """A consumed operation, ready to build requests (see ``naftiko.engine.request``)."""

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
    # (``naftiko.engine.wire.plain_origin``); None: each URL is examined on its own.
    plain: tuple[tuple[bytes, str, int], bytes, int] | None = None

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


# --------------------------------------------------------------------------- units


@dataclass(frozen=True, slots=True)
class UnitPlan:
    """What every execution mode shares (opaque to adapters, read by ``invoke``)."""

    unit_id: str
    validator: Draft202012Validator
    scope: Scope  # binds + the unit's input namespaces; children hold per-request layers
    with_: Mapping[str, ValueExpr]
    outputs: OutputMapper | None  # None: no outputParameters
    defaults: Mapping[str, Any]  # input name -> schema default
    # True only when ``validator`` would find no error (then it is not run); see
    # ``compile.quick_check``. None: always ask the validator.
    quick_valid: Callable[[Mapping[str, Any]], bool] | None = field(default=None, kw_only=True)
    # The caller inputs its templates may see: the declared and derived inputs and the
    # names the document's templates read, never a step's name (issue 15). Anything
    # else a caller sends is dropped after validation. None: every input (tests).
    visible: frozenset[str] | None = field(default=None, kw_only=True)


@dataclass(frozen=True, slots=True)
class CallPlan(UnitPlan):
    """``call``: one consumed operation; ``passthrough`` when the mapping is the identity."""

    operation: OperationPlan
    passthrough: bool


@dataclass(frozen=True, slots=True)
class MockPlan(UnitPlan):
    """No call and no steps: the outputs' ``value``/``const`` over the inputs."""


@dataclass(frozen=True, slots=True)
class StepsPlan(UnitPlan):
    """Orchestration, compiled at load. Executed by ``naftiko.engine.orchestration.
    run_steps(engine=, unit=, plan=, scope=, inputs=) -> Result`` (the scope holds binds,
    with values and inputs); ``Engine.call_operation`` serves its call steps."""

    steps: CompiledSteps


@dataclass(frozen=True, slots=True)
class RefPlan(UnitPlan):
    """``ref``: an aggregate function runs with this unit's inputs and ``with`` values."""

    function_id: str


@dataclass(frozen=True, slots=True)
class NotImplementedPlan(UnitPlan):
    """The unit cannot run (missing call target, nothing to do); answers 501."""

    reason: str


# --------------------------------------------------------------------------- result


@dataclass(frozen=True, slots=True)
class CompiledCapability:
    """A capability ready to serve. ``units`` are the exposed units by id (REST
    operations, MCP tools and dynamic resources), ``functions`` the aggregate functions
    by ``<aggregate namespace>.<name>``; ``consumes``/``operations`` are engine-private."""

    loaded: Any  # naftiko.spec.loader.LoadedCapability
    adapters: tuple[AdapterPlan, ...]
    units: Mapping[str, Unit]
    functions: Mapping[str, Unit]
    consumes: Mapping[str, ConsumesPlan] = field(default_factory=dict)
    operations: Mapping[str, OperationPlan] = field(default_factory=dict)  # "ns.op"
    token_cache: OAuth2TokenCache = field(default_factory=OAuth2TokenCache)
    warnings: tuple[Diagnostic, ...] = ()

    def operation(self, target: str) -> OperationPlan | None:
        """The consumed operation ``ns.op`` (orchestration call steps look it up)."""
        return find_operation(self.operations, self.consumes, target)
