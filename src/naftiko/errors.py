"""Naftiko's exceptions: one tree under :class:`NaftikoError`, and the status of each failure.

Every exception class under ``src/naftiko`` derives from :class:`NaftikoError`
(``tests/test_errors.py`` walks the package to hold this, and checks that every one of
them is named in the tree below). The branches say whose fault a failure is and
therefore how it ends; a leaf is defined next to the code that raises it (it carries
that code's data: diagnostics, a ``Problem``, an httpx base) and is importable from
there, except :class:`ResponseTooLarge`, which four modules share. This module imports
nothing of ours (nor any library), so every layer (spec, engine, adapters, runtime)
can import it. Where a leaf must also be a library's or the standard library's
exception (``ValueError``, ``TimeoutError``, ``httpx.DecodingError``...), it keeps
that base too, so that existing ``except`` clauses keep matching it.

Request-time failures become an :class:`ErrorKind`; :data:`STATUS` gives each kind its
status (REST: the problem+json status; MCP: an ``isError`` result with the same
problem). Bracketed statuses are those the adapters answer directly::

    NaftikoError
    ├── LoadTimeError ............ a document, a flag or the machine cannot serve:
    │   │                          reported with file and line, or an exit code; never
    │   │                          reaches a caller
    │   ├── LoadError                   spec.diagnostics (every diagnostic found)
    │   ├── SourceError                 spec.source (YAML/JSON text that cannot be parsed)
    │   ├── BindLookupError             spec.binds (a bind file that cannot be read)
    │   ├── TemplateError(ValueError)   engine.templating
    │   ├── MappingError(ValueError)    engine.mapping
    │   ├── StepsError(ValueError)      engine.orchestration
    │   ├── OutboundAuthConfigError(ValueError)   engine.outbound_auth
    │   ├── InboundAuthConfigError(ValueError)    adapters.http.auth
    │   ├── ConfigError(ValueError)     runtime.config (a flag or NAFTIKO_* value; exit 2)
    │   ├── SettingsFileError(ValueError)   runtime.settings_file (--settings FILE; exit 2)
    │   ├── RateLimitSpecError(ValueError)  adapters.http.rate_limit (a limit; exit 2)
    │   ├── PlacementError              runtime.placement (exit 2)
    │   ├── ConversionError             cli.convert (what the target version cannot say)
    │   └── StartupError                runtime.process (exit code in ``code``)
    ├── CallerError .............. the caller's request cannot be served as asked (4xx);
    │   │                          the message is safe to show
    │   ├── RequestError                engine.request: VALIDATION (400)
    │   ├── BodyTooLarge                adapters.http_common: request body over the limit [413]
    │   ├── Refused                     adapters.rest: [400, 413, 415]
    │   ├── _NotFound                   adapters.skill: [404]
    │   ├── ResourceFailure             adapters.mcp_resources: JSON-RPC error (400; 500
    │   │                               when a declared file cannot be read)
    │   ├── RateLimited                 adapters.mcp.server: a caller over its limit on
    │   │                               resources/read or prompts/get (JSON-RPC -32003)
    │   ├── PromptError(ValueError)     engine.prompts: MCP invalid params (400)
    │   │   ├── MissingArgument             (400)
    │   │   └── PromptFileError             the document's fault, not the caller's (500)
    │   └── StaticFileError(ValueError) engine.static_files (at load: a diagnostic)
    │       ├── PathRejected                malformed or escaping path [400/404]
    │       └── FileMissing                 no such regular file [404]
    ├── UpstreamError ............ a consumed API failed, or answered what we refuse:
    │   │                          502 (UNREACHABLE, BAD_UPSTREAM_RESPONSE), 504 (TIMEOUT)
    │   ├── DeadlineExceeded(TimeoutError)          engine.transport: TIMEOUT (504)
    │   ├── ResponseTooLarge                        here: BAD_UPSTREAM_RESPONSE (502)
    │   │                                           (``engine.decoding.BodyTooLarge``)
    │   ├── ResponseHeadTooLarge(httpx.RemoteProtocolError)   engine.transport (502)
    │   ├── TooManyCodings(httpx.DecodingError)     engine.decoding (502)
    │   ├── FormatError(ValueError)     engine.formats: an unreadable body (502); at load
    │   │                               an unknown format (a diagnostic)
    │   ├── _Redirected                 engine.client: a redirect not followed (502)
    │   └── OutboundAuthError(UpstreamError, AuthError)   engine.outbound_auth: no
    │                                   credentials from the token endpoint (502)
    ├── AuthError ................ a credential refused, or not obtained
    │   ├── InboundAuthError ..... the caller's credential (adapters.http.auth.oauth2)
    │   │   ├── _InvalidToken               [401]
    │   │   └── _KeysUnavailable            the authorization server's keys [503]
    │   └── OutboundAuthError           (above)
    └── InternalSignal ........... control flow inside one module; escaping it is a defect
        └── _Unusual                    spec.source (a YAML node for PyYAML's constructor)

Anything else raised while serving is a defect of ours: ``INTERNAL`` (500), logged with
its traceback and never shown. An upstream that answers ``>= 400`` is no exception: its
status and body are passed on (``UPSTREAM``).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from enum import StrEnum
from typing import Any

__all__ = [
    "STATUS",
    "AuthError",
    "CallerError",
    "ErrorKind",
    "InboundAuthError",
    "InternalSignal",
    "LoadTimeError",
    "NaftikoError",
    "Problem",
    "ResponseTooLarge",
    "UpstreamError",
]


class ErrorKind(StrEnum):
    """Why an invocation failed. One place decides the status of each kind (``STATUS``)."""

    VALIDATION = "validation"  # the caller's inputs are missing or of the wrong type (400)
    UPSTREAM = "upstream"  # the upstream answered >= 400; its status and body are kept
    UNREACHABLE = "unreachable"  # connection refused/reset, DNS failure (502)
    TIMEOUT = "timeout"  # connect/read timeout (504)
    BAD_UPSTREAM_RESPONSE = "bad-upstream-response"  # unparseable or oversized body (502)
    NOT_IMPLEMENTED = "not-implemented"  # the unit cannot run: broken call target... (501)
    UNCONFIGURED = "unconfigured"  # gateway: a bind variable the document uses is unset (503)
    # upstream resilience: the namespace's circuit is open or its concurrency cap is full (503)
    UNAVAILABLE = "upstream-unavailable"
    INTERNAL = "internal"  # a defect of ours; logged with a traceback, never shown (500)


STATUS: Mapping[ErrorKind, int] = {
    ErrorKind.VALIDATION: 400,
    ErrorKind.UNREACHABLE: 502,
    ErrorKind.TIMEOUT: 504,
    ErrorKind.BAD_UPSTREAM_RESPONSE: 502,
    ErrorKind.NOT_IMPLEMENTED: 501,
    ErrorKind.UNCONFIGURED: 503,
    ErrorKind.UNAVAILABLE: 503,
    ErrorKind.INTERNAL: 500,
}


class NaftikoError(Exception):
    """Base of every exception naftiko defines."""


class LoadTimeError(NaftikoError):
    """A document, a flag or the machine prevents serving; found before any request."""


class CallerError(NaftikoError):
    """The caller's request cannot be served as asked (4xx); the message is safe to show."""


