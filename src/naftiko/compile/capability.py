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
caller: this layer names no adapter), which calls :meth:`Compiler.exposed` for each unit
it serves; each unit's inputs are gathered by ``naftiko.compile.inputs``.
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Mapping, Sequence
from dataclasses import replace
from typing import Any

from jsonschema import Draft202012Validator
from jsonschema.exceptions import SchemaError

from naftiko.compile.consumes import compile_consumes, credential_fields
from naftiko.compile.context import CompileContext, PathT
from naftiko.compile.inputs import (
    InputSet,
    declared_inputs,
    input_name_of,
    input_schema,
    plainly_valid,
)
from naftiko.engine.mapping import OutputMapper
from naftiko.engine.orchestration import (
    CallStepPlan,
    CompiledSteps,
    StepsError,
    compile_steps,
    is_script_step,
    step_problems,
)
from naftiko.engine.plans import (
    CallPlan,
    CompiledCapability,
    MockPlan,
    NotImplementedPlan,
    RefPlan,
    StepsPlan,
    UnitPlan,
)
from naftiko.engine.types import (
    FORM_MEDIA_TYPE,
    MULTIPART_MEDIA_TYPE,
    AdapterPlan,
    InputField,
    Unit,
)
from naftiko.media_types import essence
from naftiko.spec.diagnostics import LoadError
from naftiko.spec.loader import LoadedCapability
from naftiko.spec.models import (
    AggregateFunction,
    Authentication,
    CallSpec,
    ConsumesHttp,
    OutputParameter,
)
from naftiko.template_syntax import has_tags
from naftiko.templating import TemplateError, ValueExpr, compile_template
from naftiko.upstream.plans import ConsumesPlan, OperationPlan, ParamPlan, find_operation
from naftiko.upstream.settings import UpstreamSettings

__all__ = ["Compiler", "PlanCompiler", "compile_capability"]


# --------------------------------------------------------------------------- helpers


# Methods whose HTTP callers send no body (see ``Compiler.unit``).
BODILESS_METHODS = frozenset({"GET", "HEAD", "DELETE", "OPTIONS"})


_BODY_METHODS = frozenset({"POST", "PUT", "PATCH", "DELETE"})


def _forwards_caller_body(
    method: str, operation: OperationPlan, declared: Sequence[InputField]
) -> bool:
    """A REST operation and the operation it calls both take a body, and neither says
    what goes in it: the author meant the caller's body (9 of 19 Notion operations)."""
    return (
        method in _BODY_METHODS
        and operation.method.upper() in _BODY_METHODS
        and operation.body is None
        and not any(p.location == "body" for p in operation.params)
        and not any(f.location == "body" for f in declared)
    )


def _with_caller_body(operation: OperationPlan) -> OperationPlan:
    """``operation`` with a consumed ``body`` parameter that reads the caller's whole body
    (``rest.body``); the unit derives its ``body`` input, and the OpenAPI document says so."""
    body = ParamPlan(
        name="body",
        location="body",
        value=None,
        type=None,
        required=False,
        description="The request body, forwarded to the upstream as sent.",
    )
    return replace(operation, params=(*operation.params, body))


def _non_empty_path_inputs(
    inputs: tuple[InputField, ...], operation: OperationPlan, with_: Mapping[str, ValueExpr]
) -> tuple[InputField, ...]:
    """String inputs that fill an upstream path segment get ``minLength: 1``.

    An empty segment would change the upstream path, so it is refused; saying so in the
    schema lets validation name the argument, and the OpenAPI document and the MCP
    input schema advertise it (schemathesis sends ``?site_id=`` otherwise).
    """
    fed: set[str] = set()
    for name, shown in (p for p in operation.path.parts if isinstance(p, tuple)):
        expr = with_.get(name)
        if expr is None:
            fed.add(shown)
        elif expr.is_input_reference:
            fed |= set(expr.input_references)
    return tuple(
        replace(f, schema={**f.schema, "minLength": 1})
        if f.name in fed and f.schema.get("type") == "string" and "minLength" not in f.schema
        else f
        for f in inputs
    )


