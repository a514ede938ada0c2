"""drillbook's own heartbeat in the service's database: a data witness that needs nothing from the service.

Restore RPO ("how much would a recovery from this backup lose?") and "nothing lost"
("is every write the database acknowledged still there after the failover?") need
rows that are written at a known rhythm and whose commit was seen. A service may
have such a table (the lab's reference service does); most do not, and drillbook
must not ask them to. So drillbook writes its own, in the manner of pt-heartbeat:
a small writer that lives beside the service, in a schema of its own (``drillbook``),
and readers that look for its rows wherever the data went (a restored backup, a
promoted replica).

Two tables, one transaction per beat::

    drillbook.heartbeat       one row per writer: writer_id, seq, ts, host, pid, started_at
    drillbook.heartbeat_log   one row per beat:   writer_id, seq, ts   (pruned after retention_s)

* ``heartbeat`` is pt-heartbeat's table: one row per writer, updated every second.
  The newest ``ts`` in a copy of the database is what that copy knows of the
  source's last moment, so ``drill start - max(ts)`` is the RPO, read with one
  index-free query on a table of a handful of rows.
* ``heartbeat_log`` is the append log that "nothing lost" needs. An updated row
  only says "the newest write is here"; whether *each* acknowledged write survived
  (a failover to a replica that lost the tail, a restore that stopped early, two
  primaries that each took some writes) is a question about a set of writes. The
  writer keeps the sequence numbers whose commit returned (:attr:`HeartbeatWriter.
  acknowledged`), and :func:`lost` asks the surviving database which of them are
  missing. Gaps in the log also show, after the fact, when the writer could not
  write (a database outage). The log is pruned to ``retention_s`` (one hour by
  default: about 3,600 small rows per writer), so it costs the backups nothing.

``ts`` is the database server's ``clock_timestamp()``: one clock for every writer,
whatever host it runs on (pt-heartbeat uses the writer's, and asks for NTP); the
drill compares it with its own clock, so the control machine and the database
server should agree (NTP) to better than the precision an RPO target needs.

Each beat increments ``seq`` before it is sent, so a beat whose commit was never
seen leaves a gap but is never counted as acknowledged; a restarted writer
continues from the ``seq`` it finds in its row. A session-level advisory lock per
writer id refuses a second writer with the same id (their sequence numbers would
collide) with one line.

Rights: the writer's DSN (the inventory's ``heartbeat_dsn``; the lab uses its
superuser) needs CREATE on the database once, to create the schema, or a DBA
creates ``drillbook.heartbeat`` and ``drillbook.heartbeat_log`` beforehand (then
INSERT, UPDATE, DELETE and SELECT on them are enough). The writer grants SELECT on
both tables to PUBLIC: a backup or read-only user dumps them without extra grants,
and they hold nothing but timestamps and host names.

The long-running writer is ``python -m drillbook.core.heartbeat_daemon``, run as a
daemon by ``roles/heartbeat``. It imports only this module, the sampler, pgdata,
errors and psycopg, so the role ships just those files to the host.
"""

from __future__ import annotations

import os
import socket
import time
from collections.abc import Callable, Collection, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import psycopg
from psycopg import errors as pg_errors

from drillbook.core import pgdata
from drillbook.core.errors import ConfigError, DrillbookError, TargetUnreachable
from drillbook.core.sampling import Every, Sampler, Take

SCHEMA = "drillbook"
TABLE = f"{SCHEMA}.heartbeat"
LOG_TABLE = f"{SCHEMA}.heartbeat_log"
#: Tables a data comparison of the service must leave out: they change every second.
TABLES = (TABLE, LOG_TABLE)
#: Environment variable the daemon reads its DSN from (never argv: ``ps`` shows argv to everyone).
DSN_ENV = "DRILLBOOK_HEARTBEAT_DSN"

