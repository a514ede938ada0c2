"""PostgreSQL data helpers shared by the drills that copy or change a database.

Backups, restore drills and migration rehearsals all need to answer the same
questions about a database, in SQL, from the control machine:

* *Is this the same data?* :func:`fingerprints` gives each table's row count
  and a content checksum computed by the server (an order-independent sum of
  per-row hashes of the row's text form), so a dump and its restore, or a
  database before and after an upgrade-then-downgrade, can be compared table
  by table without moving the rows to Python. The checksum session pins the
  output settings (time zone, date style, float digits) that change a row's
  text, so two servers agree when the data does. With ``snapshot`` every worker
  reads the exact snapshot ``pg_dump --snapshot`` dumps.
* *Where can I put a copy?* :func:`create_database` and :func:`drop_database`
  manage scratch databases and refuse the protected names (the source database,
  ``postgres``, the templates): a scratch drop can never take the real data
  with it.
* *How do I connect?* :func:`connect` turns a refused connection into one
  :class:`TargetUnreachable` line and can open the session read-only
  (``default_transaction_read_only``), which is how a drill promises, in a way
  the server enforces, that it never writes to the source. :func:`dsn_for`
  points a DSN at another database on the same server; :func:`tool_env` gives
  the libpq arguments for ``pg_dump``/``pg_restore`` without putting the
  password on the command line.
"""

from __future__ import annotations

import contextlib
import os
import threading
from collections.abc import Iterable, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import Any

import psycopg
from psycopg import sql
from psycopg.conninfo import conninfo_to_dict, make_conninfo

from drillbook.core.errors import ConfigError, TargetUnreachable

#: Databases no helper here will ever create over or drop, whatever the caller asks.
ALWAYS_PROTECTED = frozenset({"postgres", "template0", "template1"})

#: Session settings that fix a row's text form, so checksums agree across sessions and servers.
STABLE_OUTPUT = {
    "TimeZone": "UTC",
    "DateStyle": "ISO, YMD",
    "IntervalStyle": "postgres",
    "extra_float_digits": "1",
    "bytea_output": "hex",
}

#: How :func:`fingerprints` computes a checksum, recorded next to the figures it produced.
CHECKSUM_METHOD = "sum(hashtextextended(row::text, 0)) with " + ", ".join(
    f"{k}={v}" for k, v in STABLE_OUTPUT.items()
)

Conn = psycopg.Connection[tuple[Any, ...]]


# -- DSNs ------------------------------------------------------------------------
def dsn_params(dsn: str) -> dict[str, Any]:
    """A DSN (URI or ``key=value``) as libpq parameters; a malformed one is a ConfigError."""
    try:
        return dict(conninfo_to_dict(dsn))
    except psycopg.ProgrammingError as exc:
        raise ConfigError(f"malformed PostgreSQL DSN {describe(dsn)!r}: {exc}") from exc


def dsn_for(dsn: str, dbname: str) -> str:
    """The same server and credentials as ``dsn``, connected to ``dbname``."""
    return make_conninfo(make_conninfo(dsn), dbname=dbname)


def database_name(dsn: str) -> str:
    """The database a DSN connects to (libpq's default: the user name)."""
    params = dsn_params(dsn)
    return str(params.get("dbname") or params.get("user") or os.environ.get("PGDATABASE") or "")


def describe(dsn: str) -> str:
    """``user@host:port/dbname`` for messages and journals: never the password."""
    try:
        p = dict(conninfo_to_dict(dsn))
    except psycopg.ProgrammingError:
        return "<unparsable dsn>"
    host = p.get("host") or p.get("hostaddr") or "localhost"
    port = p.get("port") or "5432"
    user = f"{p['user']}@" if p.get("user") else ""
    return f"{user}{host}:{port}/{p.get('dbname') or p.get('user') or ''}"


