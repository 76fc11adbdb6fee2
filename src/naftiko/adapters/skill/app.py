"""The skill adapter (``type: skill``): a read-only catalogue of agent skills over HTTP.

Routes (reference-semantics §8.1), all ``GET`` (``HEAD`` too):

* ``/skills`` — ``{"count", "skills": [{"name", "description", "license"?, "tools": [names]}]}``
* ``/skills/{name}`` — metadata and tools: derived tools carry an ``invocationRef``
  ``{targetNamespace, action, mode}`` where ``mode`` is the type of the sibling adapter
  serving that namespace (``mcp``/``rest``, ``unknown`` when none does); instruction
  tools carry the ``instruction`` file name (readable under ``/contents``).
* ``/skills/{name}/download`` — a ZIP of the skill's ``location`` directory.
* ``/skills/{name}/contents`` — ``{"name", "files": [{"path", "size", "type"}]}``, sorted.
* ``/skills/{name}/contents/{file...}`` — one file, media type by extension.

The adapter never invokes the tools it describes: agents call the sibling adapter named
by ``invocationRef``. Errors are ``application/problem+json``: unknown skill, no
``location`` or missing file → 404; a path segment that is malformed or escapes the
directory (``..``, symlinks out) → 400. File access goes through
:mod:`naftiko.engine.static_files`, so listing and reading apply the same rules.
"""

from __future__ import annotations

import io
import os
import zipfile
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import anyio.to_thread
from starlette.applications import Starlette
from starlette.middleware import Middleware
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from naftiko.adapters.http.auth import InboundAuthMiddleware, build_inbound_auth
from naftiko.adapters.http.common import (
    RequestObserverMiddleware,
    json_response,
    outcome_of,
    problem_fields,
    problem_response,
    request_id_of,
    tracing_layers,
)
from naftiko.adapters.http.origin import HostOriginMiddleware
from naftiko.adapters.http.rate_limit import RateLimitMiddleware
from naftiko.adapters.http.settings import AdapterSettings
from naftiko.adapters.skill.plan import SkillAdapterPlan
from naftiko.engine.static_files import (
    PathRejected,
    StaticFileError,
    guess_media_type,
    list_files,
    resolve_file_location,
    resolve_under,
)
from naftiko.engine.types import AdapterPlan
from naftiko.errors import CallerError
from naftiko.spec.binds import Bindings
from naftiko.spec.models import ExposedSkill

__all__ = ["build_skill_app", "namespace_modes", "skill_detail", "skill_summary"]

ZIP_MEDIA_TYPE = "application/zip"
UNKNOWN_MODE = "unknown"
_RELATIVE_FILE_URI = ("file:///./", "file:///../")

# Optional metadata keys of ``GET /skills/{name}``, in the reference's order.
_DETAIL_KEYS = (
    "license",
    "compatibility",
    "argument-hint",
    "allowed-tools",
    "user-invocable",
    "disable-model-invocation",
)


# --------------------------------------------------------------------------- documents


def namespace_modes(adapters: Sequence[AdapterPlan]) -> dict[str, str]:
    """Namespace → ``mcp``/``rest`` for the adapters a derived tool can point at."""
    return {a.namespace: a.type for a in adapters if a.type in ("mcp", "rest") and a.namespace}


def skill_summary(skill: ExposedSkill) -> dict[str, Any]:
    entry: dict[str, Any] = {"name": skill.name, "description": skill.description}
    if skill.license is not None:
        entry["license"] = skill.license
    entry["tools"] = [tool.name for tool in skill.tools]
    return entry


def skill_detail(skill: ExposedSkill, modes: Mapping[str, str]) -> dict[str, Any]:
    body: dict[str, Any] = {"name": skill.name, "description": skill.description}
    dumped = skill.model_dump(by_alias=True, exclude_none=True)
    for key in _DETAIL_KEYS:
        if key in dumped:
            body[key] = dumped[key]
    if skill.metadata:
        body["metadata"] = skill.metadata
    tools: list[dict[str, Any]] = []
    for tool in skill.tools:
        entry: dict[str, Any] = {"name": tool.name, "description": tool.description}
        if tool.from_ is not None:
            namespace = tool.from_.source_namespace
            entry["type"] = "derived"
            entry["invocationRef"] = {
                "targetNamespace": namespace,
                "action": tool.from_.action,
                "mode": modes.get(namespace, UNKNOWN_MODE),
            }
        elif tool.instruction is not None:
            entry["type"] = "instruction"
            entry["instruction"] = tool.instruction
        tools.append(entry)
    body["tools"] = tools
    return body


# --------------------------------------------------------------------------- files


class _NotFound(CallerError):
    """Answer 404 with this message (safe: names only what the caller asked for)."""


def _skill_directory(skill: ExposedSkill, base_dir: str) -> Path:
    if not skill.location:
        raise _NotFound(f"Skill {skill.name!r} has no location.")
    location = skill.location
    if location.startswith(_RELATIVE_FILE_URI):  # the tutorials' ``file:///./shared`` form
        location = location[len("file:///") :]
    try:
        directory = resolve_file_location(location, base_dir)
    except PathRejected:
        raise _NotFound(f"The location of skill {skill.name!r} is not usable.") from None
    if not directory.is_dir():
        raise _NotFound(f"The location directory of skill {skill.name!r} does not exist.")
    return directory


def _zip_directory(directory: Path) -> bytes:
    """A deflated ZIP of every listable file; entry names are relative POSIX paths."""
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", compression=zipfile.ZIP_DEFLATED) as archive:
        for relative in list_files(directory):
            archive.write(resolve_under(directory, relative), arcname=relative)
    return buffer.getvalue()


