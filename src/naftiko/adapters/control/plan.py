"""The control adapter's plan: its ``management`` and ``observability`` settings.

``compile_control_plan`` is the control entry of the plan compilers
(``naftiko.adapters.exposes``); the runtime also makes one for ``--control-port``.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from naftiko.compile.capability import Compiler
from naftiko.compile.context import PathT
from naftiko.engine.types import AdapterPlan
from naftiko.spec.models import ExposesControl

__all__ = ["CONTROL_NAMESPACE", "ControlAdapterPlan", "compile_control_plan"]

CONTROL_NAMESPACE = "control"


@dataclass(frozen=True, slots=True)
class ControlAdapterPlan(AdapterPlan):
    management: Mapping[str, Any] = field(default_factory=dict)
    observability: Mapping[str, Any] = field(default_factory=dict)


def compile_control_plan(
    spec: ExposesControl, path: PathT, compiler: Compiler
) -> ControlAdapterPlan:
    """The control adapter's plan of ``spec`` (nothing in it is reported at load time)."""
    return ControlAdapterPlan(
        type="control",
        namespace=spec.namespace or CONTROL_NAMESPACE,
        address=spec.address,
        port=spec.port,
        description=None,
        authentication=spec.authentication,
        management=(
            spec.management.model_dump(by_alias=True, exclude_none=True)
            if spec.management is not None
            else {}
        ),
        observability=dict(spec.observability or {}),
    )
