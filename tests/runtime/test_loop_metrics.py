"""The loop's metric families write the exposition ``prometheus_client``'s own did."""

from __future__ import annotations

import re

import pytest
from prometheus_client import CollectorRegistry, Counter, Histogram, generate_latest

from naftiko.runtime.loop_metrics import LoopCounter, LoopHistogram
from naftiko.runtime.metrics import BUCKETS

LABELS = ("adapter_type", "adapter", "unit", "status")
OBSERVATIONS = [
    (("rest", "a", "u", "200"), 0.003),
    (("rest", "a", "u", "502"), 0.2),
    (("rest", "a", "u", "200"), 0.005),  # exactly on a bound: that bucket
    (("rest", "b", "u", "200"), 100.0),  # past the last bound: +Inf only
    (("mcp", "a", "u", "200"), 0.0),
    (("mcp", 'quo"te\\', "ü", "200"), 1.0),  # label values escaped alike
]


def _without_created_times(text: bytes) -> str:
    return re.sub(r"(_created\{[^}]*\}) \S+", r"\1 T", text.decode())


def test_exposition_is_prometheus_clients() -> None:
    theirs, ours = CollectorRegistry(auto_describe=True), CollectorRegistry(auto_describe=True)
    counter = Counter("x_requests_total", "Requests.", LABELS, registry=theirs)
    histogram = Histogram("x_seconds", "Time.", LABELS[:3], buckets=BUCKETS, registry=theirs)
    loop_counter = LoopCounter("x_requests", "Requests.", LABELS, ours)
    loop_histogram = LoopHistogram("x_seconds", "Time.", LABELS[:3], ours, BUCKETS)
    for labels, seconds in OBSERVATIONS:
        counter.labels(*labels).inc()
        histogram.labels(*labels[:3]).observe(seconds)
        loop_counter.labels(*labels).inc()
        loop_histogram.labels(*labels[:3]).observe(seconds)
    expected = _without_created_times(generate_latest(theirs))
    assert _without_created_times(generate_latest(ours)) == expected
    assert 'x_seconds_bucket{adapter="a",adapter_type="rest",le="0.005",unit="u"} 2.0' in expected


def test_created_is_when_the_series_first_appeared() -> None:
    registry = CollectorRegistry()
    counter = LoopCounter("y", "Y.", ("k",), registry)
    series = counter.labels("v")
    series.inc(2)
    text = generate_latest(registry).decode()
    assert 'y_total{k="v"} 2.0' in text
    (line,) = [ln for ln in text.splitlines() if ln.startswith("y_created{")]
    assert abs(float(line.split()[-1]) - series.created) < 1e-3


def test_wrong_label_count_is_refused() -> None:
    counter = LoopCounter("z", "Z.", ("a", "b"), CollectorRegistry())
    with pytest.raises(ValueError):
        counter.labels("only-one")
