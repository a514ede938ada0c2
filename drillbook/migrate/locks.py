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

import threading
import time
from dataclasses import dataclass, field
from typing import Any

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


class LockSampler:
    """A thread sampling ``pg_locks`` in one database until stopped; use as a context manager."""

    def __init__(self, dsn: str, interval_s: float = 0.02) -> None:
        self.dsn = dsn
        self.interval_s = interval_s
        self.report = LockReport(interval_s=interval_s)
        self._seen: dict[tuple[int, str, str], list[float]] = {}  # key -> [first, last, samples]
        self._stop = threading.Event()
        self._ready = threading.Event()
        self._thread: threading.Thread | None = None

    def __enter__(self) -> LockSampler:
        self._thread = threading.Thread(target=self._loop, name="lock-sampler", daemon=True)
        self._thread.start()
        self._ready.wait(timeout=5)
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def stop(self) -> LockReport:
        self._stop.set()
        if self._thread:
            self._thread.join(timeout=5)
        held = [
            HeldLock(relation=rel, mode=mode, held_s=round(last - first, 4), samples=int(n))
            for (_pid, rel, mode), (first, last, n) in self._seen.items()
        ]
        held.sort(key=lambda h: h.held_s, reverse=True)
        self.report.locks = held[:20]
        self.report.longest = held[0] if held else None
        return self.report

    def _loop(self) -> None:
        import psycopg

        try:
            conn = psycopg.connect(
                self.dsn, autocommit=True, connect_timeout=5, application_name="drillbook-locks"
            )
        except Exception as exc:
            self.report.error = f"side connection failed: {type(exc).__name__}: {str(exc).strip()[:120]}"
            self._ready.set()
            return
        with conn:
            # Never wait behind the migration itself: a sample that cannot read the catalog is skipped.
            conn.execute("SET lock_timeout = '50ms'")
            conn.execute("SET statement_timeout = '2s'")
            self._ready.set()
            start = time.monotonic()
            k = 0
            while not self._stop.is_set():
                self._sample(conn)
                k += 1
                due = start + k * self.interval_s
                if due < time.monotonic():
                    k = int((time.monotonic() - start) / self.interval_s) + 1
                    due = start + k * self.interval_s
                self._stop.wait(max(0.0, due - time.monotonic()))
            self._sample(conn)

    def _sample(self, conn: Any) -> None:
        import psycopg

        try:
            rows = conn.execute(_SAMPLE, (list(STRONG_MODES),)).fetchall()
        except psycopg.Error:
            return
        now = time.monotonic()
        self.report.samples += 1
        waiting: set[int] = set()
        for pid, mode, relation, granted in rows:
            if not granted:
                waiting.add(int(pid))
                continue
            key = (int(pid), str(relation), str(mode))
            span = self._seen.setdefault(key, [now, now, 0])
            span[1] = now
            span[2] += 1
        self.report.max_waiting = max(self.report.max_waiting, len(waiting))