_DDL = f"""
CREATE SCHEMA IF NOT EXISTS {SCHEMA};
COMMENT ON SCHEMA {SCHEMA} IS 'drillbook''s own witnesses (heartbeat); written by drillbook, not the service';
CREATE TABLE IF NOT EXISTS {TABLE} (
    writer_id  text PRIMARY KEY,
    seq        bigint NOT NULL,
    ts         timestamptz NOT NULL,
    started_at timestamptz NOT NULL,
    host       text NOT NULL,
    pid        integer NOT NULL
);
CREATE TABLE IF NOT EXISTS {LOG_TABLE} (
    writer_id text NOT NULL,
    seq       bigint NOT NULL,
    ts        timestamptz NOT NULL,
    PRIMARY KEY (writer_id, seq)
);
GRANT USAGE ON SCHEMA {SCHEMA} TO PUBLIC;
GRANT SELECT ON {TABLE}, {LOG_TABLE} TO PUBLIC;
"""
_BEAT = f"""
INSERT INTO {TABLE} AS h (writer_id, seq, ts, started_at, host, pid)
VALUES (%(w)s, %(seq)s, clock_timestamp(), %(started)s, %(host)s, %(pid)s)
ON CONFLICT (writer_id) DO UPDATE
   SET seq = EXCLUDED.seq, ts = EXCLUDED.ts, started_at = EXCLUDED.started_at,
       host = EXCLUDED.host, pid = EXCLUDED.pid
RETURNING ts
"""
_LOG = f"""
INSERT INTO {LOG_TABLE} (writer_id, seq, ts) VALUES (%(w)s, %(seq)s, %(ts)s)
ON CONFLICT (writer_id, seq) DO UPDATE SET ts = EXCLUDED.ts
"""
_PRUNE = (
    f"DELETE FROM {LOG_TABLE} WHERE writer_id = %s AND ts < clock_timestamp() - make_interval(secs => %s)"
)
_LOCK_KEY = "SELECT hashtextextended('drillbook.heartbeat:' || %s, 0)"


class HeartbeatError(DrillbookError):
    """The heartbeat cannot be written: no rights, or another writer holds this writer id."""


@dataclass(frozen=True)
class Beat:
    """One acknowledged heartbeat: the commit returned. ``t``/``wall`` are the writer's clocks."""

    t: float
    wall: float
    writer_id: str
    seq: int
    ts: datetime  # the database server's clock_timestamp() of the write


@dataclass(frozen=True)
class Newest:
    """The newest heartbeat a database holds."""

    writer_id: str
    seq: int
    ts: datetime
    writers: int

    def age_s(self, now: datetime | None = None) -> float:
        """Seconds from the beat's server timestamp to ``now`` (default: local clock, so skew counts)."""
        return ((now or datetime.now(UTC)) - self.ts).total_seconds()


# -- schema ----------------------------------------------------------------------------
def tables_exist(conn: psycopg.Connection[Any]) -> bool:
    """Both heartbeat tables are in this database (a restored copy, a replica)."""
    row = conn.execute("SELECT to_regclass(%s), to_regclass(%s)", TABLES).fetchone()
    return bool(row and row[0] is not None and row[1] is not None)


def ensure_schema(conn: psycopg.Connection[Any]) -> bool:
    """Create the schema and tables unless both exist; True when this call created something.

    Serialised by a transaction-level advisory lock, so writers starting together
    do not race on ``CREATE SCHEMA IF NOT EXISTS`` (which is not race-free).
    """
    if tables_exist(conn):
        return False
    try:
        with conn.transaction():
            conn.execute("SELECT pg_advisory_xact_lock(hashtextextended('drillbook.heartbeat.ddl', 0))")
            conn.execute(_DDL)
    except pg_errors.InsufficientPrivilege as exc:
        db = conn.info.dbname
        raise HeartbeatError(
            f"cannot create {TABLE} in database {db}: {first_line(exc)}; give the heartbeat_dsn user "
            f"CREATE on it (GRANT CREATE ON DATABASE {db} TO {conn.info.user}) or create the schema "
            "once as its owner (docs/heartbeat.md)"
        ) from None
    return True


