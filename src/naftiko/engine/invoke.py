"""The one invocation path: every adapter calls :meth:`Engine.invoke`.

``invoke`` validates the caller's inputs against the unit's JSON Schema before anything
leaves the process, then runs the unit's plan (call, mock, steps, ref) and turns the
upstream answer into a :class:`Result`; the secrets we inject are masked in every
upstream answer first (``naftiko.engine.masking``). It never raises: failures are
``Problem``s, and defects of ours are logged with a traceback and answered with a
generic 500.
"""

from __future__ import annotations

import importlib
import importlib.util
import json
import logging
from collections.abc import Mapping
from typing import Any

from jsonschema import ValidationError

from naftiko import json_codec
from naftiko.engine.masking import SecretMask, load_secrets
from naftiko.engine.orchestration import StepResponse
from naftiko.engine.plans import (
    CallPlan,
    CompiledCapability,
    MockPlan,
    NotImplementedPlan,
    RefPlan,
    StepsPlan,
    UnitPlan,
)
from naftiko.engine.types import (
    AdapterPlan,
    BinaryOutput,
    ErrorKind,
    ForwardPlan,
    Inputs,
    Problem,
    Result,
    Unit,
)
from naftiko.media_types import OCTET_STREAM, is_json
from naftiko.templating import MISSING, Scope
from naftiko.upstream.client import UpstreamClients, UpstreamResponse, send
from naftiko.upstream.formats import FormatError, parse_body
from naftiko.upstream.plans import OperationPlan
from naftiko.upstream.request import (
    RequestError,
    UpstreamRequest,
    build_forward_request,
    build_request,
)
from naftiko.upstream.resilience import Resilience, is_retry_safe
from naftiko.upstream.settings import UpstreamSettings

__all__ = ["Engine", "kept_headers", "validation_problem"]

log = logging.getLogger("naftiko.engine")

# Upstream response headers a caller may need (back-off, correlation, rate limits).
_KEPT_HEADERS = frozenset(
    {"retry-after", "x-request-id", "request-id", "x-correlation-id", "x-tt-logid", "etag"}
)
_KEPT_PREFIXES = ("ratelimit", "x-ratelimit", "x-rate-limit")


def kept_headers(headers: Mapping[str, str]) -> dict[str, str]:
    """The upstream headers worth returning; never ``Set-Cookie`` or hop-by-hop ones."""
    kept = {}
    for name, value in headers.items():
        lower = name.lower()
        if lower in _KEPT_HEADERS or lower.startswith(_KEPT_PREFIXES):
            kept[lower] = value
    return kept


def _internal_failure(doing: str) -> Result:
    """A defect of ours (already logged with its traceback): no detail for the caller."""
    return Result.failure(
        Problem.of(
            ErrorKind.INTERNAL,
            "Internal error",
            f"the runtime failed while {doing}; see the server log",
        )
    )


# --------------------------------------------------------------------------- validation

_TYPE_NAMES = {
    "string": "string",
    "integer": "integer",
    "number": "number",
    "boolean": "boolean",
    "object": "object",
    "array": "array",
}


def _shown(value: Any) -> str:
    """The caller's own value, shortened (it came from the caller: safe to echo)."""
    text = json.dumps(value, ensure_ascii=False, default=str)
    return text if len(text) <= 40 else text[:37] + "..."


def _describe(error: ValidationError, schema: Mapping[str, Any]) -> tuple[str | None, str]:
    """(parameter, message) in words a model can act on."""
    path = [str(p) for p in error.absolute_path]
    if error.validator == "required" and not path:
        missing = error.message.split("'")[1] if "'" in error.message else error.message
        kind = schema.get("properties", {}).get(missing, {}).get("type")
        suffix = f" ({kind})" if isinstance(kind, str) else ""
        return missing, f"argument '{missing}' is required{suffix}"
    name = path[0] if path else None
    where = "argument '" + ".".join(path) + "'" if path else "arguments"
    if error.validator == "type":
        expected = error.validator_value
        if isinstance(expected, list):
            expected = " or ".join(str(e) for e in expected)
        return name, f"{where} must be {expected}, got {_shown(error.instance)}"
    if error.validator == "enum":
        options = ", ".join(_shown(v) for v in error.validator_value)
        return name, f"{where} must be one of {options}, got {_shown(error.instance)}"
    if error.validator == "required":
        missing = error.message.split("'")[1] if "'" in error.message else "?"
        return name, f"{where} needs the field '{missing}'"
    if error.validator == "additionalProperties" and isinstance(error.instance, Mapping):
        return _unknown(error, path)
    if error.validator == "minLength" and error.validator_value == 1 and error.instance == "":
        return name, f"{where} cannot be empty"
    return name, f"{where}: {error.validator} constraint not met"


