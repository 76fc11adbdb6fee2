"""Which caller inputs a unit's templates may see (``UnitPlan.visible``), decided once
at load time from everything the unit reads."""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Mapping, Sequence

from naftiko.compile.consumes import credential_fields
from naftiko.compile.inputs import input_name_of
from naftiko.engine.mapping import OutputMapper
from naftiko.engine.orchestration import CallStepPlan, CompiledSteps
from naftiko.engine.types import InputField
from naftiko.spec.models import Authentication
from naftiko.template_syntax import has_tags
from naftiko.templating import TemplateError, ValueExpr, compile_template
from naftiko.upstream.plans import ConsumesPlan, OperationPlan

__all__ = ["Visibility"]


class Visibility:
    """Reads a unit's templates, consumed operations and steps for the input names they
    may touch, over the capability's consumed APIs and binds."""

    def __init__(
        self,
        consumes: Mapping[str, ConsumesPlan],
        find_operation: Callable[[str], OperationPlan | None],
        bind_namespaces: Mapping[str, object],
    ) -> None:
        self.consumes = consumes
        self.find_operation = find_operation
        self.bind_namespaces = bind_namespaces

    def visible(
        self,
        inputs: Sequence[InputField],
        with_: Mapping[str, ValueExpr],
        operation: OperationPlan | None,
        steps: CompiledSteps | None,
        outputs: OutputMapper | None,
        namespaces: frozenset[str],
    ) -> frozenset[str]:
        """The caller inputs a unit's templates may see.

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
            refs |= self.operation_reads(op, names)
        if outputs is not None:
            refs |= outputs.references
        for ref in refs:
            names |= self.referenced_inputs(ref, namespaces)
        names |= {name.split(".", 1)[0] for name in names}
        return frozenset(n for n in names if n.split(".", 1)[0] not in step_names)

    def referenced_inputs(self, ref: str, namespaces: frozenset[str]) -> set[str]:
        """The input names a template reference may read: ``tools.a.b`` -> ``a.b``;
        a bare ``a.b`` -> ``a.b`` (exact key) and ``a``; binds and ``env`` read none."""
        name = input_name_of(ref, namespaces)
        if name is not None:
            return {name}
        head = ref.split(".", 1)[0]
        if head in ("env", "$this", ".") or head in self.bind_namespaces:
            return set()
        return {ref}

    def operation_reads(self, op: OperationPlan, names: set[str]) -> set[str]:
        """The references a consumed operation's request reads from the scope (the input
        names its parameters read go into ``names``)."""
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


def _auth_references(spec: Authentication) -> set[str]:
    """The names the credential fields of a consumed authentication read."""
    refs: set[str] = set()
    for text in credential_fields(spec):
        if isinstance(text, str) and has_tags(text):
            with contextlib.suppress(TemplateError):  # reported where it is compiled
                refs |= compile_template(text).references
    return refs