def is_identity(params: Sequence[OutputParameter]) -> bool:
    """One output parameter mapping the whole root with nothing to shape: passthrough."""
    if len(params) != 1:
        return False
    p = params[0]
    mapping = p.mapping
    if mapping is None and p.name and isinstance(p.value, str):
        mapping = p.value
    return (
        isinstance(mapping, str)
        and mapping.strip() in ("$", "$.")
        and not p.properties
        and p.items is None
        and p.values is None
        and p.const is None
        and p.max_length is None
        and (p.type or "object").lower() in ("object", "array", "any")
    )


def declared_hints(hints: Any) -> dict[str, bool]:
    """The behaviour hints an exposed entry declares (its ``hints`` block), by spec name."""
    if hints is None:
        return {}
    return {
        name: value
        for name in type(hints).model_fields
        if isinstance(value := getattr(hints, name), bool)
    }


def semantics_hints(fn: AggregateFunction) -> dict[str, bool]:
    """``safe: true`` -> read-only, not destructive; ``safe: false`` -> not read-only;
    ``idempotent`` copied; ``cacheable`` and open-world never derived."""
    semantics = fn.semantics
    if semantics is None:
        return {}
    hints: dict[str, bool] = {}
    if semantics.safe is True:
        hints.update(read_only=True, destructive=False)
    elif semantics.safe is False:
        hints["read_only"] = False
    if isinstance(semantics.idempotent, bool):
        hints["idempotent"] = semantics.idempotent
    return hints


# A consumed body kind and the inbound media type it lets REST callers send.
_BODY_PLAN_MEDIA = {"form": FORM_MEDIA_TYPE, "multipart": MULTIPART_MEDIA_TYPE}


def declared_body_media(operation: OperationPlan) -> str | None:
    """Form or multipart when ``operation`` declares that body type, else None.

    Declared means ``body.type`` (``formUrlEncoded``, ``multipartForm``) or a literal
    ``Content-Type`` header parameter with one of those media types. A templated
    Content-Type is not a declaration: the caller would choose it.
    """
    if operation.body is not None and operation.body.kind in _BODY_PLAN_MEDIA:
        return _BODY_PLAN_MEDIA[operation.body.kind]
    for param in operation.params:
        if (
            param.location == "header"
            and param.name.lower() == "content-type"
            and param.value is not None
            and param.value.is_constant
            and isinstance(param.value.raw, str)
        ):
            media = essence(param.value.raw)
            if media in (FORM_MEDIA_TYPE, MULTIPART_MEDIA_TYPE):
                return media
    return None


def _resolve_call(call: str | CallSpec | None) -> tuple[str | None, dict[str, Any]]:
    if call is None:
        return None, {}
    if isinstance(call, CallSpec):
        return call.operation, dict(call.with_)
    return call, {}


def _auth_references(spec: Authentication) -> set[str]:
    """The names the credential fields of a consumed authentication read."""
    refs: set[str] = set()
    for text in credential_fields(spec):
        if isinstance(text, str) and has_tags(text):
            with contextlib.suppress(TemplateError):  # reported where it is compiled
                refs |= compile_template(text).references
    return refs


def _consumed_outputs(consumed: Sequence[ConsumesHttp]) -> dict[str, Sequence[OutputParameter]]:
    """``"ns.op"`` -> the consumed operation's ``outputParameters`` (step projection)."""
    return {
        f"{consumes.namespace}.{operation.name}": operation.output_parameters
        for consumes in consumed
        for resource in consumes.resources
        for operation in resource.operations
        if operation.output_parameters
    }


# --------------------------------------------------------------------------- compiler


# An adapter's plan compiler: its ``exposes`` entry, where that entry is in the document,
# and the compiler whose :meth:`Compiler.exposed` makes (and records) each unit it serves.
# Diagnostics go through ``compiler.ctx`` in document order, as the units' own do.
PlanCompiler = Callable[[Any, PathT, "Compiler"], AdapterPlan]


