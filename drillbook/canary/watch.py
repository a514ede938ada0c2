"""HAProxy's per-server counters sampled on a clock: the load balancer's witness of a canary.

The judge reads the instances' own metrics; this watch reads what the load
balancer saw, independently: when the canary served its first request (the
start of ``detection_s``), how many 5xx the canary servers sent to users
(``failed_requests``), and whether HAProxy's health checks hold the canary UP.
One ``show stat`` over the admin socket costs well under a millisecond, so a
100 ms clock is cheap.
"""

from __future__ import annotations

import csv
import io
import threading
import time
from collections.abc import Sequence
from dataclasses import dataclass, field

from drillbook.core.errors import DrillbookError
from drillbook.core.haproxy import HAProxy, ServerStat


def backend_totals(haproxy: HAProxy, backend: str) -> tuple[int, int]:
    """(requests, 5xx) of the backend row: every request the load balancer passed to the service."""
    text = haproxy.command("show stat").lstrip("# ")
    for row in csv.DictReader(io.StringIO(text)):
        if row.get("pxname") == backend and row.get("svname") == "BACKEND":
            return _int(row.get("req_tot")), _int(row.get("hrsp_5xx"))
    return 0, 0


def _int(value: str | None) -> int:
    try:
        return int(value or 0)
    except ValueError:
        return 0


@dataclass(frozen=True)
class Tick:
    t: float  # monotonic
    servers: dict[str, ServerStat]


@dataclass
class ServerWatch:
    haproxy: HAProxy
    backend: str
    canary: Sequence[str]
    interval_s: float = 0.1
    ticks: list[Tick] = field(default_factory=list)
    errors: int = 0
    _stop: threading.Event = field(default_factory=threading.Event)
    _thread: threading.Thread | None = None
    _lock: threading.Lock = field(default_factory=threading.Lock)

    def start(self) -> ServerWatch:
        self.sample()
        self._thread = threading.Thread(target=self._loop, name="haproxy-watch", daemon=True)
        self._thread.start()
        return self

    def stop(self) -> None:
        self._stop.set()
        if self._thread:
            self._thread.join(timeout=5)

    def sample(self) -> Tick | None:
        try:
            stats = self.haproxy.stats(self.backend)
        except DrillbookError:
            self.errors += 1
            return None
        tick = Tick(time.monotonic(), {s.server: s for s in stats})
        with self._lock:
            self.ticks.append(tick)
        return tick

    def _loop(self) -> None:
        while not self._stop.wait(self.interval_s):
            self.sample()

    def latest(self) -> Tick | None:
        with self._lock:
            return self.ticks[-1] if self.ticks else None

    def canary_total(self, tick: Tick) -> int:
        return sum(tick.servers[s].http_total for s in self.canary if s in tick.servers)

    def first_canary_request(self, after: float) -> float | None:
        """Earliest moment the canary can have served its first request after ``after`` (monotonic).

        That is the tick *before* the first tick whose canary response count grew, so
        ``detection_s`` measured from it errs long, never short.
        """
        with self._lock:
            ticks = list(self.ticks)
        before = [t for t in ticks if t.t <= after]
        if not before:
            return None
        prev = before[-1]
        base = self.canary_total(prev)
        for tick in ticks[len(before) :]:
            if self.canary_total(tick) > base:
                return max(after, prev.t)
            prev = tick
        return None

    def canary_down(self) -> list[str]:
        """Canary servers HAProxy does not hold UP right now (DOWN, MAINT...); DRAIN counts as up."""
        tick = self.latest()
        if tick is None:
            return list(self.canary)
        out = []
        for name in self.canary:
            stat = tick.servers.get(name)
            if stat is None or not (stat.up or stat.status.startswith("DRAIN")):
                out.append(f"{name} {stat.status if stat else 'missing'}")
        return out
