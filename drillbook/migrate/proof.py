"""Proof of target: the migration command acts on the database drillbook names, or the drill stops.

drillbook hands the migration command a connection (placeholders in ``migrate_cmd``
and ``migrate_env``, see :mod:`drillbook.migrate.command`), but the command is the
service's own tool: an env.py that builds its URL from its own settings ignores
what it is given, and a rehearsal's ``downgrade`` then lands on the live database.
So drillbook does not take the tool's word for where it went. It proves it, with
witnesses it reads itself through psycopg:

* **Before anything writes**, a read-only call of the command
  (``migrate_current_args``, Alembic's ``current``) must report a revision that
  only the named database holds. Two databases at the same revision look the same
  to ``current``, and a rehearsal's copy usually *is* at the source's revision, so
  drillbook first makes the named database distinguishable: it writes a **marker
  revision** into the version table of a database it owns (a revision of the
  graph that the source is not at; an empty table when the source is at the
  graph's only revision), runs ``current`` against it, and puts the real rows
  back (drops the table if it created it). A command that reads the connection it
  is given reports the marker; one that reads its own settings reports the
  source's revision, and the drill stops with :class:`WrongDatabase` (exit 2)
  before the first write: nothing has been migrated yet.

  - ``migrate.rehearse``: the marked database is the scratch copy itself.
  - ``migrate.up`` / ``migrate.rollback``: the target is live and is never
    written to for a proof, so the marker goes into a *probe* database
    ``<scratch_prefix>_probe_<utc>_<pid>``, created empty on the same server,
    named to the command exactly as the target is (same placeholders, another
    database name), and dropped again. ``current`` against the target itself
    must also report what the target's version table says.

  Why a marker and not server-side traces (``pg_stat_activity``, scan counters of
  the version table): ``current`` lasts a few milliseconds and counters are
  flushed lazily and bumped by anyone who reads the table (drillbook's own
  reads, a service's health check); a marker is deterministic and read back
  through the command's own output.

* **After every writing step** (prepare, upgrade, downgrade, re-upgrade, undo),
  drillbook reads a schema fingerprint (tables, columns and their types from
  ``information_schema``, and the version table's rows) of the named database
  and, in a rehearsal, of the source. If the source changed, or the command
  reported success while the named database did not move, the command migrated
  another database: the drill stops at once (no undo either: it would run on the
  wrong database too) with one line naming the database that changed and the
  backup to restore it from.

Limits: a tool whose ``current`` prints nothing recognisable cannot pass the
proof (configure ``migrate_current_args``); with a single-revision graph the
marker is an empty version table, which a tool that prints nothing at all would
also "report".
"""

from __future__ import annotations

import hashlib
import json
import os
import time
from dataclasses import dataclass

import psycopg
from psycopg import sql

from drillbook.core import pgdata
from drillbook.core.drill import DrillRun
from drillbook.core.errors import ConfigError, WrongDatabase
from drillbook.core.journal import utc_stamp
from drillbook.migrate.command import CommandResult
from drillbook.migrate.revisions import RevisionGraph, label
from drillbook.migrate.steps import Step
from drillbook.migrate.target import Database, Migrations

_COLUMNS = """
    SELECT c.table_schema || '.' || c.table_name, c.column_name, c.data_type, c.udt_name, c.is_nullable
    FROM information_schema.columns c
    JOIN information_schema.tables t
      ON t.table_schema = c.table_schema AND t.table_name = c.table_name AND t.table_type = 'BASE TABLE'
    WHERE c.table_schema NOT IN ('pg_catalog', 'information_schema') AND c.table_schema NOT LIKE 'pg\\_%'
    ORDER BY 1, 2
"""
_TABLES = """
    SELECT table_schema || '.' || table_name FROM information_schema.tables
    WHERE table_type = 'BASE TABLE'
      AND table_schema NOT IN ('pg_catalog', 'information_schema') AND table_schema NOT LIKE 'pg\\_%'
    ORDER BY 1
"""


@dataclass(frozen=True)
class Fingerprint:
    """What a migration changes, read from the database itself: revision, tables, columns, types."""

    revision: tuple[str, ...]
    tables: tuple[str, ...]
    columns: int
    digest: str

    def describe(self) -> str:
        return (
            f"{', '.join(self.revision) or 'base'} ({len(self.tables)} tables, {self.columns} columns, "
            f"schema {self.digest[:12]})"
        )


def fingerprint(db: Database, version_table: str) -> Fingerprint:
    """Read ``db``'s fingerprint over a read-only session with the side (admin) credentials."""
    with pgdata.connect(db.admin_dsn, read_only=True, application_name="drillbook-proof") as conn:
        tables = tuple(str(r[0]) for r in conn.execute(_TABLES).fetchall())
        columns = [tuple(str(v) for v in r) for r in conn.execute(_COLUMNS).fetchall()]
        try:
            rows = conn.execute(
                sql.SQL("SELECT version_num FROM {}").format(_table(version_table))
            ).fetchall()
        except psycopg.errors.UndefinedTable:
            rows = []
    revision = tuple(sorted(str(r[0]) for r in rows))
    blob = json.dumps({"revision": revision, "tables": tables, "columns": columns})
    return Fingerprint(revision, tables, len(columns), hashlib.sha256(blob.encode()).hexdigest())


