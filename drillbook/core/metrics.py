"""Prometheus text parsed and differenced: rates and histogram quantiles without a Prometheus server.

The canary judge scrapes each instance's ``/metrics`` at the start and end of an
analysis window and works on the difference (counters and histogram buckets only
grow, so end - start is what happened in the window). Quantiles are interpolated
inside the bucket the rank falls in, as PromQL's ``histogram_quantile`` does.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass, field

import httpx
from prometheus_client.parser import text_string_to_metric_families

from drillbook.core.errors import TargetUnreachable

Labels = tuple[tuple[str, str], ...]


@dataclass
class Snapshot:
    """Every sample of one scrape: ``{(name, labels): value}``."""

    samples: dict[tuple[str, Labels], float] = field(default_factory=dict)

    def __sub__(self, earlier: Snapshot) -> Snapshot:
        """Counter deltas; a counter that went down (process restart) counts from zero."""
        out = Snapshot()
        for key, value in self.samples.items():
            before = earlier.samples.get(key, 0.0)
            out.samples[key] = value - before if value >= before else value
        return out

    def total(self, name: str, **match: str | None) -> float:
        """Sum of ``name`` over samples whose labels match (``None`` = any; a set via ``status_class``)."""
        return sum(v for (n, labels), v in self.samples.items() if n == name and _matches(labels, match))

    def sum_where(self, name: str, predicate: object) -> float:
        """Sum of ``name`` where ``predicate(labels_dict)`` is true."""
        fn = predicate if callable(predicate) else (lambda _labels: True)
        return sum(v for (n, labels), v in self.samples.items() if n == name and fn(dict(labels)))

    def buckets(self, name: str, **match: str | None) -> list[tuple[float, float]]:
        """Cumulative histogram buckets ``[(le, count)]`` summed over matching series, sorted by le."""
        acc: dict[float, float] = {}
        for (n, labels), v in self.samples.items():
            if n != f"{name}_bucket":
                continue
            d = dict(labels)
            le = d.pop("le", None)
            if le is None or not _matches(tuple(d.items()), match):
                continue
            bound = math.inf if le in ("+Inf", "inf") else float(le)
            acc[bound] = acc.get(bound, 0.0) + v
        return sorted(acc.items())


def _matches(labels: Labels, match: Mapping[str, str | None]) -> bool:
    d = dict(labels)
    return all(v is None or d.get(k) == v for k, v in match.items())


def parse(text: str) -> Snapshot:
    """Parse the Prometheus text exposition format with prometheus_client's own parser."""
    snap = Snapshot()
    for family in text_string_to_metric_families(text):
        for s in family.samples:
            snap.samples[(s.name, tuple(sorted(s.labels.items())))] = float(s.value)
    return snap


def scrape(url: str, client: httpx.Client | None = None, timeout_s: float = 2.0) -> Snapshot:
    """GET ``url`` (an instance's /metrics) and parse it."""
    try:
        if client is None:
            with httpx.Client() as own:
                resp = own.get(url, timeout=timeout_s)
        else:
            resp = client.get(url, timeout=timeout_s)
        resp.raise_for_status()
    except httpx.HTTPError as exc:
        raise TargetUnreachable(f"cannot scrape {url}: {exc}") from exc
    return parse(resp.text)


def quantile(q: float, buckets: list[tuple[float, float]]) -> float | None:
    """The q-quantile (0..1) of a cumulative histogram; None when it holds no observations.

    Linear interpolation inside the bucket holding the rank; a rank in the +Inf bucket
    answers the highest finite bound (PromQL does the same).
    """
    if not buckets:
        return None
    total = buckets[-1][1]
    if total <= 0:
        return None
    rank = q * total
    prev_bound, prev_count = 0.0, 0.0
    for bound, count in buckets:
        if count >= rank:
            if math.isinf(bound):
                return prev_bound
            in_bucket = count - prev_count
            if in_bucket <= 0:
                return bound
            return prev_bound + (bound - prev_bound) * (rank - prev_count) / in_bucket
        prev_bound, prev_count = bound, count
    return prev_bound
