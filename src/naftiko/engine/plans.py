"""The frozen plans the compiler produces and the engine executes.

Exposed things become :class:`~naftiko.engine.types.Unit` whose ``plan`` is
one :class:`UnitPlan` subclass per execution mode (call, mock, steps, ref, 501).
Everything here is built once by ``naftiko.compile.capability`` and never mutated.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

from naftiko.engine.mapping import OutputMapper
from naftiko.engine.orchestration import CompiledSteps
from naftiko.engine.types import AdapterPlan, Unit
from naftiko.spec.diagnostics import Diagnostic
from naftiko.templating import Scope, ValueExpr
from naftiko.upstream.outbound_auth import OAuth2TokenCache
from naftiko.upstream.plans import ConsumesPlan, OperationPlan, find_operation

__all__ = [
    "CallPlan",
    "CompiledCapability",
    "MockPlan",
    "NotImplementedPlan",
    "RefPlan",
    "StepsPlan",
    "UnitPlan",
]

# --------------------------------------------------------------------------- units


@dataclass(frozen=True, slots=True)
class UnitPlan:
    """What every execution mode shares (opaque to adapters, read by ``invoke``)."""

    unit_id: str
    validator: Any  # ``iter_errors`` and ``schema``: a (lazily made) Draft202012Validator
    scope: Scope  # binds + the unit's input namespaces; children hold per-request layers
    with_: Mapping[str, ValueExpr]
    outputs: OutputMapper | None  # None: no outputParameters
    defaults: Mapping[str, Any]  # input name -> schema default
    # True only when ``validator`` would find no error (then it is not run); see
    # ``compile.validators.quick_check``. None: always ask the validator.
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
    # May be sent again after a connection failure or a 429/502/503/504 (decided at load
    # by ``upstream.resilience.is_retry_safe``: the method, or the unit's hints).
    retry_safe: bool = field(default=False, kw_only=True)


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
