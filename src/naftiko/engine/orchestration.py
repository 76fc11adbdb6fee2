"""Orchestration: ``steps`` (call, lookup) and step ``mappings``, compiled once at load.

The engine core owns the wire (request building, auth, transport, raw-format parsing);
this module owns the chain. :func:`compile_steps` turns a unit's ``steps``/``mappings``
into a :class:`CompiledSteps`; :func:`run_steps` runs it against one invocation's
:class:`~naftiko.templating.Scope`, calling back into the core for every ``call``
step through a :data:`StepCaller`, and returns the unit's :class:`Result`.

Semantics (reference-semantics §7, with our choices where it is unclear):

* Every step sees the caller's scope plus the outputs of all earlier steps, lookups
  included: ``{{get-ship.vessel_name}}`` and ``{{resolve-crew.role}}`` work
  in later templates and ``with`` values. A step's own ``with`` is evaluated in that
  scope and applies to that step only.
* A call step whose upstream answers >= 400, cannot be reached or times out **stops the
  chain** (the reference carries on with garbage). The result names the step
  (``Problem.step``) and keeps the upstream status and body for upstream errors.
* Consumed-operation ``outputParameters`` project a call step's output (§7.1): an object
  keeps only the named projections, an array keeps its elements and adds them.
* A lookup over an array ``lookupValue`` gives the array of matches (empty when none
  match, rather than the reference's "nothing"); a lookup with no ``outputParameters``
  gives the whole matched element (the reference gives ``{}``).
* ``mappings`` build the output (dotted ``targetName`` nests); when none resolves, the
  last call step's document goes through the unit's ``outputParameters`` instead.
* ``script`` steps are refused, never run: running author code needs a sandbox with hard
  CPU, memory, time and I/O limits, which this runtime does not ship (and ``eval`` is no
  sandbox). :func:`step_problems` reports them so the compiler fails the load with a
  position; no plan with one is ever built.
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable, Collection, Mapping, Sequence
from dataclasses import dataclass, replace
from typing import Any, Final

from naftiko import tracing
from naftiko.engine.mapping import (
    MappingError,
    OutputMapper,
    coerce_scalar,
    compile_jsonpath,
    compile_outputs,
)
from naftiko.engine.types import JSON_MEDIA_TYPE, ErrorKind, Problem, Result
from naftiko.errors import LoadTimeError
from naftiko.spec.models import CallSpec, OutputParameter, Step, StepMapping
from naftiko.templating import (
    MISSING,
    Scope,
    TemplateError,
    ValueExpr,
    compile_value,
    format_value,
)

__all__ = [
    "CallStepPlan",
    "CompiledSteps",
    "LookupStepPlan",
    "StepCaller",
    "StepResponse",
    "StepsError",
    "check_steps",
    "compile_steps",
    "execute_steps",
    "is_script_step",
    "run_steps",
    "step_call_targets",
    "step_problems",
]

log = logging.getLogger("naftiko.engine.orchestration")

STEP_TYPES: Final = frozenset({"call", "lookup", "script"})

SCRIPT_REFUSAL: Final = (
    "script steps are not supported by this runtime: running author code safely needs a "
    "sandbox with hard CPU, memory, time and I/O limits, which it does not ship. Replace "
    "the script with call/lookup steps and mappings, or run this capability on the "
    "reference engine"
)


class StepsError(ValueError, LoadTimeError):
    """Steps that cannot run; ``problems`` are the messages of :func:`check_steps`.

    ``at`` is where in the unit the first problem is (``("steps", 1)``,
    ``("mappings", 0)``), so that the compiler can report it with a line number.
    """

    def __init__(self, problems: Sequence[str], at: tuple[str | int, ...] = ()) -> None:
        super().__init__("; ".join(problems))
        self.problems = tuple(problems)
        self.at = at


# --------------------------------------------------------------------------- the seam


@dataclass(frozen=True, slots=True)
class StepResponse:
    """What the core's call-step executor hands back for one upstream answer.

    ``document`` is the body converted to JSON (per the operation's ``outputRawFormat``),
    or :data:`~naftiko.templating.MISSING` when there was none or it could not be
    read (then nothing is stored for the step). ``body`` is what an error result shows
    (the parsed document, or the raw bytes); ``media_type`` is the upstream's.
    """

    status: int
    document: Any = MISSING
    body: Any = None
    media_type: str | None = None


StepCaller = Callable[[str, Scope], Awaitable["StepResponse | Problem"]]
"""``(operation "ns.op", step scope) -> StepResponse | Problem``; never raises.

The scope already holds the step's ``with`` values (highest after binds), the caller's
inputs and every earlier step output: the core renders the consumed operation's
parameters, path, body and auth from it exactly as for a simple ``call``.
"""


# --------------------------------------------------------------------------- plans


@dataclass(frozen=True, slots=True)
class CallStepPlan:
    name: str
    operation: str  # "namespace.operation"
    with_values: tuple[tuple[str, ValueExpr], ...]
    named: tuple[tuple[str, OutputMapper], ...]  # consumed outputParameters with a name
    unnamed: OutputMapper | None  # the first unnamed consumed outputParameter


@dataclass(frozen=True, slots=True)
class LookupStepPlan:
    name: str
    index: str
    match: str
    path: Callable[[Any], Any] | None  # ``$.step.field`` over the step outputs
    template: ValueExpr | None  # any other lookupValue: rendered against the scope
    fields: tuple[str, ...]


StepPlan = CallStepPlan | LookupStepPlan


@dataclass(frozen=True, slots=True)
class _MappingPlan:
    target: tuple[str, ...]
    path: Callable[[Any], Any] | None
    template: ValueExpr | None
    type: str | None  # declared scalar type of a top-level output of the same name


@dataclass(frozen=True, slots=True)
class CompiledSteps:
    """A unit's compiled orchestration: steps in order, mappings, fallback shaping."""

    steps: tuple[StepPlan, ...]
    mappings: tuple[_MappingPlan, ...]
    fallback: OutputMapper | None  # the unit's outputParameters, when mappings give nothing

    @property
    def operations(self) -> tuple[str, ...]:
        """Every consumed operation a call step targets (for load-time checks)."""
        return tuple(s.operation for s in self.steps if isinstance(s, CallStepPlan))

    @property
    def templates(self) -> tuple[ValueExpr, ...]:
        """The lookup values and mappings that read the scope (input derivation)."""
        sources = [*self.steps, *self.mappings]
        return tuple(s.template for s in sources if not isinstance(s, CallStepPlan) and s.template)


# --------------------------------------------------------------------------- checks


def _call_target(step: Step) -> str | None:
    call = step.call
    if isinstance(call, CallSpec):
        return call.operation or None
    return call or None


def is_script_step(step: Step) -> bool:
    """A ``script`` step: refused at load in every mode (see the module docstring)."""
    return (step.type or "").strip().lower() == "script"


def step_call_targets(steps: Sequence[Step]) -> list[str]:
    """The ``ns.op`` targets of the call steps (the compiler resolves them)."""
    return [t for s in steps if s.type == "call" and (t := _call_target(s))]


def check_steps(steps: Sequence[Step]) -> list[str]:
    """Problems that make ``steps`` unrunnable, each naming its step; [] when fine."""
    return [message for _, message in step_problems(steps)]


def step_problems(steps: Sequence[Step]) -> list[tuple[int, str]]:
    """``(step index, problem)`` pairs; [] when the steps can run.

    Pure and cheap: the compiler calls it to report load errors with positions.
    """
    problems: list[tuple[int, str]] = []
    seen: set[str] = set()
    for position, step in enumerate(steps):
        problems += [(position, message) for message in _step_problems(step, position, seen)]
        if step.name:
            seen.add(step.name)
    return problems


def _step_problems(step: Step, position: int, seen: Collection[str]) -> list[str]:
    label = f"step {step.name!r}" if step.name else f"step #{position + 1}"
    kind = (step.type or "call").strip().lower()
    problems: list[str] = []
    if not step.name:
        problems.append(f"{label}: a step needs a 'name' (later steps refer to it)")
    elif step.name in seen:
        problems.append(f"{label}: the name is used by an earlier step")
    if kind not in STEP_TYPES:
        problems.append(f"{label}: unknown step type {step.type!r} (call, lookup or script)")
    elif kind == "script":
        problems.append(f"{label}: {SCRIPT_REFUSAL}")
    elif kind == "call":
        target = _call_target(step)
        if not target:
            problems.append(f"{label}: a call step needs 'call: <namespace>.<operation>'")
        elif target.count(".") < 1 or not all(target.split(".", 1)):
            problems.append(f"{label}: invalid call {target!r} (expected namespace.operation)")
    else:
        if not step.index:
            problems.append(f"{label}: a lookup step needs 'index' (an earlier step)")
        elif step.index not in seen:
            problems.append(f"{label}: lookup index {step.index!r} is not an earlier step")
        if not step.match:
            problems.append(f"{label}: a lookup step needs 'match' (a field of the index)")
        if not step.lookup_value:
            problems.append(f"{label}: a lookup step needs 'lookupValue'")
    return problems


# --------------------------------------------------------------------------- compile


def _is_path(value: str) -> bool:
    return value == "$" or value.startswith(("$.", "$["))


def _compile_source(
    raw: str, where: str, namespaces: Collection[str], at: tuple[str | int, ...]
) -> tuple[Callable[[Any], Any] | None, ValueExpr | None]:
    """A ``$.step.field`` path over the step outputs, or a template/input reference."""
    text = raw.strip()
    try:
        if _is_path(text):
            return compile_jsonpath(text), None
        return None, compile_value(raw, namespaces)
    except (MappingError, TemplateError) as exc:
        raise StepsError([f"{where}: {exc}"], at) from None


def _compile_call(
    step: Step,
    operation: str,
    outputs: Sequence[OutputParameter],
    namespaces: Collection[str],
    at: tuple[str | int, ...],
) -> CallStepPlan:
    raw_with = dict(step.with_)
    if isinstance(step.call, CallSpec):
        raw_with.update(step.call.with_)  # the object form's ``with`` is merged last
    with_values: list[tuple[str, ValueExpr]] = []
    for key, raw in raw_with.items():
        try:
            with_values.append((str(key), compile_value(raw, namespaces)))
        except TemplateError as exc:
            message = f"step {step.name!r}: with.{key}: {exc}"
            raise StepsError([message], (*at, "with", key)) from None
    named: list[tuple[str, OutputMapper]] = []
    unnamed: OutputMapper | None = None
    try:
        for param in outputs:
            if param.name:
                named.append((param.name, compile_outputs([param])))
            elif unnamed is None:
                unnamed = compile_outputs([param])
    except MappingError as exc:
        raise StepsError([f"step {step.name!r}: consumed {operation}: {exc}"], at) from None
    return CallStepPlan(step.name, operation, tuple(with_values), tuple(named), unnamed)


def _lookup_fields(step: Step) -> tuple[str, ...]:
    fields: list[str] = []
    for item in step.output_parameters:
        name = item if isinstance(item, str) else item.name
        if name:
            fields.append(name)
    return tuple(fields)


def compile_steps(
    steps: Sequence[Step],
    mappings: Sequence[StepMapping] = (),
    *,
    consumed_outputs: Mapping[str, Sequence[OutputParameter]] | None = None,
    outputs: Sequence[OutputParameter] = (),
    input_namespaces: Collection[str] = (),
    fallback: OutputMapper | None = None,
) -> CompiledSteps:
    """Compile a unit's ``steps`` and ``mappings``; raises :class:`StepsError`.

    ``consumed_outputs`` maps ``"ns.op"`` to the consumed operation's
    ``outputParameters`` (call-step projection); ``outputs`` are the unit's own
    ``outputParameters`` (scalar typing of mapped values, fallback shaping);
    ``input_namespaces`` are the namespaces whose ``ns.x`` means "input ``x``" (the
    adapter's, or the aggregate's inside a function); ``fallback`` is the unit's
    compiled output mapper when the caller has one already.
    """
    problems = step_problems(steps)
    if problems:
        raise StepsError([message for _, message in problems], ("steps", problems[0][0]))
    namespaces = frozenset(input_namespaces)
    projections = consumed_outputs or {}
    plans: list[StepPlan] = []
    for index, step in enumerate(steps):
        at = ("steps", index)
        if (step.type or "call").strip().lower() == "call":
            operation = _call_target(step) or ""
            outputs_of = projections.get(operation, ())
            plans.append(_compile_call(step, operation, outputs_of, namespaces, at))
            continue
        where = f"step {step.name!r}: lookupValue"
        path, template = _compile_source(
            step.lookup_value or "", where, namespaces, (*at, "lookupValue")
        )
        plans.append(
            LookupStepPlan(
                name=step.name,
                index=step.index or "",
                match=step.match or "",
                path=path,
                template=template,
                fields=_lookup_fields(step),
            )
        )
    scalar_types = {
        p.name: p.type.lower()
        for p in outputs
        if p.name and isinstance(p.type, str) and p.type.lower() in _SCALARS
    }
    compiled_mappings: list[_MappingPlan] = []
    for index, mapping in enumerate(mappings):
        target = tuple(part for part in mapping.target_name.split(".") if part)
        if not target:
            raise StepsError([f"mappings[{index}]: empty targetName"], ("mappings", index))
        where = f"mappings[{index}] ({mapping.target_name})"
        path, template = _compile_source(mapping.value, where, namespaces, ("mappings", index))
        type_ = scalar_types.get(mapping.target_name) if len(target) == 1 else None
        compiled_mappings.append(_MappingPlan(target, path, template, type_))
    if fallback is None and outputs:
        try:
            fallback = compile_outputs(outputs)
        except MappingError as exc:
            raise StepsError([f"outputParameters: {exc}"], ("outputParameters",)) from None
    if fallback is not None and not fallback.has_outputs:
        fallback = None
    return CompiledSteps(tuple(plans), tuple(compiled_mappings), fallback)


_SCALARS: Final = frozenset({"string", "number", "integer", "boolean"})


# --------------------------------------------------------------------------- run


def _step_scope(base: Scope, plan: CallStepPlan, steps: Mapping[str, Any]) -> Scope:
    """``base`` with the earlier outputs and this step's own ``with`` (a fresh layer)."""
    scope = base.with_child(steps=steps)
    if not plan.with_values:
        return scope
    merged = dict(base.with_values)
    for key, expr in plan.with_values:
        value = expr.evaluate(scope)
        if value is not MISSING:
            merged[key] = value
    return scope.with_child(with_values=merged)


def _project(plan: CallStepPlan, document: Any) -> Any:
    """§7.1: consumed ``outputParameters`` applied to a call step's document."""
    if not plan.named:
        if plan.unnamed is not None and not isinstance(document, list):
            return plan.unnamed.apply(document)
        return document
    if isinstance(document, list):
        return [
            {**element, **{name: m.apply(element) for name, m in plan.named}}
            if isinstance(element, dict)
            else element
            for element in document
        ]
    return {name: mapper.apply(document) for name, mapper in plan.named}


def _pick(element: Mapping[str, Any], fields: tuple[str, ...]) -> dict[str, Any]:
    if not fields:
        return dict(element)
    return {field: element.get(field) for field in fields}


def _find(index: Any, match: str, wanted: str) -> Mapping[str, Any] | None:
    """The first object of ``index`` whose ``match`` field equals ``wanted`` as text."""
    candidates = index if isinstance(index, list) else [index]
    for candidate in candidates:
        if isinstance(candidate, Mapping) and match in candidate:
            value = candidate[match]
            if value is not None and format_value(value) == wanted:
                return candidate
    return None


def _source_value(
    path: Callable[[Any], Any] | None,
    template: ValueExpr | None,
    scope: Scope,
    outputs: Mapping[str, Any],
) -> Any:
    """A ``$.step.field`` path over the step outputs, else the template over the scope."""
    if path is not None:
        return path(outputs)
    return template.evaluate(scope) if template is not None else MISSING


def _lookup(plan: LookupStepPlan, scope: Scope, outputs: Mapping[str, Any]) -> Any:
    """The lookup's output, or MISSING when nothing matched a scalar lookup value."""
    wanted = _source_value(plan.path, plan.template, scope, outputs)
    index = outputs.get(plan.index, MISSING)
    if isinstance(wanted, list):
        if index is MISSING:
            return []
        found = (_find(index, plan.match, format_value(item)) for item in wanted)
        return [_pick(match, plan.fields) for match in found if match is not None]
    if wanted is None or wanted is MISSING or index is MISSING:
        return MISSING
    match = _find(index, plan.match, format_value(wanted))
    return MISSING if match is None else _pick(match, plan.fields)


def _assign(target: dict[str, Any], path: tuple[str, ...], value: Any) -> None:
    node = target
    for part in path[:-1]:
        child = node.get(part)
        if not isinstance(child, dict):
            child = {}
            node[part] = child
        node = child
    node[path[-1]] = value


def _apply_mappings(plan: CompiledSteps, scope: Scope, outputs: Mapping[str, Any]) -> Any:
    """The mapped output object, or MISSING when no mapping resolved."""
    built: dict[str, Any] = {}
    for mapping in plan.mappings:
        value = _source_value(mapping.path, mapping.template, scope, outputs)
        if value is None or value is MISSING:
            continue
        if mapping.type is not None:
            value = coerce_scalar(value, mapping.type)
        _assign(built, mapping.target, value)
    return built if built else MISSING


def _upstream_failure(step: str, operation: str, response: StepResponse) -> Result:
    problem = Problem(
        kind=ErrorKind.UPSTREAM,
        title="Upstream error",
        detail=f"step {step!r} ({operation}): the upstream answered {response.status}",
        status=response.status,
        step=step,
    )
    return Result(
        status=response.status,
        body=response.body,
        media_type=response.media_type or JSON_MEDIA_TYPE,
        is_error=True,
        problem=problem,
        upstream_status=response.status,
    )


async def execute_steps(plan: CompiledSteps, scope: Scope, call: StepCaller) -> Result:
    """Run the chain for one invocation (see the module docstring). Never raises.

    ``scope`` is the unit's scope (binds, the unit's ``with``, the caller's inputs).
    Success is status 200 with the mapped output, or the last call's document shaped
    by the unit's ``outputParameters`` when no mapping resolved.
    """
    outputs: dict[str, Any] = dict(scope.steps)
    last_document: Any = MISSING
    last_status: int | None = None
    for step in plan.steps:
        if isinstance(step, LookupStepPlan):
            traced = tracing.step_started(step.name, "lookup") if tracing.ENABLED else None
            value = _lookup(step, scope.with_child(steps=outputs), outputs)
            if value is not MISSING:
                outputs[step.name] = value
            if traced is not None:
                tracing.step_ended(traced)
            continue
        step_scope = _step_scope(scope, step, outputs)
        traced = (
            tracing.step_started(step.name, "call", step.operation) if tracing.ENABLED else None
        )
        answer: StepResponse | Problem | None = None
        try:
            answer = await call(step.operation, step_scope)
        except Exception:  # the caller must not raise; a defect must not leak details
            log.exception("step %r (%s) raised", step.name, step.operation)
            answer = Problem(
                ErrorKind.INTERNAL, "Internal error", "The step could not be run.", 500
            )
        finally:
            if traced is not None:  # ended on cancellation too: its context is detached
                tracing.step_ended(traced, answer)
        if isinstance(answer, Problem):
            return Result.failure(replace(answer, step=step.name))
        last_status = answer.status
        if answer.status >= 400:
            return _upstream_failure(step.name, step.operation, answer)
        last_document = answer.document
        if answer.document is not MISSING:
            outputs[step.name] = _project(step, answer.document)
    final_scope = scope.with_child(steps=outputs)
    body = _apply_mappings(plan, final_scope, outputs) if plan.mappings else MISSING
    if body is MISSING:
        if last_document is MISSING:
            body = None
        elif plan.fallback is not None:
            body = plan.fallback.apply(last_document, final_scope)
        else:
            body = last_document
    return Result(status=200, body=body, upstream_status=last_status)


# --------------------------------------------------------------------------- engine seam


async def run_steps(*, engine: Any, unit: Any, plan: Any, scope: Scope, inputs: Any) -> Result:
    """The engine's seam (``Engine._steps``): run a ``StepsPlan``. Never raises.

    ``plan.steps`` was compiled at load. Call steps go through ``engine.call_step``
    (request building, auth, transport, ``outputRawFormat``) with the step's scope.
    """

    async def call(target: str, step_scope: Scope) -> StepResponse | Problem:
        operation = engine.compiled.operation(target)
        if operation is None:
            return Problem(
                ErrorKind.NOT_IMPLEMENTED,
                "Not implemented",
                f"'{unit.id}' calls '{target}', which no consumed API declares",
                501,
            )
        return await engine.call_step(operation, step_scope, inputs)

    return await execute_steps(plan.steps, scope, call)