def same_server(dsn_a: str, dsn_b: str) -> bool:
    """True when both DSNs name the same host and port (the same cluster, as far as we can tell)."""
    a, b = dsn_params(dsn_a), dsn_params(dsn_b)

    def where(p: Mapping[str, Any]) -> tuple[str, str]:
        host = str(p.get("host") or p.get("hostaddr") or "localhost")
        host = "127.0.0.1" if host in ("localhost", "::1") else host
        return host, str(p.get("port") or "5432")

    return where(a) == where(b)


@dataclass(frozen=True)
class ToolConnection:
    """How to point a libpq command-line tool at a database without exposing the password.

    ``conninfo`` goes to ``--dbname``; ``env`` (``PGPASSWORD`` and the caller's
    environment) to the process, since argv is readable by every user of the host.
    """

    conninfo: str
    env: dict[str, str]


def tool_env(dsn: str, base_env: Mapping[str, str] | None = None) -> ToolConnection:
    """Conninfo without the password plus an environment with ``PGPASSWORD``, for pg_dump/pg_restore/psql."""
    params = dsn_params(dsn)
    password = params.pop("password", None)
    env = dict(os.environ if base_env is None else base_env)
    if password:
        env["PGPASSWORD"] = str(password)
    return ToolConnection(conninfo=make_conninfo("", **params), env=env)


# -- connections -----------------------------------------------------------------
def connect(
    dsn: str,
    *,
    dbname: str | None = None,
    read_only: bool = False,
    autocommit: bool = True,
    timeout_s: float = 5.0,
    stable_output: bool = False,
    application_name: str = "drillbook",
) -> Conn:
    """Connect, or raise :class:`TargetUnreachable` naming the server (never the password).

    ``read_only`` sets ``default_transaction_read_only`` at connection start: the
    server itself then refuses any write on this session. ``stable_output`` pins
    :data:`STABLE_OUTPUT` (what checksums need).
    """
    options = []
    if read_only:
        options.append("-c default_transaction_read_only=on")
    target = dsn_for(dsn, dbname) if dbname else dsn
    try:
        conn = psycopg.connect(
            target,
            autocommit=autocommit,
            connect_timeout=max(1, round(timeout_s)),
            application_name=application_name,
            options=" ".join(options) or None,
        )
    except psycopg.OperationalError as exc:
        raise TargetUnreachable(f"PostgreSQL {describe(target)}: {_first_line(exc)}") from exc
    if stable_output:
        for name, value in STABLE_OUTPUT.items():
            conn.execute("SELECT set_config(%s, %s, false)", (name, value))
        if not autocommit:
            conn.commit()
    return conn


def _first_line(exc: BaseException) -> str:
    text = str(exc).strip()
    return text.splitlines()[0] if text else type(exc).__name__


def scalar(conn: Conn, query: str | sql.Composable, params: Sequence[Any] | None = None) -> Any:
    """The first column of the first row (None when no row)."""
    row = conn.execute(query, params).fetchone()  # type: ignore[arg-type]
    return row[0] if row else None


# -- facts -------------------------------------------------------------------------
@dataclass(frozen=True)
class ServerInfo:
    """The server's version (``15.18`` and ``150018``) and whether it is a standby."""

    version: str  # "15.18"
    version_num: int  # 150018
    in_recovery: bool

    @property
    def major(self) -> int:
        """The major version (15 for 150018), which decides pg_dump/pg_restore compatibility."""
        return self.version_num // 10000


def server_info(conn: Conn) -> ServerInfo:
    """Version and recovery state in one round trip; the version string drops any distribution suffix."""
    row = conn.execute(
        "SELECT current_setting('server_version'), current_setting('server_version_num')::int,"
        " pg_is_in_recovery()"
    ).fetchone()
    assert row is not None
    return ServerInfo(version=str(row[0]).split()[0], version_num=int(row[1]), in_recovery=bool(row[2]))


def current_wal_lsn(conn: Conn) -> str:
    """The WAL position now: the insert position on a primary, the replay position on a standby."""
    return str(
        scalar(
            conn,
            "SELECT CASE WHEN pg_is_in_recovery() THEN pg_last_wal_replay_lsn()"
            " ELSE pg_current_wal_lsn() END::text",
        )
    )


