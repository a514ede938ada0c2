"""Where the judge's counts come from: the instances' own metrics, a Prometheus server, or HAProxy.

Each answers the same question for an analysis window that started at
:meth:`begin`: what did the canary instances serve, and what did the baseline
instances serve (requests, 5xx, latency histogram), as two
:class:`~drillbook.canary.judge.Window`. Which one the canary uses follows from the
service profile (:func:`source_kind`):

* :class:`ScrapeSource` (the service has metrics, no Prometheus named) scrapes every
  instance's ``service_metrics.path`` at the window's start and at each look, in
  parallel, and works on the difference, reading the profile's metric and label
  names; a restarted instance's counters count from zero (see ``Snapshot.__sub__``).
  Resolution is the look interval, so a bad release is seen within seconds.
* :class:`PrometheusSource` (``service_metrics.prometheus_url``) asks the profile's
  PromQL templates (:mod:`drillbook.core.promql`) per group over the window;
  resolution is Prometheus' own scrape interval, which is why real fleets use
  longer analysis windows. A query that stays empty for the canary is an error
  (drillbook cannot see it), never a pass.
* :class:`LoadBalancerSource` (``service_metrics: null``: the service exposes
  nothing) counts responses and 5xx per server from HAProxy's ``show stat``
  (``hrsp_*``); latency then comes from drillbook's own traffic only (HAProxy's
  ``X-Server-Time`` per answer), there is no histogram to fall back on.
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Literal, Protocol
from urllib.parse import urlparse

import httpx

from drillbook.canary.judge import Window, pooled, window_from
from drillbook.core.errors import ConfigError, TargetUnreachable
from drillbook.core.haproxy import HAProxy, ServerStat
from drillbook.core.inventory import AppInstance
from drillbook.core.metrics import Snapshot, scrape
from drillbook.core.profile import Metrics
from drillbook.core.promql import QUERY_NAMES, Prometheus, buckets, render, resolve_url, total

SourceKind = Literal["scrape", "prometheus", "haproxy"]


def source_kind(metrics: Metrics | None, alias_url: str = "") -> tuple[SourceKind, str | None]:
    """Which source the profile calls for, and the Prometheus URL (one line when they contradict)."""
    url = resolve_url(metrics.prometheus_url if metrics else None, alias_url)
    if metrics is None:
        if url:
            raise ConfigError(
                "a Prometheus URL is set but service_metrics is null: Prometheus needs the service's "
                "metric names (set service_metrics, or drop the URL to judge from HAProxy's counters)"
            )
        return "haproxy", None
    return ("prometheus", url) if url else ("scrape", None)


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
    """Scrape each instance's metrics page and difference against the window's start."""

    def __init__(
        self,
        canary: Sequence[AppInstance],
        baseline: Sequence[AppInstance],
        exclude_routes: Sequence[str] = (),
        timeout_s: float = 1.0,
        metrics: Metrics | None = None,
    ) -> None:
        self.metrics = metrics or Metrics()
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
                return scrape(
                    inst.url.rstrip("/") + self.metrics.path, client=self._client, timeout_s=self.timeout_s
                )
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
                    windows.append(
                        window_from(snap - since.get(inst.name, Snapshot()), self.exclude, self.metrics)
                    )
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
    """The profile's PromQL templates per group of instances (``instance`` label by default).

    The instance label's value is the host variable ``prometheus_instance`` when set,
    else the host:port of the instance's URL (what Prometheus records when it scrapes
    the instance directly). ``grace_s``: how long the canary's requests query may
    answer nothing (no scrape of it yet) before that is an error.
    """

    def __init__(
        self,
        url: str,
        canary: Sequence[AppInstance],
        baseline: Sequence[AppInstance],
        *,
        metrics: Metrics | None = None,
        names: dict[str, str] | None = None,
        exclude_routes: Sequence[str] = (),
        grace_s: float = 10.0,
        timeout_s: float = 5.0,
        client: httpx.Client | None = None,
    ) -> None:
        self.metrics = metrics or Metrics()
        self.prometheus = Prometheus(url, timeout_s=timeout_s, client=client)
        self.url = self.prometheus.url
        names = names or {}
        self.canary = [names.get(i.host) or urlparse(i.url).netloc for i in canary]
        self.baseline = [names.get(i.host) or urlparse(i.url).netloc for i in baseline]
        self.exclude = list(exclude_routes)
        self.grace_s = grace_s
        self._t0 = time.time()
        self._mark: float | None = None
        self._seen_canary = False
        self._pool = ThreadPoolExecutor(max_workers=9, thread_name_prefix="promql")

    def begin(self) -> None:
        self._t0 = time.time()
        self._mark = None

    def query(self, name: str, instances: Sequence[str], seconds: int, *, everything: bool = False) -> str:
        """Template ``name`` filled for ``instances`` over ``seconds`` (``everything``: no route excluded)."""
        return render(self.metrics, name, instances, seconds, () if everything else self.exclude)

    def window(self, instances: Sequence[str], seconds: int) -> Window:
        """The group's window over the last ``seconds`` (its three queries asked at once)."""
        if not instances:
            return Window()
        asked = list(
            self._pool.map(lambda n: self.prometheus.query(self.query(n, instances, seconds)), QUERY_NAMES)
        )
        return Window(round(total(asked[0])), round(total(asked[1])), buckets(asked[2]))

    def seen(self, instances: Sequence[str], seconds: int) -> bool:
        """Prometheus holds the group's series (probes and scrapes count: an idle fleet is seen)."""
        return bool(self.prometheus.query(self.query("requests", instances, seconds, everything=True)))

    def look(self, mark: bool = False) -> Look:
        now = time.time()
        seconds = max(1, round(now - self._t0))
        canary = self.window(self.canary, seconds)
        if not self._seen_canary and (canary.requests or self.seen(self.canary, seconds)):
            self._seen_canary = True
        if not self._seen_canary and now - self._t0 >= self.grace_s:
            raise TargetUnreachable(
                f"Prometheus {self.url}: service_metrics.queries.requests answers nothing for the canary "
                f"({', '.join(self.canary)}) after {self.grace_s:g}s, probes included: "
                f"{self.query('requests', self.canary, seconds, everything=True)} "
                "(is Prometheus scraping it?)"
            )
        groups: list[tuple[Sequence[str], int]] = [(self.baseline, seconds)]
        if self._mark is not None:
            since = max(1, round(now - self._mark))
            groups += [(self.canary, since), (self.baseline, since)]
        with ThreadPoolExecutor(max_workers=len(groups), thread_name_prefix="promql") as pool:
            windows = list(pool.map(lambda g: self.window(*g), groups))
        baseline = windows[0]
        settled = (windows[1], windows[2]) if len(windows) == 3 else None
        if mark:
            self._mark = now
        return Look(canary, baseline, [], settled)

    def check(self, window_s: int = 60) -> None:
        """Preflight: Prometheus answers, and holds every group's series now (probes included).

        Before anything is deployed, so a wrong URL, template, metric or label is an error
        (exit 2) with the fleet untouched.
        """
        self.prometheus.ready()
        for group, instances in (("canary", self.canary), ("baseline", self.baseline)):
            if instances and not self.seen(instances, window_s):
                raise TargetUnreachable(
                    f"Prometheus {self.url}: service_metrics.queries.requests answers nothing for the "
                    f"{group} ({', '.join(instances)}) over the last {window_s}s, probes included: "
                    f"{self.query('requests', instances, window_s, everything=True)} "
                    "(is Prometheus scraping it, with these names and labels?)"
                )

    def close(self) -> None:
        self._pool.shutdown(wait=False)
        self.prometheus.close()


