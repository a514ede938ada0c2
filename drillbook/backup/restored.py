"""What the restore drill asks of the restored database itself, beyond the manifest's fingerprints.

Both read the *restored* data over read-only sessions: the inventory's own
assertions (``backup_verify_queries``), and the newest heartbeat, whose age at
the drill's start is the RPO a recovery from this backup would have had. The
heartbeat is drillbook's own (``drillbook.heartbeat``, see core/heartbeat.py), so
the RPO needs nothing from the service; ``backup_rpo_query`` may name the
service's own table instead.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from drillbook.backup.settings import BackupSettings
from drillbook.core import heartbeat, pgdata
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


@dataclass(frozen=True)
class RpoReading:
    """The RPO read in the restored data: seconds, who says so, or why it could not be read."""

    rpo_s: float | None
    witness: str
    why_not: str = ""


def measure_rpo(dsn: str, s: BackupSettings, drill_start: datetime, say: Callable[[str], None]) -> RpoReading:
    """Drill start minus the newest heartbeat *in the restored data*.

    By default the heartbeat is drillbook's own (``drillbook.heartbeat``, written every
    second by roles/heartbeat on the source), so the RPO needs no table of the service;
    ``backup_rpo_query`` replaces it with a query on the service's own table. Either
    way an unreadable witness is ``rpo_s=None`` with one line saying why (the drill
    turns that into ``error`` when an RPO target is set: never a pass).
    """
    if s.rpo_query:
        return _rpo_from_query(dsn, s.rpo_query, drill_start, say)
    witness = f"newest beat in {heartbeat.TABLE} in the restored db vs drill start"
    try:
        with pgdata.connect(dsn, read_only=True) as conn:
            beat = heartbeat.newest(conn)
    except Exception as exc:
        return _not_measured(f"reading {heartbeat.TABLE} failed: {str(exc).splitlines()[0]}", witness, say)
    if beat is None:
        return _not_measured(
            f"no {heartbeat.TABLE} rows in the restored database: the heartbeat writer was not running on "
            "the source when this backup was taken (roles/heartbeat, heartbeat_dsn; inv lab.up starts it), "
            "or set backup_rpo_query to read the service's own table",
            witness,
            say,
        )
    say(
        f"RPO witness: newest beat in {heartbeat.TABLE} of the restored db = {beat.ts.isoformat()} "
        f"(writer {beat.writer_id}, seq {beat.seq})"
    )
    return RpoReading(round((drill_start - beat.ts).total_seconds(), 3), witness)


def _rpo_from_query(dsn: str, query: str, drill_start: datetime, say: Callable[[str], None]) -> RpoReading:
    witness = f"backup_rpo_query ({query}) in the restored db vs drill start"
    try:
        with pgdata.connect(dsn, read_only=True) as conn:
            newest = pgdata.scalar(conn, query)
    except Exception as exc:
        return _not_measured(f"{query!r} failed: {str(exc).splitlines()[0]}", witness, say)
    if not isinstance(newest, datetime):
        return _not_measured(f"{query!r} returned {newest!r}, not a timestamp", witness, say)
    say(f"RPO witness: {query} in the restored db = {newest.isoformat()}")
    return RpoReading(round((drill_start - newest).total_seconds(), 3), witness)


def _not_measured(why: str, witness: str, say: Callable[[str], None]) -> RpoReading:
    say(f"RPO not measured: {why}")
    return RpoReading(None, witness, why)
