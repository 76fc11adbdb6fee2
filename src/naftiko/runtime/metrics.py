"""The runtime's :class:`~naftiko.observability.Observer`: request log line + Prometheus.

The per-request series are :mod:`~naftiko.runtime.loop_metrics` families (no locks: the
runtime updates and scrapes them on its event loop's thread); the rest are
``prometheus_client``'s own.

Adapters and the engine report through ``naftiko.observability`` without knowing who
listens; this is who listens in ``naftiko-run``. Metrics live in a dedicated
``CollectorRegistry`` (not the global one) so that several runtimes in one test
process, or a library embedding us, never collide on metric names.
"""

from __future__ import annotations

import logging
from typing import Any

from prometheus_client import CollectorRegistry, Counter, Gauge, generate_latest
from prometheus_client.exposition import CONTENT_TYPE_LATEST

from naftiko import __version__, tracing
from naftiko.runtime.logs import log_request
from naftiko.runtime.loop_metrics import LoopCounter, LoopHistogram
from naftiko.upstream.resilience import STATE_VALUES

REQUEST_LOGGER = logging.getLogger("naftiko.request")
UPSTREAM_LOGGER = logging.getLogger("naftiko.upstream")
METRICS_CONTENT_TYPE = CONTENT_TYPE_LATEST
# Latency of API calls proxied to SaaS upstreams: a few ms up to the read timeout.
BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0)


class Metrics:
    """The metric families, registered once per runtime."""

    def __init__(self, registry: CollectorRegistry | None = None) -> None:
        self.registry = registry or CollectorRegistry(auto_describe=True)
        labels = ("adapter_type", "adapter", "unit")
        # Updated once or twice per request: the loop's own families (no locks).
        self.requests = LoopCounter(
            "naftiko_requests",
            "Requests served by exposed adapters, by final status.",
            (*labels, "status"),
            self.registry,
        )
        self.request_errors = LoopCounter(
            "naftiko_request_errors",
            "Requests that ended in an error result (upstream >= 400 or our problem).",
            labels,
            self.registry,
        )
        self.request_duration = LoopHistogram(
            "naftiko_request_duration_seconds",
            "Time to serve a request, from the adapter's point of view.",
            labels,
            self.registry,
            BUCKETS,
        )
        self.upstream_requests = LoopCounter(
            "naftiko_upstream_requests",
            "Calls to consumed upstream APIs.",
            ("namespace", "method", "status", "outcome"),
            self.registry,
        )
        self.upstream_duration = LoopHistogram(
            "naftiko_upstream_duration_seconds",
            "Duration of calls to consumed upstream APIs.",
            ("namespace", "method"),
            self.registry,
            BUCKETS,
        )
        # Upstream resilience: rare events (a retry, a refusal, a breaker move), so
        # prometheus_client's own families. A call that was retried and then answered
        # counts under ``outcome="recovered"``, apart from the errors.
        self.upstream_retries = Counter(
            "naftiko_upstream_retries_total",
            "Retries of upstream calls, by outcome (recovered: the retry ended the call "
            "with an answer; failed: it failed again).",
            ("namespace", "outcome"),
            registry=self.registry,
        )
        self.upstream_retries_skipped = Counter(
            "naftiko_upstream_retries_skipped_total",
            "Retries not made (budget, deadline, retry_after over the cap, breaker_open).",
            ("namespace", "reason"),
            registry=self.registry,
        )
        self.upstream_refused = Counter(
            "naftiko_upstream_refused_total",
            "Upstream calls refused without calling (breaker_open, bulkhead_full).",
            ("namespace", "reason"),
            registry=self.registry,
        )
        self.upstream_breaker = Gauge(
            "naftiko_upstream_breaker_state",
            "Circuit breaker of each consumed namespace: 0 closed, 1 half-open, 2 open.",
            ("namespace",),
            registry=self.registry,
        )
        self.info = Gauge(
            "naftiko_build_info",
            "Always 1; the labels say which naftiko runs.",
            ("version",),
            registry=self.registry,
        )
        self.info.labels(__version__).set(1)
        self.capabilities = Gauge(
            "naftiko_capabilities_loaded",
            "Capability documents currently served.",
            registry=self.registry,
        )
        self.reloads = Counter(
            "naftiko_reloads_total",
            "Reload attempts of capability documents, by outcome.",
            ("outcome",),
            registry=self.registry,
        )

        self.rate_limited = Counter(
            "naftiko_rate_limited",
            "Requests refused by a caller rate limit (429 / isError), by adapter.",
            ("adapter_type", "adapter"),
            registry=self.registry,
        )
        self.rate_limit_fallbacks = Counter(
            "naftiko_rate_limit_fallbacks",
            "Times Redis became unreachable and the rate limits fell back to local buckets.",
            registry=self.registry,
        )

    def exposition(self) -> bytes:
        return generate_latest(self.registry)