class LoadBalancerSource:
    """HAProxy's per-server response counters (``hrsp_1xx..5xx``), differenced: for a service without metrics.

    HAProxy counts what it forwarded to each server, health checks excluded; probes
    sent through the load balancer count (canary_exclude_routes cannot apply). No
    histogram: latency is judged on drillbook's own traffic (the analysis' answers).
    """

    def __init__(
        self, haproxy: HAProxy, backend: str, canary: Sequence[AppInstance], baseline: Sequence[AppInstance]
    ) -> None:
        self.haproxy = haproxy
        self.backend = backend
        self.canary = [i.name for i in canary]
        self.baseline = [i.name for i in baseline]
        self._start: dict[str, ServerStat] = {}
        self._mark: dict[str, ServerStat] | None = None

    def _stats(self) -> dict[str, ServerStat]:
        return {st.server: st for st in self.haproxy.stats(self.backend)}

    def begin(self) -> None:
        self._start = self._stats()
        self._mark = None

    def _group(self, now: dict[str, ServerStat], since: dict[str, ServerStat], names: list[str]) -> Window:
        windows = []
        for name in names:
            after, before = now.get(name), since.get(name)
            if after is None:
                continue
            requests = after.http_total - (before.http_total if before else 0)
            errors = after.http_5xx - (before.http_5xx if before else 0)
            if requests < 0:  # counters cleared (HAProxy reloaded): count from zero
                requests, errors = after.http_total, after.http_5xx
            windows.append(Window(requests, errors))
        return pooled(windows)

    def look(self, mark: bool = False) -> Look:
        now = self._stats()  # a server missing from HAProxy is the watch's readiness finding
        settled = None
        if self._mark is not None:
            settled = (self._group(now, self._mark, self.canary), self._group(now, self._mark, self.baseline))
        if mark:
            self._mark = now
        canary, baseline = (
            self._group(now, self._start, self.canary),
            self._group(now, self._start, self.baseline),
        )
        return Look(canary, baseline, [], settled)

    def close(self) -> None:
        """Nothing to release: every look opens its own admin-socket connection."""