def _unknown(error: ValidationError, path: list[str]) -> tuple[str | None, str]:
    """Unknown arguments named (they came from the caller: safe to echo), and the known."""
    known = error.schema.get("properties") or {}
    unknown = sorted(str(k) for k in error.instance if k not in known)
    names = ", ".join(f"'{_short(name)}'" for name in unknown[:5])
    more = f" and {len(unknown) - 5} more" if len(unknown) > 5 else ""
    expected = ", ".join(known) or "none"
    if path:
        where = "argument '" + ".".join(path) + "'"
        return path[0], f"{where} has unknown fields {names}{more}"
    word = "argument" if len(unknown) == 1 else "arguments"
    message = f"unknown {word} {names}{more} (this tool takes: {expected})"
    return (unknown[0] if unknown else None), message


def _short(name: str) -> str:
    return name if len(name) <= 40 else name[:37] + "..."


def validation_problem(plan: UnitPlan, values: Mapping[str, Any]) -> Problem | None:
    """The first schema violations of ``values`` as one VALIDATION problem, or None."""
    if plan.quick_valid is not None and plan.quick_valid(values):
        return None
    errors = sorted(plan.validator.iter_errors(values), key=lambda e: list(e.absolute_path))
    if not errors:
        return None
    schema = plan.validator.schema
    described = [_describe(e, schema) for e in errors[:5]]
    parameter = described[0][0]
    return Problem.of(
        ErrorKind.VALIDATION,
        "Invalid arguments",
        "; ".join(message for _, message in described),
        parameter=parameter,
    )


# --------------------------------------------------------------------------- engine


