"""The contract between the engine and every adapter.

Adapters see only what is in this module: the :class:`AdapterPlan` fields every
adapter's own plan holds, :class:`Unit` (one executable exposed thing), the
:class:`Inputs` a caller sent, and the :class:`Result` that comes back from
``Engine.invoke``. The plans are built once at load time and never mutated.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, Literal

# Defined beside the exception tree; the adapter contract names them, so they stay here too.
from naftiko.errors import STATUS as STATUS
from naftiko.errors import ErrorKind as ErrorKind
from naftiko.errors import Problem as Problem
from naftiko.media_types import (  # noqa: F401  (the contract names them)
    FORM_MEDIA_TYPE,
    JSON_MEDIA_TYPE,
    MULTIPART_MEDIA_TYPE,
    PROBLEM_MEDIA_TYPE,
)
from naftiko.spec.models import Authentication


# Made on every request: not ``frozen`` (its ``__init__`` would set each field through
# ``object.__setattr__``, ~5x the cost). Never mutated after construction.
@dataclass(slots=True)
class Result:
    """What an invocation produced.

    * Success: ``is_error`` false, ``status`` the upstream's (or 200 for mocks/steps).
    * Upstream failure: ``is_error`` true, ``problem`` None (or kind UPSTREAM), ``status``
      and ``body`` exactly as the upstream sent them (parsed JSON when it was JSON).
    * Our failure: ``is_error`` true and ``problem`` set; ``body`` is ``problem.as_json()``.

    ``body`` is a JSON-compatible value, or ``bytes`` when the upstream body passes through
    unparsed (then ``media_type`` is the upstream's). ``None`` means no content (204).
    """

    status: int
    body: Any = None
    media_type: str = JSON_MEDIA_TYPE
    headers: Mapping[str, str] = field(default_factory=dict)
    is_error: bool = False
    problem: Problem | None = None
    upstream_status: int | None = None  # the last upstream call's status, for logs/metrics

    @property
    def is_raw(self) -> bool:
        return isinstance(self.body, bytes)

    @classmethod
    def failure(cls, problem: Problem) -> Result:
        return cls(
            status=problem.status,
            body=problem.as_json(),
            media_type=PROBLEM_MEDIA_TYPE,
            is_error=True,
            problem=problem,
        )


# Made on every request: not ``frozen`` (its ``__init__`` would set each field through
# ``object.__setattr__``, ~5x the cost). Never mutated after construction.
@dataclass(slots=True)
class Inputs:
    """What a caller sent, already translated out of its protocol by the adapter.

    ``values`` holds named inputs: MCP arguments as given; for REST the declared
    parameters (path, query, header, cookie, body fields) plus, for lenient ``rest.x``
    references, undeclared path, then query, then top-level body fields (the engine
    keeps only the names the unit declares or its templates read: ``UnitPlan.visible``).
    ``body`` is the whole request body (``rest.body``): a JSON value or a form/multipart
    ``dict`` (the raw ``bytes`` on a ``forward``); ``None`` when there was none.
    ``media_type`` is the caller's Content-Type, kept so that a whole-body forward stays a
    form when it was one.
    ``headers``/``query_string``/``method``/``path`` serve ``forward`` resources.
    """

    values: Mapping[str, Any] = field(default_factory=dict)
    body: Any = None
    media_type: str | None = None
    headers: Mapping[str, str] = field(default_factory=dict)
    query_string: str = ""
    method: str = "GET"
    path: str = ""
    request_id: str | None = None


InputLocation = Literal["path", "query", "header", "cookie", "body", "argument"]


@dataclass(frozen=True, slots=True)
class InputField:
    """One input of a unit, declared in the document or derived from a reference.

    ``location`` says where a REST caller puts it (``argument`` for MCP-only units);
    ``schema`` is its JSON Schema (type, description, enum, default, items, properties).
    """

    name: str
    location: InputLocation
    schema: Mapping[str, Any]
    required: bool = False
    description: str | None = None
    derived: bool = False


UnitKind = Literal["operation", "tool", "resource", "function"]


@dataclass(frozen=True, slots=True)
class BinaryOutput:
    """A unit whose answer is bytes (``outputRawFormat: binary``), decided at load.

    ``media_type`` is the declared one (``outputMediaType``, a flow's overriding its
    operation's); None: the upstream's Content-Type. ``max_bytes`` bounds the upstream
    body while it is read; ``limit`` names it in errors (``maxBinarySize 5MiB ...``).
    """

    media_type: str | None
    max_bytes: int
    limit: str


@dataclass(frozen=True, slots=True)
class Unit:
    """One executable exposed thing: a REST operation, MCP tool or resource, a function.

    Adapters read the descriptive fields; ``plan`` is the engine's compiled execution
    plan (call / steps / mock / ref) and is opaque to them.
    """

    id: str  # unique in a capability: "<adapter namespace>.<name>"
    kind: UnitKind
    name: str
    adapter_namespace: str
    inputs: tuple[InputField, ...]
    input_schema: Mapping[str, Any]  # JSON Schema object over ``inputs`` (MCP inputSchema)
    output_schema: Mapping[str, Any] | None = None  # object-rooted schema when determinable
    title: str | None = None
    description: str | None = None
    # The document's behaviour hints by their spec names (``read_only``, ``destructive``,
    # ``idempotent``, ``open_world``); an adapter that publishes them names them its way.
    hints: Mapping[str, bool] = field(default_factory=dict)
    plan: Any = None
    # Request body media types besides JSON that the document declares for this unit:
    # ``FORM_MEDIA_TYPE``/``MULTIPART_MEDIA_TYPE`` when a consumed operation it calls
    # sends that body type. A REST caller may send those; JSON is always taken.
    body_media: frozenset[str] = frozenset()
    # The caller input names its templates may read besides ``inputs`` (``UnitPlan.visible``;
    # None: any). A REST body whose fields none of these name reaches nothing.
    reads: frozenset[str] | None = None
    # Set when the unit answers bytes (see ``BinaryOutput``); adapters translate them
    # (REST: the bytes with their media type; MCP: image, audio or embedded resource).
    binary: BinaryOutput | None = None


@dataclass(frozen=True, slots=True)
class ForwardPlan:
    """A ``forward`` proxy: the exposed ``path`` it serves (named in logs and errors) and
    the consumed namespace that receives the caller's request (``Engine.forward``)."""

    target_namespace: str
    trusted_headers: tuple[str, ...]
    path: str = ""


@dataclass(frozen=True, slots=True)
class AdapterPlan:
    """What every adapter's plan holds; each adapter subclasses it with what it serves
    (``naftiko.adapters.<type>.plan``). ``type`` is the ``exposes`` entry's type."""

    type: str
    namespace: str
    address: str | None
    port: int | None
    description: str | None
    authentication: Authentication | None


def thaw(value: Any) -> Any:
    """Deep copy of frozen plan data (mappings, tuples) as plain ``dict``/``list``.

    Plans hold schemas as read-only mappings; adapters thaw them to publish them (MCP
    tool schemas, the OpenAPI document).
    """
    if isinstance(value, Mapping):
        return {str(k): thaw(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [thaw(v) for v in value]
    return value
