"""Typed, immutable models of a Naftiko capability document (alpha2 schema).

The models are deliberately *lenient containers*: published documents bend the schema in
many ways, so every field that the schema requires is optional here and unknown keys are
kept (``extra="allow"``). The loader (``naftiko.spec.loader``) normalises known deviations
before validation and reports each one as a warning; ``--strict`` validates the raw
document against the official JSON schema instead. Behaviour lives elsewhere: these are
data only.

Python attribute names are snake_case; the YAML keys are the camelCase aliases
(``base_uri`` <-> ``baseUri``). Keys that are Python keywords get a trailing underscore
(``in_`` <-> ``in``, ``with_`` <-> ``with``, ``from_`` <-> ``from``, ``as_`` <-> ``as``,
``import_`` <-> ``import``). Dump with ``model_dump(by_alias=True, exclude_none=True)`` to
get the document form back.

No ``from __future__ import annotations`` here: pydantic would compile and evaluate every
annotation string at import, lengthening start-up; only ``OutputParameter`` refers to itself.
"""

from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Discriminator, Field, Tag
from pydantic.alias_generators import to_camel


class SpecModel(BaseModel):
    """Base of every spec object: frozen, camelCase aliases, unknown keys kept."""

    model_config = ConfigDict(
        frozen=True,
        extra="allow",
        populate_by_name=True,
        alias_generator=to_camel,
        serialize_by_alias=True,
    )

    @property
    def unknown_keys(self) -> tuple[str, ...]:
        """Keys present in the document that the model does not know (kept, reported)."""
        return tuple((self.model_extra or {}).keys())


# --------------------------------------------------------------------------- info, binds


class Person(SpecModel):
    role: str | None = None
    full_name: str | None = None
    email: str | None = None


class Info(SpecModel):
    label: str | None = None  # Ikanos ``display``
    description: str | None = None
    tags: tuple[str, ...] = ()
    created: str | None = None
    modified: str | None = None
    version: str | None = None  # Ikanos beta4: the capability's own version
    stakeholders: tuple[Person, ...] = ()


class Binding(SpecModel):
    """A set of variables from the environment (no ``location``) or a file (``file://``)."""

    namespace: str | None = None
    description: str | None = None
    location: str | None = None
    keys: dict[str, str] = Field(default_factory=dict)


# --------------------------------------------------------------------------- parameters


class InputParameter(SpecModel):
    """Any input parameter: consumed (``in`` + ``value``), exposed REST, or MCP tool.

    One class for all three because published documents mix their fields freely.
    ``in_`` is ``None`` for MCP tool arguments.
    """

    name: str = ""
    in_: str | None = Field(default=None, alias="in")
    type: str | None = None
    description: str | None = None
    required: bool | None = None
    value: Any = None
    template: str | None = None  # legacy alias of ``value`` on consumed parameters
    pattern: str | None = None
    enum: tuple[Any, ...] | None = None
    default: Any = None
    format: str | None = None
    items: dict[str, Any] | None = None  # JSON Schema of array items
    properties: dict[str, Any] | None = None  # JSON Schema of object properties


class OutputParameter(SpecModel):
    """Mapped (exposed), consumed (``name`` + ``value: $.x``), orchestrated or mock output.

    ``properties`` maps a property name to its spec; ``items`` is the element spec of an
    array (the loader reduces a one-element list to its element); ``values`` is the spec of
    map values.
    """

    name: str | None = None
    type: str | None = None
    description: str | None = None
    mapping: str | None = None
    value: Any = None
    const: Any = None
    in_: str | None = Field(default=None, alias="in")
    required: bool | None = None
    max_length: int | None = None
    enum: tuple[Any, ...] | None = None
    properties: dict[str, "OutputParameter"] | None = None
    items: "OutputParameter | None" = None
    values: "OutputParameter | None" = None


# --------------------------------------------------------------------------- auth


AuthType = Literal["basic", "apikey", "bearer", "digest", "oauth2"]


class Authentication(SpecModel):
    """Inbound (exposes) or outbound (consumes) authentication; all types in one class.

    The loader normalises the OpenAPI-style apikey (``in``/``name``) to ``placement``/``key``.
    ``client_id``/``client_secret``/``token_endpoint``/``scopes`` serve the outbound OAuth2
    client-credentials flow (an extension of the schema, which only has the
    resource-server fields).
    """

    type: str = ""
    username: str | None = None
    password: str | None = None
    token: str | None = None
    key: str | None = None
    value: str | None = None
    placement: str | None = None
    authorization_server_uri: str | None = None
    resource: str | None = None
    scopes: tuple[str, ...] = ()
    audience: str | None = None
    token_endpoint: str | None = None
    token_validation: str | None = None
    client_id: str | None = None
    client_secret: str | None = None


