"""The skill adapter's plan: the skills an ``exposes`` entry of ``type: skill`` lists.

``compile_skill_plan`` is the skill entry of the plan compilers
(``naftiko.adapters.exposes``). A skill adapter serves no unit: its tools point at the
units of sibling adapters, which agents call there.
"""

from __future__ import annotations

from dataclasses import dataclass

from naftiko.compile.capability import Compiler
from naftiko.compile.context import PathT
from naftiko.engine.types import AdapterPlan
from naftiko.spec.models import ExposedSkill, ExposesSkill

__all__ = ["SkillAdapterPlan", "compile_skill_plan"]


@dataclass(frozen=True, slots=True)
class SkillAdapterPlan(AdapterPlan):
    skills: tuple[ExposedSkill, ...] = ()
    base_dir: str = "."  # directory of the capability file, for skill locations


def compile_skill_plan(spec: ExposesSkill, path: PathT, compiler: Compiler) -> SkillAdapterPlan:
    """The skill adapter's plan of ``spec`` (``path`` unused: nothing to report)."""
    return SkillAdapterPlan(
        type="skill",
        namespace=spec.namespace,
        address=spec.address,
        port=spec.port,
        description=spec.description,
        authentication=spec.authentication,
        skills=tuple(spec.skills),
        base_dir=compiler.ctx.base_dir,
    )
