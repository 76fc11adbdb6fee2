"""The OpenTelemetry SDK of the process: set up from the standard ``OTEL_*`` variables.

Tracing is on when an OTLP endpoint is set (``OTEL_EXPORTER_OTLP_TRACES_ENDPOINT`` or
``OTEL_EXPORTER_OTLP_ENDPOINT``) or ``OTEL_TRACES_EXPORTER`` names an exporter, and
``OTEL_SDK_DISABLED`` is not ``true``. Otherwise nothing is imported: the SDK and the
exporter load only in :func:`start_tracing` when it is on. Read by the SDK itself, as the
specification says: ``OTEL_SERVICE_NAME`` and ``OTEL_RESOURCE_ATTRIBUTES`` (the service is
``naftiko`` when neither names it), ``OTEL_TRACES_SAMPLER`` and ``OTEL_TRACES_SAMPLER_ARG``
(default: parent-based, always on), the ``OTEL_EXPORTER_OTLP_*`` headers, timeout and
compression, and the ``OTEL_BSP_*`` batching settings.

Exporters (``OTEL_TRACES_EXPORTER``, comma-separated): ``otlp`` (OTLP over HTTP with
protobuf, the one protocol installed), ``console`` (one JSON span per line on stderr:
stdout may be the MCP stdio channel) and ``none``. Anything else, or another OTLP
protocol, is a :class:`~naftiko.runtime.config.ConfigError` (one line, exit 2).
"""

from __future__ import annotations

import os
import sys
from collections.abc import Mapping
from typing import Any

from naftiko import __version__, tracing
from naftiko.runtime.config import ConfigError

__all__ = ["start_tracing", "stop_tracing", "tracing_wanted"]

_TRUE = frozenset({"true", "1", "yes", "on"})
_PROTOCOL = "http/protobuf"
_EXPORTERS = frozenset({"otlp", "console", "none"})

_provider: Any = None


def _exporters(environ: Mapping[str, str]) -> list[str]:
    raw = environ.get("OTEL_TRACES_EXPORTER", "").strip().lower()
    names = [name.strip() for name in raw.split(",") if name.strip()]
    unknown = [name for name in names if name not in _EXPORTERS]
    if unknown:
        raise ConfigError(
            f"OTEL_TRACES_EXPORTER={raw!r}: unknown exporter {unknown[0]!r} "
            "(this runtime has otlp, console and none)"
        )
    if not names:
        endpoint = environ.get("OTEL_EXPORTER_OTLP_TRACES_ENDPOINT") or environ.get(
            "OTEL_EXPORTER_OTLP_ENDPOINT"
        )
        return ["otlp"] if endpoint else []
    return [name for name in names if name != "none"]


def tracing_wanted(environ: Mapping[str, str]) -> bool:
    """Whether the variables turn tracing on; raises ``ConfigError``."""
    if environ.get("OTEL_SDK_DISABLED", "").strip().lower() in _TRUE:
        return False
    return bool(_exporters(environ))


def start_tracing() -> bool:
    """Install the SDK when the process's variables ask for it (see the module docstring);
    True when tracing is on. Call once, before building the adapters (they are wrapped
    for server spans at build time). The SDK reads ``os.environ`` itself, so this reads
    nothing else. Raises :class:`~naftiko.runtime.config.ConfigError`."""
    global _provider
    environ = os.environ
    if not tracing_wanted(environ):
        return False
    exporters = _exporters(environ)
    protocol = (
        environ.get("OTEL_EXPORTER_OTLP_TRACES_PROTOCOL")
        or environ.get("OTEL_EXPORTER_OTLP_PROTOCOL")
        or _PROTOCOL
    ).strip()
    if "otlp" in exporters and protocol != _PROTOCOL:
        raise ConfigError(
            f"OTEL_EXPORTER_OTLP_PROTOCOL={protocol!r}: this runtime exports OTLP over "
            f"{_PROTOCOL} only"
        )
    from opentelemetry.sdk.resources import SERVICE_NAME, Resource
    from opentelemetry.sdk.trace import TracerProvider
    from opentelemetry.sdk.trace.export import BatchSpanProcessor

    named = environ.get("OTEL_SERVICE_NAME") or "service.name=" in environ.get(
        "OTEL_RESOURCE_ATTRIBUTES", ""
    )
    # ``Resource.create`` reads OTEL_SERVICE_NAME and OTEL_RESOURCE_ATTRIBUTES; attributes
    # given here would win over them, so the default name is given only when neither has one.
    resource = Resource.create({} if named else {SERVICE_NAME: "naftiko"})
    provider = TracerProvider(resource=resource)  # the sampler from OTEL_TRACES_SAMPLER
    for name in exporters:
        provider.add_span_processor(BatchSpanProcessor(_exporter(name)))
    _provider = provider
    tracing.enable(provider.get_tracer("naftiko", __version__))
    return True


def _exporter(name: str) -> Any:
    if name == "console":
        from opentelemetry.sdk.trace.export import ConsoleSpanExporter

        return ConsoleSpanExporter(
            out=sys.stderr, formatter=lambda span: span.to_json(indent=None) + "\n"
        )
    from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter

    return OTLPSpanExporter()  # endpoint, headers, timeout: the OTEL_EXPORTER_OTLP_* variables


def stop_tracing() -> None:
    """Export what is pending and stop (at process exit; a no-op when tracing is off)."""
    global _provider
    provider, _provider = _provider, None
    tracing.disable()
    if provider is not None:
        provider.shutdown()