class Engine:
    """Runs the units of one compiled capability. One instance per capability."""

    def __init__(
        self,
        compiled: CompiledCapability,
        settings: UpstreamSettings | None = None,
        *,
        resilience: Resilience | None = None,
    ):
        self.compiled = compiled
        self.settings = settings or UpstreamSettings()
        self._clients = UpstreamClients(self.settings)
        # Breakers, bulkheads and retry budgets per consumed namespace: the runtime shares
        # one between every engine of the process; an engine made alone has its own.
        self.resilience = resilience or Resilience(self.settings.resilience)
        self._base_dir = str(getattr(compiled.loaded, "base_dir", ".") or ".")
        # The secrets masked in upstream answers: decided here, once (``engine.masking``).
        bindings = getattr(compiled.loaded, "bindings", None)
        self._mask = SecretMask(*load_secrets(bindings, compiled.consumes))
        # The mask with the OAuth2 access tokens cached at the token cache's generation.
        self._token_mask: tuple[int, SecretMask] = (-1, self._mask)

    @property
    def units(self) -> Mapping[str, Unit]:
        return self.compiled.units

    @property
    def adapters(self) -> tuple[AdapterPlan, ...]:
        return self.compiled.adapters

    async def start(self) -> None:
        """Open one pooled client per consumed namespace (otherwise opened on first use)."""
        self._clients.start(self.compiled.consumes)
        for namespace in self.compiled.consumes:  # shown in /status and /metrics from the start
            self.resilience.guard(namespace)

    async def aclose(self) -> None:
        await self._clients.aclose()

    async def __aenter__(self) -> Engine:
        await self.start()
        return self

    async def __aexit__(self, *_: object) -> None:
        await self.aclose()

    # ------------------------------------------------------------------ invoke

    async def invoke(self, unit: Unit, inputs: Inputs) -> Result:
        """Run ``unit`` with ``inputs``. Never raises."""
        try:
            return await self._invoke(unit, inputs)
        except Exception:
            log.exception("internal error while running %s", unit.id)
            return _internal_failure(f"running '{unit.id}'")

    async def _invoke(
        self, unit: Unit, inputs: Inputs, binary: BinaryOutput | None = None
    ) -> Result:
        """``binary``: the exposing unit's, when it runs a function (its adapter's limit
        and media type apply)."""
        plan = unit.plan
        if not isinstance(plan, UnitPlan):
            return Result.failure(
                Problem.of(ErrorKind.NOT_IMPLEMENTED, "Not implemented", f"'{unit.id}' has no plan")
            )
        values = dict(inputs.values)
        if "body" not in values and inputs.body is not None:
            values["body"] = inputs.body
        for name, default in plan.defaults.items():
            values.setdefault(name, default)
        problem = validation_problem(plan, values)
        if problem is not None:
            return Result.failure(problem)
        visible = plan.visible
        if visible is not None:
            # What the document neither declares nor reads stays out of the scope: a
            # caller cannot add ``get-profile.tenant`` next to a step's output (issue 15).
            values = {name: value for name, value in values.items() if name in visible}
        scope = plan.scope.with_child(inputs=values)
        with_values = {}
        for key, expr in plan.with_.items():
            value = expr.evaluate(scope)
            if value is not MISSING and value is not None:
                with_values[key] = value
        scope = scope.with_child(with_values=with_values)

        if isinstance(plan, CallPlan):
            return await self._call(plan, scope, inputs, binary or unit.binary)
        if isinstance(plan, MockPlan):
            body = plan.outputs.mock(scope) if plan.outputs is not None else {}
            return Result(status=200, body=body)
        if isinstance(plan, RefPlan):
            return await self._ref(plan, unit, scope, inputs)
        if isinstance(plan, StepsPlan):
            return await self._steps(plan, unit, scope, inputs)
        reason = plan.reason if isinstance(plan, NotImplementedPlan) else "unknown plan"
        return Result.failure(Problem.of(ErrorKind.NOT_IMPLEMENTED, "Not implemented", reason))

    async def _call(
        self, plan: CallPlan, scope: Scope, inputs: Inputs, binary: BinaryOutput | None
    ) -> Result:
        if binary is not None:
            # Bytes nothing parses: read within the binary limit, answered as they came.
            outcome = await self.call_operation(
                plan.operation, scope, inputs, binary, retry_safe=plan.retry_safe
            )
            if isinstance(outcome, Problem):
                return Result.failure(outcome)
            return _binary_result(outcome[0], binary, self._kept(outcome[0]))
        if not plan.passthrough and plan.operation.format_problem is not None:
            return Result.failure(_unreadable(plan.operation))
        outcome = await self.call_operation(
            plan.operation, scope, inputs, retry_safe=plan.retry_safe
        )
        if isinstance(outcome, Problem):
            return Result.failure(outcome)
        response, scope = outcome
        return self.read_response(response, plan, plan.operation, scope)

    async def _ref(self, plan: RefPlan, unit: Unit, scope: Scope, inputs: Inputs) -> Result:
        function = self.compiled.functions[plan.function_id]
        values = {**scope.inputs, **scope.with_values}
        result = await self._invoke(
            function,
            Inputs(
                values=values,
                body=inputs.body,
                media_type=inputs.media_type,
                request_id=inputs.request_id,
            ),
            unit.binary,
        )
        fn_plan = function.plan
        # A function that passes its upstream body through is shaped by the unit's outputs.
        if (
            not result.is_error
            and plan.outputs is not None
            and isinstance(fn_plan, CallPlan)
            and fn_plan.passthrough
            and not result.is_raw
            and result.body is not None
        ):
            shaped = plan.outputs.apply(result.body, scope)
            return Result(
                status=result.status,
                body=shaped,
                headers=result.headers,
                upstream_status=result.upstream_status,
            )
        return result

    async def _steps(self, plan: StepsPlan, unit: Unit, scope: Scope, inputs: Inputs) -> Result:
        if importlib.util.find_spec("naftiko.engine.orchestration") is None:
            return Result.failure(
                Problem.of(
                    ErrorKind.NOT_IMPLEMENTED,
                    "Not implemented",
                    f"'{unit.id}' uses orchestration steps, which this runtime does not run yet",
                )
            )
        orchestration = importlib.import_module("naftiko.engine.orchestration")
        return await orchestration.run_steps(
            engine=self, unit=unit, plan=plan, scope=scope, inputs=inputs
        )

    # ------------------------------------------------------------------ upstream

    async def call_operation(
        self,
        operation: OperationPlan,
        scope: Scope,
        inputs: Inputs,
        binary: BinaryOutput | None = None,
        *,
        retry_safe: bool | None = None,
    ) -> tuple[UpstreamResponse, Scope] | Problem:
        """Build and send one consumed-operation request (also used by orchestration).

        Returns the response and the scope with the consumed parameters written back.
        ``binary``: the body is cut at its limit instead of the runtime's.
        ``retry_safe`` is the unit's decision made at load (``CallPlan.retry_safe``);
        None (a step) decides by the operation's method.
        """
        consumes = self.compiled.consumes[operation.namespace]
        if consumes.unavailable is not None:
            return Problem.of(ErrorKind.NOT_IMPLEMENTED, "Not implemented", consumes.unavailable)
        if consumes.base_uri is None:
            return Problem.of(
                ErrorKind.NOT_IMPLEMENTED,
                "Not implemented",
                f"the base URI of '{operation.namespace}' references an unbound variable",
            )
        try:
            built = build_request(
                operation, consumes, scope, inputs, self.settings, self.compiled.token_cache
            )
        except RequestError as exc:
            return exc.problem
        if retry_safe is None:
            retry_safe = is_retry_safe(operation.method)
        response = await self._send(
            operation.namespace,
            built.request,
            built.auth,
            operation.label,
            retry_safe,
            binary,
        )
        if isinstance(response, Problem):
            return response
        return self._masked(response), built.scope

    async def _send(
        self,
        namespace: str,
        request: UpstreamRequest,
        auth: Any,
        operation: str,
        retry_safe: bool,
        binary: BinaryOutput | None = None,
    ) -> UpstreamResponse | Problem:
        """The one place the engine sends upstream: ``send`` under the namespace's
        breaker, bulkhead and retry policy (``naftiko.upstream.resilience``)."""
        upstream = self._clients.get(namespace)
        settings = self.settings

        def attempt() -> Any:
            return send(
                upstream,
                request,
                auth=auth,
                settings=settings,
                namespace=namespace,
                operation=operation,
                **limits,
            )

        limits = {"max_bytes": binary.max_bytes, "limit": binary.limit} if binary else {}
        return await self.resilience.call(
            namespace,
            attempt,
            retry_safe=retry_safe,
            deadline_s=settings.total_timeout_s,
            operation=operation,
        )

    def read_response(
        self,
        response: UpstreamResponse,
        plan: UnitPlan | None,
        operation: OperationPlan | None,
        scope: Scope,
    ) -> Result:
        """Turn an upstream answer into a Result (errors kept intact; mapping on success)."""
        headers = self._kept(response)
        status = response.status
        if status >= 400:
            return _upstream_error(response, headers)
        if status in (204, 205, 304) or not response.content:
            return Result(status=status, body=None, headers=headers, upstream_status=status)
        outputs = plan.outputs if plan is not None else None
        passthrough = outputs is None or (isinstance(plan, CallPlan) and plan.passthrough)
        if passthrough:
            body, media = _passthrough_body(response)
            return Result(
                status=status, body=body, media_type=media, headers=headers, upstream_status=status
            )
        fmt = operation.output_raw_format if operation is not None else None
        try:
            document = self._parse(response, operation)
        except FormatError as exc:
            where = f"'{operation.namespace}' ({operation.label})" if operation else "upstream"
            reason = str(exc)[:200]
            return Result.failure(
                Problem.of(
                    ErrorKind.BAD_UPSTREAM_RESPONSE,
                    "Bad upstream response",
                    f"upstream {where}: the response cannot be read as {fmt or 'json'}: {reason}",
                )
            )
        return Result(
            status=status,
            body=outputs.apply(document, scope),  # type: ignore[union-attr]
            headers=headers,
            upstream_status=status,
        )

    def _kept(self, response: UpstreamResponse) -> dict[str, str]:
        headers = kept_headers(response.headers)
        return self._masked_headers(headers) if headers else headers

    def _parse(self, response: UpstreamResponse, operation: OperationPlan | None) -> Any:
        """The body as JSON per the operation's ``outputRawFormat``; raises FormatError."""
        return parse_body(
            response.content,
            operation.output_raw_format if operation is not None else None,
            schema=operation.output_schema if operation is not None else None,
            base_dir=self._base_dir,
            max_bytes=self.settings.max_response_bytes,  # what aliases may expand to
        )

    async def call_step(
        self, operation: OperationPlan, scope: Scope, inputs: Inputs
    ) -> StepResponse | Problem:
        """One orchestration call step: the upstream answer as the chain needs it.

        An error keeps the upstream body as a caller would see it (JSON parsed, else
        bytes); a success holds the JSON document, or MISSING when there is none or it
        cannot be read (then the step stores nothing).
        """
        if operation.format_problem is not None:
            return _unreadable(operation)
        outcome = await self.call_operation(operation, scope, inputs)
        if isinstance(outcome, Problem):
            return outcome
        response = outcome[0]
        if response.status >= 400:
            body, media = _passthrough_body(response)
            return StepResponse(response.status, MISSING, body, media)
        if response.status in (204, 205, 304) or not response.content:
            return StepResponse(response.status)
        try:
            return StepResponse(response.status, self._parse(response, operation))
        except FormatError:
            return StepResponse(response.status)

    # ------------------------------------------------------------------ forward

    async def forward(self, forward: ForwardPlan, inputs: Inputs) -> Result:
        """Proxy a caller's request to ``forward``'s consumed namespace. Never raises."""
        try:
            return await self._forward(forward, inputs)
        except Exception:
            log.exception("internal error while forwarding %s", forward.path)
            return _internal_failure(f"forwarding '{forward.path}'")

    async def _forward(self, forward: ForwardPlan, inputs: Inputs) -> Result:
        consumes = self.compiled.consumes.get(forward.target_namespace)
        if consumes is not None and consumes.unavailable is not None:
            return Result.failure(
                Problem.of(ErrorKind.NOT_IMPLEMENTED, "Not implemented", consumes.unavailable)
            )
        if consumes is None or consumes.base_uri is None:
            return Result.failure(
                Problem.of(
                    ErrorKind.NOT_IMPLEMENTED,
                    "Not implemented",
                    f"'{forward.path}' forwards to '{forward.target_namespace}', which cannot "
                    "be reached",
                )
            )
        bindings = getattr(self.compiled.loaded, "bindings", None)
        scope = Scope(
            binds=bindings.as_scope() if bindings is not None else {},
            bind_namespaces=bindings.namespaced() if bindings is not None else {},
            inputs=inputs.values,
        )
        try:
            built = build_forward_request(
                consumes,
                forward.trusted_headers,
                scope,
                inputs,
                self.settings,
                self.compiled.token_cache,
            )
        except RequestError as exc:
            return Result.failure(exc.problem)
        method = inputs.method.upper()
        response = await self._send(
            consumes.namespace,
            built.request,
            built.auth,
            f"forward {method} {forward.path}",
            is_retry_safe(method),
        )
        if isinstance(response, Problem):
            return Result.failure(response)
        return self.read_response(self._masked(response), None, None, built.scope)

    # ------------------------------------------------------------------ masking

    def _current_mask(self) -> SecretMask:
        """The load-time mask, plus the OAuth2 access tokens cached now (if any)."""
        cache = self.compiled.token_cache
        if not len(cache):
            return self._mask
        if cache.generation != self._token_mask[0]:
            self._token_mask = (cache.generation, self._mask.plus(cache.tokens()))
        return self._token_mask[1]

    def _masked(self, response: UpstreamResponse) -> UpstreamResponse:
        """``response`` with the secrets we inject masked in its body (see
        ``naftiko.engine.masking``); the same object when there is nothing to mask."""
        mask = self._current_mask()
        if not mask or not response.content:
            return response
        content = mask.content(response.content, is_json(response.media_type))
        if content is None:
            return response
        return UpstreamResponse(status=response.status, headers=response.headers, content=content)

    def _masked_headers(self, headers: dict[str, str]) -> dict[str, str]:
        """The kept upstream headers (correlation ids, rate limits) with secrets masked."""
        mask = self._current_mask()
        return {name: mask.text(value) for name, value in headers.items()} if mask else headers