def database_size(conn: Conn, dbname: str | None = None) -> int:
    """Bytes on disk of ``dbname`` (default: the connection's database)."""
    if dbname is None:
        return int(scalar(conn, "SELECT pg_database_size(current_database())"))
    return int(scalar(conn, "SELECT pg_database_size(%s)", (dbname,)))


def database_exists(conn: Conn, dbname: str) -> bool:
    """Whether ``dbname`` exists on the server ``conn`` is connected to (any database works)."""
    return bool(scalar(conn, "SELECT EXISTS (SELECT 1 FROM pg_database WHERE datname = %s)", (dbname,)))


def data_directory(conn: Conn) -> str | None:
    """The cluster's data directory (superuser or pg_read_all_settings), None if not allowed."""
    try:
        return str(scalar(conn, "SELECT current_setting('data_directory')"))
    except psycopg.errors.InsufficientPrivilege:
        return None


# -- tables and fingerprints ---------------------------------------------------------
@dataclass(frozen=True)
class Table:
    """A table holding rows (a plain table or a partition), with its size for scheduling work."""

    schema: str
    name: str
    bytes: int = 0

    @property
    def qualified(self) -> str:
        """``schema.name`` unquoted: the key used in manifests and fingerprints."""
        return f"{self.schema}.{self.name}"

    @property
    def ident(self) -> sql.Identifier:
        """The quoted identifier for composing SQL safely (names may need quoting)."""
        return sql.Identifier(self.schema, self.name)


@dataclass(frozen=True)
class TableFingerprint:
    """A table's row count and content checksum (see :data:`CHECKSUM_METHOD`), to compare two copies."""

    rows: int
    checksum: str


def list_tables(conn: Conn) -> list[Table]:
    """Tables whose rows pg_dump would dump: plain tables and partitions, outside system schemas.

    Partitioned parents hold no rows themselves (their partitions are listed);
    tables belonging to an extension are left out, as pg_dump leaves out their data.
    """
    rows = conn.execute(
        """
        SELECT n.nspname, c.relname, pg_total_relation_size(c.oid)
          FROM pg_class c
          JOIN pg_namespace n ON n.oid = c.relnamespace
         WHERE c.relkind = 'r'
           AND n.nspname NOT IN ('pg_catalog', 'information_schema')
           AND n.nspname NOT LIKE 'pg\\_toast%' AND n.nspname NOT LIKE 'pg\\_temp%'
           AND NOT EXISTS (SELECT 1 FROM pg_depend d
                            WHERE d.classid = 'pg_class'::regclass AND d.objid = c.oid AND d.deptype = 'e')
         ORDER BY 1, 2
        """
    ).fetchall()
    return [Table(str(s), str(n), int(b or 0)) for s, n, b in rows]


def table_fingerprint(conn: Conn, table: Table) -> TableFingerprint:
    """Row count and content checksum of one table, computed in one scan by the server.

    The checksum is order-independent (a restore may lay rows out differently)
    and exact to the row's text form under :data:`STABLE_OUTPUT`.
    """
    query = sql.SQL(
        "SELECT count(*), coalesce(sum(hashtextextended(ROW(_drillbook_r.*)::text, 0)), 0)::text"
        " FROM {} AS _drillbook_r"
    ).format(table.ident)
    row = conn.execute(query).fetchone()
    assert row is not None
    return TableFingerprint(rows=int(row[0]), checksum=str(row[1]))


