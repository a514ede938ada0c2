"""PromQL templates filled for a group of instances, and a small Prometheus HTTP API client.

The service profile's ``service_metrics.queries`` are templates in the manner of
Flagger's MetricTemplates: the query is the user's (their metric names, their
recording rules, their label conventions), drillbook fills in only what changes
from one look to the next: which instances (``${instances}``), which routes to
leave out (``${exclude}``) and over which window (``${window}``), plus the
profile's names (``${requests_total}``, ``${status_label}``...). ``${...}`` and
not Go's ``{{ ... }}``: the inventory is templated by Ansible first.

The canary (``deploy.canary``) and the doctor both ask through here, so a query
the doctor says works is the query the canary runs.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import httpx

from drillbook.core.errors import ConfigError, TargetUnreachable
from drillbook.core.profile import PLACEHOLDER, Metrics

#: The templates of ``service_metrics.queries``, by name.
QUERY_NAMES = ("requests", "errors", "latency_buckets")


def escape_regex(text: str) -> str:
    """``text`` as a literal inside a PromQL regex matcher (a Go string: backslashes doubled)."""
    return "".join("\\\\" + c if c in r".^$*+?()[]{}|\\" else c for c in text)


def instances_matcher(label: str, values: Sequence[str]) -> str:
    """``instance=~"a|b"``: the series of exactly these instances."""
    return f'{label}=~"' + "|".join(escape_regex(v) for v in values) + '"'


def exclude_matcher(route_label: str, prefixes: Sequence[str]) -> str:
    """``route!~"/health.*|/metrics.*"``; with nothing to exclude a matcher that keeps every series."""
    if not prefixes:
        return f'{route_label}=~".*"'
    return f'{route_label}!~"' + "|".join(escape_regex(p) + ".*" for p in prefixes) + '"'


def render(
    metrics: Metrics, name: str, instances: Sequence[str], window_s: int, exclude: Sequence[str] = ()
) -> str:
    """The template ``name`` of ``metrics.queries`` filled for ``instances`` over ``window_s`` seconds."""
    values = {
        "instances": instances_matcher(metrics.instance_label, instances),
        "exclude": exclude_matcher(metrics.route_label, exclude),
        "window": f"{max(1, int(window_s))}s",
        "requests_total": metrics.requests_total,
        "duration_seconds": metrics.duration_seconds,
        "route_label": metrics.route_label,
        "status_label": metrics.status_label,
        "instance_label": metrics.instance_label,
    }
    template: str = getattr(metrics.queries, name)
    return PLACEHOLDER.sub(lambda m: values[m.group(1)], template)


def resolve_url(profile_url: str | None, alias_url: str | None) -> str | None:
    """The one Prometheus URL: ``service_metrics.prometheus_url``, else its alias ``canary_prometheus_url``.

    Both set to different servers is a mistake (which one did the user mean?), one line.
    """
    a = (profile_url or "").rstrip("/")
    b = (alias_url or "").rstrip("/")
    if a and b and a != b:
        raise ConfigError(
            f"service_metrics.prometheus_url={a!r} and canary_prometheus_url={b!r} differ: set only "
            "service_metrics.prometheus_url (canary_prometheus_url is its older alias)"
        )
    return a or b or None


@dataclass(frozen=True)
class Sample:
    """One series of an instant-query answer: its labels and value."""

    labels: dict[str, str]
    value: float


class Prometheus:
    """Instant queries against one Prometheus (``/api/v1/query``); every failure is one line."""

    def __init__(self, url: str, timeout_s: float = 5.0, client: httpx.Client | None = None) -> None:
        self.url = url.rstrip("/")
        self._client = client or httpx.Client(timeout=timeout_s, transport=httpx.HTTPTransport(retries=1))

    def query(self, promql: str) -> list[Sample]:
        """The answer's series; raises :class:`TargetUnreachable` (unreachable, a refused query)."""
        try:
            resp = self._client.get(f"{self.url}/api/v1/query", params={"query": promql})
            body: dict[str, Any] = resp.json()
        except (httpx.HTTPError, ValueError) as exc:
            raise TargetUnreachable(
                f"Prometheus {self.url} unreachable: {type(exc).__name__}: {exc}"
            ) from exc
        if body.get("status") != "success":
            error = str(body.get("error") or f"HTTP {resp.status_code}").splitlines()[0]
            raise TargetUnreachable(f"Prometheus {self.url} refused {promql!r}: {error}")
        data = body.get("data", {})
        if data.get("resultType") == "scalar":
            return [Sample({}, _number(data["result"][1]))]
        return [
            Sample(dict(row.get("metric", {})), _number(row["value"][1])) for row in data.get("result", [])
        ]

    def ready(self) -> None:
        """Raise :class:`TargetUnreachable` unless the server answers a trivial query."""
        self.query("vector(1)")

    def close(self) -> None:
        self._client.close()


def _number(text: str) -> float:
    value = float(text)
    return 0.0 if math.isnan(value) else value


def total(samples: Sequence[Sample]) -> float:
    """Every series of an answer summed (a template may answer per status, per route...)."""
    return sum(s.value for s in samples)


def buckets(samples: Sequence[Sample]) -> tuple[tuple[float, float], ...]:
    """A cumulative histogram from an answer with one series per ``le``, sorted by bound."""
    acc: dict[float, float] = {}
    for s in samples:
        le = s.labels.get("le", "+Inf")
        bound = math.inf if le in ("+Inf", "Inf", "inf") else float(le)
        acc[bound] = acc.get(bound, 0.0) + s.value
    return tuple(sorted(acc.items()))
