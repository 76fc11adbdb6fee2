"""The control adapter: health probes, Prometheus metrics and a status document.

It reads the process through the small :class:`ControlState` protocol instead of
importing the runtime, so the arrows keep pointing down (the runtime implements it).
Routes follow the reference control port (§8.2): ``/health/live``, ``/health/ready``,
``/metrics``, ``/status``. Differences, on purpose: ``/status`` is on by default (it
holds nothing secret and operators want it), and it lists every capability served.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, Protocol

from starlette.applications import Starlette
from starlette.middleware import Middleware
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from naftiko.adapters.control.plan import ControlAdapterPlan
from naftiko.adapters.http.auth import InboundAuthMiddleware, build_inbound_auth
from naftiko.adapters.http.origin import HostOriginMiddleware
from naftiko.adapters.http.settings import AdapterSettings
from naftiko.spec.binds import Bindings

PROBES = ("/health/live", "/health/ready")


class ControlState(Protocol):
    """What the control port can see of the process."""

    def adapter_states(self) -> list[dict[str, Any]]:
        """``[{"type", "namespace", "url", "port", "state"}]``; state ``started``,
        ``starting``, ``stopped``, ``not-served``."""
        ...

    def is_ready(self) -> bool: ...

    def status_document(self) -> dict[str, Any]: ...

    def metrics_exposition(self) -> tuple[bytes, str]:
        """Prometheus text and its content type."""
        ...


def _flag(mapping: Mapping[str, Any] | None, *names: str, default: bool) -> bool:
    if not mapping:
        return default
    for name in names:
        value = mapping.get(name)
        if isinstance(value, bool):
            return value
        if isinstance(value, Mapping) and isinstance(value.get("enabled"), bool):
            return bool(value["enabled"])
    return default


def control_features(plan: ControlAdapterPlan) -> dict[str, bool]:
    """Which routes this control adapter serves, from ``management``/``observability``.

    Defaults: health on, status (``management.info``) on, metrics on unless
    ``observability.enabled: false`` or ``observability.metrics.local.enabled: false``.
    """
    management = plan.management or {}
    observability = plan.observability or {}
    metrics = _flag(observability, "enabled", default=True)
    local = observability.get("metrics") if isinstance(observability, Mapping) else None
    if metrics and isinstance(local, Mapping):
        metrics = _flag(local, "enabled", default=True) and _flag(local, "local", default=True)
    return {
        "health": _flag(management, "health", default=True),
        "info": _flag(management, "info", default=True),
        "metrics": metrics,
    }


def build_control_app(
    state: ControlState,
    plan: ControlAdapterPlan,
    settings: AdapterSettings = AdapterSettings(),  # noqa: B008  (frozen, safe to share)
    *,
    bindings: Bindings | None = None,
) -> Starlette:
    """A Starlette app for one control adapter.

    A declared ``authentication`` protects ``/metrics`` and ``/status``; the two probes
    stay open, because orchestrators probe without credentials and the probes reveal
    only adapter names and states. Raises ``InboundAuthConfigError`` when the block
    cannot be enforced (the adapter must not start open).
    """
    binds = bindings or Bindings.empty()
    auth = build_inbound_auth(plan.authentication, binds.as_scope(), binds.namespaced())
    features = control_features(plan)
    routes: list[Route] = []

    if features["health"]:

        async def live(_: Request) -> Response:
            return JSONResponse({"status": "UP"})

        async def ready(_: Request) -> Response:
            adapters = state.adapter_states()
            up = state.is_ready()
            body = {"status": "UP" if up else "DEGRADED", "adapters": adapters}
            return JSONResponse(body, status_code=200 if up else 503)

        routes += [Route("/health/live", live), Route("/health/ready", ready)]

    if features["metrics"]:

        async def metrics(_: Request) -> Response:
            payload, media_type = state.metrics_exposition()
            return Response(payload, media_type=media_type)

        routes.append(Route("/metrics", metrics))

    if features["info"]:

        async def status(_: Request) -> Response:
            return JSONResponse(state.status_document())

        routes.append(Route("/status", status))

    # First, before authentication: the Host/Origin check (naftiko.adapters.http.origin).
    # The control port is read-only, but /status and /metrics name files, versions and
    # adapters, which a rebound page could otherwise read; the probes are checked too
    # (orchestrators send no Origin, and a container listener accepts any Host).
    middleware = [Middleware(HostOriginMiddleware, policy=settings.host_origin_policy())]
    if auth is not None:
        middleware.append(Middleware(InboundAuthMiddleware, auth=auth, exempt_paths=PROBES))
    return Starlette(routes=routes, middleware=middleware)
