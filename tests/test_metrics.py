"""Prometheus text parsing, counter deltas and histogram quantiles."""

from __future__ import annotations

import math

import pytest

from drillbook.core.metrics import parse, quantile

TEXT_A = """# TYPE http_request_duration_seconds histogram
http_request_duration_seconds_bucket{route="/items",le="0.01"} 10
http_request_duration_seconds_bucket{route="/items",le="0.05"} 50
http_request_duration_seconds_bucket{route="/items",le="0.1"} 100
http_request_duration_seconds_bucket{route="/items",le="+Inf"} 100
http_request_duration_seconds_count{route="/items"} 100
http_request_duration_seconds_sum{route="/items"} 3.0
# TYPE http_requests_total counter
http_requests_total{route="/items",status="200"} 95
http_requests_total{route="/items",status="500"} 5
"""

TEXT_B = (
    TEXT_A.replace('le="0.01"} 10', 'le="0.01"} 10')
    .replace('le="0.05"} 50', 'le="0.05"} 50')
    .replace('le="0.1"} 100', 'le="0.1"} 200')
    .replace('le="+Inf"} 100', 'le="+Inf"} 300')
    .replace('status="500"} 5', 'status="500"} 25')
)


def test_quantile_interpolates_inside_bucket() -> None:
    snap = parse(TEXT_A)
    buckets = snap.buckets("http_request_duration_seconds", route="/items")
    assert buckets[-1] == (math.inf, 100.0)
    assert quantile(0.5, buckets) == pytest.approx(0.05)
    assert quantile(0.75, buckets) == pytest.approx(0.075)
    assert quantile(0.95, []) is None


def test_window_difference() -> None:
    delta = parse(TEXT_B) - parse(TEXT_A)
    assert delta.total("http_requests_total", status="500") == 20
    buckets = delta.buckets("http_request_duration_seconds")
    # 200 new observations: 100 in (0.05, 0.1], 100 above 0.1 -> p95 falls in +Inf: the highest finite bound
    assert quantile(0.95, buckets) == pytest.approx(0.1)
    assert quantile(0.25, buckets) == pytest.approx(0.075)


def test_counter_reset_counts_from_zero() -> None:
    delta = parse(TEXT_A) - parse(TEXT_B)
    assert delta.total("http_requests_total", status="500") == 5