class UpstreamError(NaftikoError):
    """A consumed API failed or answered what we refuse (502, or 504 for time)."""


class AuthError(NaftikoError):
    """A credential was refused (inbound) or could not be obtained (outbound)."""


class InboundAuthError(AuthError):
    """A caller's credential is refused (401, 403) or cannot be checked now (503)."""


class InternalSignal(NaftikoError):
    """Control flow inside one module; one that escapes its module is a defect."""


class ResponseTooLarge(UpstreamError):
    """An upstream body (as received, or ``decoded``, or one coding's output) passed ``limit``.

    ``status`` is the upstream's status when it had answered (for the request log).
    Once two classes (the transport's and the decoder's); one meaning, one class.
    """

    def __init__(self, limit: int, status: int | None = None, *, decoded: bool = False) -> None:
        what = "decoded response" if decoded else "response"
        super().__init__(f"{what} larger than {limit} bytes")
        self.limit = limit
        self.decoded = decoded
        self.status = status


@dataclass(frozen=True, slots=True)
class Problem:
    """An error that is ours to describe (RFC 9457 fields). Never contains a secret."""

    kind: ErrorKind
    title: str
    detail: str
    status: int
    parameter: str | None = None  # the offending input, for validation errors
    step: str | None = None  # the orchestration step that failed, if any
    # Seconds after which trying again may succeed (REST: the ``Retry-After`` header).
    retry_after: int | None = None

    @classmethod
    def of(
        cls,
        kind: ErrorKind,
        title: str,
        detail: str,
        *,
        parameter: str | None = None,
        step: str | None = None,
        retry_after: int | None = None,
    ) -> Problem:
        """A problem whose status is the one :data:`STATUS` maps its kind to."""
        return cls(kind, title, detail, STATUS[kind], parameter, step, retry_after)

    def as_json(self) -> dict[str, Any]:
        """The RFC 9457 problem document (REST body; MCP error text)."""
        body: dict[str, Any] = {
            "type": f"https://naftiko.dev/problems/{self.kind.value}",
            "title": self.title,
            "status": self.status,
            "detail": self.detail,
        }
        if self.parameter is not None:
            body["parameter"] = self.parameter
        if self.step is not None:
            body["step"] = self.step
        if self.retry_after is not None:
            body["retryAfter"] = self.retry_after
        return body