# --------------------------------------------------------------------------- bodies


class MultipartPart(SpecModel):
    name: str = ""
    value: Any = None
    filename: str | None = None
    content_type: str | None = None


class RequestBody(SpecModel):
    """``{type: json|text|formUrlEncoded|multipartForm|xml|sparql, data: ...}``.

    A raw string body (the schema's ``RequestBodyRaw``) is kept as a plain ``str`` on the
    operation instead.
    """

    type: str = "json"
    data: Any = None


# --------------------------------------------------------------------------- consumes


class ConsumedOperation(SpecModel):
    name: str = ""
    label: str | None = None
    description: str | None = None
    tags: tuple[str, ...] = ()
    method: str = "GET"
    path: str | None = None  # tolerated: per-operation path overriding the resource path
    input_parameters: tuple[InputParameter, ...] = ()
    output_raw_format: str | None = None  # Ikanos beta1 adds ``binary``
    output_schema: str | None = None
    output_media_type: str | None = None  # beta1: the media type of a binary body
    max_binary_size: str | None = None  # beta1: ``10MiB``, enforced while reading
    output_parameters: tuple[OutputParameter, ...] = ()
    body: RequestBody | str | None = None


class ConsumedResource(SpecModel):
    name: str = ""
    label: str | None = None
    description: str | None = None
    tags: tuple[str, ...] = ()
    path: str = ""
    input_parameters: tuple[InputParameter, ...] = ()
    operations: tuple[ConsumedOperation, ...] = ()


class Tunnel(SpecModel):
    """Ikanos ``tunnel``: an overlay to dial instead of ``baseUri`` (only ``ziti`` so far).

    Not supported by this runtime: the compiler makes the units that need it answer 501
    unless ``fallback: direct`` allows the direct connection.
    """

    type: str = ""
    service: str | None = None
    identity: str | None = None
    fallback: str | None = None  # fail (default) | direct


class ConsumesHttp(SpecModel):
    type: str = "http"
    namespace: str = ""
    description: str | None = None
    base_uri: str = ""
    input_parameters: tuple[InputParameter, ...] = ()
    authentication: Authentication | None = None
    resources: tuple[ConsumedResource, ...] = ()
    tunnel: Tunnel | None = None


class ImportedConsumes(SpecModel):
    """An import entry; the loader replaces it by the imported ``ConsumesHttp``."""

    location: str = ""  # alpha2; Ikanos writes ``from``
    from_: str | None = Field(default=None, alias="from")
    import_: str = Field(default="", alias="import")
    as_: str | None = Field(default=None, alias="as")
    description: str | None = None


def _consumes_kind(value: Any) -> str:
    if isinstance(value, dict):
        return "import" if "location" in value or "from" in value else "http"
    return "import" if isinstance(value, ImportedConsumes) else "http"


ConsumesEntry = Annotated[
    Annotated[ConsumesHttp, Tag("http")] | Annotated[ImportedConsumes, Tag("import")],
    Discriminator(_consumes_kind),
]


# --------------------------------------------------------------------------- orchestration


class CallSpec(SpecModel):
    """The object form of ``call``: ``{operation: ns.op, with: {...}}``."""

    operation: str = ""
    with_: dict[str, Any] = Field(default_factory=dict, alias="with")


class Step(SpecModel):
    """``call``, ``lookup`` or ``script`` step (one class: unknown step types are kept).

    ``output_parameters`` is a list of field names for lookups and a list of output
    specs for the other kinds.
    """

    type: str = "call"
    name: str = ""
    call: str | CallSpec | None = None
    with_: dict[str, Any] = Field(default_factory=dict, alias="with")
    index: str | None = None
    match: str | None = None
    lookup_value: str | None = None
    output_parameters: tuple[str | OutputParameter, ...] = ()
    language: str | None = None
    location: str | None = None
    file: str | None = None
    dependencies: tuple[str, ...] = ()


class StepMapping(SpecModel):
    target_name: str = ""
    value: str = ""


class Semantics(SpecModel):
    safe: bool | None = None
    idempotent: bool | None = None
    cacheable: bool | None = None


