"""Translation between engine units/results and MCP tool shapes (part of the MCP adapter).

Built once per tool at adapter build time (:class:`ToolEntry`) so ``tools/list`` and
``tools/call`` do no schema work per request. Text sent to an agent never contains a
secret: problems come from the engine (already redacted) and upstream bodies are the
upstream's own words, passed through intact because the agent needs them (TikTok's
``error_description`` and ``log_id``).
"""

from __future__ import annotations

import base64
import json
import logging
import numbers
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

import mcp_types as types
from jsonschema import Draft202012Validator
from jsonschema.exceptions import SchemaError

from naftiko.compile.inputs import surely_valid_schema
from naftiko.compile.validators import LazyValidator
from naftiko.engine.static_files import is_text_media_type
from naftiko.engine.types import ErrorKind, Result, Unit, thaw
from naftiko.media_types import OCTET_STREAM, as_written, essence

log = logging.getLogger("naftiko.adapters.mcp.server")

# The MCP tool annotation hints: a unit's hint (its spec name, ``Unit.hints``) -> the MCP
# name. The one place MCP's names are spelled.
TOOL_HINTS: Mapping[str, str] = {
    "read_only": "readOnlyHint",
    "destructive": "destructiveHint",
    "idempotent": "idempotentHint",
    "open_world": "openWorldHint",
}
HINT_NAMES = tuple(TOOL_HINTS.values())
_SHORT_HINTS = {name.removesuffix("Hint"): name for name in HINT_NAMES}  # readOnly, ...


def to_json_text(value: Any) -> str:
    """JSON text for an agent: compact, non-ASCII kept (fewer tokens, readable)."""
    return json.dumps(value, ensure_ascii=False, separators=(",", ":"), default=str)


def body_text(body: Any) -> str:
    """Any result body as text: strings as they are, bytes decoded, the rest as JSON."""
    if body is None:
        return ""
    if isinstance(body, str):
        return body
    if isinstance(body, (bytes, bytearray)):
        return bytes(body).decode("utf-8", errors="replace")
    return to_json_text(body)


def is_binary(media_type: str | None, data: bytes) -> bool:
    """Binary when the media type says so; with no useful type, when it is not UTF-8."""
    media = essence(media_type)
    if media and media != OCTET_STREAM:
        return not is_text_media_type(media)
    try:
        data.decode("utf-8")
    except UnicodeDecodeError:
        return True
    return media == OCTET_STREAM


Check = Callable[[Any], bool]
# Draft 2020-12's type checker, for JSON values (``numbers.Number`` as jsonschema has it).
_TYPE_CHECKS: dict[str, Check] = {
    "object": lambda v: isinstance(v, dict),
    "array": lambda v: isinstance(v, list),
    "string": lambda v: isinstance(v, str),
    "boolean": lambda v: isinstance(v, bool),
    "null": lambda v: v is None,
    "number": lambda v: isinstance(v, numbers.Number) and not isinstance(v, bool),
    "integer": lambda v: (
        (isinstance(v, int) and not isinstance(v, bool))
        or (isinstance(v, float) and v.is_integer())
    ),
}
# Keywords that never change validity (``format`` only asserts with a format checker).
_ANNOTATIONS = frozenset(
    {"title", "description", "default", "examples", "format", "deprecated", "readOnly",
     "writeOnly", "$comment"}
)  # fmt: skip


