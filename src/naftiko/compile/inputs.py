"""A unit's inputs and their JSON Schemas: declared, or derived from references.

Inputs are *declared* (``inputParameters``) or *derived*: published documents wire
``with: {body: tools.body}`` without declaring ``body``, so every input reference that is
not declared becomes an input, typed from the consumed parameter it feeds when there is
one. References are found in the unit's ``with``, in the templates of the operation it
calls, and in the ``with`` of its orchestration call steps. A derived input never
overrides a declaration.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping, Sequence
from typing import Any

from jsonschema import Draft202012Validator
from jsonschema.exceptions import SchemaError

from naftiko.engine.orchestration import CallStepPlan, CompiledSteps
from naftiko.engine.types import InputField
from naftiko.spec.models import InputParameter
from naftiko.templating import INPUT_PREFIXES, ValueExpr
from naftiko.upstream.plans import OperationPlan, ParamPlan

__all__ = [
    "InputSet",
    "declared_inputs",
    "declared_schema",
    "input_name_of",
    "input_schema",
    "json_type",
    "merge_declared",
]

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


# --------------------------------------------------------------------------- schemas


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
        schema["properties"] = _clean_properties(param.properties)
    try:
        if not surely_valid_schema(schema):
            Draft202012Validator.check_schema(schema)
    except SchemaError:
        schema.pop("items", None)
        schema.pop("properties", None)
    return schema


_SIMPLE_TYPES = frozenset({"array", "boolean", "integer", "null", "number", "object", "string"})
_STRING_KEYWORDS = frozenset({"description", "format", "title"})
_COUNT_KEYWORDS = frozenset(
    {"minLength", "maxLength", "minItems", "maxItems", "minProperties", "maxProperties"}
)


def surely_valid_schema(schema: Any) -> bool:
    """True when ``schema`` uses only keywords this module writes, each well-formed.

    ``check_schema`` against the 2020-12 metaschema is slow enough to dominate the
    compile time of a large document; the schemas we generate almost always pass this
    check, which is cheap. False only means "ask the metaschema": anything unusual (other
    keywords, odd values) still gets the full check and its message.
    """
    if not isinstance(schema, dict):
        return isinstance(schema, bool)
    for key, value in schema.items():
        if key == "type":
            types = value if isinstance(value, list) else [value]
            if not types or not all(isinstance(t, str) and t in _SIMPLE_TYPES for t in types):
                return False
            if len(set(types)) != len(types):
                return False
        elif key in _STRING_KEYWORDS:
            if not isinstance(value, str):
                return False
        elif key in _COUNT_KEYWORDS:
            if value.__class__ is not int or value < 0:  # bool is not a count
                return False
        elif key == "enum":
            if not isinstance(value, list):
                return False
        elif key == "required":
            if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
                return False
            if len(set(value)) != len(value):
                return False
        elif key == "properties":
            if not isinstance(value, dict) or not all(map(surely_valid_schema, value.values())):
                return False
        elif key == "items":
            if not surely_valid_schema(value):
                return False
        elif key == "additionalProperties":
            if not isinstance(value, bool):
                return False
        elif key != "default":  # any value is a valid default
            return False
    return True


def _clean_properties(raw: Mapping[str, Any]) -> dict[str, Any]:
    return {k: _clean_schema(v) for k, v in raw.items() if isinstance(v, dict)}


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
            out["properties"] = _clean_properties(value)
    return out


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


def input_schema(fields: Sequence[InputField], *, closed: bool = False) -> dict[str, Any]:
    """The JSON Schema object over a unit's inputs (the MCP ``inputSchema``).

    ``closed``: no other property is allowed (``additionalProperties: false``), for a
    tool that declares its inputs: an argument it does not know is refused by name
    rather than silently dropped (issue 15).
    """
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
    if closed:
        schema["additionalProperties"] = False
    return schema


# --------------------------------------------------------------------------- declared


def declared_inputs(
    params: Sequence[InputParameter], *, located: bool, unplaced: str = "body"
) -> list[InputField]:
    """Declared ``inputParameters``. ``located`` (a REST operation's): where the caller
    puts them in its HTTP request (``unplaced`` when ``in`` is missing or unknown: the
    body, or the query string of a method whose caller sends no body), required when
    ``true`` or in the path. Otherwise (named arguments, as MCP's) required unless
    ``false``."""
    fields = []
    for param in params:
        if not param.name:
            continue
        location = (param.in_ or (unplaced if located else "argument")).strip().lower()
        if located:
            if location not in ("path", "query", "header", "cookie", "body"):
                location = unplaced
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


def merge_declared(*levels: Sequence[InputField]) -> list[InputField]:
    """Adapter, resource, then operation level: a later level overwrites by name."""
    merged: dict[str, InputField] = {}
    for level in levels:
        for f in level:
            merged[f.name] = f
    return list(merged.values())


# --------------------------------------------------------------------------- derived


class InputSet:
    """A unit's inputs being gathered: declared fields first, then the route's variables
    (``located`` units: a caller's HTTP request holds the inputs), then derived ones, each
    added once and never overriding a declaration."""

    def __init__(
        self,
        declared: Sequence[InputField],
        *,
        route_vars: Sequence[str] = (),
        located: bool,
        caller_body: bool = True,
    ) -> None:
        self._fields: dict[str, InputField] = {f.name: f for f in declared}
        self._route_vars = tuple(route_vars)
        self._located = located
        self._caller_body = caller_body  # False: a REST method whose caller sends no body
        for var in self._route_vars:
            self._add_route_variable(var)

    def result(self) -> tuple[InputField, ...]:
        return tuple(self._fields.values())

    def _add_route_variable(self, name: str) -> None:
        existing = self._fields.get(name)
        if existing is None:
            self._fields[name] = InputField(
                name=name, location="path", schema={"type": "string"}, required=True, derived=True
            )
        elif existing.location != "path" or not existing.required:
            self._fields[name] = InputField(
                name=name,
                location="path",
                schema=existing.schema,
                required=True,
                description=existing.description,
                derived=existing.derived,
            )

    def _location(self, name: str, consumed: ParamPlan | None) -> str:
        """Where a caller puts a derived input (``argument`` when not ``located``)."""
        if not self._located:
            return "argument"
        if name in self._route_vars:
            return "path"
        if name == "body" and (consumed is None or consumed.location == "body"):
            return "body"
        if consumed is not None and consumed.location in ("query", "header"):
            return consumed.location
        if consumed is not None and consumed.location == "body" and self._caller_body:
            return "body"
        return "query"

    def add_function_input(self, f: InputField) -> None:
        """A ``ref``'d function's input the unit does not feed: the unit's caller must."""
        if not self._located:
            self._fields.setdefault(f.name, f)
            return
        location = (
            "path" if f.name in self._route_vars else ("body" if f.name == "body" else "query")
        )
        relocated = InputField(
            name=f.name,
            location=location,  # type: ignore[arg-type]
            schema=f.schema,
            required=f.required or location == "path",
            description=f.description,
            derived=f.derived,
        )
        self._fields.setdefault(f.name, relocated)

    def derive(
        self,
        name: str,
        *,
        schema: Mapping[str, Any],
        required: bool,
        description: str | None,
        consumed: ParamPlan | None = None,
    ) -> None:
        """Add a derived input; a later, typed reference refines an untyped derived one."""
        existing = self._fields.get(name)
        if existing is not None:
            if existing.derived and not existing.schema.get("type") and schema.get("type"):
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
            location=self._location(name, consumed),  # type: ignore[arg-type]
            schema=schema,
            required=required,
            description=description,
            derived=True,
        )

    def derive_fed(self, name: str, param: ParamPlan | None) -> None:
        """An input feeding the consumed parameter ``param`` (None: untyped, optional)."""
        self.derive(
            name,
            schema=_consumed_schema(param),
            required=bool(param and param.required),
            description=param.description if param else None,
            consumed=param,
        )

    def derive_from_with(
        self, with_: Mapping[str, ValueExpr], targets: Mapping[str, InputField]
    ) -> None:
        """Inputs read by ``with`` values; a lone reference feeding a function input
        (``ref``) takes that input's schema and required flag."""
        for key, expr in with_.items():
            target = targets.get(key) if expr.is_input_reference else None
            for name in sorted(expr.input_references):
                top = _first_name(name)
                typed = target if target is not None and top == name else None
                self.derive(
                    top,
                    schema=dict(typed.schema) if typed else {},
                    required=bool(typed and typed.required),
                    description=typed.description if typed else None,
                )

    def derive_from_call(
        self,
        operation: OperationPlan,
        with_: Mapping[str, ValueExpr],
        namespaces: frozenset[str],
        is_bound: Callable[[str], bool],
    ) -> None:
        """Inputs of a ``call``: its ``with`` references, the input references in the
        consumed operation's templates, and the consumed parameters nothing feeds."""
        consumed = {p.name: p for p in operation.params}
        self._derive_fed_by(with_.items(), consumed)
        refs: set[str] = set()
        for param in operation.params:
            if param.value is not None:
                refs |= set(param.value.references)
                refs |= {f"tools.{n}" for n in param.value.input_references}
        refs |= set(operation.path.variables)
        if operation.body is not None:
            refs |= operation.body.references
        for ref in sorted(refs):
            name = input_name_of(ref, namespaces)
            if name is None or _first_name(name) in with_:
                continue
            top = _first_name(name)
            self.derive_fed(top, consumed.get(top))
        # Consumed parameters with no ``value`` (and bare path variables) read the scope
        # value of their name: the caller's input of that name.
        valued = {p.name for p in operation.params if p.value is not None}
        for var in operation.path.variables:
            if "." in var or var in with_ or var in consumed or var in valued or is_bound(var):
                continue
            self.derive(var, schema={"type": "string"}, required=True, description=None)
        for param in operation.params:
            name = param.name
            if (
                param.value is not None
                or not name
                or name in with_
                or param.location == "environment"
                or is_bound(name)
            ):
                continue
            self.derive_fed(name, param)

    def derive_from_steps(
        self, steps: CompiledSteps, find: Callable[[str], OperationPlan | None]
    ) -> None:
        """Input references in the ``with`` of call steps, typed from the consumed
        parameter each feeds; those in lookup values and mappings, untyped."""
        for step in steps.steps:
            if isinstance(step, CallStepPlan):
                operation = find(step.operation)
                consumed = {p.name: p for p in operation.params} if operation else {}
                self._derive_fed_by(step.with_values, consumed)
        for expr in steps.templates:
            for name in sorted(expr.input_references):
                self.derive_fed(_first_name(name), None)

    def _derive_fed_by(
        self, with_: Iterable[tuple[str, ValueExpr]], consumed: Mapping[str, ParamPlan]
    ) -> None:
        """``with`` references; a lone one is typed from the consumed parameter its key
        names (``{{tools.x}}`` counts as lone, ``"id-{{tools.x}}"`` does not)."""
        for key, expr in with_:
            raw = expr.raw.strip() if isinstance(expr.raw, str) else ""
            lone = expr.is_input_reference or (
                expr.kind == "template"
                and len(expr.input_references) == 1
                and raw.startswith("{{")
                and raw.endswith("}}")
            )
            for name in sorted(expr.input_references):
                top = _first_name(name)
                self.derive_fed(top, consumed.get(key) if lone and top == name else None)
