"""Every adapter's plan compiler, by the ``exposes`` model it reads, and the capability
compiled with all of them.

The core compiler (``naftiko.compile.capability``) names no adapter: it takes this
mapping and calls each entry's plan compiler in document order, so that load-time
diagnostics keep the document's order. Callers that serve or check a whole capability
(the runtime, ``naftiko validate``/``export``, the tests) use :func:`compile_capability`.
"""

from __future__ import annotations

from collections.abc import Mapping

from naftiko.adapters.control.plan import compile_control_plan
from naftiko.adapters.mcp.plan import compile_mcp_plan
from naftiko.adapters.rest.plan import compile_rest_plan
from naftiko.adapters.skill.plan import compile_skill_plan
from naftiko.compile import capability
from naftiko.engine.plans import CompiledCapability
from naftiko.spec.loader import LoadedCapability
from naftiko.spec.models import ExposesControl, ExposesMcp, ExposesRest, ExposesSkill
from naftiko.upstream.settings import UpstreamSettings

__all__ = ["PLAN_COMPILERS", "compile_capability"]

PLAN_COMPILERS: Mapping[type, capability.PlanCompiler] = {
    ExposesRest: compile_rest_plan,
    ExposesMcp: compile_mcp_plan,
    ExposesSkill: compile_skill_plan,
    ExposesControl: compile_control_plan,
}


def compile_capability(
    loaded: LoadedCapability,
    settings: UpstreamSettings | None = None,
    *,
    strict: bool | None = None,
) -> CompiledCapability:
    """``naftiko.compile.capability.compile_capability`` with every adapter's plan
    compiler; raises ``LoadError`` listing every error."""
    return capability.compile_capability(loaded, settings, adapters=PLAN_COMPILERS, strict=strict)
