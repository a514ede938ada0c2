"""Outside witnesses of a load run: the load balancer's counters and the instances' own histograms.

Locust can only say what Locust sent and saw. Two other parties saw the same
traffic and keep their own books:

- HAProxy counts every request its frontend accepted (``req_tot`` in ``show stat``,
  read over the admin socket): the rate the service actually received.
- Each instance of the service keeps a latency histogram per route
  (``http_request_duration_seconds``) on ``/metrics``: the time spent inside the
  service, without the network, the balancer or the generator's own delays.

HAProxy is sampled twice a second (one socket round trip), the instances once a
second (one scrape each); afterwards the first and last samples inside the steady
phase give a rate (counter delta / wall-clock delta) and latency quantiles (bucket
deltas) over nearly the same window, reported next to Locust's figures. Nothing
is interpolated: a witness's window is the part of the steady phase between two of
its samples. A witness that cannot be reached is left out and said so, never guessed.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from typing import Any

import httpx

from drillbook.core.errors import DrillbookError
from drillbook.core.haproxy import HAProxy
from drillbook.core.metrics import Snapshot, quantile, scrape


@dataclass(frozen=True)
class LbFigures:
    """What HAProxy's frontend counted over ``window_s`` seconds (counter deltas, not Locust's view)."""

    frontend: str
    rps: float
    requests: int
    errors_5xx: int
    window_s: float


@dataclass(frozen=True)
class ServerFigures:
    """What the instances' own latency histograms saw over ``window_s`` seconds, summed across instances.

    Latencies in ms (None without requests); ``routes`` has one row per (method,
    route) with requests, rps and p95.
    """

    instances: int
    rps: float
    requests: int
    p50_ms: float | None
    p95_ms: float | None
    p99_ms: float | None
    window_s: float
    routes: list[dict[str, Any]]


@dataclass
class Witnesses:
    """Samples HAProxy's frontend counters and each instance's /metrics once a call."""

    haproxy: HAProxy | None
    instances: list[tuple[str, str]]  # (name, metrics URL)
    histogram: str = "http_request_duration_seconds"
    exclude_routes: tuple[str, ...] = ("/metrics",)
    #: The histogram's route label (the profile's ``service_metrics.route_label``: ``route``, ``handler``).
    route_label: str = "route"
    frontend: str = ""
    lb: list[tuple[float, dict[str, int]]] = field(default_factory=list)
    metrics: list[tuple[float, dict[str, Snapshot]]] = field(default_factory=list)
    problems: dict[str, str] = field(default_factory=dict)
    metrics_every: int = 2
    _calls: int = 0
    _client: httpx.Client | None = None

    def sample(self) -> None:
        """HAProxy at every call, the instances' /metrics at every ``metrics_every``-th; never raises."""
        now = time.time()
        self._calls += 1
        if self.haproxy is not None:
            try:
                self.lb.append((now, self.haproxy.frontend_totals()))
            except DrillbookError as exc:
                self.problems["haproxy"] = str(exc)
        if self.instances and (self._calls - 1) % self.metrics_every == 0:
            if self._client is None:
                self._client = httpx.Client(transport=httpx.HTTPTransport(retries=0))
            snaps: dict[str, Snapshot] = {}
            for name, url in self.instances:
                try:
                    snaps[name] = self._keep(scrape(url, self._client, timeout_s=1.0))
                except DrillbookError as exc:
                    self.problems[name] = str(exc)
            self.metrics.append((time.time(), snaps))

    def close(self) -> None:
        """Close the scrape client; the witnesses can sample again (a new client is made)."""
        if self._client is not None:
            self._client.close()
            self._client = None

    def _keep(self, snap: Snapshot) -> Snapshot:
        """Only the latency histogram (the rest of /metrics is not needed and costs memory)."""
        prefix = self.histogram
        out = Snapshot()
        out.samples = {k: v for k, v in snap.samples.items() if k[0].startswith(prefix)}
        return out

    # -- figures over a window ---------------------------------------------------
    def lb_figures(self, start: float, end: float) -> LbFigures | None:
        """Requests HAProxy's frontend counted between the samples bracketing [start, end]."""
        pair = _bracket(self.lb, start, end)
        if pair is None:
            return None
        (t0, a), (t1, b) = pair
        frontend = self.frontend or _busiest(a, b)
        if not frontend or f"{frontend}.requests" not in b:
            return None
        requests = b[f"{frontend}.requests"] - a.get(f"{frontend}.requests", 0)
        errors = b.get(f"{frontend}.5xx", 0) - a.get(f"{frontend}.5xx", 0)
        return LbFigures(frontend, requests / (t1 - t0), requests, errors, t1 - t0)

    def server_figures(self, start: float, end: float) -> ServerFigures | None:
        """Rate and latency quantiles from the instances' histogram deltas over the window."""
        pair = _bracket(self.metrics, start, end)
        if pair is None:
            return None
        (t0, a), (t1, b) = pair
        names = [n for n in b if n in a]
        if not names:
            return None
        total: dict[float, float] = {}
        by_route: dict[tuple[str, str], dict[float, float]] = {}
        for name in names:
            delta = b[name] - a[name]
            for (metric, labels), value in delta.samples.items():
                if metric != f"{self.histogram}_bucket":
                    continue
                d = dict(labels)
                if d.get(self.route_label) in self.exclude_routes:
                    continue
                le = d.get("le", "+Inf")
                bound = float("inf") if le in ("+Inf", "inf") else float(le)
                total[bound] = total.get(bound, 0.0) + value
                key = (d.get("method", ""), d.get(self.route_label, ""))
                acc = by_route.setdefault(key, {})
                acc[bound] = acc.get(bound, 0.0) + value
        buckets = sorted(total.items())
        requests = int(buckets[-1][1]) if buckets else 0
        window = t1 - t0
        routes = []
        for (method, route), cumulative in sorted(by_route.items()):
            rb = sorted(cumulative.items())
            count = int(rb[-1][1]) if rb else 0
            if count:
                routes.append(
                    {
                        "name": f"{method} {route}".strip(),
                        "requests": count,
                        "rps": round(count / window, 2),
                        "p95_ms": _ms(quantile(0.95, rb)),
                    }
                )
        return ServerFigures(
            instances=len(names),
            rps=requests / window,
            requests=requests,
            p50_ms=_ms(quantile(0.50, buckets)),
            p95_ms=_ms(quantile(0.95, buckets)),
            p99_ms=_ms(quantile(0.99, buckets)),
            window_s=window,
            routes=routes,
        )

    # -- series for the plot -------------------------------------------------------
    def lb_series(self) -> list[tuple[float, float]]:
        """(wall time at the middle of the interval, requests/s) between consecutive samples."""
        out = []
        for (t0, a), (t1, b) in zip(self.lb, self.lb[1:], strict=False):
            frontend = self.frontend or _busiest(a, b)
            if frontend and t1 > t0:
                key = f"{frontend}.requests"
                out.append(((t0 + t1) / 2, (b.get(key, 0) - a.get(key, 0)) / (t1 - t0)))
        return out

    def server_p95_series(self, every: int = 2) -> list[tuple[float, float]]:
        """Server-side p95 (ms) over consecutive windows of ``every`` metrics samples."""
        out = []
        for i in range(0, len(self.metrics) - every, every):
            fig = self.server_figures(self.metrics[i][0], self.metrics[i + every][0])
            if fig is not None and fig.p95_ms is not None:
                out.append(((self.metrics[i][0] + self.metrics[i + every][0]) / 2, fig.p95_ms))
        return out


def _bracket(samples: list[tuple[float, Any]], start: float, end: float) -> tuple[Any, Any] | None:
    """The first sample at or after ``start`` and the last at or before ``end`` (at least 0.5 s apart)."""
    inside = [s for s in samples if start <= s[0] <= end]
    if len(inside) < 2 or inside[-1][0] - inside[0][0] < 0.5:
        return None
    return inside[0], inside[-1]


def _busiest(a: dict[str, int], b: dict[str, int]) -> str:
    """The frontend whose request counter grew most (the service's, not the stats page's)."""
    best, grown = "", -1
    for key, value in b.items():
        if key.endswith(".requests"):
            delta = value - a.get(key, 0)
            if delta > grown:
                best, grown = key.removesuffix(".requests"), delta
    return best


def _ms(seconds: float | None) -> float | None:
    return None if seconds is None else round(seconds * 1000, 2)