def compile_check(schema: Any) -> Check | None:
    """An exact, fast ``is_valid`` for the schemas output mappings produce, else ``None``.

    ``Draft202012Validator.iter_errors`` walks its generic machinery on every tool
    result; output mappings only use ``type``/``properties``/``items``/``required``
    /``additionalProperties``, which compile to a few closures. Any other keyword
    returns ``None`` and jsonschema stays the judge.
    """
    if isinstance(schema, bool):
        return (lambda _: True) if schema else (lambda _: False)
    if not isinstance(schema, Mapping):
        return None
    checks: list[Check] = []
    for key, value in schema.items():
        if key in _ANNOTATIONS:
            continue
        if key == "type":
            names = [value] if isinstance(value, str) else value
            if not isinstance(names, list) or not all(n in _TYPE_CHECKS for n in names):
                return None
            tests = tuple(_TYPE_CHECKS[n] for n in names)
            checks.append(lambda v, tests=tests: any(test(v) for test in tests))
        elif key == "required":
            if not isinstance(value, list) or not all(isinstance(n, str) for n in value):
                return None
            required = tuple(value)
            checks.append(lambda v, r=required: not isinstance(v, dict) or all(n in v for n in r))
        elif key in ("properties", "items", "additionalProperties"):
            continue  # compiled below, together
        else:
            return None
    properties: dict[str, Check] = {}
    for name, sub in (schema.get("properties") or {}).items():
        check = compile_check(sub)
        if check is None:
            return None
        properties[name] = check
    if "properties" in schema and not isinstance(schema["properties"], Mapping):
        return None
    extra = (
        compile_check(schema["additionalProperties"]) if "additionalProperties" in schema else None
    )
    if "additionalProperties" in schema and extra is None:
        return None
    if properties or extra is not None:

        def object_check(v: Any, props: dict[str, Check] = properties, extra: Any = extra) -> bool:
            if not isinstance(v, dict):
                return True
            for key, item in v.items():
                check = props.get(key, extra)
                if check is not None and not check(item):
                    return False
            return True

        checks.append(object_check)
    if "items" in schema:
        item_check = compile_check(schema["items"])
        if item_check is None:
            return None
        checks.append(lambda v, c=item_check: not isinstance(v, list) or all(c(i) for i in v))
    return lambda v, checks=tuple(checks): all(check(v) for check in checks)


@dataclass(frozen=True, slots=True)
class ToolEntry:
    """One tool: its unit, its wire description and its output-schema check."""

    unit: Unit
    tool: types.Tool
    input_schema: dict[str, Any]
    output_validator: LazyValidator | None
    output_check: Check | None = None  # exact fast ``is_valid`` when the schema allows


def build_tool(unit: Unit) -> ToolEntry:
    """The MCP tool for a unit (schemas copied, hints mapped, only set hints kept)."""
    input_schema = thaw(unit.input_schema) or {}
    if input_schema.get("type") != "object":
        # MCP requires an object root; a unit without inputs may come with an empty schema.
        if "type" in input_schema:
            log.warning(
                "tool %r: input schema type %r replaced by object", unit.name, input_schema["type"]
            )
        input_schema = {**input_schema, "type": "object"}
    output_schema = thaw(unit.output_schema) if unit.output_schema else None
    validator: LazyValidator | None = None
    if output_schema is not None:
        if output_schema.get("type") != "object":  # old clients require an object root
            output_schema = None
        else:
            try:
                if not surely_valid_schema(output_schema):  # the metaschema is slow: not for ours
                    Draft202012Validator.check_schema(output_schema)
                validator = LazyValidator(output_schema)
            except SchemaError as exc:
                log.warning("tool %r: output schema dropped, invalid: %s", unit.name, exc.message)
                output_schema = None
    hints: dict[str, Any] = {}
    for key, value in unit.hints.items():
        name = TOOL_HINTS.get(key) or _SHORT_HINTS.get(key, key)
        if name in HINT_NAMES and value is not None:
            hints[name] = bool(value)
    if unit.title:
        hints["title"] = unit.title
    tool = types.Tool(
        name=unit.name,
        title=unit.title,
        description=unit.description,
        input_schema=input_schema,
        output_schema=output_schema,
        annotations=types.ToolAnnotations.model_validate(hints) if hints else None,
    )
    check = compile_check(output_schema) if validator is not None else None
    return ToolEntry(unit, tool, input_schema, validator, check)


def error_result(text: str) -> types.CallToolResult:
    return types.CallToolResult(content=[types.TextContent(text=text)], is_error=True)