def _contents(directory: Path) -> list[dict[str, Any]]:
    files = []
    for relative in list_files(directory):
        try:
            size = os.stat(resolve_under(directory, relative)).st_size
        except (OSError, StaticFileError):
            continue
        files.append({"path": relative, "size": size, "type": guess_media_type(relative)})
    return files


# --------------------------------------------------------------------------- app


def _adapters_of(engine: Any) -> Sequence[AdapterPlan]:
    """The sibling adapter plans, when the engine exposes its compiled capability."""
    compiled = getattr(engine, "compiled", None)
    adapters = getattr(compiled, "adapters", ())
    if isinstance(adapters, Mapping):
        adapters = tuple(adapters.values())
    return tuple(a for a in adapters if isinstance(a, AdapterPlan))


def build_skill_app(
    engine: Any,
    plan: SkillAdapterPlan,
    settings: AdapterSettings | None = None,
    *,
    bindings: Bindings | None = None,
    siblings: Sequence[AdapterPlan] | None = None,
) -> Starlette:
    """The Starlette app serving ``plan`` (see the module docstring).

    ``siblings`` are the capability's other adapter plans (they decide each
    ``invocationRef.mode``); by default they are read from ``engine.compiled.adapters``.
    Raises ``InboundAuthConfigError`` when the authentication block cannot be enforced.
    """
    settings = settings or AdapterSettings()
    modes = namespace_modes(siblings if siblings is not None else _adapters_of(engine))
    skills: dict[str, ExposedSkill] = {}
    for skill in plan.skills:
        skills.setdefault(skill.name, skill)  # the first of duplicate names wins
    catalogue = {"count": len(skills), "skills": [skill_summary(s) for s in skills.values()]}
    details = {name: skill_detail(s, modes) for name, s in skills.items()}
    base_dir = plan.base_dir

    def not_found(request: Request, detail: str) -> Response:
        return problem_response(
            problem_fields(404, "Not found", detail, "not-found"), request_id_of(request.scope)
        )

    def lookup(request: Request) -> ExposedSkill:
        name = request.path_params["name"]
        outcome_of(request.scope).unit = name if name in skills else "(unknown)"
        skill = skills.get(name)
        if skill is None:
            raise _NotFound(f"No skill named {name!r}.")
        return skill

    async def catalogue_endpoint(request: Request) -> Response:
        return json_response(catalogue)

    async def detail_endpoint(request: Request) -> Response:
        try:
            return json_response(details[lookup(request).name])
        except _NotFound as exc:
            return not_found(request, str(exc))

    async def download_endpoint(request: Request) -> Response:
        try:
            skill = lookup(request)
            directory = _skill_directory(skill, base_dir)
        except _NotFound as exc:
            return not_found(request, str(exc))
        data = await anyio.to_thread.run_sync(_zip_directory, directory)
        disposition = f'attachment; filename="{skill.name}.zip"'
        return Response(
            data, media_type=ZIP_MEDIA_TYPE, headers={"Content-Disposition": disposition}
        )

    async def contents_endpoint(request: Request) -> Response:
        try:
            skill = lookup(request)
            directory = _skill_directory(skill, base_dir)
        except _NotFound as exc:
            return not_found(request, str(exc))
        files = await anyio.to_thread.run_sync(_contents, directory)
        return json_response({"name": skill.name, "files": files})

    async def file_endpoint(request: Request) -> Response:
        relative = request.path_params["file"]
        try:
            skill = lookup(request)
            directory = _skill_directory(skill, base_dir)
            path = resolve_under(directory, relative)
            data = await anyio.to_thread.run_sync(path.read_bytes)
        except _NotFound as exc:
            return not_found(request, str(exc))
        except PathRejected:
            fields = problem_fields(
                400, "Bad request", f"Invalid file path {relative!r}.", "invalid-path"
            )
            return problem_response(fields, request_id_of(request.scope))
        except (StaticFileError, OSError):
            return not_found(request, f"No file {relative!r} in skill {skill.name!r}.")
        return Response(data, media_type=guess_media_type(path))

    methods = ["GET", "HEAD"]
    routes = [
        Route("/skills", catalogue_endpoint, methods=methods),
        Route("/skills/{name}", detail_endpoint, methods=methods),
        Route("/skills/{name}/download", download_endpoint, methods=methods),
        Route("/skills/{name}/contents", contents_endpoint, methods=methods),
        Route("/skills/{name}/contents/{file:path}", file_endpoint, methods=methods),
    ]

    async def fallback(request: Request) -> Response:
        return not_found(request, f"No route for {request.url.path}.")

    routes.append(Route("/{rest:path}", fallback))
    middleware = [
        *tracing_layers("skill", plan.namespace),
        Middleware(RequestObserverMiddleware, adapter_type="skill", adapter=plan.namespace),
        Middleware(HostOriginMiddleware, policy=settings.host_origin_policy()),
    ]
    if plan.authentication is not None:
        binds = bindings or Bindings.empty()
        auth = build_inbound_auth(plan.authentication, binds.as_scope(), binds.namespaced())
        if auth is not None:
            middleware.append(Middleware(InboundAuthMiddleware, auth=auth))
    limit = settings.rate_limit("skill", plan.namespace)
    if limit is not None:  # after authentication, which says who the caller is
        middleware.append(Middleware(RateLimitMiddleware, limit=limit))
    app = Starlette(routes=routes, middleware=middleware)
    app.router.redirect_slashes = False
    return app