# -- the writer ------------------------------------------------------------------------
class HeartbeatWriter:
    """Writes one beat every ``interval_s`` on a :class:`~drillbook.core.sampling.Sampler` clock.

    The connection is opened lazily and reopened after any error, so the writer
    outlives a database restart or failover: a beat that cannot be written is a
    recorded :class:`~drillbook.core.sampling.SampleError` (the gap it leaves is the
    observation), never the end of the loop. Only before the first beat ever written
    does a refusal end it (no rights, bad password, the writer id taken): that is a
    mistake to fix, not an outage to ride out. The tables are created on the first
    connection only: a writer that re-created them on a reconnect could do so in a
    database ``pg_restore`` is filling, and break the restore.

    ``keep_beats=False`` keeps only the last beat (a daemon that runs for months); a
    drill keeps them all for :func:`lost`. ``say`` hears one line when writing
    starts, stops and resumes.
    """

    def __init__(
        self,
        dsn: str,
        writer_id: str,
        *,
        interval_s: float = 1.0,
        retention_s: float = 3600.0,
        keep_beats: bool = True,
        timeout_s: float = 3.0,
        say: Callable[[str], None] | None = None,
    ) -> None:
        if not writer_id:
            raise ConfigError("a heartbeat writer needs a non-empty writer id")
        if retention_s < 60 * interval_s:
            raise ConfigError(f"heartbeat retention {retention_s}s is shorter than 60 beats")
        self.dsn = dsn
        self.writer_id = writer_id
        self.interval_s = interval_s
        self.retention_s = retention_s
        self.keep_beats = keep_beats
        self.timeout_s = timeout_s
        self.say = say or (lambda _line: None)
        self.host = socket.gethostname()
        self.started_at = datetime.now(UTC)
        self.last: Beat | None = None
        self.fatal: BaseException | None = None
        self.failing_since: float | None = None
        self.beats_written = 0
        self._conn: psycopg.Connection[Any] | None = None
        self._schema_ready = False  # created once per writer's life, never behind a restore's back
        self._seq = 0
        self.sampler: Sampler[Beat] = Sampler(
            f"heartbeat {writer_id}",
            session=self._session,
            clock=Every(interval_s),
            join_timeout_s=timeout_s + 2,
        )

    # lifecycle
    def start(self, wait_s: float | None = None) -> HeartbeatWriter:
        """Start beating; with ``wait_s``, return after the first write attempt (or that many seconds)."""
        self.sampler.start(wait_s)
        return self

    def stop(self) -> list[Beat]:
        """Stop beating and return every beat written; safe to call twice."""
        return self.sampler.stop()

    def __enter__(self) -> HeartbeatWriter:
        return self.start(wait_s=self.timeout_s + 2)

    def __exit__(self, *_: object) -> None:
        self.stop()

    @property
    def running(self) -> bool:
        """False after :meth:`stop` or a refusal before the first beat (:attr:`fatal`); later errors retry."""
        return self.sampler.running

    @property
    def acknowledged(self) -> list[Beat]:
        """Every beat whose commit returned, oldest first (with ``keep_beats``)."""
        return self.sampler.snapshot()

    # the loop
    @contextmanager
    def _session(self) -> Iterator[Take[Beat]]:
        try:
            yield self._take
        finally:
            self._close()

    def _take(self) -> Beat | None:
        try:
            beat = self._write()
        except BaseException as exc:
            self._close()
            if self.failing_since is None:
                self.failing_since = time.monotonic()
                self.say(f"heartbeat {self.writer_id}: cannot write: {first_line(exc)}")
            if self.beats_written == 0 and _refusal(exc):
                self.fatal = exc
                self.sampler.stop()  # from the sampling thread: ends the loop, joins nothing
            raise
        if self.failing_since is not None:
            self.say(
                f"heartbeat {self.writer_id}: writing again after "
                f"{time.monotonic() - self.failing_since:.1f}s (seq {beat.seq})"
            )
            self.failing_since = None
        elif self.beats_written == 0:
            self.say(
                f"heartbeat {self.writer_id}: writing to {TABLE} in "
                f"{pgdata.describe(self.dsn)} (seq {beat.seq})"
            )
        self.beats_written += 1
        self.last = beat
        if self.beats_written % 60 == 0:
            self._prune()
        return beat if self.keep_beats else None

    def _write(self) -> Beat:
        conn = self._connection()
        self._seq += 1  # before sending: a beat whose commit is unknown is never reused
        seq = self._seq
        wall, t = time.time(), time.monotonic()
        params = {
            "w": self.writer_id,
            "seq": seq,
            "started": self.started_at,
            "host": self.host,
            "pid": os.getpid(),
        }
        with conn.transaction():
            row = conn.execute(_BEAT, params).fetchone()
            ts = row[0] if row else None
            if not isinstance(ts, datetime):
                raise HeartbeatError(f"{TABLE} returned {ts!r}, not a timestamp")
            conn.execute(_LOG, {**params, "ts": ts})
        return Beat(t=t, wall=wall, writer_id=self.writer_id, seq=seq, ts=ts)

    def _connection(self) -> psycopg.Connection[Any]:
        if self._conn is not None and not self._conn.closed:
            return self._conn
        try:
            conn = psycopg.connect(
                self.dsn,
                autocommit=True,
                connect_timeout=max(1, round(self.timeout_s)),
                application_name="drillbook-heartbeat",
                keepalives=1,
                keepalives_idle=2,
                keepalives_interval=1,
                keepalives_count=2,
                tcp_user_timeout=int(self.timeout_s * 1000),
            )
        except psycopg.OperationalError as exc:
            raise TargetUnreachable(f"PostgreSQL {pgdata.describe(self.dsn)}: {first_line(exc)}") from exc
        try:
            conn.execute(
                "SELECT set_config('statement_timeout', %s, false)", (f"{int(self.timeout_s * 1000)}ms",)
            )
            self._lock(conn)
            if not self._schema_ready:
                ensure_schema(conn)
                self._schema_ready = True
            elif not tables_exist(conn):
                raise HeartbeatError(
                    f"{TABLE} is gone from {pgdata.describe(self.dsn)}; not re-creating it while a restore "
                    "may be filling that database (restart the writer to create it again)"
                )
            row = conn.execute(f"SELECT seq FROM {TABLE} WHERE writer_id = %s", (self.writer_id,)).fetchone()
        except BaseException:
            conn.close()
            raise
        self._seq = max(self._seq, int(row[0]) if row else 0)
        self._conn = conn
        return conn

    def _lock(self, conn: psycopg.Connection[Any]) -> None:
        key = conn.execute(_LOCK_KEY, (self.writer_id,)).fetchone()
        got = conn.execute("SELECT pg_try_advisory_lock(%s)", (key[0] if key else 0,)).fetchone()
        if not (got and got[0]):
            raise HeartbeatError(
                f"another heartbeat writer with id {self.writer_id!r} is connected to "
                f"{pgdata.describe(self.dsn)}: stop it or choose another writer id"
            )

    def _prune(self) -> None:
        conn = self._conn
        if conn is not None and not conn.closed:
            conn.execute(_PRUNE, (self.writer_id, self.retention_s))

    def _close(self) -> None:
        conn, self._conn = self._conn, None
        if conn is not None:
            conn.close()