def reported_revisions(result: CommandResult, graph: RevisionGraph) -> list[str]:
    """The revisions a ``current`` call printed: first words of stdout lines that are known revisions."""
    found = []
    for line in result.stdout.splitlines():
        words = line.split()
        if words and words[0] in graph.revisions and words[0] not in found:
            found.append(words[0])
    return sorted(found)


def choose_marker(graph: RevisionGraph, source: tuple[str, ...]) -> list[str]:
    """A revision the source is not at ([] = an empty version table when no other exists)."""
    for rid in graph.ordered():
        if [rid] != list(source):
            return [rid]
    return []


class Proof:
    """Watches one drill's migration command: proof before the first write, checks after each."""

    def __init__(
        self,
        run: DrillRun,
        migrations: Migrations,
        graph: RevisionGraph,
        target: Database,
        *,
        source: Database | None = None,
    ) -> None:
        self.run = run
        self.m = migrations
        self.graph = graph
        self.target = target
        #: The database that must never change (rehearse: the live source); None for up/rollback.
        self.source = source
        #: How to put back a database the command migrated by mistake (set when a backup exists).
        self.restore_hint = ""
        self.source_before: Fingerprint | None = None
        self.target_now: Fingerprint | None = None
        self.seconds = 0.0

    # -- before the first write -----------------------------------------------------------
    def before_writing(self) -> None:
        """Prove with a read-only call that the command reads the named database; raise if not."""
        t0 = time.monotonic()
        vt = self.m.settings.version_table
        target_now = self.target_now = fingerprint(self.target, vt)
        if self.source is not None:
            # Rehearse: the copy is drillbook's own, so it carries the marker.
            self.source_before = fingerprint(self.source, vt)
            self._prove_marked(self.target, self.source_before.revision, created=False)
            self.run.measure(
                "source_fingerprint",
                self.source_before.describe(),
                witness="information_schema and version table of the source",
            )
        else:
            self._prove_live(target_now)
        self._add_time(t0)

    def _prove_live(self, target_now: Fingerprint) -> None:
        """up/rollback: ``current`` on the target agrees with its version table; a probe is honoured."""
        expected = list(target_now.revision)
        result = self._current(self.target)
        if not result.ok:
            raise ConfigError(
                f"cannot prove which database the migration command talks to: "
                f"`{self._call(result)}` failed ({result.why()}); nothing was migrated"
            )
        reported = reported_revisions(result, self.graph)
        if reported != expected:
            raise WrongDatabase(
                f"the migration command reads another database than {self.target.describe()}: "
                f"`{self._call(result)}` reported {_rev(reported)} where that database is at "
                f"{_rev(expected)}; "
                f"nothing was migrated. {_MAPPING_HINT}"
            )
        name = _probe_name(self.m.settings.scratch_prefix)
        admin = self.m.server_admin_dsn
        protect = {self.target.name, self.m.source.name}
        owner = pgdata.dsn_params(self.target.dsn).get("user")
        pgdata.create_database(admin, name, protect=protect, owner=str(owner) if owner else None)
        try:
            self._prove_marked(self.target.copy_named(name), target_now.revision, created=True)
        finally:
            pgdata.drop_database(admin, name, protect=protect)

    def _prove_marked(self, marked: Database, other: tuple[str, ...], *, created: bool) -> None:
        """Write a marker revision into ``marked``, run ``current`` against it, put the rows back."""
        marker = choose_marker(self.graph, other)
        vt = self.m.settings.version_table
        table = _table(vt)
        with pgdata.connect(marked.admin_dsn, application_name="drillbook-proof") as conn:
            saved = _swap_in_marker(conn, vt, marker)
            try:
                result = self._current(marked)
            finally:
                _put_back(conn, table, saved)
        reported = reported_revisions(result, self.graph)
        what = "the probe database" if created else "the scratch copy"
        self.run.note(
            f"proof of target: `{self._call(result)}` on {what} {marked.name} (marked {_rev(marker)}) "
            f"reported {_rev(reported)}"
        )
        if not result.ok:
            raise ConfigError(
                f"cannot prove which database the migration command talks to: "
                f"`{self._call(result)}` failed on {what} ({result.why()}); nothing was migrated"
            )
        if reported != marker:
            whose = ""
            if reported == list(other):
                whose = (
                    f" (the source {self.source.describe()}'s revision)"
                    if self.source is not None
                    else f" ({self.target.describe()}'s revision, not the probe's)"
                )
            raise WrongDatabase(
                f"the migration command ignores the database drillbook gives it: `{self._call(result)}` on "
                f"{what} {marked.name}, marked {_rev(marker)}, reported {_rev(reported)}{whose}; "
                f"nothing was migrated. {_MAPPING_HINT}"
            )
        self.run.measure(
            "proof_of_target",
            f"{what} marked {_rev(marker)}: `{self._call(result)}` reported {_rev(reported)}",
            witness="marker revision written into the version table by drillbook, read back by the command",
        )

    # -- after every writing step -----------------------------------------------------------
    def after_step(self, step: Step, before: list[str]) -> None:
        """Raise :class:`WrongDatabase` if the step changed the source or did not move the target."""
        t0 = time.monotonic()
        vt = self.m.settings.version_table
        if self.source is not None and self.source_before is not None:
            now = fingerprint(self.source, vt)
            if now != self.source_before:
                self._add_time(t0)
                raise WrongDatabase(
                    f"the migration command migrated another database: `{step.verb} {label(step.target)}` "
                    f"meant for {self.target.name} changed the source {self.source.describe()} from "
                    f"{self.source_before.describe()} to {now.describe()}; drillbook stopped. "
                    f"{self.restore_hint or _NO_BACKUP}"
                )
        target = self.target_now = fingerprint(self.target, vt)
        wanted = [step.target] if step.target else []
        if step.result.ok and list(target.revision) == before and before != wanted:
            self._add_time(t0)
            raise WrongDatabase(
                f"the migration command migrated another database: `{step.verb} {label(step.target)}` "
                f"succeeded but {self.target.describe()} is still at {target.describe()}; drillbook stopped "
                f"(an undo would land there too). {self.restore_hint or _NO_BACKUP}"
            )
        self._add_time(t0)

    # -- helpers ----------------------------------------------------------------------------
    def _current(self, db: Database) -> CommandResult:
        return self.m.command.run(self.m.settings.current_args, dsn=db.command_url, timeout_s=120)

    def _call(self, result: CommandResult) -> str:
        """The call as the user would type it (the verb only: the rest is ``migrate_cmd``)."""
        return " ".join(result.argv[len(result.argv) - len(self.m.settings.current_args) :])

    def _add_time(self, t0: float) -> None:
        self.seconds += time.monotonic() - t0
        self.run.measure(
            "proof_s",
            round(self.seconds, 3),
            witness="wall clock of the target proof (read-only call, marker, fingerprints)",
        )


