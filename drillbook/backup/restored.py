"""What the restore drill asks of the restored database itself, beyond the manifest's fingerprints.

Both read the *restored* data over read-only sessions: the inventory's own
assertions (``backup_verify_queries``), and the newest sentinel row, whose age at
the drill's start is the RPO a recovery from this backup would have had. The
sentinel is the service's (or drillbook's) heartbeat, so the RPO needs nothing
from the application beyond it.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime
from typing import Any

from drillbook.backup.settings import BackupSettings
from drillbook.core import pgdata
from drillbook.core.checks import Outcome


def run_queries(dsn: str, s: BackupSettings) -> list[Outcome]:
    """``backup_verify_queries`` in the restored database, read-only; an error is a failed outcome."""
    if not s.verify_queries:
        return []
    outcomes: list[Outcome] = []
    with pgdata.connect(dsn, read_only=True) as conn:
        for q in s.verify_queries:
            name = f"query: {q.name}"
            try:
                value: Any = pgdata.scalar(conn, q.sql)
            except Exception as exc:
                error = f"error: {str(exc).splitlines()[0]}"
                outcomes.append(Outcome(name=name, ok=False, value=error, expected=q.expect, detail=q.sql))
                continue
            ok = value == q.expect or str(value) == str(q.expect)
            outcomes.append(Outcome(name=name, ok=ok, value=value, expected=q.expect, detail=q.sql))
    return outcomes


def measure_rpo(
    dsn: str, s: BackupSettings, drill_start: datetime, say: Callable[[str], None]
) -> float | None:
    """Drill start minus the newest sentinel row *in the restored data*; None (with a note) when unknown."""
    if not s.rpo_query:
        return None
    try:
        with pgdata.connect(dsn, read_only=True) as conn:
            newest = pgdata.scalar(conn, s.rpo_query)
    except Exception as exc:
        say(f"RPO not measured: {s.rpo_query!r} failed: {str(exc).splitlines()[0]}")
        return None
    if not isinstance(newest, datetime):
        say(f"RPO not measured: {s.rpo_query!r} returned {newest!r}, not a timestamp")
        return None
    say(f"RPO witness: {s.rpo_query} in the restored db = {newest.isoformat()}")
    return round((drill_start - newest).total_seconds(), 3)