def _refusal(exc: BaseException) -> bool:
    """An error retrying will not fix: rights, credentials, a taken writer id, a DSN that does not parse."""
    if isinstance(exc, HeartbeatError | pg_errors.InsufficientPrivilege | psycopg.ProgrammingError):
        return True
    text = str(exc)
    return "password authentication failed" in text or "no pg_hba.conf entry" in text


# -- readers ---------------------------------------------------------------------------
def newest(conn: psycopg.Connection[Any]) -> Newest | None:
    """The newest heartbeat in this database; None when the tables are absent or empty."""
    if not tables_exist(conn):
        return None
    row = conn.execute(
        f"SELECT writer_id, seq, ts, count(*) OVER () FROM {TABLE} ORDER BY ts DESC LIMIT 1"
    ).fetchone()
    if row is None:
        return None
    return Newest(writer_id=str(row[0]), seq=int(row[1]), ts=row[2], writers=int(row[3]))


def present(conn: psycopg.Connection[Any], writer_id: str, seqs: Collection[int]) -> set[int]:
    """Which of ``seqs`` (of ``writer_id``) this database holds in its heartbeat log."""
    if not seqs or not tables_exist(conn):
        return set()
    rows = conn.execute(
        f"SELECT seq FROM {LOG_TABLE} WHERE writer_id = %s AND seq = ANY(%s)", (writer_id, sorted(seqs))
    ).fetchall()
    return {int(r[0]) for r in rows}


def lost(conn: psycopg.Connection[Any], acked: Sequence[Beat]) -> list[int]:
    """The acknowledged beats this database does not hold ("nothing lost" is ``lost(...) == []``).

    Beats older than the log's retention are pruned on purpose: ask about the span of
    a drill, not of a week.
    """
    missing: list[int] = []
    for writer_id in sorted({b.writer_id for b in acked}):
        seqs = {b.seq for b in acked if b.writer_id == writer_id}
        missing += sorted(seqs - present(conn, writer_id, seqs))
    return missing


def first_line(exc: BaseException) -> str:
    """The first line of an error (psycopg's messages go on with DETAIL and HINT lines)."""
    text = str(exc).strip()
    return text.splitlines()[0] if text else type(exc).__name__
