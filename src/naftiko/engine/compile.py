"""Load-time compilation of a capability into adapter plans and executable units.

Everything a request needs is prepared here, once: templates, ``with`` values, URL
templates, output mappers, input JSON Schemas and their validators. A document error
(template syntax, JSONPath, unknown format, unusable auth) is a :class:`LoadError` with
file:line diagnostics; a unit whose ``call`` target does not exist still compiles, to a
plan that answers 501 at request time (the loader already warned about it).

Inputs are *declared* (``inputParameters``) or *derived*: published documents wire
``with: {body: tools.body}`` without declaring ``body``, so every input reference that is
not declared becomes an input typed from the consumed parameter it feeds.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import httpx
from jsonschema import Draft202012Validator
from jsonschema.exceptions import SchemaError

from naftiko.engine.mapping import MappingError, OutputMapper, compile_outputs
from naftiko.engine.outbound_auth import (
    OAuth2TokenCache,
    OutboundAuthConfigError,
    build_outbound_auth,
    check_outbound_auth,
)
from naftiko.engine.settings import EngineSettings
from naftiko.engine.templating import (
    INPUT_PREFIXES,
    MISSING,
    Scope,
    Template,
    TemplateError,
    ValueExpr,
    compile_template,
    compile_value,
)
from naftiko.engine.types import (
    AdapterPlan,
    ControlAdapterPlan,
    DynamicResourcePlan,
    ForwardPlan,
    InputField,
    McpAdapterPlan,
    RestAdapterPlan,
    RestRoute,
    SkillAdapterPlan,
    StaticResourcePlan,
    Unit,
)
from naftiko.spec.diagnostics import Diagnostic, LoadError
from naftiko.spec.models import (
    AggregateFunction,
    Authentication,
    CallSpec,
    ConsumesHttp,
    ExposesControl,
    ExposesMcp,
    ExposesRest,
    ExposesSkill,
    InputParameter,
    McpResource,
    McpToolHints,
    OutputParameter,
    RequestBody,
)

__all__ = [
    "BodyPlan",
    "CallPlan",
    "CompiledCapability",
    "ConsumesPlan",
    "MockPlan",
    "NotImplementedPlan",
    "OperationPlan",
    "ParamPlan",
    "PathTemplate",
    "RefPlan",
    "StepsPlan",
    "UnitPlan",
    "compile_capability",
    "input_schema",
    "normalize_route_path",
]

PathT = tuple[str | int, ...]

# --------------------------------------------------------------------------- consumes plans


@dataclass(frozen=True, slots=True)
class ParamPlan:
    """A consumed ``inputParameter``: where it goes and how its value is found."""

    name: str
    location: str  # path | query | header | cookie | body | environment | ...
    value: ValueExpr | None  # ``value``/``template``; None: the scope value of ``name``
    type: str | None
    required: bool
    description: str | None


@dataclass(frozen=True, slots=True)
class PathTemplate:
    """A URL path with ``{x}``/``{{x}}`` variables: literal text and ``(name,)`` parts."""

    text: str
    parts: tuple[str | tuple[str], ...]

    @property
    def variables(self) -> tuple[str, ...]:
        return tuple(p[0] for p in self.parts if isinstance(p, tuple))


@dataclass(frozen=True, slots=True)
class PartPlan:
    """One ``multipartForm`` part."""

    name: str
    value: Any  # compiled tree (see ``compile_tree``)
    filename: Template | None
    content_type: str | None


@dataclass(frozen=True, slots=True)
class BodyPlan:
    """An explicit request body. ``kind``: json, text, xml, sparql, form, multipart, raw."""

    kind: str
    data: Any  # compiled tree: Template leaves inside dicts/lists, or one Template
    parts: tuple[PartPlan, ...] = ()


@dataclass(frozen=True, slots=True)
class OperationPlan:
    """A consumed operation, ready to build requests (see ``naftiko.engine.request``)."""

    namespace: str
    name: str
    method: str
    path: PathTemplate
    params: tuple[ParamPlan, ...]  # consumes-, resource-, then operation-level
    body: BodyPlan | None
    output_raw_format: str | None
    output_schema: str | None
    base_dir: str

    @property
    def id(self) -> str:
        return f"{self.namespace}.{self.name}"

    @property
    def label(self) -> str:
        """``POST /v2/oauth/token/``: names the call in messages (no rendered values)."""
        return f"{self.method} {self.path.text or '/'}"


@dataclass(frozen=True, slots=True)
class ConsumesPlan:
    """A consumed API: base URI (binds already rendered), auth, operations by name."""

    namespace: str
    base_uri: str | None  # None: it references something that is not bound
    params: tuple[ParamPlan, ...]  # consumes-level: applied to every request and forward
    authentication: Authentication | None
    static_auth: httpx.Auth | None  # built once when every field is bind-only or literal
    auth_is_static: bool
    operations: Mapping[str, OperationPlan]


# --------------------------------------------------------------------------- unit plans


@dataclass(frozen=True, slots=True)
class UnitPlan:
    """What every execution mode shares (opaque to adapters, read by ``invoke``)."""

    unit_id: str
    validator: Draft202012Validator
    scope: Scope  # binds + the unit's input namespaces; children hold per-request layers
    with_: Mapping[str, ValueExpr]
    outputs: OutputMapper | None  # None: no outputParameters
    defaults: Mapping[str, Any]  # input name -> schema default


@dataclass(frozen=True, slots=True)
class CallPlan(UnitPlan):
    """``call``: one consumed operation; ``passthrough`` when the mapping is the identity."""

    operation: OperationPlan
    passthrough: bool


@dataclass(frozen=True, slots=True)
class MockPlan(UnitPlan):
    """No call and no steps: the outputs' ``value``/``const`` over the inputs."""