def call_tool_result(entry: ToolEntry, result: Result) -> types.CallToolResult:
    """The ``tools/call`` answer for an engine result (never raises for any body)."""
    if result.is_error:
        return error_result(failure_text(entry, result))
    body = result.body
    if isinstance(body, (bytes, bytearray)):
        block = _bytes_content(entry, bytes(body), result.media_type, entry.unit.binary is not None)
        if entry.output_validator is not None:
            # Not JSON, so never the structured content the output schema promises.
            kind = as_written(result.media_type or OCTET_STREAM)
            return schema_mismatch(entry, f"the result is {kind}, not a JSON object", block)
        return types.CallToolResult(content=[block])
    if body is None:
        content: list[types.ContentBlock] = []
        structured: Any = None
    else:
        content = [types.TextContent(text=body_text(body))]
        # Up to 2025-11-25 structured content must be an object; send it only then.
        structured = body if isinstance(body, dict) else None
    validator = entry.output_validator
    if body is None and validator is not None and validator.is_valid({}):
        structured = {}  # no content (204) is a success; an empty object says so validly
    elif validator is not None:
        # The client checks structuredContent against outputSchema and raises on a
        # mismatch or absence, losing the data. Report it as a tool error instead: the
        # agent still sees the result, and clients skip the check for errors.
        error = None
        if structured is not None and (entry.output_check is None or not entry.output_check(body)):
            error = next(iter(validator.iter_errors(body)), None)
        if structured is None or error is not None:
            reason = (
                f"at {error.json_path}: {error.message}"
                if error is not None
                else "the result is not a JSON object"
            )
            return schema_mismatch(entry, reason, types.TextContent(text=body_text(body)))
    return types.CallToolResult(content=content, structured_content=structured)


def schema_mismatch(
    entry: ToolEntry, reason: str, answer: types.ContentBlock
) -> types.CallToolResult:
    """A result the output schema does not admit, as a tool error carrying the answer.

    The spec requires structured content from a tool with an output schema and clients
    reject a success without it, losing the data; clients skip the check for errors,
    so the agent still sees the upstream's answer (text, or the image/audio/blob).
    """
    log.warning("tool %r: result does not match its output schema (%s)", entry.unit.name, reason)
    text = (
        f"The result of tool {entry.unit.name!r} does not match its declared output "
        f"schema ({reason})."
    )
    if isinstance(answer, types.TextContent):
        return error_result(f"{text} Result: {answer.text}")
    return types.CallToolResult(content=[types.TextContent(text=text), answer], is_error=True)


def failure_text(entry: ToolEntry, result: Result) -> str:
    """What went wrong, in words an agent can act on; a failed orchestration step is
    named (``Step 'get-ship' failed: HTTP 404 from upstream: {...}``)."""
    problem = result.problem
    if problem is None or problem.kind is ErrorKind.UPSTREAM:
        status = result.upstream_status or result.status
        text = f"HTTP {status} from upstream: {body_text(result.body)}"
        return f"Step {problem.step!r} failed: {text}" if problem and problem.step else text
    if problem.kind is ErrorKind.VALIDATION:
        return validation_text(entry, problem.parameter, problem.detail)
    where = f" (step {problem.step!r})" if problem.step else ""
    return f"{problem.title}{where}: {problem.detail} [{problem.status}]"


def validation_text(entry: ToolEntry, parameter: str | None, detail: str) -> str:
    """Name the argument and show what the schema expects, so the model can retry."""
    name = entry.unit.name
    properties = entry.input_schema.get("properties") or {}
    required = entry.input_schema.get("required") or []
    detail = detail.strip().rstrip(".")
    if parameter and repr(parameter) not in detail and parameter not in detail.split():
        detail = f"argument {parameter!r}: {detail}"
    parts = [f"Invalid arguments for tool {name!r}: {detail}."]
    expected = properties.get(parameter) if parameter else None
    if expected is not None:
        parts.append(f"Expected {parameter!r}: {to_json_text(expected)}.")
    if required:
        parts.append(f"Required arguments: {', '.join(map(str, required))}.")
    return " ".join(parts)


def _bytes_content(
    entry: ToolEntry, data: bytes, media_type: str | None, binary: bool
) -> types.ContentBlock:
    """``binary``: the unit answers bytes (decided at load), never sent as text; other
    bytes (an unparsed upstream body) are text when they read as text."""
    if not binary and not is_binary(media_type, data):
        return types.TextContent(text=data.decode("utf-8", errors="replace"))
    mime = as_written(media_type or OCTET_STREAM)
    encoded = base64.b64encode(data).decode("ascii")
    if mime.startswith("image/"):
        return types.ImageContent(data=encoded, mime_type=mime)
    if mime.startswith("audio/"):
        return types.AudioContent(data=encoded, mime_type=mime)
    uri = f"naftiko://{entry.unit.adapter_namespace}/tools/{entry.unit.name}/result"
    return types.EmbeddedResource(
        resource=types.BlobResourceContents(uri=uri, mime_type=mime, blob=encoded)
    )