class RuntimeObserver:
    """Writes one log line per request and updates the metrics; never raises.

    Runs once per request and per upstream call, so the series are looked up in dicts
    keyed by the call's own values instead of through ``labels()`` (which converts and
    checks every value). The keys are the label sets the metrics keep anyway, so the
    caches grow no further than the metrics do.
    """

    def __init__(self, metrics: Metrics) -> None:
        self.metrics = metrics
        self._requests: dict[tuple[str, str, str, int], tuple[Any, Any]] = {}
        self._errors: dict[tuple[str, str, str], Any] = {}
        self._upstream: dict[tuple[str, str, str, str], tuple[Any, Any]] = {}

    def request_finished(
        self,
        *,
        adapter_type: str,
        adapter: str,
        unit: str,
        status: int,
        is_error: bool,
        duration_s: float,
        request_id: str | None = None,
        upstream_status: int | None = None,
    ) -> None:
        try:
            key = (adapter_type, adapter, unit, status)
            children = self._requests.get(key)
            if children is None:
                m = self.metrics
                children = (
                    m.requests.labels(adapter_type, adapter, unit, str(status)),
                    m.request_duration.labels(adapter_type, adapter, unit),
                )
                self._requests[key] = children
            children[0].inc()
            children[1].observe(duration_s)
            if is_error:
                errors = self._errors.get(key[:3])
                if errors is None:
                    errors = self.metrics.request_errors.labels(adapter_type, adapter, unit)
                    self._errors[key[:3]] = errors
                errors.inc()
            log_request(
                REQUEST_LOGGER,
                adapter_type=adapter_type,
                adapter=adapter,
                unit=unit,
                status=status,
                is_error=is_error,
                duration_ms=round(duration_s * 1000, 1),
                request_id=request_id,
                upstream_status=upstream_status,
                trace=tracing.current_ids() if tracing.ENABLED else None,
            )
        except Exception:  # an observer must never break a request
            REQUEST_LOGGER.exception("could not record a request")

    def upstream_finished(
        self,
        *,
        namespace: str,
        method: str,
        status: int | None,
        outcome: str,
        duration_s: float,
    ) -> None:
        try:
            status_label = "none" if status is None else str(status)
            key = (namespace, method, status_label, outcome)
            children = self._upstream.get(key)
            if children is None:
                m = self.metrics
                children = (
                    m.upstream_requests.labels(namespace, method, status_label, outcome),
                    m.upstream_duration.labels(namespace, method),
                )
                self._upstream[key] = children
            children[0].inc()
            children[1].observe(duration_s)
            if UPSTREAM_LOGGER.isEnabledFor(logging.DEBUG):
                UPSTREAM_LOGGER.debug(
                    "upstream %s %s -> %s (%s) %.1f ms",
                    namespace,
                    method,
                    status_label,
                    outcome,
                    duration_s * 1000,
                    extra={
                        "event": "upstream",
                        "namespace": namespace,
                        "method": method,
                        "status": status,
                        "outcome": outcome,
                        "duration_ms": round(duration_s * 1000, 1),
                    },
                )
        except Exception:
            UPSTREAM_LOGGER.exception("could not record an upstream call")

    def upstream_resilience(self, *, namespace: str, event: str, outcome: str) -> None:
        try:
            m = self.metrics
            family = {
                "retried": m.upstream_retries,
                "skipped": m.upstream_retries_skipped,
                "refused": m.upstream_refused,
            }.get(event)
            if family is not None:
                family.labels(namespace, outcome).inc()
        except Exception:
            UPSTREAM_LOGGER.exception("could not record an upstream retry or refusal")

    def upstream_breaker(self, *, namespace: str, state: str) -> None:
        try:
            self.metrics.upstream_breaker.labels(namespace).set(STATE_VALUES.get(state, -1))
        except Exception:
            UPSTREAM_LOGGER.exception("could not record a circuit breaker change")