class Compiler:
    """Units over already compiled consumed APIs; each adapter's plan compiler calls it
    for the units its ``exposes`` entry serves."""

    def __init__(
        self,
        ctx: CompileContext,
        consumed: Sequence[ConsumesHttp],
    ) -> None:
        self.ctx = ctx
        self.consumes: dict[str, ConsumesPlan]
        self.operations: dict[str, OperationPlan]
        self.consumes, self.operations = compile_consumes(ctx, consumed)
        self.consumed_outputs = _consumed_outputs(consumed)
        self.functions: dict[str, Unit] = {}
        self.function_specs: dict[str, AggregateFunction] = {}
        self.mapped_operations: set[str] = set()  # ops whose body a real mapping reads
        self.units: dict[str, Unit] = {}  # the exposed units by id, of every adapter

    def find_operation(self, target: str) -> OperationPlan | None:
        return find_operation(self.operations, self.consumes, target)

    # ------------------------------------------------------------------ units

    def unit(
        self,
        *,
        kind: str,
        unit_id: str,
        name: str,
        adapter_ns: str,
        namespaces: frozenset[str],
        declared: list[InputField],
        spec: Any,
        path: PathT,
        route_vars: Sequence[str] = (),
        located: bool,
        title: str | None,
        description: str | None,
        hints: Mapping[str, bool],
    ) -> Unit:
        ctx = self.ctx
        call_target, call_with = _resolve_call(getattr(spec, "call", None))
        raw_with = {**getattr(spec, "with_", {}), **call_with}
        with_: dict[str, ValueExpr] = {}
        for key, raw in raw_with.items():
            expr = ctx.value(raw, namespaces, (*path, "with", key))
            if expr is not None:
                with_[key] = expr
        outputs = ctx.outputs(getattr(spec, "output_parameters", ()), (*path, "outputParameters"))
        operation = self.find_operation(call_target) if call_target else None
        ref = getattr(spec, "ref", None)
        function = self.functions.get(ref) if ref else None
        steps, broken = self._steps(spec, namespaces, outputs, path, unit_id, kind)
        if steps is not None:
            for target in steps.operations:
                if (step_op := self.find_operation(target)) is not None:
                    self.mapped_operations.add(step_op.id)  # a step reads its body

        # A REST caller of a GET, HEAD, DELETE or OPTIONS sends no body (clients and
        # proxies may drop one): derived inputs that feed upstream body fields are read
        # from the query string there.
        method = (getattr(spec, "method", None) or "GET").upper()
        fields = InputSet(
            declared,
            route_vars=route_vars,
            located=located,
            caller_body=not located or method not in BODILESS_METHODS,
        )
        if operation is not None and located and _forwards_caller_body(method, operation, declared):
            operation = _with_caller_body(operation)
            ctx.warning(
                path,
                f"'{unit_id}' declares no body: the caller's request body is forwarded to "
                f"'{operation.id}' as sent",
            )
        if operation is not None:
            fields.derive_from_call(operation, with_, namespaces, ctx.is_bound)
        else:
            targets = {f.name: f for f in function.inputs} if function is not None else {}
            fields.derive_from_with(with_, targets)
        if steps is not None and not (ref or call_target):
            fields.derive_from_steps(steps, self.find_operation)
        if function is not None:
            for f in function.inputs:
                if f.name not in with_:
                    fields.add_function_input(f)
        inputs = fields.result()
        if operation is not None:
            inputs = _non_empty_path_inputs(inputs, operation, with_)
        # A tool that declares its inputs refuses unknown arguments by name (issue 15);
        # REST callers' extra query parameters and body fields are dropped instead.
        schema = input_schema(inputs, closed=kind == "tool" and bool(declared))
        common = {
            "unit_id": unit_id,
            "validator": self._validator(schema, path),
            "quick_valid": quick_check(schema),
            "scope": ctx.unit_scope(namespaces),
            "with_": with_,
            "outputs": outputs,
            "defaults": {f.name: f.schema["default"] for f in inputs if "default" in f.schema},
            "visible": self._visible(inputs, with_, operation, steps, outputs, namespaces),
        }
        plan: UnitPlan
        if broken is not None:
            plan = NotImplementedPlan(**common, reason=f"'{unit_id}' cannot run: {broken}")
        elif ref:
            if function is None:
                reason = f"'{unit_id}' refers to the unknown function '{ref}'"
                plan = NotImplementedPlan(**common, reason=reason)
            else:
                plan = RefPlan(**common, function_id=ref)
        elif call_target:
            if operation is not None:
                passthrough = outputs is None or is_identity(spec.output_parameters)
                if not passthrough:
                    self.mapped_operations.add(operation.id)
                plan = CallPlan(**common, operation=operation, passthrough=passthrough)
            elif outputs is not None and outputs.is_mock_capable:
                plan = MockPlan(**common)
            else:
                reason = f"'{unit_id}' calls '{call_target}', which no consumed API declares"
                plan = NotImplementedPlan(**common, reason=reason)
        elif getattr(spec, "steps", ()):
            if steps is None:  # the load fails: the errors are already reported
                plan = NotImplementedPlan(**common, reason=f"'{unit_id}' has invalid steps")
            else:
                plan = StepsPlan(**common, steps=steps)
        elif outputs is not None and outputs.is_mock_capable:
            plan = MockPlan(**common)
        else:
            reason = f"'{unit_id}' declares no call, steps or output values"
            plan = NotImplementedPlan(**common, reason=reason)
            # A stub (generated documents have many) would otherwise load silently.
            ctx.confined(
                path, f"'{unit_id}' answers 501: it declares no call, steps or output values"
            )
        return Unit(
            id=unit_id,
            kind=kind,  # type: ignore[arg-type]
            name=name,
            adapter_namespace=adapter_ns,
            inputs=inputs,
            input_schema=schema,
            output_schema=outputs.json_schema() if outputs is not None else None,
            title=title,
            description=description,
            hints=hints,
            plan=plan,
            body_media=self._body_media(plan),
            reads=plan.visible,
        )

    def _body_media(self, plan: UnitPlan) -> frozenset[str]:
        """The form/multipart body types the consumed operations ``plan`` calls declare."""
        if isinstance(plan, RefPlan):
            function = self.functions.get(plan.function_id)
            return function.body_media if function is not None else frozenset()
        operations: list[OperationPlan | None] = []
        if isinstance(plan, CallPlan):
            operations.append(plan.operation)
        elif isinstance(plan, StepsPlan):
            operations += [self.find_operation(target) for target in plan.steps.operations]
        return frozenset(
            media for op in operations if op is not None and (media := declared_body_media(op))
        )

    def _visible(
        self,
        inputs: Sequence[InputField],
        with_: Mapping[str, ValueExpr],
        operation: OperationPlan | None,
        steps: CompiledSteps | None,
        outputs: OutputMapper | None,
        namespaces: frozenset[str],
    ) -> frozenset[str]:
        """The caller inputs a unit's templates may see (``UnitPlan.visible``).

        Its declared and derived inputs, and every name its templates read: ``with``
        values, the consumed operations it calls (parameters, path, body, credentials),
        step ``with`` values, lookups, mappings and output values. Never a name under a
        step's: ``get-profile.tenant`` is step ``get-profile``'s output (issue 15).
        """
        names = {f.name for f in inputs}
        refs: set[str] = set()
        exprs = list(with_.values())
        operations = [operation] if operation is not None else []
        step_names: set[str] = set()
        if steps is not None:
            step_names = {step.name for step in steps.steps}
            for step in steps.steps:
                if isinstance(step, CallStepPlan):
                    exprs += [expr for _, expr in step.with_values]
                    if (step_op := self.find_operation(step.operation)) is not None:
                        operations.append(step_op)
            exprs += steps.templates
        for expr in exprs:
            refs |= expr.references
            names |= expr.input_references
        for op in operations:
            refs |= self._operation_reads(op, names)
        if outputs is not None:
            refs |= outputs.references
        for ref in refs:
            names |= self._referenced_inputs(ref, namespaces)
        names |= {name.split(".", 1)[0] for name in names}
        return frozenset(n for n in names if n.split(".", 1)[0] not in step_names)

    def _referenced_inputs(self, ref: str, namespaces: frozenset[str]) -> set[str]:
        """The input names a template reference may read: ``tools.a.b`` -> ``a.b``;
        a bare ``a.b`` -> ``a.b`` (exact key) and ``a``; binds and ``env`` read none."""
        name = input_name_of(ref, namespaces)
        if name is not None:
            return {name}
        head = ref.split(".", 1)[0]
        if head in ("env", "$this", ".") or head in self.ctx.bind_namespaces:
            return set()
        return {ref}

    def _operation_reads(self, op: OperationPlan, names: set[str]) -> set[str]:
        """The references a consumed operation's request reads from the scope."""
        refs = set(op.path.variables)
        for param in op.params:
            if param.value is None:
                refs.add(param.name)  # the scope value of its name
            else:
                refs |= param.value.references
                names |= param.value.input_references
        if op.body is not None:
            refs |= op.body.references
        consumes = self.consumes.get(op.namespace)
        if consumes is not None and consumes.authentication is not None:
            refs |= _auth_references(consumes.authentication)
        return refs

    def _steps(
        self,
        spec: Any,
        namespaces: frozenset[str],
        outputs: Any,
        path: PathT,
        unit_id: str,
        kind: str,
    ) -> tuple[CompiledSteps | None, str | None]:
        """``(compiled steps, why the unit cannot run)``; both None without steps.

        Only a unit without ``call`` or ``ref`` runs its steps, but the steps are checked
        whenever they are written. A ``script`` step is a load error (never loads
        silently); other structural problems (unknown step type, a call that is no
        ``namespace.operation``...) make the unit answer 501. Templates and JSONPaths
        that do not parse are load errors, as everywhere else.
        """
        steps = tuple(getattr(spec, "steps", ()) or ())
        if not steps:
            return None, None
        problems = step_problems(steps)
        if any(is_script_step(steps[index]) for index, _ in problems):
            for index, message in problems:
                self.ctx.error((*path, "steps", index), message)
            return None, None
        if problems:
            who = f"'{unit_id}' answers"
            if kind == "function":
                who = f"function '{unit_id}' and the units that use it answer"
            for index, message in problems:
                self.ctx.confined((*path, "steps", index), f"{who} 501: {message}")
            return None, "; ".join(message for _, message in problems)
        try:
            steps_plan = compile_steps(
                steps,
                tuple(getattr(spec, "mappings", ()) or ()),
                consumed_outputs=self.consumed_outputs,
                outputs=tuple(getattr(spec, "output_parameters", ()) or ()),
                input_namespaces=namespaces,
                fallback=outputs,
            )
        except StepsError as exc:
            for message in exc.problems:
                self.ctx.error((*path, *exc.at), message)
            return None, None
        return steps_plan, None

    def _validator(self, schema: Mapping[str, Any], path: PathT) -> Draft202012Validator:
        try:
            if not plainly_valid(schema):
                Draft202012Validator.check_schema(schema)
        except SchemaError as exc:
            self.ctx.error(path, f"input schema is not valid JSON Schema: {exc.message}")
            return Draft202012Validator({"type": "object"})
        return Draft202012Validator(schema)

    # ------------------------------------------------------------------ aggregates

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
                self.functions[fid] = self.unit(
                    kind="function",
                    unit_id=fid,
                    name=fn.name,
                    adapter_ns=ns,
                    namespaces=frozenset({ns}),
                    declared=declared_inputs(fn.input_parameters, located=False),
                    spec=fn,
                    path=path,
                    located=False,
                    title=None,
                    description=fn.description,
                    hints=semantics_hints(fn),
                )

    # ------------------------------------------------------------------ adapters

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

    def exposed(
        self,
        spec: Any,
        *,
        kind: str,
        unit_id: str,
        adapter_ns: str,
        namespaces: frozenset[str],
        declared: list[InputField],
        path: PathT,
        route_vars: Sequence[str] = (),
        located: bool,
        fallback_name: str = "",
    ) -> Unit:
        """An exposed unit, added to :attr:`units`: name, description and hints inherited
        from a ``ref``'d function when the document leaves them out.

        ``located``: the caller places inputs in an HTTP request (path, query, header,
        cookie, body; ``route_vars`` are the path's) rather than passing named arguments.
        """
        name, description, hints = self.inherited(spec)
        unit = self.unit(
            kind=kind,
            unit_id=unit_id,
            name=name or fallback_name,
            adapter_ns=adapter_ns,
            namespaces=namespaces,
            declared=declared,
            spec=spec,
            path=path,
            route_vars=route_vars,
            located=located,
            title=spec.label,
            description=description,
            hints=hints,
        )
        self.units[unit_id] = unit
        return unit

    def inherited(self, spec: Any) -> tuple[str | None, str | None, Mapping[str, bool]]:
        """Name, description and hints of an exposed entry, a ``ref``'d function's where
        the entry leaves them out (its own hints win one by one)."""
        ref = getattr(spec, "ref", None)
        fn = self.function_specs.get(ref) if ref else None
        own_hints = declared_hints(getattr(spec, "hints", None))
        if fn is None:
            return spec.name, spec.description, own_hints
        return (
            spec.name or fn.name,
            spec.description or fn.description,
            {**semantics_hints(fn), **own_hints},
        )

    # ------------------------------------------------------------------ formats

    def check_formats(self) -> None:
        """An unreadable ``outputRawFormat`` only matters where the body is read: units
        that map it (or call it in a step) answer 501; passthrough units forward it."""
        for op_id, op in self.operations.items():
            if op.format_problem is None:
                continue
            where = (*op.where, "outputRawFormat")
            if op_id in self.mapped_operations:
                self.ctx.confined(
                    where,
                    f"units that read the body of '{op_id}' answer 501: {op.format_problem}",
                )
            else:
                self.ctx.warning(
                    where, f"operation '{op_id}': {op.format_problem} (body passes through)"
                )


