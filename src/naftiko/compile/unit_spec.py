"""What the core compiler needs to know of one unit: :class:`UnitSpec`, which an
adapter's plan compiler builds for each unit it serves, and :class:`UnitSource`, the
typed view of the document entry the unit is compiled from."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from naftiko.compile.context import PathT
from naftiko.engine.types import InputField, UnitKind
from naftiko.spec.models import (
    AggregateFunction,
    CallSpec,
    ExposedOperation,
    McpResource,
    McpTool,
    OutputParameter,
    Step,
    StepMapping,
)
from naftiko.upstream.plans import BinaryLimit

__all__ = ["UnitEntry", "UnitSource", "UnitSpec"]

# The document entries a unit is compiled from.
UnitEntry = ExposedOperation | McpTool | McpResource | AggregateFunction


@dataclass(frozen=True, slots=True)
class UnitSource:
    """The parts of a document entry that say what a unit does. Entries that cannot
    say something leave it empty: only REST operations have a ``method``, functions and
    MCP resources no ``ref``, only exposed entries ``label`` and ``hints``."""

    name: str | None
    label: str | None
    description: str | None
    call: str | CallSpec | None
    with_: Mapping[str, Any]
    ref: str | None
    steps: tuple[Step, ...]
    mappings: tuple[StepMapping, ...]
    output_parameters: tuple[OutputParameter, ...]
    method: str | None
    hints: Any  # the entry's ``hints`` block (``McpToolHints``), or None
    output_media_type: str | None = None  # a flow's, overriding its operation's (beta1)

    @classmethod
    def of(cls, entry: UnitEntry) -> UnitSource:
        return cls(
            name=entry.name,
            label=getattr(entry, "label", None),
            description=entry.description,
            call=entry.call,
            with_=entry.with_,
            ref=getattr(entry, "ref", None),
            steps=tuple(entry.steps or ()),
            mappings=tuple(entry.mappings or ()),
            output_parameters=tuple(entry.output_parameters or ()),
            method=getattr(entry, "method", None),
            hints=getattr(entry, "hints", None),
            output_media_type=getattr(entry, "output_media_type", None),
        )

    @property
    def call_target(self) -> str | None:
        """The ``namespace.operation`` the entry calls, if any."""
        return self.call.operation if isinstance(self.call, CallSpec) else self.call

    @property
    def all_with(self) -> dict[str, Any]:
        """The entry's ``with`` values, a ``call``'s own ``with`` winning."""
        if isinstance(self.call, CallSpec):
            return {**self.with_, **self.call.with_}
        return dict(self.with_)


@dataclass(frozen=True, slots=True)
class UnitSpec:
    """One unit as its adapter's plan compiler describes it.

    ``located``: the caller places inputs in an HTTP request (path, query, header,
    cookie, body; ``route_vars`` are the path's) rather than passing named arguments.
    ``namespaces``: the names templates may read caller inputs under (``rest``,
    ``tools``, the adapter's own). ``fallback_name``: the unit's name when neither the
    entry nor a ``ref``'d function gives one.
    """

    source: UnitSource
    kind: UnitKind
    unit_id: str
    adapter_ns: str
    namespaces: frozenset[str]
    declared: tuple[InputField, ...]
    path: PathT
    located: bool
    route_vars: tuple[str, ...] = ()
    fallback_name: str = ""
    # The adapter's ``maxBinarySize``, for binary units whose operation declares none.
    max_binary: BinaryLimit | None = None
