"""MCP resources: matching URIs to declared resources and shaping their contents.

Static resources (``file://`` directories) are listed file by file and read through
:mod:`naftiko.engine.static_files`, which enforces the segment pattern and symlink
containment. Dynamic resources run their unit through ``Engine.invoke`` with the URI
template variables as inputs; ``{var}`` matches exactly one path segment.
Failures are raised as :class:`ResourceFailure`, which the adapter turns into MCP errors.
"""

from __future__ import annotations

import base64
import re
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import unquote

import mcp_types as types
from mcp_types import INTERNAL_ERROR, INVALID_PARAMS

from naftiko.adapters.mcp.plan import DynamicResourcePlan, StaticResourcePlan
from naftiko.adapters.mcp.results import body_text, is_binary
from naftiko.engine import static_files
from naftiko.engine.types import JSON_MEDIA_TYPE, ErrorKind, Result
from naftiko.errors import CallerError

_TEMPLATE_VAR = re.compile(r"\{([^{}/]+)\}")

Contents = types.TextResourceContents | types.BlobResourceContents


class ResourceFailure(CallerError):
    """A read that cannot be served; ``code`` is the JSON-RPC error code."""

    def __init__(self, code: int, message: str, *, status: int | None = None) -> None:
        super().__init__(message)
        self.code = code
        self.message = message
        self.status = status or (400 if code == INVALID_PARAMS else 500)  # for the request log


@dataclass(frozen=True, slots=True)
class DynamicEntry:
    plan: DynamicResourcePlan
    pattern: re.Pattern[str]
    variables: tuple[str, ...]

    def match(self, uri: str) -> dict[str, str] | None:
        found = self.pattern.fullmatch(uri)
        if found is None:
            return None
        return {
            name: unquote(value) for name, value in zip(self.variables, found.groups(), strict=True)
        }


def compile_dynamic(plan: DynamicResourcePlan) -> DynamicEntry:
    """A matcher for the plan's URI: literal parts escaped, each ``{var}`` one segment."""
    variables: list[str] = []
    parts: list[str] = []
    position = 0
    for found in _TEMPLATE_VAR.finditer(plan.uri):
        parts.append(re.escape(plan.uri[position : found.start()]))
        parts.append("([^/]+)")
        variables.append(found.group(1).strip())
        position = found.end()
    parts.append(re.escape(plan.uri[position:]))
    return DynamicEntry(plan, re.compile("".join(parts)), tuple(variables))


def list_static(plan: StaticResourcePlan) -> list[types.Resource]:
    """One entry per file under the directory (re-read at every listing: files change)."""
    return [
        types.Resource(
            uri=f"{plan.uri}/{relative}",
            name=f"{plan.name}/{relative}",
            title=plan.title or plan.name,
            description=plan.description,
            mime_type=plan.mime_type or static_files.guess_media_type(relative),
        )
        for relative in static_files.list_files(plan.directory)
    ]


def static_relative(plan: StaticResourcePlan, uri: str) -> str | None:
    """The relative path a URI names under this static resource, or None if not ours."""
    base = plan.uri.rstrip("/")
    if uri == base or uri == base + "/":
        return ""
    if uri.startswith(base + "/"):
        return uri[len(base) + 1 :]
    return None


def read_static(plan: StaticResourcePlan, uri: str, relative: str) -> Contents:
    if not relative:
        raise ResourceFailure(INVALID_PARAMS, f"Resource URI names a directory, not a file: {uri}")
    try:
        path = static_files.resolve_under(plan.directory, relative)
    except static_files.PathRejected:
        raise ResourceFailure(
            INVALID_PARAMS, f"Path traversal detected for resource URI: {uri}"
        ) from None
    except static_files.FileMissing:
        raise ResourceFailure(
            INVALID_PARAMS, f"Unknown resource URI: {uri} (no such file)", status=404
        ) from None
    try:
        data = path.read_bytes()
    except OSError:
        raise ResourceFailure(INTERNAL_ERROR, f"Resource could not be read: {uri}") from None
    mime = plan.mime_type or static_files.guess_media_type(Path(relative))
    return contents(uri, data, mime)


def contents(uri: str, body: object, mime: str, *, binary: bool = False) -> Contents:
    """Text when the body is text (or JSON), base64 blob for binary bytes (always for a
    ``binary`` resource)."""
    if isinstance(body, (bytes, bytearray)):
        data = bytes(body)
        if binary or is_binary(mime, data):
            return types.BlobResourceContents(
                uri=uri, mime_type=mime, blob=base64.b64encode(data).decode("ascii")
            )
        return types.TextResourceContents(
            uri=uri, mime_type=mime, text=data.decode("utf-8", "replace")
        )
    return types.TextResourceContents(uri=uri, mime_type=mime, text=body_text(body))


def dynamic_contents(plan: DynamicResourcePlan, uri: str, result: Result) -> Contents:
    """The read result for an engine result; failures become :class:`ResourceFailure`."""
    if result.is_error:
        problem = result.problem
        if problem is not None and problem.kind is ErrorKind.VALIDATION:
            where = f" {problem.parameter!r}" if problem.parameter else ""
            raise ResourceFailure(
                INVALID_PARAMS,
                f"Invalid URI variable{where} in {uri}: {problem.detail}",
                status=400,
            )
        if problem is None or problem.kind is ErrorKind.UPSTREAM:
            status = result.upstream_status or result.status
            message = f"HTTP {status} from upstream: {body_text(result.body)}"
        else:
            message = f"{problem.title}: {problem.detail} [{problem.status}]"
        raise ResourceFailure(
            INTERNAL_ERROR, f"Resource {uri} could not be read: {message}", status=result.status
        )
    if result.is_raw:
        mime = plan.mime_type or result.media_type
    else:
        mime = plan.mime_type or JSON_MEDIA_TYPE
    return contents(uri, result.body, mime, binary=plan.binary)


def list_dynamic(entries: tuple[DynamicEntry, ...]) -> list[types.Resource]:
    return [
        types.Resource(
            uri=e.plan.uri,
            name=e.plan.name,
            title=e.plan.title or e.plan.name,
            description=e.plan.description,
            mime_type=e.plan.mime_type,
        )
        for e in entries
        if not e.variables
    ]


def list_templates(entries: tuple[DynamicEntry, ...]) -> list[types.ResourceTemplate]:
    return [
        types.ResourceTemplate(
            uri_template=e.plan.uri,
            name=e.plan.name,
            title=e.plan.title,
            description=e.plan.description,
            mime_type=e.plan.mime_type,
        )
        for e in entries
        if e.variables
    ]