def fingerprints(
    dsn: str,
    tables: Iterable[Table] | None = None,
    *,
    jobs: int = 1,
    snapshot: str | None = None,
    timeout_s: float = 5.0,
) -> dict[str, TableFingerprint]:
    """Fingerprint every table (default: :func:`list_tables`) over ``jobs`` read-only sessions.

    Largest tables go first so the sessions finish together. With ``snapshot``
    (from ``pg_export_snapshot()``, whose transaction must stay open meanwhile)
    every session reads that exact snapshot. An exception or interrupt in the
    caller's thread cancels the running queries before returning.
    """
    if tables is None:
        with connect(dsn, read_only=True, timeout_s=timeout_s) as conn:
            if snapshot:
                conn.execute("BEGIN ISOLATION LEVEL REPEATABLE READ READ ONLY")
                conn.execute(sql.SQL("SET TRANSACTION SNAPSHOT {}").format(sql.Literal(snapshot)))
            todo = list_tables(conn)
    else:
        todo = list(tables)
    todo.sort(key=lambda t: t.bytes, reverse=True)
    if not todo:
        return {}
    queue = list(reversed(todo))  # pop() from the end takes the largest first
    lock = threading.Lock()
    results: dict[str, TableFingerprint] = {}
    conns: list[Conn] = []
    stop = threading.Event()

    def worker() -> None:
        with connect(dsn, read_only=True, timeout_s=timeout_s, stable_output=True) as conn:
            with lock:
                conns.append(conn)
            conn.execute("BEGIN ISOLATION LEVEL REPEATABLE READ READ ONLY")
            if snapshot:
                conn.execute(sql.SQL("SET TRANSACTION SNAPSHOT {}").format(sql.Literal(snapshot)))
            while not stop.is_set():
                with lock:
                    if not queue:
                        break
                    table = queue.pop()
                fp = table_fingerprint(conn, table)
                with lock:
                    results[table.qualified] = fp
            conn.execute("COMMIT")

    workers = max(1, min(jobs, len(todo)))
    pool = ThreadPoolExecutor(max_workers=workers, thread_name_prefix="pgdata-fp")
    futures = [pool.submit(worker) for _ in range(workers)]
    try:
        for future in futures:
            future.result()
    except BaseException:
        stop.set()
        with lock:
            for conn in conns:
                with contextlib.suppress(Exception):
                    conn.cancel_safe(timeout=2)
        raise
    finally:
        pool.shutdown(wait=True, cancel_futures=True)
    return {t.qualified: results[t.qualified] for t in sorted(todo, key=lambda t: t.qualified)}


# -- scratch databases --------------------------------------------------------------
def guard(dbname: str, protect: Iterable[str] = ()) -> None:
    """Refuse to touch a protected database: the source, ``postgres`` and the templates."""
    protected = ALWAYS_PROTECTED | {p for p in protect if p}
    if not dbname:
        raise ConfigError("a scratch database needs a name")
    if dbname in protected:
        raise ConfigError(
            f"refusing to use database {dbname!r} as a scratch target: it is protected "
            f"({', '.join(sorted(protected))})"
        )
    if len(dbname.encode()) > 63:
        raise ConfigError(f"database name {dbname!r} is longer than PostgreSQL's 63 bytes")


def create_database(
    admin_dsn: str,
    dbname: str,
    *,
    protect: Iterable[str] = (),
    owner: str | None = None,
    template: str = "template0",
    replace: bool = False,
) -> None:
    """Create an empty database (from ``template0``, what pg_restore expects).

    Refuses a protected name; an existing database of that name is an error
    unless ``replace`` (then it is dropped first, connections and all).
    """
    guard(dbname, protect)
    with connect(admin_dsn) as conn:
        if database_exists(conn, dbname):
            if not replace:
                raise ConfigError(f"database {dbname!r} already exists on {describe(admin_dsn)}")
            _drop(conn, dbname)
        query = sql.SQL("CREATE DATABASE {} TEMPLATE {}").format(
            sql.Identifier(dbname), sql.Identifier(template)
        )
        if owner:
            query += sql.SQL(" OWNER {}").format(sql.Identifier(owner))
        conn.execute(query)


def drop_database(admin_dsn: str, dbname: str, *, protect: Iterable[str] = ()) -> bool:
    """Drop ``dbname`` if it exists, terminating its sessions; True when something was dropped.

    Idempotent, so it can be registered as an undo action before the database exists.
    """
    guard(dbname, protect)
    with connect(admin_dsn) as conn:
        if not database_exists(conn, dbname):
            return False
        _drop(conn, dbname)
        return True


def _drop(conn: Conn, dbname: str) -> None:
    conn.execute(sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(sql.Identifier(dbname)))
