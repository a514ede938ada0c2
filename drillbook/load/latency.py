"""Request records of a load run: latency histograms per second, per endpoint and per phase.

Why not Locust's own statistics: they cover the whole run (ramp included), their
per-second history holds *sliding-window* percentiles and integer timestamps, and
a rate computed from them is off by up to a second in fifty, which is most of a
3 % tolerance. Here every request is filed by the second *it was issued in*
(relative to the start of the arrival plan) and by the phase that second belongs
to (``ramp``, ``steady``, ``tail``), so the steady phase's rate is an exact count
divided by an exact number of seconds, and its percentiles are taken over that
phase only.

Latencies go into log-spaced buckets (each 2 % wider than the one before), so a
quantile is known to within 1 % at any scale from 10 µs to minutes, histograms
from many processes merge by adding counts, and a minute of records at thousands
of requests per second stays a few hundred kilobytes of JSON.

This module is shared by the Locust side (``drillbook.load.shape``, which records)
and the control side (``runner``/``judge``, which read): it uses the standard
library only, so it can be copied to a load generator host next to the plugin.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any

GROWTH = 1.02
FLOOR_MS = 0.01
_LOG_GROWTH = math.log(GROWTH)

PHASES = ("ramp", "steady", "tail")


def bucket_of(ms: float) -> int:
    """The bucket holding ``ms``: 0 for anything at or below 10 µs, then one per 2 % step."""
    if ms <= FLOOR_MS:
        return 0
    return int(math.log(ms / FLOOR_MS) / _LOG_GROWTH) + 1


def bucket_value(bucket: int) -> float:
    """A bucket's representative latency: the geometric middle of its bounds."""
    if bucket <= 0:
        return FLOOR_MS
    return float(FLOOR_MS * GROWTH ** (bucket - 0.5))


@dataclass
class Histogram:
    """Counts per log bucket, plus the exact count, sum and maximum."""

    counts: dict[int, int] = field(default_factory=dict)
    n: int = 0
    sum_ms: float = 0.0
    max_ms: float = 0.0

    def add(self, ms: float) -> None:
        """File one latency in milliseconds; sum and maximum stay exact, only quantiles are bucketed."""
        self.add_in(bucket_of(ms), ms)

    def add_in(self, bucket: int, ms: float) -> None:
        """Count ``ms`` in a bucket already computed (one log per request, however many histograms)."""
        counts = self.counts
        counts[bucket] = counts.get(bucket, 0) + 1
        self.n += 1
        self.sum_ms += ms
        if ms > self.max_ms:
            self.max_ms = ms

    def merge(self, other: Histogram) -> None:
        """Add another histogram's counts in place (exact: both use the same fixed buckets)."""
        for k, c in other.counts.items():
            self.counts[k] = self.counts.get(k, 0) + c
        self.n += other.n
        self.sum_ms += other.sum_ms
        self.max_ms = max(self.max_ms, other.max_ms)

    @property
    def mean_ms(self) -> float | None:
        """Exact mean in milliseconds (from the sum, not the buckets); None when empty."""
        return self.sum_ms / self.n if self.n else None

    def quantile(self, q: float) -> float | None:
        """The q-quantile (0..1) in ms, None when empty; never above the largest value seen."""
        if self.n <= 0:
            return None
        rank = max(1.0, q * self.n)
        seen = 0
        for k in sorted(self.counts):
            seen += self.counts[k]
            if seen >= rank:
                return min(bucket_value(k), self.max_ms)
        return self.max_ms

    def to_dict(self) -> dict[str, Any]:
        """JSON-safe form (bucket keys as strings); :meth:`from_dict` reverses it."""
        return {
            "counts": {str(k): c for k, c in self.counts.items()},
            "n": self.n,
            "sum_ms": self.sum_ms,
            "max_ms": self.max_ms,
        }

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> Histogram:
        """Rebuild from :meth:`to_dict` output; missing keys read as an empty histogram."""
        return cls(
            counts={int(k): int(c) for k, c in (data.get("counts") or {}).items()},
            n=int(data.get("n", 0)),
            sum_ms=float(data.get("sum_ms", 0.0)),
            max_ms=float(data.get("max_ms", 0.0)),
        )


@dataclass
class Tally:
    """Requests, failures and latencies of one cell (a second, or an endpoint in a phase)."""

    failures: int = 0
    latency: Histogram = field(default_factory=Histogram)

    @property
    def requests(self) -> int:
        """Requests filed here, failed ones included (every request has a latency)."""
        return self.latency.n

    def add(self, ms: float, failed: bool) -> None:
        """File one request: latency in milliseconds, ``failed`` as Locust judged it."""
        self.latency.add(ms)
        if failed:
            self.failures += 1

    def merge(self, other: Tally) -> None:
        """Add another cell's failures and latencies in place."""
        self.failures += other.failures
        self.latency.merge(other.latency)

    def to_dict(self) -> dict[str, Any]:
        """JSON-safe form; :meth:`from_dict` reverses it."""
        return {"failures": self.failures, "latency": self.latency.to_dict()}

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> Tally:
        """Rebuild from :meth:`to_dict` output; missing keys read as zero."""
        return cls(
            failures=int(data.get("failures", 0)), latency=Histogram.from_dict(data.get("latency", {}))
        )


def phase_of(t_s: float, ramp_s: float, duration_s: float) -> str:
    """Which phase a moment (seconds since the plan started) belongs to."""
    if t_s < ramp_s:
        return "ramp"
    if t_s < duration_s:
        return "steady"
    return "tail"


