"""How long a migration step held locks that stop the service's writers, seen from the side.

PostgreSQL keeps no history of how long a lock was held, so a side connection
samples ``pg_locks`` every ``interval_s`` while a step runs and follows each
granted lock that blocks writes (Share and stronger) on a relation others can
see, held by any backend of the migrated database other than itself; locks on
relations the step created and has not committed yet block nobody and are left
out. A lock seen in samples
``t_first .. t_last`` was held at least ``t_last - t_first`` and at most that
plus two intervals; the reported figure is the lower bound and the interval is
the resolution. A lock held for less than one interval may be missed: the
report says when nothing was seen. The same samples count the backends left
waiting for a lock, which is what the service's requests feel.
"""

from __future__ import annotations

import time
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any

from drillbook.core.sampling import Every, Sampler, Take

STRONG_MODES = ("ShareLock", "ShareRowExclusiveLock", "ExclusiveLock", "AccessExclusiveLock")

_SAMPLE = """
SELECT l.pid, l.mode, c.relname, l.granted
FROM pg_locks l
JOIN pg_stat_activity a ON a.pid = l.pid
LEFT JOIN pg_class c ON c.oid = l.relation
WHERE a.datname = current_database() AND l.pid <> pg_backend_pid() AND l.locktype = 'relation'
  AND (NOT l.granted OR (l.mode = ANY(%s) AND c.oid IS NOT NULL))
"""


@dataclass(frozen=True)
class HeldLock:
    relation: str
    mode: str
    held_s: float
    samples: int = 1

    def describe(self) -> str:
        return f"{self.mode} on {self.relation} for >= {self.held_s:.3f}s (seen in {self.samples} samples)"


@dataclass
class LockReport:
    """What the sampler saw during one step."""

    interval_s: float
    samples: int = 0
    longest: HeldLock | None = None
    max_waiting: int = 0
    locks: list[HeldLock] = field(default_factory=list)
    error: str | None = None

    @property
    def longest_s(self) -> float | None:
        """Seconds the longest write-blocking lock was held (0.0 when none seen); None when not measured."""
        if self.error or self.samples == 0:
            return None
        return self.longest.held_s if self.longest else 0.0

    def summary(self) -> str:
        if self.longest_s is None:
            return f"not measured ({self.error or 'no samples'})"
        if self.longest is None:
            return (
                f"no write-blocking lock seen ({self.samples} samples every {self.interval_s * 1000:.0f} ms)"
            )
        return (
            f"{self.longest.describe()} ({self.samples} samples every {self.interval_s * 1000:.0f} ms, "
            f"up to {self.max_waiting} backend(s) waiting)"
        )

    def to_dict(self) -> dict[str, Any]:
        return {
            "interval_s": self.interval_s,
            "samples": self.samples,
            "longest_s": self.longest_s,
            "longest": self.longest.describe() if self.longest else None,
            "max_waiting": self.max_waiting,
            "error": self.error,
        }


@dataclass(frozen=True)
class LockSample:
    """One look at ``pg_locks``: the write-blocking locks granted, and the backends left waiting."""

    t: float
    wall: float
    granted: tuple[tuple[int, str, str], ...]  # (pid, relation, mode)
    waiting: frozenset[int]


def analyse(samples: Iterable[LockSample], interval_s: float, error: str | None = None) -> LockReport:
    """What the samples say: each lock's span from first to last sample seen, the longest first."""
    report = LockReport(interval_s=interval_s, error=error)
    seen: dict[tuple[int, str, str], list[float]] = {}  # key -> [first, last, samples]
    for sample in samples:
        report.samples += 1
        report.max_waiting = max(report.max_waiting, len(sample.waiting))
        for key in sample.granted:
            span = seen.setdefault(key, [sample.t, sample.t, 0])
            span[1] = sample.t
            span[2] += 1
    held = [
        HeldLock(relation=rel, mode=mode, held_s=round(last - first, 4), samples=int(n))
        for (_pid, rel, mode), (first, last, n) in seen.items()
    ]
    held.sort(key=lambda h: h.held_s, reverse=True)
    report.locks = held[:20]
    report.longest = held[0] if held else None
    return report


class LockSampler:
    """``pg_locks`` of one database sampled on core's :class:`Sampler` until stopped; a context manager.

    The side connection lives in the sampling thread (``session``), with short lock and
    statement timeouts so that a sample never waits behind the migration itself: a
    sample that cannot read the catalog is an error the loop records and goes past.
    A side connection that cannot open is the sampler's ``failure``, and the report
    says "not measured" rather than "no lock".
    """

    def __init__(self, dsn: str, interval_s: float = 0.02) -> None:
        self.dsn = dsn
        self.interval_s = interval_s
        self.sampler: Sampler[LockSample] = Sampler(
            "lock-sampler", session=self._session, clock=Every(interval_s), final_take=True
        )

    def __enter__(self) -> LockSampler:
        self.sampler.start(wait_s=5)
        return self

    def __exit__(self, *exc: object) -> None:
        self.sampler.stop()

    def stop(self) -> LockReport:
        """Stop sampling (one last look first) and report what was seen."""
        samples = self.sampler.stop()
        failure = self.sampler.failure
        error = None
        if failure is not None:
            error = f"side connection failed: {type(failure).__name__}: {str(failure).strip()[:120]}"
        return analyse(samples, self.interval_s, error)

    @contextmanager
    def _session(self) -> Iterator[Take[LockSample]]:
        import psycopg

        with psycopg.connect(
            self.dsn, autocommit=True, connect_timeout=5, application_name="drillbook-locks"
        ) as conn:
            conn.execute("SET lock_timeout = '50ms'")
            conn.execute("SET statement_timeout = '2s'")
            yield lambda: _sample(conn)


def _sample(conn: Any) -> LockSample:
    wall, t = time.time(), time.monotonic()
    rows = conn.execute(_SAMPLE, (list(STRONG_MODES),)).fetchall()
    granted = tuple((int(pid), str(rel), str(mode)) for pid, mode, rel, ok in rows if ok)
    waiting = frozenset(int(pid) for pid, _mode, _rel, ok in rows if not ok)
    return LockSample(t=t, wall=wall, granted=granted, waiting=waiting)
