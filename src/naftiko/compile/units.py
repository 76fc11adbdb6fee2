"""Unit assembly: one exposed operation, tool, resource or aggregate function compiled
into a :class:`Unit` with its inputs, validators and executable plan.

:class:`UnitBuilder` holds what every unit is compiled against (the compiled consumed
APIs, the aggregate functions compiled so far) and records the consumed operations
whose body some unit reads (``mapped_operations``, for the ``outputRawFormat`` check).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, replace
from typing import Any

from naftiko.compile.context import CompileContext
from naftiko.compile.inputs import InputSet, input_schema
from naftiko.compile.steps import unit_steps
from naftiko.compile.unit_spec import UnitSource, UnitSpec
from naftiko.compile.validators import quick_check, schema_validator
from naftiko.compile.visibility import Visibility
from naftiko.engine.plans import (
    CallPlan,
    MockPlan,
    NotImplementedPlan,
    RefPlan,
    StepsPlan,
    UnitPlan,
)
from naftiko.engine.types import (
    FORM_MEDIA_TYPE,
    MULTIPART_MEDIA_TYPE,
    BinaryOutput,
    InputField,
    Unit,
)
from naftiko.media_types import essence
from naftiko.spec.models import AggregateFunction, OutputParameter
from naftiko.templating import ValueExpr
from naftiko.upstream.plans import ConsumesPlan, OperationPlan, ParamPlan
from naftiko.upstream.resilience import is_retry_safe

__all__ = [
    "BODILESS_METHODS",
    "UnitBuilder",
    "UnitLabels",
    "declared_body_media",
    "declared_hints",
    "is_identity",
    "semantics_hints",
]


@dataclass(frozen=True, slots=True)
class UnitLabels:
    """How a unit is named and described to callers (inherited from a ``ref``'d
    function where the entry leaves them out)."""

    name: str
    title: str | None
    description: str | None
    hints: Mapping[str, bool]


class UnitBuilder:
    """Compiles units against a capability's compiled consumed APIs and functions."""

    def __init__(
        self,
        ctx: CompileContext,
        consumes: Mapping[str, ConsumesPlan],
        find_operation: Callable[[str], OperationPlan | None],
        consumed_outputs: Mapping[str, Sequence[OutputParameter]],
        functions: Mapping[str, Unit],
    ) -> None:
        self.ctx = ctx
        self.find_operation = find_operation
        self.consumed_outputs = consumed_outputs
        self.functions = functions  # filled by the caller as functions compile
        self.visibility = Visibility(consumes, find_operation, ctx.bind_namespaces)
        self.mapped_operations: set[str] = set()  # ops whose body a real mapping reads

    def build(self, spec: UnitSpec, labels: UnitLabels) -> Unit:
        """The unit ``spec`` describes; its document problems go to the compile context."""
        ctx = self.ctx
        source, path, unit_id, namespaces = spec.source, spec.path, spec.unit_id, spec.namespaces
        declared, located = spec.declared, spec.located
        call_target = source.call_target
        with_: dict[str, ValueExpr] = {}
        for key, raw in source.all_with.items():
            expr = ctx.value(raw, namespaces, (*path, "with", key))
            if expr is not None:
                with_[key] = expr
        outputs = ctx.outputs(source.output_parameters, (*path, "outputParameters"))
        operation = self.find_operation(call_target) if call_target else None
        ref = source.ref
        function = self.functions.get(ref) if ref else None
        steps, broken = unit_steps(ctx, spec, outputs, self.consumed_outputs)
        if steps is not None:
            for target in steps.operations:
                if (step_op := self.find_operation(target)) is not None:
                    self.mapped_operations.add(step_op.id)  # a step reads its body

        # A REST caller of a GET, HEAD, DELETE or OPTIONS sends no body (clients and
        # proxies may drop one): derived inputs that feed upstream body fields are read
        # from the query string there.
        method = (source.method or "GET").upper()
        fields = InputSet(
            list(declared),
            route_vars=spec.route_vars,
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
        schema = input_schema(inputs, closed=spec.kind == "tool" and bool(declared))
        common = {
            "unit_id": unit_id,
            "validator": schema_validator(ctx, schema, path),
            "quick_valid": quick_check(schema),
            "scope": ctx.unit_scope(namespaces),
            "with_": with_,
            "outputs": outputs,
            "defaults": {f.name: f.schema["default"] for f in inputs if "default" in f.schema},
            "visible": self.visibility.visible(
                inputs, with_, operation, steps, outputs, namespaces
            ),
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
                passthrough = outputs is None or is_identity(source.output_parameters)
                if not passthrough:
                    self.mapped_operations.add(operation.id)
                plan = CallPlan(
                    **common,
                    operation=operation,
                    passthrough=passthrough,
                    retry_safe=is_retry_safe(operation.method, labels.hints),
                )
            elif outputs is not None and outputs.is_mock_capable:
                plan = MockPlan(**common)
            else:
                reason = f"'{unit_id}' calls '{call_target}', which no consumed API declares"
                plan = NotImplementedPlan(**common, reason=reason)
        elif source.steps:
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
        binary = self._binary(spec, plan)
        if binary is not None and outputs is not None and not is_identity(source.output_parameters):
            ctx.warning(
                (*path, "outputParameters"),
                f"'{unit_id}' answers binary content (outputRawFormat: binary): its output "
                "parameters are not applied",
            )
        return Unit(
            id=unit_id,
            kind=spec.kind,
            name=labels.name,
            adapter_namespace=spec.adapter_ns,
            inputs=inputs,
            input_schema=schema,
            output_schema=(
                outputs.json_schema() if outputs is not None and binary is None else None
            ),
            title=labels.title,
            description=labels.description,
            hints=labels.hints,
            plan=plan,
            body_media=self._body_media(plan),
            reads=plan.visible,
            binary=binary,
        )

    def _binary(self, spec: UnitSpec, plan: UnitPlan) -> BinaryOutput | None:
        """Whether the unit answers bytes: the operation it calls (directly, or through a
        ``ref``'d function) reads ``outputRawFormat: binary``. Its media type is the
        unit's own ``outputMediaType`` (flows), a function's, else the operation's; its
        limit the operation's ``maxBinarySize``, else the adapter's, else the runtime's."""
        function_binary = None
        if isinstance(plan, CallPlan):
            operation: OperationPlan | None = plan.operation
        elif isinstance(plan, RefPlan):
            function = self.functions.get(plan.function_id)
            if function is None or function.binary is None:
                return None
            function_binary = function.binary
            fn_plan = function.plan
            operation = fn_plan.operation if isinstance(fn_plan, CallPlan) else None
        else:
            return None
        if operation is None or not operation.binary:
            return None
        media = spec.source.output_media_type or (
            function_binary.media_type if function_binary is not None else operation.media_type
        )
        limit = operation.max_binary or spec.max_binary
        if limit is None:
            n = self.ctx.settings.max_response_bytes
            return BinaryOutput(media, n, f"the response size limit ({n} bytes)")
        return BinaryOutput(media, limit.max_bytes, limit.described)

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


# --------------------------------------------------------------------------- labels


def exposed_labels(
    source: UnitSource, function: AggregateFunction | None, fallback_name: str = ""
) -> UnitLabels:
    """Name, title, description and hints of an exposed entry, a ``ref``'d function's
    where the entry leaves them out (its own hints win one by one)."""
    own_hints = declared_hints(source.hints)
    if function is None:
        return UnitLabels(source.name or fallback_name, source.label, source.description, own_hints)
    return UnitLabels(
        source.name or function.name or fallback_name,
        source.label,
        source.description or function.description,
        {**semantics_hints(function), **own_hints},
    )


# Methods whose HTTP callers send no body (see ``UnitBuilder.build``).
BODILESS_METHODS = frozenset({"GET", "HEAD", "DELETE", "OPTIONS"})


_BODY_METHODS = frozenset({"POST", "PUT", "PATCH", "DELETE"})


def _forwards_caller_body(
    method: str, operation: OperationPlan, declared: Sequence[InputField]
) -> bool:
    """A REST operation and the operation it calls both take a body, and neither says
    what goes in it: the author meant the caller's body (published documents, Notion's
    among them, are written so)."""
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