# --------------------------------------------------------------------------- entry point


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
    compiler.check_formats()
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


# --------------------------------------------------------------------------- schemas

_PYTHON_TYPES: dict[str, type] = {
    "string": str,
    "boolean": bool,
    "integer": int,
    "number": float,
    "object": dict,
    "array": list,
    "null": type(None),
}
_ANNOTATIONS = frozenset({"type", "description", "default", "format", "title"})
_UNKNOWN: frozenset[type] = frozenset()  # a name the schema does not list


def quick_check(schema: Mapping[str, Any]) -> Callable[[Mapping[str, Any]], bool] | None:
    """A check of a unit's inputs that says True only where the validator finds no error.

    jsonschema's ``iter_errors`` costs ~15 µs per call even for valid inputs; most input
    schemas are just required names and primitive types, which exact ``type()`` tests
    decide. Anything else (enum, items, nested properties) returns None: always validate.
    A False is "not sure" (``1.0`` for an integer, a bool subclass...): the validator
    decides and words the error.
    """
    if schema.get("type") != "object" or set(schema) - {
        "type",
        "properties",
        "required",
        "additionalProperties",
    }:
        return None
    closed = schema.get("additionalProperties", True)
    if not isinstance(closed, bool):
        return None
    closed = not closed
    allowed: dict[str, frozenset[type] | None] = {}
    for name, prop in (schema.get("properties") or {}).items():
        if not isinstance(prop, dict) or set(prop) - _ANNOTATIONS:
            return None
        kind = prop.get("type")
        if kind is None:
            allowed[name] = None
            continue
        kinds = kind if isinstance(kind, list) else [kind]
        if not all(isinstance(k, str) and k in _PYTHON_TYPES for k in kinds):
            return None
        types = {_PYTHON_TYPES[k] for k in kinds}
        if float in types:  # "number" takes integers too (never bools)
            types.add(int)
        allowed[name] = frozenset(types)
    required = tuple(schema.get("required") or ())

    def check(values: Mapping[str, Any]) -> bool:
        if type(values) is not dict:
            return False
        for name in required:
            if name not in values:
                return False
        for name, value in values.items():
            types = allowed.get(name, _UNKNOWN)
            if types is None:
                continue
            if types is _UNKNOWN:
                if closed:
                    return False
                continue
            if type(value) not in types:
                return False
        return True

    return check
