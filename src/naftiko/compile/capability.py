"""Load-time compilation of a capability into executable units and, through each
adapter's plan compiler, adapter plans.

Everything a request needs is prepared here, once: templates, ``with`` values, URL
templates, output mappers, orchestration steps, input JSON Schemas and their validators.
A document error (template syntax, JSONPath, a ``script`` step, or one an adapter's plan
compiler finds) is a :class:`LoadError` with file:line diagnostics.

A problem confined to some units does not stop the others (lenient mode): a ``call`` or
``ref`` that matches nothing, an unsupported consumed authentication, unknown step types
or malformed steps, an ``outputRawFormat`` that cannot be read where the body is mapped.
Those units compile to plans that answer 501 with the reason, after a load warning
saying so (``CompileContext.confined``); in strict mode each is an error.

The stages: consumed APIs (``naftiko.compile.consumes``), aggregate functions, then the
``exposes`` entries in document order, each by its adapter's plan compiler (given by the
caller: this layer names no adapter), which calls :meth:`Compiler.exposed` with a
:class:`UnitSpec` for each unit it serves; then the check of consumed output formats.

Each job has its module: unit assembly (``units``), the unit's inputs (``inputs``),
which inputs its templates see (``visibility``), its steps (``steps``), its validators
(``validators``), the format check (``formats``); this module sequences them.
"""

from __future__ import annotations

import functools
from collections.abc import Callable, Mapping, Sequence
from typing import Any

from naftiko.compile.consumes import compile_consumes
from naftiko.compile.context import CompileContext, PathT
from naftiko.compile.formats import check_formats
from naftiko.compile.inputs import declared_inputs
from naftiko.compile.unit_spec import UnitSource, UnitSpec
from naftiko.compile.units import UnitBuilder, UnitLabels, exposed_labels, semantics_hints
from naftiko.engine.plans import CompiledCapability
from naftiko.engine.types import AdapterPlan, Unit
from naftiko.spec.diagnostics import LoadError
from naftiko.spec.loader import LoadedCapability
from naftiko.spec.models import AggregateFunction, ConsumesHttp, OutputParameter
from naftiko.upstream.plans import ConsumesPlan, OperationPlan, find_operation
from naftiko.upstream.settings import UpstreamSettings

__all__ = ["Compiler", "PlanCompiler", "UnitSource", "UnitSpec", "compile_capability"]

# An adapter's plan compiler: its ``exposes`` entry, where that entry is in the document,
# and the compiler whose :meth:`Compiler.exposed` makes (and records) each unit it serves.
# Diagnostics go through ``compiler.ctx`` in document order, as the units' own do.
PlanCompiler = Callable[[Any, PathT, "Compiler"], AdapterPlan]