class McpToolHints(SpecModel):
    read_only: bool | None = None
    destructive: bool | None = None
    idempotent: bool | None = None
    open_world: bool | None = None


class AggregateFunction(SpecModel):
    """An alpha2 aggregate ``function``, or an Ikanos ``flow`` (the same thing renamed)."""

    name: str = ""
    description: str | None = None
    tags: tuple[str, ...] = ()
    semantics: Semantics | None = None
    output_media_type: str | None = None  # beta1: advertised media type only
    input_parameters: tuple[InputParameter, ...] = ()
    call: str | CallSpec | None = None
    with_: dict[str, Any] = Field(default_factory=dict, alias="with")
    steps: tuple[Step, ...] = ()
    mappings: tuple[StepMapping, ...] = ()
    output_parameters: tuple[OutputParameter, ...] = ()


class Aggregate(SpecModel):
    label: str | None = None  # Ikanos ``display``
    namespace: str = ""
    functions: tuple[AggregateFunction, ...] = ()


# --------------------------------------------------------------------------- exposes: rest


class Forward(SpecModel):
    target_namespace: str = ""
    trusted_headers: tuple[str, ...] = ()


class ResponseBinary(SpecModel):
    """Ikanos beta1 ``responseBinary``: stream the upstream bytes with this media type."""

    status: int | None = None
    media_type: str | None = None
    description: str | None = None


class ExposedOperation(SpecModel):
    name: str | None = None
    label: str | None = None
    description: str | None = None
    tags: tuple[str, ...] = ()
    method: str = "GET"
    input_parameters: tuple[InputParameter, ...] = ()
    ref: str | None = None
    call: str | CallSpec | None = None
    with_: dict[str, Any] = Field(default_factory=dict, alias="with")
    steps: tuple[Step, ...] = ()
    mappings: tuple[StepMapping, ...] = ()
    output_parameters: tuple[OutputParameter, ...] = ()
    hints: McpToolHints | None = None
    # beta1: status -> {media type: content}; exclusive with ``response_binary``
    responses: dict[str, Any] | None = None
    response_binary: ResponseBinary | None = None


class ExposedResource(SpecModel):
    name: str | None = None
    label: str | None = None
    description: str | None = None
    tags: tuple[str, ...] = ()
    path: str = "/"
    input_parameters: tuple[InputParameter, ...] = ()
    operations: tuple[ExposedOperation, ...] = ()
    forward: Forward | None = None


class ExposesRest(SpecModel):
    type: Literal["rest"] = "rest"
    address: str | None = None
    port: int | None = None
    namespace: str = ""
    description: str | None = None
    authentication: Authentication | None = None
    input_parameters: tuple[InputParameter, ...] = ()
    resources: tuple[ExposedResource, ...] = ()
    max_binary_size: str | None = None  # beta1


# --------------------------------------------------------------------------- exposes: mcp


class McpTool(SpecModel):
    name: str = ""
    label: str | None = None
    description: str | None = None
    tags: tuple[str, ...] = ()
    input_parameters: tuple[InputParameter, ...] = ()
    ref: str | None = None
    call: str | CallSpec | None = None
    with_: dict[str, Any] = Field(default_factory=dict, alias="with")
    steps: tuple[Step, ...] = ()
    mappings: tuple[StepMapping, ...] = ()
    hints: McpToolHints | None = None
    output_parameters: tuple[OutputParameter, ...] = ()


class McpResource(SpecModel):
    name: str = ""
    label: str | None = None
    uri: str = ""
    description: str | None = None
    mime_type: str | None = None
    binary: bool | None = None  # beta1: a blob (base64) rather than text
    call: str | CallSpec | None = None
    with_: dict[str, Any] = Field(default_factory=dict, alias="with")
    steps: tuple[Step, ...] = ()
    mappings: tuple[StepMapping, ...] = ()
    output_parameters: tuple[OutputParameter, ...] = ()
    location: str | None = None


class McpPromptArgument(SpecModel):
    name: str = ""
    label: str | None = None
    description: str | None = None
    required: bool | None = None


class McpPromptMessage(SpecModel):
    role: str = "user"
    content: str = ""


class McpPrompt(SpecModel):
    name: str = ""
    label: str | None = None
    description: str | None = None
    arguments: tuple[McpPromptArgument, ...] = ()
    template: tuple[McpPromptMessage, ...] | str | None = None
    location: str | None = None


