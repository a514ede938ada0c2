"""Prometheus metrics, labelled by ``handler`` (the route template) with coarse buckets.

Deliberately unlike the reference service (``route``/``status`` labels, fine
buckets): drillbook must read metric and label names from the profile.
"""

from __future__ import annotations

from prometheus_client import CollectorRegistry, Counter, Histogram

REGISTRY = CollectorRegistry()
REQUESTS = Counter(
    "ledger_requests",
    "Requests answered, by handler, method and status code.",
    ["handler", "method", "code"],
    registry=REGISTRY,
)
DURATION = Histogram(
    "ledger_request_duration_seconds",
    "Time to answer a request, by handler.",
    ["handler", "method"],
    buckets=(0.1, 0.5, 1.0, 5.0),
    registry=REGISTRY,
)
