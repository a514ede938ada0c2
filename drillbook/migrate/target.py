"""One inventory's migrations: the command, the databases it runs against, the revision graph.

A migration touches one database seen by three parties: the migration command
(its URL, as the host that runs it sees it), drillbook's checks (the app's
credentials from the control machine) and drillbook's side connections (the
superuser, for catalogs and pg_locks). :class:`Database` keeps the three
together so a scratch copy is the same triple pointed at another name.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import psycopg
from psycopg import sql

from drillbook.core import pgdata
from drillbook.core.errors import ConfigError, TargetUnreachable
from drillbook.core.inventory import Inventory
from drillbook.migrate import revisions
from drillbook.migrate.command import CommandResult, MigrateCommand, url_for_database
from drillbook.migrate.revisions import Plan, RevisionGraph
from drillbook.migrate.settings import MigrateSettings


@dataclass(frozen=True)
class Database:
    """A database as the migration command, the checks and the side connections reach it."""

    name: str
    dsn: str
    command_url: str
    admin_dsn: str

    def copy_named(self, name: str) -> Database:
        """The same server and credentials, another database (a scratch copy)."""
        return Database(
            name=name,
            dsn=pgdata.dsn_for(self.dsn, name),
            command_url=url_for_database(self.command_url, name),
            admin_dsn=pgdata.dsn_for(self.admin_dsn, name),
        )

    def describe(self) -> str:
        return pgdata.describe(self.dsn)


class Migrations:
    """The migration command of an inventory plus the questions drills ask before running it."""

    def __init__(self, inv: Inventory, settings: MigrateSettings, *, ini: str | None = None) -> None:
        self.inv = inv
        self.settings = settings
        self.command = MigrateCommand(inv, settings, ini=ini)
        topo = inv.topology
        name = pgdata.database_name(topo.postgres_dsn)
        self.source = Database(
            name=name,
            dsn=topo.postgres_dsn,
            command_url=settings.dsn or topo.postgres_dsn,
            admin_dsn=pgdata.dsn_for(topo.postgres_admin_dsn, name),
        )
        self.server_admin_dsn = topo.postgres_admin_dsn

    # -- reading ---------------------------------------------------------------------
    def graph(self, db: Database | None = None) -> RevisionGraph:
        """The revision graph as the command reports it (with the drill set its environment selects).

        ``--indicate-current`` makes Alembic run its env.py, where version locations may
        be extended (the lab service's extra migration sets); plain ``history`` would not see those.
        """
        db = db or self.source
        result = self.command.run(["history", "--verbose", "--indicate-current"], dsn=db.command_url)
        if not result.ok:
            raise TargetUnreachable(
                f"the migration command failed to list revisions on {self.command.where}: {result.why()}"
            )
        graph = revisions.parse_history(result.stdout)
        if not graph.revisions:
            raise ConfigError(
                f"the migration command listed no revisions ({' '.join(result.argv[:4])} ...): "
                "is migrate_cmd/migrate_alembic_ini right?"
            )
        return revisions.with_downgrades(graph)

    def current(self, db: Database | None = None) -> list[str]:
        """The revision(s) recorded in the version table; [] when the table is absent (base)."""
        db = db or self.source
        table = sql.Identifier(*self.settings.version_table.split("."))
        with pgdata.connect(db.dsn, read_only=True, application_name="drillbook-migrate") as conn:
            try:
                rows = conn.execute(sql.SQL("SELECT version_num FROM {}").format(table)).fetchall()
            except psycopg.errors.UndefinedTable:
                return []
        return sorted(str(r[0]) for r in rows)

    def plan(
        self, target: str | None, *, db: Database | None = None, graph: RevisionGraph | None = None
    ) -> Plan:
        graph = graph or self.graph(db)
        return revisions.plan(graph, self.current(db), target)

    # -- changing --------------------------------------------------------------------
    def migrate(self, verb: str, revision: str | None, db: Database) -> CommandResult:
        """``upgrade REV`` or ``downgrade REV`` (None: base) against ``db``."""
        if verb not in ("upgrade", "downgrade"):
            raise ValueError(verb)
        return self.command.run([verb, revisions.label(revision)], dsn=db.command_url)

    def describe(self) -> dict[str, Any]:
        return {
            "command": " ".join(self.command.base_argv),
            "runs_on": self.command.where,
            "database": self.source.describe(),
        }