class ExposesMcp(SpecModel):
    type: Literal["mcp"] = "mcp"
    transport: str | None = None  # "http" (default) or "stdio"
    address: str | None = None
    port: int | None = None
    namespace: str = ""
    description: str | None = None
    authentication: Authentication | None = None
    tools: tuple[McpTool, ...] = ()
    resources: tuple[McpResource, ...] = ()
    prompts: tuple[McpPrompt, ...] = ()
    max_binary_size: str | None = None  # beta1
    ttl_ms: int | None = None  # beta4: MCP 2026-07-28 caching hints
    cache_scope: str | None = None  # beta4: public | private


# --------------------------------------------------------------------------- exposes: skill


class SkillToolSource(SpecModel):
    source_namespace: str = ""
    action: str = ""


class SkillTool(SpecModel):
    name: str = ""
    description: str | None = None
    from_: SkillToolSource | None = Field(default=None, alias="from")
    instruction: str | None = None


class ExposedSkill(SpecModel):
    name: str = ""
    description: str | None = None
    license: str | None = None
    compatibility: str | None = None
    metadata: dict[str, Any] | None = None
    allowed_tools: str | None = Field(default=None, alias="allowed-tools")
    argument_hint: str | None = Field(default=None, alias="argument-hint")
    user_invocable: bool | None = Field(default=None, alias="user-invocable")
    disable_model_invocation: bool | None = Field(default=None, alias="disable-model-invocation")
    location: str | None = None
    tools: tuple[SkillTool, ...] = ()


class ExposesSkill(SpecModel):
    type: Literal["skill"] = "skill"
    address: str | None = None
    port: int | None = None
    namespace: str = ""
    description: str | None = None
    authentication: Authentication | None = None
    skills: tuple[ExposedSkill, ...] = ()


# --------------------------------------------------------------------------- exposes: control


class ScriptingManagement(SpecModel):
    enabled: bool | None = None
    default_location: str | None = None
    default_language: str | None = None
    timeout: int | None = None
    statement_limit: int | None = None
    allowed_languages: tuple[str, ...] = ()


class ControlManagement(SpecModel):
    health: bool | None = None
    info: bool | None = None
    reload: bool | None = None
    validate_: bool | None = Field(default=None, alias="validate")
    logs: Any = None
    scripting: ScriptingManagement | None = None


class ExposesControl(SpecModel):
    type: Literal["control"] = "control"
    address: str | None = None
    port: int | None = None
    namespace: str | None = None
    authentication: Authentication | None = None
    management: ControlManagement | None = None
    observability: dict[str, Any] | None = None


class ExposesUnknown(SpecModel):
    """An exposes entry whose ``type`` we do not serve: kept, reported, not started."""

    type: str = ""
    namespace: str | None = None
    port: int | None = None


def _exposes_kind(value: Any) -> str:
    kind = value.get("type") if isinstance(value, dict) else getattr(value, "type", None)
    return kind if kind in ("rest", "mcp", "skill", "control") else "unknown"


ExposesEntry = Annotated[
    Annotated[ExposesRest, Tag("rest")]
    | Annotated[ExposesMcp, Tag("mcp")]
    | Annotated[ExposesSkill, Tag("skill")]
    | Annotated[ExposesControl, Tag("control")]
    | Annotated[ExposesUnknown, Tag("unknown")],
    Discriminator(_exposes_kind),
]


# --------------------------------------------------------------------------- document


class CapabilityBody(SpecModel):
    binds: tuple[Binding, ...] = ()
    exposes: tuple[ExposesEntry, ...] = ()
    consumes: tuple[ConsumesEntry, ...] = ()
    aggregates: tuple[Aggregate, ...] = ()


class Document(SpecModel):
    """The root of a capability document, or of a shared file (root ``consumes``, ...).

    ``naftiko`` holds the version of either root key (``naftiko:`` or ``ikanos:``): the
    loader reads both into this one model.
    """

    naftiko: str | None = None
    info: Info | None = None
    binds: tuple[Binding, ...] = ()
    capability: CapabilityBody | None = None
    consumes: tuple[ConsumesEntry, ...] = ()
    exposes: tuple[ExposesEntry, ...] = ()
    aggregates: tuple[Aggregate, ...] = ()

    @property
    def is_capability(self) -> bool:
        return self.capability is not None

    def consumed(self) -> tuple[ConsumesHttp, ...]:
        """The resolved ``capability.consumes`` (imports already replaced by the loader)."""
        if self.capability is None:
            return ()
        return tuple(c for c in self.capability.consumes if isinstance(c, ConsumesHttp))


OutputParameter.model_rebuild()
