"""Where the judge's counts come from: the instances' own ``/metrics``, or a Prometheus server.

Both answer the same question for an analysis window that started at
:meth:`begin`: what did the canary instances serve, and what did the baseline
instances serve (requests, 5xx, latency histogram), as two
:class:`~drillbook.canary.judge.Window`.

* :class:`ScrapeSource` (default, no Prometheus needed) scrapes every instance at
  the window's start and at each look, in parallel, and works on the difference;
  a restarted instance's counters count from zero (see ``Snapshot.__sub__``).
  Resolution is the look interval, so a bad release is seen within seconds.
* :class:`PrometheusSource` asks ``increase(...[window])`` over PromQL when the
  inventory names ``canary_prometheus_url``; resolution is Prometheus' own scrape
  interval, which is why real fleets use longer analysis windows.
"""

from __future__ import annotations

import math
import time
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Any, Protocol
from urllib.parse import urlparse

import httpx

from drillbook.canary.judge import DURATION_METRIC, REQUESTS_METRIC, Window, pooled, window_from
from drillbook.core.errors import TargetUnreachable
from drillbook.core.inventory import AppInstance
from drillbook.core.metrics import Snapshot, scrape


@dataclass(frozen=True)
class Look:
    """Canary and baseline windows at one look, and which instances could not be read.

    ``settled`` holds the (canary, baseline) windows since the settle mark (for latency),
    None until :meth:`Source.look` was asked to mark.
    """

    canary: Window
    baseline: Window
    unreachable: list[str] = field(default_factory=list)
    settled: tuple[Window, Window] | None = None


class Source(Protocol):
    def begin(self) -> None: ...

    def look(self, mark: bool = False) -> Look:
        """Windows since begin(); ``mark``: this look's moment starts the settled windows."""
        ...

    def close(self) -> None: ...


class ScrapeSource:
    """Scrape each instance's /metrics and difference against the window's start."""

    def __init__(
        self,
        canary: Sequence[AppInstance],
        baseline: Sequence[AppInstance],
        exclude_routes: Sequence[str] = (),
        timeout_s: float = 1.0,
    ) -> None:
        self.canary = list(canary)
        self.baseline = list(baseline)
        self.exclude = list(exclude_routes)
        self.timeout_s = timeout_s
        everyone = [*self.canary, *self.baseline]
        self._client = httpx.Client(transport=httpx.HTTPTransport(retries=0), timeout=timeout_s)
        self._pool = ThreadPoolExecutor(
            max_workers=min(16, max(1, len(everyone))), thread_name_prefix="scrape"
        )
        self._start: dict[str, Snapshot] = {}
        self._mark: dict[str, Snapshot] | None = None

    def _scrape_all(self) -> dict[str, Snapshot | None]:
        everyone = [*self.canary, *self.baseline]

        def one(inst: AppInstance) -> Snapshot | None:
            try:
                return scrape(f"{inst.url}/metrics", client=self._client, timeout_s=self.timeout_s)
            except TargetUnreachable:
                return None

        return dict(zip((i.name for i in everyone), self._pool.map(one, everyone), strict=True))

    def begin(self) -> None:
        # An instance unreadable at the start counts from zero (it is restarting, or new).
        self._start = {name: snap or Snapshot() for name, snap in self._scrape_all().items()}
        self._mark = None

    def look(self, mark: bool = False) -> Look:
        now = self._scrape_all()
        unreachable = [name for name, snap in now.items() if snap is None]

        def group(instances: Sequence[AppInstance], since: dict[str, Snapshot]) -> Window:
            windows = []
            for inst in instances:
                snap = now.get(inst.name)
                if snap is not None:
                    windows.append(window_from(snap - since.get(inst.name, Snapshot()), self.exclude))
            return pooled(windows)

        settled = None
        if self._mark is not None:
            settled = (group(self.canary, self._mark), group(self.baseline, self._mark))
        if mark:
            self._mark = {name: snap or Snapshot() for name, snap in now.items()}
        return Look(group(self.canary, self._start), group(self.baseline, self._start), unreachable, settled)

    def close(self) -> None:
        self._pool.shutdown(wait=False)
        self._client.close()


class PrometheusSource:
    """PromQL ``increase()`` over the window, per group of instances (``instance`` label by default).

    The instance label's value is the host variable ``prometheus_instance`` when set,
    else the host:port of the instance's URL (what Prometheus records when it scrapes
    the instance directly).
    """

    def __init__(
        self,
        url: str,
        canary: Sequence[AppInstance],
        baseline: Sequence[AppInstance],
        *,
        label: str = "instance",
        names: dict[str, str] | None = None,
        exclude_routes: Sequence[str] = (),
        timeout_s: float = 5.0,
        client: httpx.Client | None = None,
    ) -> None:
        self.url = url.rstrip("/")
        self.label = label
        names = names or {}
        self.canary = [names.get(i.host) or urlparse(i.url).netloc for i in canary]
        self.baseline = [names.get(i.host) or urlparse(i.url).netloc for i in baseline]
        self.exclude = list(exclude_routes)
        self._client = client or httpx.Client(timeout=timeout_s)
        self._t0 = time.time()
        self._mark: float | None = None

    def begin(self) -> None:
        self._t0 = time.time()
        self._mark = None

    def _selector(self, instances: Sequence[str]) -> str:
        values = "|".join(_escape_regex(v) for v in instances)
        parts = [f'{self.label}=~"{values}"']
        if self.exclude:
            parts.append('route!~"' + "|".join(_escape_regex(p) + ".*" for p in self.exclude) + '"')
        return "{" + ",".join(parts) + "}"

    def query(self, promql: str) -> list[dict[str, Any]]:
        try:
            resp = self._client.get(f"{self.url}/api/v1/query", params={"query": promql})
            resp.raise_for_status()
            body = resp.json()
        except (httpx.HTTPError, ValueError) as exc:
            raise TargetUnreachable(f"Prometheus {self.url}: {exc}") from exc
        if body.get("status") != "success":
            raise TargetUnreachable(f"Prometheus {self.url}: {body.get('error', body)}")
        result: list[dict[str, Any]] = body["data"]["result"]
        return result

    def _window(self, instances: Sequence[str], seconds: int) -> Window:
        if not instances:
            return Window()
        sel = self._selector(instances)
        by_status = self.query(f"sum by (status) (increase({REQUESTS_METRIC}{sel}[{seconds}s]))")
        requests = errors = 0.0
        for row in by_status:
            value = float(row["value"][1])
            requests += value
            if str(row["metric"].get("status", "")).startswith("5"):
                errors += value
        by_le = self.query(f"sum by (le) (increase({DURATION_METRIC}_bucket{sel}[{seconds}s]))")
        buckets: dict[float, float] = {}
        for row in by_le:
            le = row["metric"].get("le", "+Inf")
            bound = math.inf if le in ("+Inf", "Inf", "inf") else float(le)
            buckets[bound] = float(row["value"][1])
        return Window(round(requests), round(errors), tuple(sorted(buckets.items())))

    def look(self, mark: bool = False) -> Look:
        now = time.time()
        seconds = max(1, math.ceil(now - self._t0))
        settled = None
        if self._mark is not None:
            since = max(1, math.ceil(now - self._mark))
            settled = (self._window(self.canary, since), self._window(self.baseline, since))
        if mark:
            self._mark = now
        return Look(self._window(self.canary, seconds), self._window(self.baseline, seconds), [], settled)

    def close(self) -> None:
        self._client.close()


def _escape_regex(text: str) -> str:
    return "".join("\\\\" + c if c in r".^$*+?()[]{}|\\" else c for c in text)
