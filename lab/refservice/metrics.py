"""Prometheus metrics of one instance.

drillbook's canary analysis compares latency histograms between the canary and
the baseline, so the buckets are fine around the latencies that matter (5 ms to
2 s) and the route label is the route *template* (/items/{item_id}), never the
raw path, which would explode the label set.
"""

from __future__ import annotations

from prometheus_client import (
    CONTENT_TYPE_LATEST,
    CollectorRegistry,
    Counter,
    Gauge,
    Histogram,
    disable_created_metrics,
    generate_latest,
)
from prometheus_client.gc_collector import GCCollector
from prometheus_client.platform_collector import PlatformCollector
from prometheus_client.process_collector import ProcessCollector

BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.075, 0.1, 0.15, 0.2, 0.3, 0.5, 0.75, 1.0, 2.0, 5.0)

# The *_created series double the exposition size and no drill reads them.
disable_created_metrics()  # type: ignore[no-untyped-call]

REGISTRY = CollectorRegistry()
ProcessCollector(registry=REGISTRY)
PlatformCollector(registry=REGISTRY)
GCCollector(registry=REGISTRY)

REQUEST_DURATION = Histogram(
    "http_request_duration_seconds",
    "Time from request start to the end of the response, by route template.",
    ["route", "method"],
    buckets=BUCKETS,
    registry=REGISTRY,
)
REQUESTS = Counter(
    "http_requests",
    "Requests answered, by route template, method and status code.",
    ["route", "method", "status"],
    registry=REGISTRY,
)
CACHE_HITS = Counter("refservice_cache_hits", "Item reads answered from Redis.", registry=REGISTRY)
CACHE_MISSES = Counter(
    "refservice_cache_misses", "Item reads Redis could not answer (key absent).", registry=REGISTRY
)
CACHE_ERRORS = Counter(
    "refservice_cache_errors", "Redis calls that failed (timeout, refused, error).", registry=REGISTRY
)
CACHE_BYPASSED = Counter(
    "refservice_cache_bypassed",
    "Redis calls skipped because the circuit breaker was open.",
    registry=REGISTRY,
)
SENTINEL_WRITES = Counter(
    "refservice_sentinel_writes",
    "Sentinel rows the background writer tried to insert, by result.",
    ["result"],
    registry=REGISTRY,
)
INFO = Gauge(
    "refservice_info",
    "Always 1; the labels name the running build.",
    ["version", "instance"],
    registry=REGISTRY,
)

# labels() takes a lock and builds a key on every call; the label sets are few,
# so the children are looked up once and kept.
_children: dict[tuple[str, str, int], tuple[Histogram, Counter]] = {}


def observe_request(route: str, method: str, status: int, seconds: float) -> None:
    """Record one finished request."""
    key = (route, method, status)
    children = _children.get(key)
    if children is None:
        children = (
            REQUEST_DURATION.labels(route=route, method=method),
            REQUESTS.labels(route=route, method=method, status=str(status)),
        )
        _children[key] = children
    children[0].observe(seconds)
    children[1].inc()


def set_info(version: str, instance: str) -> None:
    INFO.clear()
    INFO.labels(version=version, instance=instance).set(1)


def render() -> tuple[bytes, str]:
    """The exposition text and its content type."""
    return generate_latest(REGISTRY), CONTENT_TYPE_LATEST