def _unreadable(operation: OperationPlan) -> Problem:
    """501 before sending: the body of ``operation`` could not be read (load warning)."""
    detail = f"the body of '{operation.id}' cannot be read: {operation.format_problem}"
    return Problem.of(ErrorKind.NOT_IMPLEMENTED, "Not implemented", detail)


def _upstream_error(response: UpstreamResponse, headers: dict[str, str]) -> Result:
    """An upstream error answer passed through as it came (status, body, media type):
    the same for mapped, passthrough and binary units."""
    body, media = _passthrough_body(response)
    return Result(
        status=response.status,
        body=body,
        media_type=media,
        headers=headers,
        is_error=True,
        upstream_status=response.status,
    )


def _binary_result(
    response: UpstreamResponse, binary: BinaryOutput, headers: dict[str, str]
) -> Result:
    """A binary unit's answer: a success is the upstream's bytes, unchanged, with the
    declared media type (else the upstream's); an upstream error passes as any other."""
    status = response.status
    if status >= 400:
        return _upstream_error(response, headers)
    if status in (204, 205, 304):
        return Result(status=status, body=None, headers=headers, upstream_status=status)
    media = binary.media_type or response.content_type or OCTET_STREAM
    return Result(
        status=status,
        body=response.content,
        media_type=media,
        headers=headers,
        upstream_status=status,
    )


def _passthrough_body(response: UpstreamResponse) -> tuple[Any, str]:
    """JSON parsed when the upstream says JSON (and it parses); bytes otherwise."""
    media = response.content_type or OCTET_STREAM
    if not response.content:
        return None, media
    if is_json(response.media_type):
        try:
            # The essence is kept: ``application/problem+json`` stays what it was.
            return json_codec.loads(response.content), response.media_type or "application/json"
        except ValueError:
            return response.content, media
    return response.content, media