@dataclass
class Recorder:
    """Everything one process (or, merged, the whole run) saw, filed by issue time.

    ``seconds[i]`` holds the requests issued in ``[t0 + i, t0 + i + 1)``;
    ``endpoints[phase][name]`` the requests of one endpoint in one phase;
    ``slots[c]`` how many 10 ms slots of the steady phase saw ``c`` requests issued
    (a measure of how bursty the generator itself is).
    """

    ramp_s: float
    duration_s: float
    t0: float | None = None
    seconds: dict[int, Tally] = field(default_factory=dict)
    endpoints: dict[str, dict[str, Tally]] = field(default_factory=dict)
    slots: dict[int, int] = field(default_factory=dict)
    _slot: int = -1
    _slot_count: int = 0

    def start(self, t0: float) -> None:
        """Set the plan's start (wall-clock epoch seconds); :meth:`record` drops requests until then."""
        self.t0 = t0

    def record(self, start: float, name: str, ms: float, failed: bool) -> None:
        """File one finished request by the wall-clock time it was issued (the hot path: kept lean)."""
        t0 = self.t0
        if t0 is None:
            return
        rel = start - t0
        if rel < 0:
            rel = 0.0
        bucket = 0 if ms <= FLOOR_MS else int(math.log(ms / FLOOR_MS) / _LOG_GROWTH) + 1
        second = int(rel)
        cell = self.seconds.get(second)
        if cell is None:
            cell = self.seconds[second] = Tally()
        cell.latency.add_in(bucket, ms)
        if rel < self.ramp_s:
            phase = "ramp"
        elif rel < self.duration_s:
            phase = "steady"
        else:
            phase = "tail"
        by_name = self.endpoints.get(phase)
        if by_name is None:
            by_name = self.endpoints[phase] = {}
        row = by_name.get(name)
        if row is None:
            row = by_name[name] = Tally()
        row.latency.add_in(bucket, ms)
        if failed:
            cell.failures += 1
            row.failures += 1
        if phase == "steady":
            slot = int(rel * 100)
            if slot == self._slot:
                self._slot_count += 1
            else:
                self._count_slot(slot)

    def _count_slot(self, slot: int) -> None:
        # Requests arrive nearly in issue order; one out of order is counted in the current slot.
        if slot <= self._slot:
            self._slot_count += 1
            return
        if self._slot >= 0:
            self.slots[self._slot_count] = self.slots.get(self._slot_count, 0) + 1
            gap = slot - self._slot - 1
            if gap > 0:
                self.slots[0] = self.slots.get(0, 0) + gap
        self._slot, self._slot_count = slot, 1

    def merge(self, other: Recorder) -> None:
        """Add another process's records in place (workers into the master's view).

        ``ramp_s``, ``duration_s`` and ``t0`` are kept from ``self``: all processes share one plan.
        """
        for second, cell in other.seconds.items():
            self.seconds.setdefault(second, Tally()).merge(cell)
        for phase, rows in other.endpoints.items():
            mine = self.endpoints.setdefault(phase, {})
            for name, row in rows.items():
                mine.setdefault(name, Tally()).merge(row)
        for c, n in other.slots.items():
            self.slots[c] = self.slots.get(c, 0) + n

    def take(self) -> Recorder:
        """Hand over what was recorded since the last take and start afresh (worker reports)."""
        out = Recorder(self.ramp_s, self.duration_s, self.t0, self.seconds, self.endpoints, self.slots)
        self.seconds, self.endpoints, self.slots = {}, {}, {}
        return out

    def to_dict(self) -> dict[str, Any]:
        """JSON-safe form written to ``drillbook_load.json``; :meth:`from_dict` reverses it."""
        return {
            "ramp_s": self.ramp_s,
            "duration_s": self.duration_s,
            "t0": self.t0,
            "seconds": {str(s): c.to_dict() for s, c in self.seconds.items()},
            "endpoints": {p: {n: t.to_dict() for n, t in rows.items()} for p, rows in self.endpoints.items()},
            "slots": {str(c): n for c, n in self.slots.items()},
        }

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> Recorder:
        """Rebuild from :meth:`to_dict` output (missing cells read as empty); the slot cursor restarts."""
        return cls(
            ramp_s=float(data.get("ramp_s", 0.0)),
            duration_s=float(data.get("duration_s", 0.0)),
            t0=data.get("t0"),
            seconds={int(s): Tally.from_dict(c) for s, c in (data.get("seconds") or {}).items()},
            endpoints={
                p: {n: Tally.from_dict(t) for n, t in rows.items()}
                for p, rows in (data.get("endpoints") or {}).items()
            },
            slots={int(c): int(n) for c, n in (data.get("slots") or {}).items()},
        )

    # -- questions ---------------------------------------------------------------
    def steady_seconds(self, stopped_at_s: float | None = None) -> list[int]:
        """Whole seconds entirely inside the steady phase (and before a stop, if it stopped early)."""
        end = self.duration_s if stopped_at_s is None else min(self.duration_s, stopped_at_s)
        return list(range(math.ceil(self.ramp_s), math.floor(end)))

    def window(self, seconds: list[int]) -> Tally:
        """All requests issued in the given seconds, merged."""
        out = Tally()
        for s in seconds:
            cell = self.seconds.get(s)
            if cell is not None:
                out.merge(cell)
        return out
