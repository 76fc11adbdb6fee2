"""The load-time check of consumed ``outputRawFormat`` values, made once every unit is
compiled: whether an unreadable format matters depends on which units read the body."""

from __future__ import annotations

from collections.abc import Collection, Mapping

from naftiko.compile.context import CompileContext
from naftiko.upstream.plans import OperationPlan

__all__ = ["check_formats"]


def check_formats(
    ctx: CompileContext, operations: Mapping[str, OperationPlan], mapped: Collection[str]
) -> None:
    """An unreadable ``outputRawFormat`` only matters where the body is read: units
    that map it (or call it in a step; ``mapped`` holds those operations' ids) answer
    501; passthrough units forward it."""
    for op_id, op in operations.items():
        if op.format_problem is None:
            continue
        where = (*op.where, "outputRawFormat")
        if op_id in mapped:
            ctx.confined(
                where,
                f"units that read the body of '{op_id}' answer 501: {op.format_problem}",
            )
        else:
            ctx.warning(where, f"operation '{op_id}': {op.format_problem} (body passes through)")