class Compiler:
    """The load-time state of one capability: its compiled consumed APIs, aggregate
    functions and exposed units. Each adapter's plan compiler calls :meth:`exposed` for
    the units its ``exposes`` entry serves."""

    def __init__(self, ctx: CompileContext, consumed: Sequence[ConsumesHttp]) -> None:
        self.ctx = ctx
        self.consumes: dict[str, ConsumesPlan]
        self.operations: dict[str, OperationPlan]
        self.consumes, self.operations = compile_consumes(ctx, consumed)
        self.functions: dict[str, Unit] = {}
        self.function_specs: dict[str, AggregateFunction] = {}
        self.units: dict[str, Unit] = {}  # the exposed units by id, of every adapter
        # Not the bound ``self.find_operation``: a builder holding its compiler would make
        # a cycle, and the document's whole model would then wait for the cyclic collector
        # (off while naftiko-run starts) instead of being freed once it is compiled.
        find = functools.partial(find_operation, self.operations, self.consumes)
        self.builder = UnitBuilder(
            ctx, self.consumes, find, _consumed_outputs(consumed), self.functions
        )

    def find_operation(self, target: str) -> OperationPlan | None:
        return find_operation(self.operations, self.consumes, target)

    def compile_functions(self, aggregates: Sequence[Any]) -> None:
        for a_index, aggregate in enumerate(aggregates):
            ns = aggregate.namespace
            for f_index, fn in enumerate(aggregate.functions):
                path = ("capability", "aggregates", a_index, "functions", f_index)
                fid = f"{ns}.{fn.name}"
                if fid in self.functions:
                    self.ctx.error(path, f"duplicate aggregate function '{fid}'")
                    continue
                self.function_specs[fid] = fn
                spec = UnitSpec(
                    source=UnitSource.of(fn),
                    kind="function",
                    unit_id=fid,
                    adapter_ns=ns,
                    namespaces=frozenset({ns}),
                    declared=tuple(declared_inputs(fn.input_parameters, located=False)),
                    path=path,
                    located=False,
                )
                labels = UnitLabels(fn.name, None, fn.description, semantics_hints(fn))
                self.functions[fid] = self.builder.build(spec, labels)

    def compile_adapters(
        self, entries: Sequence[Any], compilers: Mapping[type, PlanCompiler]
    ) -> list[AdapterPlan]:
        """Each ``exposes`` entry's plan, by the plan compiler of its model's type; an
        entry no compiler reads (an unknown type, reported by the loader) has none."""
        adapters: list[AdapterPlan] = []
        for index, spec in enumerate(entries):
            compile_plan = compilers.get(type(spec))
            if compile_plan is not None:
                adapters.append(compile_plan(spec, ("capability", "exposes", index), self))
        return adapters

    def exposed(self, spec: UnitSpec) -> Unit:
        """An exposed unit, added to :attr:`units`: name, description and hints inherited
        from a ``ref``'d function when the document leaves them out."""
        unit = self.builder.build(spec, self.labels(spec.source, spec.fallback_name))
        self.units[spec.unit_id] = unit
        return unit

    def labels(self, source: UnitSource, fallback_name: str = "") -> UnitLabels:
        """How an exposed entry is named and described, a ``ref``'d function's labels
        filling what the entry leaves out."""
        function = self.function_specs.get(source.ref) if source.ref else None
        return exposed_labels(source, function, fallback_name)


def _consumed_outputs(consumed: Sequence[ConsumesHttp]) -> dict[str, Sequence[OutputParameter]]:
    """``"ns.op"`` -> the consumed operation's ``outputParameters`` (step projection)."""
    return {
        f"{consumes.namespace}.{operation.name}": operation.output_parameters
        for consumes in consumed
        for resource in consumes.resources
        for operation in resource.operations
        if operation.output_parameters
    }


def compile_capability(
    loaded: LoadedCapability,
    settings: UpstreamSettings | None = None,
    *,
    adapters: Mapping[type, PlanCompiler],
    strict: bool | None = None,
) -> CompiledCapability:
    """Compile a loaded capability; raises :class:`LoadError` listing every error.

    ``adapters`` maps each ``exposes`` model type to the plan compiler of its adapter
    (``naftiko.adapters.exposes`` holds them all).

    ``strict`` turns problems confined to some units into errors; None follows the
    loaded document (a ``strict`` attribute, set when it was loaded strictly).
    """
    if strict is None:
        strict = loaded.strict
    ctx = CompileContext(loaded, settings or UpstreamSettings(), strict=strict)
    document = loaded.document
    body = document.capability
    consumed = (
        document.consumed()
        if body is not None
        else tuple(c for c in document.consumes if isinstance(c, ConsumesHttp))
    )
    compiler = Compiler(ctx, consumed)
    plans: list[AdapterPlan] = []
    if body is not None:
        compiler.compile_functions(body.aggregates)
        plans = compiler.compile_adapters(body.exposes, adapters)
    check_formats(ctx, compiler.operations, compiler.builder.mapped_operations)
    if ctx.errors:
        raise LoadError([*ctx.errors, *ctx.warnings])
    return CompiledCapability(
        loaded=loaded,
        adapters=tuple(plans),
        units=compiler.units,
        functions=compiler.functions,
        consumes=compiler.consumes,
        operations=compiler.operations,
        token_cache=ctx.token_cache,
        warnings=tuple(ctx.warnings),
    )