@dataclass(frozen=True, slots=True)
class StepsPlan(UnitPlan):
    """Orchestration. Executed by ``naftiko.engine.orchestration.run_steps(engine=,
    unit=, plan=, scope=, inputs=) -> Result`` (the scope holds binds, with values and
    inputs); ``Engine.call_operation`` and ``CompiledCapability.operations`` serve it."""

    steps: tuple[Any, ...]
    mappings: tuple[Any, ...]
    namespace: str
    spec: Any


@dataclass(frozen=True, slots=True)
class RefPlan(UnitPlan):
    """``ref``: an aggregate function runs with this unit's inputs and ``with`` values."""

    function_id: str


@dataclass(frozen=True, slots=True)
class NotImplementedPlan(UnitPlan):
    """The unit cannot run (missing call target, nothing to do); answers 501."""

    reason: str


# --------------------------------------------------------------------------- result


@dataclass(frozen=True, slots=True)
class CompiledCapability:
    """A capability ready to serve. ``units`` are the exposed units by id (REST
    operations, MCP tools and dynamic resources), ``functions`` the aggregate functions
    by ``<aggregate namespace>.<name>``; ``consumes``/``operations`` are engine-private."""

    loaded: Any  # naftiko.spec.loader.LoadedCapability
    adapters: tuple[AdapterPlan, ...]
    units: Mapping[str, Unit]
    functions: Mapping[str, Unit]
    consumes: Mapping[str, ConsumesPlan] = field(default_factory=dict)
    operations: Mapping[str, OperationPlan] = field(default_factory=dict)  # "ns.op"
    token_cache: OAuth2TokenCache = field(default_factory=OAuth2TokenCache)
    warnings: tuple[Diagnostic, ...] = ()


# --------------------------------------------------------------------------- helpers

_VAR = re.compile(r"\{\{\s*([^{}]+?)\s*\}\}|\{([^{}/]+)\}")
_TYPES = {
    "string": "string",
    "str": "string",
    "text": "string",
    "number": "number",
    "float": "number",
    "double": "number",
    "decimal": "number",
    "integer": "integer",
    "int": "integer",
    "long": "integer",
    "boolean": "boolean",
    "bool": "boolean",
    "object": "object",
    "array": "array",
}
_BODY_KINDS = {
    "json": "json",
    "text": "text",
    "xml": "xml",
    "sparql": "sparql",
    "formurlencoded": "form",
    "form": "form",
    "multipartform": "multipart",
    "multipart": "multipart",
}


def normalize_route_path(path: str) -> str:
    """``/ships/{{imo}}`` -> ``/ships/{imo}`` (both spellings are accepted)."""
    return re.sub(r"\{\{\s*([^{}]+?)\s*\}\}", r"{\1}", path)


def compile_path(text: str) -> PathTemplate:
    """Split a path into literal text and variables (``{x}`` and ``{{x}}``)."""
    parts: list[str | tuple[str]] = []
    last = 0
    for match in _VAR.finditer(text):
        if match.start() > last:
            parts.append(text[last : match.start()])
        parts.append(((match.group(1) or match.group(2)).strip(),))
        last = match.end()
    if last < len(text):
        parts.append(text[last:])
    return PathTemplate(text=text, parts=tuple(parts))


def compile_tree(raw: Any) -> Any:
    """Data with template leaves: strings holding ``{{`` become :class:`Template`."""
    if isinstance(raw, str):
        if "{{" in raw:
            template = compile_template(raw)
            return raw if template.is_constant else template
        return raw
    if isinstance(raw, Mapping):
        return {key: compile_tree(value) for key, value in raw.items()}
    if isinstance(raw, (list, tuple)):
        return [compile_tree(value) for value in raw]
    return raw


def tree_references(tree: Any) -> set[str]:
    if isinstance(tree, Template):
        return set(tree.references)
    if isinstance(tree, Mapping):
        return {ref for value in tree.values() for ref in tree_references(value)}
    if isinstance(tree, list):
        return {ref for value in tree for ref in tree_references(value)}
    return set()


def json_type(raw: str | None) -> str | None:
    """The JSON Schema type of a declared ``type``; None when absent or unknown."""
    if not isinstance(raw, str):
        return None
    return _TYPES.get(raw.strip().lower())


def input_name_of(reference: str, namespaces: frozenset[str]) -> str | None:
    """``tools.x``/``rest.x``/``<ns>.x``/``$this.<ns>.x`` -> ``x``; None otherwise."""
    head, _, rest = reference.partition(".")
    if not rest:
        return None
    if head in INPUT_PREFIXES or head in namespaces:
        return rest
    if head == "$this":
        return rest.partition(".")[2] or None
    return None


def _first_name(name: str) -> str:
    """An input name read through a dotted walk (``tools.user.id``) is the input ``user``."""
    return name.split(".", 1)[0]


# --------------------------------------------------------------------------- compiler


