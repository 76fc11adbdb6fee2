"""Counters and histograms updated on the event loop's thread: plain numbers, no locks.

Why: ``prometheus_client`` guards every increment with a lock and walks a histogram's
buckets in Python, a cost paid four times per proxied request (one per series it touches)
and visible in its CPU profile. ``naftiko-run`` updates and scrapes its metrics on one
thread, the event loop's (the control port is served by that loop), so a series here is a
few floats bumped in place. ``prometheus_client`` still writes the exposition, through
:meth:`collect`: the text is what its own ``Counter`` and ``Histogram`` gave (``_total``,
``_bucket``, ``_count``, ``_sum`` and ``_created`` samples, in the same order).

Only for the one-thread case: a family must not be updated from several threads.
"""

from __future__ import annotations

import math
import time
from bisect import bisect_left
from collections.abc import Iterator, Sequence
from typing import Generic, TypeVar

from prometheus_client import CollectorRegistry
from prometheus_client.core import CounterMetricFamily, HistogramMetricFamily, Metric
from prometheus_client.samples import Sample
from prometheus_client.utils import floatToGoString

__all__ = ["LoopCounter", "LoopHistogram"]


class CounterSeries:
    """One label set of a :class:`LoopCounter`."""

    __slots__ = ("created", "value")

    def __init__(self) -> None:
        self.value = 0.0
        self.created = time.time()

    def inc(self, amount: float = 1.0) -> None:
        self.value += amount


class HistogramSeries:
    """One label set of a :class:`LoopHistogram`: a count per bucket (not cumulative)."""

    __slots__ = ("bounds", "counts", "created", "sum")

    def __init__(self, bounds: tuple[float, ...]) -> None:
        self.bounds = bounds
        self.counts = [0.0] * len(bounds)
        self.sum = 0.0
        self.created = time.time()

    def observe(self, amount: float) -> None:
        # The first bucket whose upper bound is >= amount, as prometheus_client's loop.
        self.counts[bisect_left(self.bounds, amount)] += 1.0
        self.sum += amount


S = TypeVar("S", CounterSeries, HistogramSeries)


class _Family(Generic[S]):
    """A metric family registered as a collector; its series are made on first use."""

    def __init__(
        self,
        name: str,
        documentation: str,
        labelnames: Sequence[str],
        registry: CollectorRegistry,
    ) -> None:
        self.name = name
        self.documentation = documentation
        self.labelnames = tuple(labelnames)
        self._series: dict[tuple[str, ...], S] = {}
        registry.register(self)

    def labels(self, *values: str) -> S:
        """The series of these label values (in ``labelnames`` order), made on first use."""
        key = tuple(str(v) for v in values)
        series = self._series.get(key)
        if series is None:
            if len(key) != len(self.labelnames):
                raise ValueError(f"{self.name}: expected labels {self.labelnames}")
            series = self._series[key] = self._new()
        return series

    def _new(self) -> S:
        raise NotImplementedError

    def collect(self) -> Iterator[Metric]:
        raise NotImplementedError


class LoopCounter(_Family[CounterSeries]):
    """A ``Counter`` family: ``labels(*values).inc()``; ``name`` without ``_total``."""

    def _new(self) -> CounterSeries:
        return CounterSeries()

    def collect(self) -> Iterator[Metric]:
        family = CounterMetricFamily(self.name, self.documentation, labels=self.labelnames)
        for values, series in list(self._series.items()):
            family.add_metric(values, series.value, created=series.created)
        yield family


class LoopHistogram(_Family[HistogramSeries]):
    """A ``Histogram`` family with fixed buckets: ``labels(*values).observe(seconds)``."""

    def __init__(
        self,
        name: str,
        documentation: str,
        labelnames: Sequence[str],
        registry: CollectorRegistry,
        buckets: Sequence[float],
    ) -> None:
        bounds = tuple(float(b) for b in buckets)
        if bounds[-1] != math.inf:
            bounds += (math.inf,)
        self.bounds = bounds
        self._les = tuple(floatToGoString(b) for b in bounds)
        super().__init__(name, documentation, labelnames, registry)

    def _new(self) -> HistogramSeries:
        return HistogramSeries(self.bounds)

    def collect(self) -> Iterator[Metric]:
        family = HistogramMetricFamily(self.name, self.documentation, labels=self.labelnames)
        for values, series in list(self._series.items()):
            cumulative, buckets = 0.0, []
            for le, count in zip(self._les, series.counts, strict=True):
                cumulative += count
                buckets.append((le, cumulative))
            family.add_metric(values, buckets, series.sum)
            labels = dict(zip(self.labelnames, values, strict=True))
            family.samples.append(Sample(f"{self.name}_created", labels, series.created))
        yield family
