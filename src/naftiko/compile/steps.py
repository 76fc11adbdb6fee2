"""A unit's orchestration steps, checked and compiled at load time."""

from __future__ import annotations

from collections.abc import Mapping, Sequence

from naftiko.compile.context import CompileContext
from naftiko.compile.unit_spec import UnitSpec
from naftiko.engine.mapping import OutputMapper
from naftiko.engine.orchestration import (
    CompiledSteps,
    StepsError,
    compile_steps,
    is_script_step,
    step_problems,
)
from naftiko.spec.models import OutputParameter

__all__ = ["unit_steps"]


def unit_steps(
    ctx: CompileContext,
    spec: UnitSpec,
    outputs: OutputMapper | None,
    consumed_outputs: Mapping[str, Sequence[OutputParameter]],
) -> tuple[CompiledSteps | None, str | None]:
    """``(compiled steps, why the unit cannot run)``; both None without steps.

    Only a unit without ``call`` or ``ref`` runs its steps, but the steps are checked
    whenever they are written. A ``script`` step is a load error (never loads
    silently); other structural problems (unknown step type, a call that is no
    ``namespace.operation``...) make the unit answer 501. Templates and JSONPaths
    that do not parse are load errors, as everywhere else.
    """
    source, path = spec.source, spec.path
    steps = source.steps
    if not steps:
        return None, None
    problems = step_problems(steps)
    if any(is_script_step(steps[index]) for index, _ in problems):
        for index, message in problems:
            ctx.error((*path, "steps", index), message)
        return None, None
    if problems:
        who = f"'{spec.unit_id}' answers"
        if spec.kind == "function":
            who = f"function '{spec.unit_id}' and the units that use it answer"
        for index, message in problems:
            ctx.confined((*path, "steps", index), f"{who} 501: {message}")
        return None, "; ".join(message for _, message in problems)
    try:
        steps_plan = compile_steps(
            steps,
            source.mappings,
            consumed_outputs=consumed_outputs,
            outputs=source.output_parameters,
            input_namespaces=spec.namespaces,
            fallback=outputs,
        )
    except StepsError as exc:
        for message in exc.problems:
            ctx.error((*path, *exc.at), message)
        return None, None
    return steps_plan, None