class _Compiler:
    def __init__(self, loaded: Any, settings: EngineSettings) -> None:
        self.loaded = loaded
        self.settings = settings
        self.source_map = getattr(loaded, "source_map", None)
        self.file = str(getattr(loaded, "path", "") or "")
        self.base_dir = str(getattr(loaded, "base_dir", ".") or ".")
        self.errors: list[Diagnostic] = []
        self.warnings: list[Diagnostic] = []
        bindings = getattr(loaded, "bindings", None)
        self.binds: Mapping[str, str] = bindings.as_scope() if bindings is not None else {}
        self.bind_namespaces: Mapping[str, Mapping[str, str]] = (
            bindings.namespaced() if bindings is not None else {}
        )
        self.bind_scope = Scope(binds=self.binds, bind_namespaces=self.bind_namespaces)
        self.token_cache = OAuth2TokenCache()
        self.consumes: dict[str, ConsumesPlan] = {}
        self.operations: dict[str, OperationPlan] = {}
        self.functions: dict[str, Unit] = {}
        self.function_specs: dict[str, AggregateFunction] = {}
        self.mapped_operations: set[str] = set()  # ops whose body a real mapping reads

    # ------------------------------------------------------------------ diagnostics

    def _diag(self, path: PathT, message: str, severity: str) -> Diagnostic:
        if self.source_map is not None:
            return self.source_map.diagnostic_at(path, severity, message)
        return Diagnostic(severity=severity, file=self.file, message=message)  # type: ignore[arg-type]

    def error(self, path: PathT, message: str) -> None:
        self.errors.append(self._diag(path, message, "error"))

    def warning(self, path: PathT, message: str) -> None:
        self.warnings.append(self._diag(path, message, "warning"))

    def template(self, text: str, path: PathT) -> Template | None:
        try:
            return compile_template(text)
        except TemplateError as exc:
            self.error(path, str(exc))
            return None

    def value(self, raw: Any, namespaces: Iterable[str], path: PathT) -> ValueExpr | None:
        try:
            return compile_value(raw, namespaces)
        except TemplateError as exc:
            self.error(path, str(exc))
            return None

    def tree(self, raw: Any, path: PathT) -> Any:
        try:
            return compile_tree(raw)
        except TemplateError as exc:
            self.error(path, str(exc))
            return None

    def outputs(self, params: Sequence[OutputParameter], path: PathT) -> OutputMapper | None:
        if not params:
            return None
        try:
            return compile_outputs(params)
        except (MappingError, TemplateError) as exc:
            self.error(path, str(exc))
            return None

    # ------------------------------------------------------------------ consumes

    def compile_consumes(self, entries: Sequence[Any]) -> None:
        for index, consumes in enumerate(entries):
            if isinstance(consumes, ConsumesHttp):
                self._consumes(consumes, ("capability", "consumes", index))

    def _params(self, params: Sequence[InputParameter], path: PathT) -> list[ParamPlan]:
        plans = []
        for index, param in enumerate(params):
            raw = param.value if param.value is not None else param.template
            expr = None
            if raw is not None:
                expr = self.value(raw, (), (*path, index, "value"))
            location = (param.in_ or "query").strip().lower()
            plans.append(
                ParamPlan(
                    name=param.name,
                    location=location,
                    value=expr,
                    type=json_type(param.type),
                    required=bool(param.required) or location == "path",
                    description=param.description,
                )
            )
        return plans

    def _consumes(self, spec: ConsumesHttp, path: PathT) -> None:
        ns = spec.namespace
        base_raw = self.settings.base_uri_overrides.get(ns, spec.base_uri)
        base_uri: str | None = base_raw
        if "{{" in base_raw:
            template = self.template(base_raw, (*path, "baseUri"))
            if template is not None:
                missing = [r for r in template.references if self.bind_scope.lookup(r) is MISSING]
                if missing:
                    self.warning(
                        (*path, "baseUri"),
                        f"baseUri of '{ns}' references {', '.join(sorted(missing))}, which "
                        "is not bound: its operations will answer 501 (inputs never reach "
                        "the scheme or host)",
                    )
                    base_uri = None
                else:
                    base_uri = template.render(self.bind_scope)
        static_auth, auth_is_static = None, False
        if spec.authentication is not None:
            static_auth, auth_is_static = self._auth(spec.authentication, (*path, "authentication"))
        common = self._params(spec.input_parameters, (*path, "inputParameters"))
        operations: dict[str, OperationPlan] = {}
        for r_index, resource in enumerate(spec.resources):
            r_path = (*path, "resources", r_index)
            resource_params = self._params(resource.input_parameters, (*r_path, "inputParameters"))
            for o_index, op in enumerate(resource.operations):
                o_path = (*r_path, "operations", o_index)
                if op.name in operations:
                    self.warning(
                        o_path, f"duplicate operation '{op.name}' in '{ns}': the first wins"
                    )
                    continue
                own = self._params(op.input_parameters, (*o_path, "inputParameters"))
                plan = OperationPlan(
                    namespace=ns,
                    name=op.name,
                    method=(op.method or "GET").upper(),
                    path=compile_path(op.path if op.path is not None else resource.path),
                    params=tuple(common + resource_params + own),
                    body=self._body(op.body, (*o_path, "body")),
                    output_raw_format=op.output_raw_format,
                    output_schema=op.output_schema,
                    base_dir=self.base_dir,
                )
                operations[op.name] = plan
                self.operations[plan.id] = plan
        self.consumes[ns] = ConsumesPlan(
            namespace=ns,
            base_uri=base_uri,
            params=tuple(common),
            authentication=spec.authentication,
            static_auth=static_auth,
            auth_is_static=auth_is_static,
            operations=operations,
        )

    def _auth(self, spec: Authentication, path: PathT) -> tuple[httpx.Auth | None, bool]:
        try:
            check_outbound_auth(spec)
        except OutboundAuthConfigError as exc:
            self.error(path, str(exc))
            return None, False
        fields = [
            spec.username, spec.password, spec.token, spec.key, spec.value,
            spec.token_endpoint, spec.client_id, spec.client_secret, spec.audience,
            spec.resource, *spec.scopes,
        ]  # fmt: skip
        references: set[str] = set()
        for text in fields:
            if isinstance(text, str):
                template = self.template(text, path)
                if template is None:
                    return None, False
                references |= template.references
        if not all(self.bind_scope.lookup(ref) is not MISSING for ref in references):
            return None, False  # fed by request values (written-back consumed params)
        try:
            auth = build_outbound_auth(spec, self.render_binds, token_cache=self.token_cache)
        except OutboundAuthConfigError as exc:
            self.error(path, str(exc))
            return None, False
        return auth, True

    def render_binds(self, text: str | None) -> str | None:
        return render_or_none(text, self.bind_scope)

    def _body(self, body: RequestBody | str | None, path: PathT) -> BodyPlan | None:
        if body is None:
            return None
        if isinstance(body, str):
            template = self.template(body, path)
            return BodyPlan(kind="raw", data=template if template is not None else body)
        kind = _BODY_KINDS.get(body.type.replace("_", "").replace("-", "").lower())
        if kind is None:
            self.warning((*path, "type"), f"unknown body type {body.type!r}: sent as json")
            kind = "json"
        if kind == "multipart":
            return BodyPlan(kind=kind, data=None, parts=self._parts(body.data, path))
        return BodyPlan(kind=kind, data=self.tree(body.data, (*path, "data")))

    def _parts(self, data: Any, path: PathT) -> tuple[PartPlan, ...]:
        raw_parts: list[Mapping[str, Any]] = []
        if isinstance(data, Mapping):
            raw_parts = [{"name": k, "value": v} for k, v in data.items()]
        elif isinstance(data, (list, tuple)):
            raw_parts = [p for p in data if isinstance(p, Mapping)]
        parts = []
        for index, part in enumerate(raw_parts):
            filename = part.get("filename")
            content_type = part.get("contentType") or part.get("content_type")
            parts.append(
                PartPlan(
                    name=str(part.get("name", "")),
                    value=self.tree(part.get("value"), (*path, "data", index, "value")),
                    filename=self.template(str(filename), path) if filename else None,
                    content_type=str(content_type) if content_type else None,
                )
            )
        return tuple(parts)

    # ------------------------------------------------------------------ call targets

    def resolve_call(self, call: str | CallSpec | None) -> tuple[str | None, dict[str, Any]]:
        if call is None:
            return None, {}
        if isinstance(call, CallSpec):
            return call.operation, dict(call.with_)
        return call, {}

    def find_operation(self, target: str) -> OperationPlan | None:
        if target in self.operations:
            return self.operations[target]
        # Namespaces may contain dots: take the longest namespace that prefixes the target.
        for ns in sorted(self.consumes, key=len, reverse=True):
            if target.startswith(ns + "."):
                return self.consumes[ns].operations.get(target[len(ns) + 1 :])
        return None

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
        rest: bool,
        title: str | None,
        description: str | None,
        hints: Mapping[str, bool],
    ) -> Unit:
        call_target, call_with = self.resolve_call(getattr(spec, "call", None))
        raw_with = {**getattr(spec, "with_", {}), **call_with}
        with_: dict[str, ValueExpr] = {}
        for key, raw in raw_with.items():
            expr = self.value(raw, namespaces, (*path, "with", key))
            if expr is not None:
                with_[key] = expr
        outputs = self.outputs(getattr(spec, "output_parameters", ()), (*path, "outputParameters"))
        operation = self.find_operation(call_target) if call_target else None
        ref = getattr(spec, "ref", None)
        function = self.functions.get(ref) if ref else None

        fields = _Inputs(declared)
        for var in route_vars:
            fields.add_route_variable(var)
        if operation is not None:
            self._derive_from_call(fields, operation, with_, namespaces, route_vars, rest)
        else:
            targets = {f.name: f for f in function.inputs} if function is not None else {}
            self._derive_from_with(fields, with_, route_vars, rest, targets)
        if function is not None:
            for f in function.inputs:
                if f.name not in with_:
                    fields.add(f if not rest else _relocate(f, route_vars))
        inputs = fields.result()
        schema = input_schema(inputs)
        validator = self._validator(schema, path)
        defaults = {f.name: f.schema["default"] for f in inputs if "default" in f.schema}
        scope = Scope(
            binds=self.binds,
            bind_namespaces=self.bind_namespaces,
            input_namespaces=namespaces,
        )
        common = {
            "unit_id": unit_id,
            "validator": validator,
            "scope": scope,
            "with_": with_,
            "outputs": outputs,
            "defaults": defaults,
        }
        plan: UnitPlan
        steps = getattr(spec, "steps", ())
        if ref:
            if function is None:
                plan = NotImplementedPlan(
                    **common, reason=f"'{unit_id}' refers to the unknown function '{ref}'"
                )
            else:
                plan = RefPlan(**common, function_id=ref)
        elif call_target:
            if operation is None:
                if outputs is not None and outputs.is_mock_capable:
                    plan = MockPlan(**common)
                else:
                    plan = NotImplementedPlan(
                        **common,
                        reason=f"'{unit_id}' calls '{call_target}', which no consumed API declares",
                    )
            else:
                passthrough = outputs is None or is_identity(spec.output_parameters)
                if not passthrough:
                    self.mapped_operations.add(operation.id)
                plan = CallPlan(**common, operation=operation, passthrough=passthrough)
        elif steps:
            plan = StepsPlan(
                **common,
                steps=tuple(steps),
                mappings=tuple(getattr(spec, "mappings", ())),
                namespace=adapter_ns,
                spec=spec,
            )
        elif outputs is not None and outputs.is_mock_capable:
            plan = MockPlan(**common)
        else:
            plan = NotImplementedPlan(
                **common, reason=f"'{unit_id}' declares no call, steps or output values"
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
        )

    def _validator(self, schema: Mapping[str, Any], path: PathT) -> Draft202012Validator:
        try:
            Draft202012Validator.check_schema(schema)
        except SchemaError as exc:
            self.error(path, f"input schema is not valid JSON Schema: {exc.message}")
            return Draft202012Validator({"type": "object"})
        return Draft202012Validator(schema)

    def _derive_from_with(
        self,
        fields: _Inputs,
        with_: Mapping[str, ValueExpr],
        route_vars: Sequence[str],
        rest: bool,
        targets: Mapping[str, InputField],
    ) -> None:
        """Inputs read by ``with`` values; a lone reference feeding a function input
        (``ref``) takes that input's schema and required flag."""
        for key, expr in with_.items():
            target = targets.get(key) if expr.is_input_reference else None
            for name in sorted(expr.input_references):
                top = _first_name(name)
                typed = target if target is not None and top == name else None
                fields.derive(
                    top,
                    location=_rest_location(top, route_vars, None) if rest else "argument",
                    schema=dict(typed.schema) if typed else {},
                    required=bool(typed and typed.required),
                    description=typed.description if typed else None,
                    fed=key,
                )

    def _derive_from_call(
        self,
        fields: _Inputs,
        operation: OperationPlan,
        with_: Mapping[str, ValueExpr],
        namespaces: frozenset[str],
        route_vars: Sequence[str],
        rest: bool,
    ) -> None:
        consumed = {p.name: p for p in operation.params}
        # 1. ``with`` references, typed from the consumed parameter named by the key.
        for key, expr in with_.items():
            target = consumed.get(key)
            lone = expr.is_input_reference or (
                expr.kind == "template"
                and len(expr.input_references) == 1
                and expr.raw.strip().startswith("{{")
                and expr.raw.strip().endswith("}}")
            )
            for name in sorted(expr.input_references):
                top = _first_name(name)
                typed = target if lone and top == name else None
                fields.derive(
                    top,
                    location=_rest_location(top, route_vars, typed) if rest else "argument",
                    schema=_consumed_schema(typed),
                    required=bool(typed and typed.required),
                    description=typed.description if typed else None,
                    fed=key,
                )
        # 2. Input references inside the consumed operation's own templates.
        refs: set[str] = set()
        for param in operation.params:
            if param.value is not None:
                refs |= set(param.value.references)
                refs |= {f"tools.{n}" for n in param.value.input_references}
        refs |= set(operation.path.variables)
        if operation.body is not None:
            refs |= tree_references(operation.body.data)
            for part in operation.body.parts:
                refs |= tree_references(part.value)
        for ref in sorted(refs):
            name = input_name_of(ref, namespaces)
            if name is None or _first_name(name) in with_:
                continue
            top = _first_name(name)
            typed = consumed.get(top)
            fields.derive(
                top,
                location=_rest_location(top, route_vars, typed) if rest else "argument",
                schema=_consumed_schema(typed),
                required=bool(typed and typed.required),
                description=typed.description if typed else None,
                fed=None,
            )
        # 3. Consumed parameters with no ``value`` (and bare path variables) read the
        #    scope value of their name: the caller's input of that name.
        valued = {p.name for p in operation.params if p.value is not None}
        for var in operation.path.variables:
            if (
                "." in var
                or var in with_
                or var in consumed
                or var in valued
                or self.bind_scope.lookup(var) is not MISSING
            ):
                continue
            fields.derive(
                var,
                location=_rest_location(var, route_vars, None) if rest else "argument",
                schema={"type": "string"},
                required=True,
                description=None,
                fed=None,
            )
        for param in operation.params:
            name = param.name
            if (
                param.value is not None
                or not name
                or name in with_
                or param.location == "environment"
                or self.bind_scope.lookup(name) is not MISSING
            ):
                continue
            fields.derive(
                name,
                location=_rest_location(name, route_vars, param) if rest else "argument",
                schema=_consumed_schema(param),
                required=param.required,
                description=param.description,
                fed=None,
            )

    # ------------------------------------------------------------------ declared inputs

    def declared(
        self, params: Sequence[InputParameter], *, rest: bool, path: PathT
    ) -> list[InputField]:
        fields = []
        for param in params:
            if not param.name:
                continue
            location = (param.in_ or ("body" if rest else "argument")).strip().lower()
            if rest:
                if location not in ("path", "query", "header", "cookie", "body"):
                    location = "body"
                required = bool(param.required) or location == "path"
            else:
                location = "argument"
                required = param.required is not False
            fields.append(
                InputField(
                    name=param.name,
                    location=location,  # type: ignore[arg-type]
                    schema=declared_schema(param),
                    required=required,
                    description=param.description,
                )
            )
        return fields

    # ------------------------------------------------------------------ aggregates

    def compile_functions(self, aggregates: Sequence[Any]) -> None:
        for a_index, aggregate in enumerate(aggregates):
            ns = aggregate.namespace
            for f_index, fn in enumerate(aggregate.functions):
                path = ("capability", "aggregates", a_index, "functions", f_index)
                fid = f"{ns}.{fn.name}"
                if fid in self.functions:
                    self.error(path, f"duplicate aggregate function '{fid}'")
                    continue
                self.function_specs[fid] = fn
                self.functions[fid] = self.unit(
                    kind="function",
                    unit_id=fid,
                    name=fn.name,
                    adapter_ns=ns,
                    namespaces=frozenset({ns}),
                    declared=self.declared(fn.input_parameters, rest=False, path=path),
                    spec=fn,
                    path=path,
                    rest=False,
                    title=None,
                    description=fn.description,
                    hints=semantics_hints(fn),
                )

    # ------------------------------------------------------------------ adapters

    def compile_adapters(self, entries: Sequence[Any]) -> tuple[list[AdapterPlan], dict[str, Unit]]:
        adapters: list[AdapterPlan] = []
        units: dict[str, Unit] = {}
        for index, spec in enumerate(entries):
            path: PathT = ("capability", "exposes", index)
            if isinstance(spec, ExposesRest):
                adapters.append(self._rest(spec, path, units))
            elif isinstance(spec, ExposesMcp):
                adapters.append(self._mcp(spec, path, units))
            elif isinstance(spec, ExposesSkill):
                adapters.append(
                    SkillAdapterPlan(
                        type="skill",
                        namespace=spec.namespace,
                        address=spec.address,
                        port=spec.port,
                        description=spec.description,
                        authentication=spec.authentication,
                        skills=tuple(spec.skills),
                        base_dir=self.base_dir,
                    )
                )
            elif isinstance(spec, ExposesControl):
                adapters.append(
                    ControlAdapterPlan(
                        type="control",
                        namespace=spec.namespace or "control",
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
                )
        return adapters, units

    def _ref_defaults(self, spec: Any) -> tuple[str | None, str | None, Mapping[str, bool]]:
        """Name, description and hints inherited from a ``ref``'d function."""
        ref = getattr(spec, "ref", None)
        fn = self.function_specs.get(ref) if ref else None
        own_hints = tool_hints(getattr(spec, "hints", None))
        if fn is None:
            return spec.name, spec.description, own_hints
        return (
            spec.name or fn.name,
            spec.description or fn.description,
            {**semantics_hints(fn), **own_hints},
        )

    def _rest(self, spec: ExposesRest, path: PathT, units: dict[str, Unit]) -> RestAdapterPlan:
        ns = spec.namespace
        namespaces = frozenset({"rest", ns})
        adapter_inputs = self.declared(spec.input_parameters, rest=True, path=path)
        routes = []
        for r_index, resource in enumerate(spec.resources):
            r_path = (*path, "resources", r_index)
            route_path = normalize_route_path(resource.path or "/")
            route_vars = compile_path(route_path).variables
            resource_inputs = self.declared(resource.input_parameters, rest=True, path=r_path)
            operations: dict[str, Unit] = {}
            for o_index, op in enumerate(resource.operations):
                o_path = (*r_path, "operations", o_index)
                method = (op.method or "GET").upper()
                if method in operations:
                    self.warning(o_path, f"a second {method} on {route_path}: the first wins")
                    continue
                name, description, hints = self._ref_defaults(op)
                unit_id = f"{ns}.{name}" if name else f"{ns}.{method} {route_path}"
                if unit_id in units:
                    unit_id = f"{ns}.{method} {route_path}"
                declared = _merge_declared(
                    adapter_inputs,
                    resource_inputs,
                    self.declared(op.input_parameters, rest=True, path=o_path),
                )
                unit = self.unit(
                    kind="operation",
                    unit_id=unit_id,
                    name=name or f"{method} {route_path}",
                    adapter_ns=ns,
                    namespaces=namespaces,
                    declared=declared,
                    spec=op,
                    path=o_path,
                    route_vars=route_vars,
                    rest=True,
                    title=op.label,
                    description=description,
                    hints=hints,
                )
                units[unit_id] = unit
                operations[method] = unit
            forward = None
            if resource.forward is not None:
                target = resource.forward.target_namespace
                if target not in self.consumes:
                    self.warning(
                        (*r_path, "forward", "targetNamespace"),
                        f"forward target '{target}' is not a consumed namespace: answers 501",
                    )
                forward = ForwardPlan(
                    target_namespace=target,
                    trusted_headers=tuple(resource.forward.trusted_headers),
                )
            routes.append(
                RestRoute(
                    path=route_path,
                    name=resource.name,
                    description=resource.description,
                    operations=operations,
                    forward=forward,
                )
            )
        return RestAdapterPlan(
            type="rest",
            namespace=ns,
            address=spec.address,
            port=spec.port,
            description=spec.description,
            authentication=spec.authentication,
            routes=tuple(routes),
        )

    def _mcp(self, spec: ExposesMcp, path: PathT, units: dict[str, Unit]) -> McpAdapterPlan:
        ns = spec.namespace
        namespaces = frozenset({"tools", ns})
        tools = []
        for t_index, tool in enumerate(spec.tools):
            t_path = (*path, "tools", t_index)
            name, description, hints = self._ref_defaults(tool)
            unit_id = f"{ns}.{name}"
            if unit_id in units:
                self.warning(t_path, f"duplicate tool '{name}': the first wins")
                continue
            unit = self.unit(
                kind="tool",
                unit_id=unit_id,
                name=name or "",
                adapter_ns=ns,
                namespaces=namespaces,
                declared=self.declared(tool.input_parameters, rest=False, path=t_path),
                spec=tool,
                path=t_path,
                rest=False,
                title=tool.label,
                description=description,
                hints=hints,
            )
            units[unit_id] = unit
            tools.append(unit)
        resources: list[StaticResourcePlan | DynamicResourcePlan] = []
        for r_index, resource in enumerate(spec.resources):
            r_path = (*path, "resources", r_index)
            plan = self._mcp_resource(resource, ns, namespaces, r_path, units)
            if plan is not None:
                resources.append(plan)
        transport = (spec.transport or "http").strip().lower()
        return McpAdapterPlan(
            type="mcp",
            namespace=ns,
            address=spec.address,
            port=spec.port,
            description=spec.description,
            authentication=spec.authentication,
            transport="stdio" if transport == "stdio" else "http",
            tools=tuple(tools),
            resources=tuple(resources),
            prompts=tuple(spec.prompts),
            base_dir=self.base_dir,
        )

    def _mcp_resource(
        self,
        resource: McpResource,
        ns: str,
        namespaces: frozenset[str],
        path: PathT,
        units: dict[str, Unit],
    ) -> StaticResourcePlan | DynamicResourcePlan | None:
        if resource.location and not (resource.call or resource.steps):
            from naftiko.engine.static_files import StaticFileError, resolve_file_location

            try:
                directory = resolve_file_location(resource.location, self.base_dir)
            except StaticFileError as exc:
                self.error((*path, "location"), str(exc))
                return None
            return StaticResourcePlan(
                name=resource.name,
                uri=resource.uri,
                title=resource.label,
                description=resource.description,
                mime_type=resource.mime_type,
                directory=str(directory),
            )
        variables = compile_path(resource.uri).variables
        declared = [
            InputField(name=v, location="argument", schema={"type": "string"}, required=True)
            for v in variables
        ]
        unit_id = f"{ns}.{resource.name}"
        if unit_id in units:
            unit_id = f"{ns}.resource:{resource.uri}"
        unit = self.unit(
            kind="resource",
            unit_id=unit_id,
            name=resource.name,
            adapter_ns=ns,
            namespaces=namespaces,
            declared=declared,
            spec=resource,
            path=path,
            rest=False,
            title=resource.label,
            description=resource.description,
            hints={},
        )
        units[unit_id] = unit
        return DynamicResourcePlan(
            name=resource.name,
            uri=resource.uri,
            title=resource.label,
            description=resource.description,
            mime_type=resource.mime_type,
            unit=unit,
            is_template=bool(variables),
        )

    # ------------------------------------------------------------------ formats

    def check_formats(self) -> None:
        from naftiko.engine.formats import FormatError, check_format

        for op_id, op in self.operations.items():
            try:
                check_format(op.output_raw_format, op.output_schema, self.base_dir)
            except FormatError as exc:
                message = f"operation '{op_id}': {exc}"
                if op_id in self.mapped_operations:
                    self.error(("capability", "consumes"), message)
                else:
                    self.warning(("capability", "consumes"), message + " (body passes through)")


# --------------------------------------------------------------------------- inputs


class _Inputs:
    """Declared fields first; derived ones added once, never overriding a declaration."""

    def __init__(self, declared: Sequence[InputField]) -> None:
        self._fields: dict[str, InputField] = {f.name: f for f in declared}

    def add(self, field_: InputField) -> None:
        self._fields.setdefault(field_.name, field_)

    def add_route_variable(self, name: str) -> None:
        if name in self._fields:
            existing = self._fields[name]
            if existing.location != "path" or not existing.required:
                self._fields[name] = InputField(
                    name=name,
                    location="path",
                    schema=existing.schema,
                    required=True,
                    description=existing.description,
                    derived=existing.derived,
                )
            return
        self._fields[name] = InputField(
            name=name, location="path", schema={"type": "string"}, required=True, derived=True
        )

    def derive(
        self,
        name: str,
        *,
        location: str,
        schema: Mapping[str, Any],
        required: bool,
        description: str | None,
        fed: str | None,
    ) -> None:
        existing = self._fields.get(name)
        if existing is not None:
            if existing.derived and not existing.schema.get("type") and schema.get("type"):
                # A later, typed reference refines an untyped derived field.
                self._fields[name] = InputField(
                    name=name,
                    location=existing.location,
                    schema=schema,
                    required=existing.required or required,
                    description=existing.description or description,
                    derived=True,
                )
            return
        self._fields[name] = InputField(
            name=name,
            location=location,  # type: ignore[arg-type]
            schema=schema,
            required=required,
            description=description,
            derived=True,
        )

    def result(self) -> tuple[InputField, ...]:
        return tuple(self._fields.values())


def _merge_declared(*levels: Sequence[InputField]) -> list[InputField]:
    """Adapter, resource, then operation level: a later level overwrites by name."""
    merged: dict[str, InputField] = {}
    for level in levels:
        for f in level:
            merged[f.name] = f
    return list(merged.values())


def _rest_location(name: str, route_vars: Sequence[str], consumed: ParamPlan | None) -> str:
    if name in route_vars:
        return "path"
    if name == "body" and (consumed is None or consumed.location == "body"):
        return "body"
    if consumed is not None and consumed.location in ("query", "header"):
        return consumed.location
    if consumed is not None and consumed.location == "body":
        return "body"
    return "query"


def _relocate(f: InputField, route_vars: Sequence[str]) -> InputField:
    """A function's ``argument`` input as a REST input (path when the route names it)."""
    location = "path" if f.name in route_vars else ("body" if f.name == "body" else "query")
    return InputField(
        name=f.name,
        location=location,  # type: ignore[arg-type]
        schema=f.schema,
        required=f.required or location == "path",
        description=f.description,
        derived=f.derived,
    )


def _consumed_schema(param: ParamPlan | None) -> dict[str, Any]:
    if param is None:
        return {}
    schema: dict[str, Any] = {}
    kind = param.type or ("object" if param.location == "body" and param.name == "body" else None)
    if kind:
        schema["type"] = kind
    if param.description:
        schema["description"] = param.description
    return schema


def declared_schema(param: InputParameter) -> dict[str, Any]:
    """The JSON Schema of a declared input (unknown types carry no type constraint)."""
    schema: dict[str, Any] = {}
    kind = json_type(param.type)
    if kind:
        schema["type"] = kind
    if param.description:
        schema["description"] = param.description
    if param.enum:
        schema["enum"] = list(param.enum)
    if param.default is not None:
        schema["default"] = param.default
    if param.format:
        schema["format"] = param.format
    if kind == "array" and isinstance(param.items, dict):
        schema["items"] = _clean_schema(param.items)
    if kind == "object" and isinstance(param.properties, dict):
        schema["properties"] = {
            k: _clean_schema(v) for k, v in param.properties.items() if isinstance(v, dict)
        }
    try:
        Draft202012Validator.check_schema(schema)
    except SchemaError:
        schema.pop("items", None)
        schema.pop("properties", None)
    return schema


def _clean_schema(raw: Mapping[str, Any]) -> dict[str, Any]:
    """A document's ``items``/``properties`` entry with its type names normalised."""
    out: dict[str, Any] = {}
    for key, value in raw.items():
        if key == "type" and isinstance(value, str):
            kind = json_type(value)
            if kind:
                out["type"] = kind
        elif key in ("description", "enum", "default", "format"):
            out[key] = value
        elif key == "items" and isinstance(value, dict):
            out["items"] = _clean_schema(value)
        elif key == "properties" and isinstance(value, dict):
            out["properties"] = {
                k: _clean_schema(v) for k, v in value.items() if isinstance(v, dict)
            }
    return out


def input_schema(fields: Sequence[InputField]) -> dict[str, Any]:
    """The JSON Schema object over a unit's inputs (the MCP ``inputSchema``)."""
    properties = {}
    for f in fields:
        schema = dict(f.schema)
        if f.description and "description" not in schema:
            schema["description"] = f.description
        properties[f.name] = schema
    schema: dict[str, Any] = {"type": "object", "properties": properties}
    required = [f.name for f in fields if f.required]
    if required:
        schema["required"] = required
    return schema


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


_HINTS = {
    "read_only": "readOnlyHint",
    "destructive": "destructiveHint",
    "idempotent": "idempotentHint",
    "open_world": "openWorldHint",
}


def tool_hints(hints: McpToolHints | None) -> dict[str, bool]:
    if hints is None:
        return {}
    return {
        mcp: value
        for attr, mcp in _HINTS.items()
        if isinstance(value := getattr(hints, attr), bool)
    }


def semantics_hints(fn: AggregateFunction) -> dict[str, bool]:
    """``safe: true`` -> read-only, not destructive; ``safe: false`` -> not read-only;
    ``idempotent`` copied; ``cacheable`` and open-world never derived."""
    semantics = fn.semantics
    if semantics is None:
        return {}
    hints: dict[str, bool] = {}
    if semantics.safe is True:
        hints.update(readOnlyHint=True, destructiveHint=False)
    elif semantics.safe is False:
        hints["readOnlyHint"] = False
    if isinstance(semantics.idempotent, bool):
        hints["idempotentHint"] = semantics.idempotent
    return hints


def render_or_none(text: str | None, scope: Scope) -> str | None:
    """A credential field rendered, or None when it references something unresolved."""
    if text is None:
        return None
    template = compile_template(text)
    for ref in template.references:
        value = scope.lookup(ref)
        if value is MISSING or value is None or value == "":
            return None
    return template.render(scope)


# --------------------------------------------------------------------------- entry point


def compile_capability(loaded: Any, settings: EngineSettings | None = None) -> CompiledCapability:
    """Compile a loaded capability; raises :class:`LoadError` listing every error."""
    settings = settings or EngineSettings()
    compiler = _Compiler(loaded, settings)
    document = loaded.document
    body = document.capability
    consumes = (
        document.consumed()
        if body is not None
        else tuple(c for c in document.consumes if isinstance(c, ConsumesHttp))
    )
    compiler.compile_consumes(consumes)
    if body is not None:
        compiler.compile_functions(body.aggregates)
        adapters, units = compiler.compile_adapters(body.exposes)
    else:
        adapters, units = [], {}
    compiler.check_formats()
    if compiler.errors:
        raise LoadError([*compiler.errors, *compiler.warnings])
    return CompiledCapability(
        loaded=loaded,
        adapters=tuple(adapters),
        units=units,
        functions=compiler.functions,
        consumes=compiler.consumes,
        operations=compiler.operations,
        token_cache=compiler.token_cache,
        warnings=tuple(compiler.warnings),
    )
