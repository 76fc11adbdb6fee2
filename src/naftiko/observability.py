"""Hooks through which adapters and the engine report what happened.

Adapters call :meth:`Observer.request_finished` once per request; the engine calls
:meth:`Observer.upstream_finished` once per upstream call. The default observer does
nothing; the runtime installs one that writes the request log and Prometheus metrics.
Living at the package root keeps the arrows pointing down: engine and adapters report
here without importing the runtime.
"""

from __future__ import annotations

from typing import Protocol


class Observer(Protocol):
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
    ) -> None: ...

    def upstream_finished(
        self,
        *,
        namespace: str,
        method: str,
        status: int | None,
        outcome: str,
        duration_s: float,
    ) -> None: ...

    # Upstream resilience (``naftiko.upstream.resilience``): ``event`` is ``retried``
    # (outcome ``recovered`` or ``failed``), ``skipped`` (a retry not made: ``budget``,
    # ``deadline``, ``retry_after``, ``breaker_open``) or ``refused`` (a call not made:
    # ``breaker_open``, ``bulkhead_full``). Observers without these methods are skipped.
    def upstream_resilience(self, *, namespace: str, event: str, outcome: str) -> None: ...

    def upstream_breaker(self, *, namespace: str, state: str) -> None: ...


class NullObserver:
    """Reports nothing: the default for tests and embedded use."""

    def request_finished(self, **_: object) -> None:
        return None

    def upstream_finished(self, **_: object) -> None:
        return None

    def upstream_resilience(self, **_: object) -> None:
        return None

    def upstream_breaker(self, **_: object) -> None:
        return None


_observer: Observer = NullObserver()


def get_observer() -> Observer:
    return _observer


def set_observer(observer: Observer) -> None:
    global _observer
    _observer = observer