_MAPPING_HINT = (
    "Map the connection onto what its env.py reads with placeholders ({dsn}, {host}, {port}, "
    "{database}, {user}, {password}) in migrate_env or migrate_cmd (docs/migrate.md)"
)
_NO_BACKUP = (
    "Restore it from its newest backup (inv backup.list, runbooks/restore-from-backup.md): "
    "this rehearsal copied it with pg_dump and took no backup"
)


def _rev(revs: list[str] | tuple[str, ...]) -> str:
    return ", ".join(revs) or "base"


def _probe_name(prefix: str) -> str:
    return f"{prefix}_probe_{utc_stamp().lower()}_{os.getpid()}"[:63]


def _table(version_table: str) -> sql.Identifier:
    return sql.Identifier(*version_table.split("."))


def _swap_in_marker(conn: pgdata.Conn, version_table: str, marker: list[str]) -> list[str] | None:
    """Replace the version table's rows by ``marker``; returns the old rows (None: no table before)."""
    table = _table(version_table)
    with conn.transaction():
        try:
            with conn.transaction():
                saved: list[str] | None = [
                    str(r[0]) for r in conn.execute(sql.SQL("SELECT version_num FROM {}").format(table))
                ]
        except psycopg.errors.UndefinedTable:
            saved = None
            if "." in version_table:
                schema = version_table.split(".")[0]
                conn.execute(sql.SQL("CREATE SCHEMA IF NOT EXISTS {}").format(sql.Identifier(schema)))
            conn.execute(
                sql.SQL("CREATE TABLE {} (version_num varchar(32) NOT NULL PRIMARY KEY)").format(table)
            )
            conn.execute(sql.SQL("GRANT SELECT ON {} TO PUBLIC").format(table))
        conn.execute(sql.SQL("DELETE FROM {}").format(table))
        for rev in marker:
            conn.execute(sql.SQL("INSERT INTO {} (version_num) VALUES (%s)").format(table), (rev,))
    return saved


def _put_back(conn: pgdata.Conn, table: sql.Identifier, saved: list[str] | None) -> None:
    with conn.transaction():
        if saved is None:
            conn.execute(sql.SQL("DROP TABLE IF EXISTS {}").format(table))
            return
        conn.execute(sql.SQL("DELETE FROM {}").format(table))
        for rev in saved:
            conn.execute(sql.SQL("INSERT INTO {} (version_num) VALUES (%s)").format(table), (rev,))
