"""The safety net of migrate.up/rollback: a pre-migration backup, and the restore that uses it.

The backup is the backup capability's own (``take_backup``), so it lands in the
same repository, with the same manifest and checksums, as any other backup, and
its id goes into the journal.

Putting it back *as the source database* is the one place drillbook replaces
live data, so it happens only when a migration failed and its undo failed too,
loudly, and in production only with an explicit flag. It never restores over the
live database in place (the service keeps connecting and writing while
pg_restore runs, and a failed restore would leave nothing): the backup is
restored *beside* it into a new database and verified table by table against
its manifest while nobody else can write there; only then are the two swapped
by renaming, with connections to the source refused and cut for the moment of
the swap. The migrated database is kept under another name for the post-mortem.
"""

from __future__ import annotations

import time

import psycopg
from psycopg import sql

from drillbook.core import pgdata
from drillbook.core.drill import DrillRun
from drillbook.core.errors import DrillbookError
from drillbook.core.journal import utc_stamp
from drillbook.migrate.target import Migrations


def take_pre_migration_backup(run: DrillRun, migrations: Migrations) -> str:
    """Back up the source database now; returns the backup id (journaled as ``backup_id``)."""
    from drillbook.backup import take_backup

    t0 = time.monotonic()
    with run.phase("backup"):
        # The database is what a migration changes: the Redis snapshot would only add time.
        backup = take_backup(migrations.inv, redis=False, progress=run.note, phase=run.phase)
    run.measure("backup_id", backup.id, witness=f"manifest.json of {backup.location}")
    run.measure("backup_s", round(time.monotonic() - t0, 3), witness="wall clock around take_backup")
    return backup.id


def restore_after_failed_undo(
    run: DrillRun, migrations: Migrations, backup_id: str | None, *, allow_in_production: bool, runbook: str
) -> bool:
    """The last resort of up/rollback: the pre-migration backup as the source; True when it was restored.

    Without a backup, or in production without ``--allow-restore-source``, the drill
    ends ``error`` naming the runbook: a person decides.
    """
    if backup_id is None:
        run.journal.error = "the undo failed and there is no pre-migration backup to restore"
        run.note(f"[bold red]{run.journal.error}: follow {runbook}[/bold red]")
        return False
    if run.inventory.is_production and not allow_in_production:
        run.journal.error = (
            f"the undo failed; NOT restoring backup {backup_id} into production database "
            f"{migrations.source.name} without --allow-restore-source: follow {runbook}"
        )
        run.note(f"[bold red]{run.journal.error}[/bold red]")
        return False
    restore_source(run, migrations, backup_id)
    return True


def restore_source(run: DrillRun, migrations: Migrations, backup_id: str) -> str:
    """Replace the source database with backup ``backup_id``; returns the name the old one is kept under."""
    from drillbook.backup import restore_into

    src = migrations.source
    admin = migrations.server_admin_dsn
    stamp = utc_stamp().lower()
    incoming = _name(src.name, f"_restore_{stamp}")
    kept = _name(src.name, f"_failed_{stamp}")
    run.note(
        f"[bold red]RESTORING THE SOURCE DATABASE {src.name} "
        f"FROM PRE-MIGRATION BACKUP {backup_id}[/bold red]: "
        "the migration and its undo both failed; anything written since the backup is lost"
    )
    run.journal.notes.append(f"RESTORE TO SOURCE: {src.describe()} <- backup {backup_id}")
    with run.phase("restore-source") as record:
        record.detail = f"{src.name} <- backup {backup_id} (restored as {incoming}, then swapped)"
        restore_into(
            migrations.inv, incoming, backup_id=backup_id, admin_dsn=admin, progress=run.note, phase=run.phase
        )
        try:
            owner = pgdata.dsn_params(src.dsn).get("user")
            if owner:
                # The restore created the database as the superuser; the service must own it.
                _execute(admin, sql.SQL("ALTER DATABASE {} OWNER TO {}"), incoming, owner)
            with run.phase("swap"):
                _swap(admin, src.name, incoming, kept)
        except BaseException:
            pgdata.drop_database(admin, incoming, protect={src.name})
            raise
    run.measure("kept_failed_database", kept, witness="pg_database")
    run.note(
        f"[bold red]source database {src.name} restored from backup {backup_id}[/bold red]; the failed "
        f"database is kept as {kept} (connections disabled) for inspection: drop it when done"
    )
    return kept


def _swap(admin: str, source: str, incoming: str, kept: str, attempts: int = 50) -> None:
    """Rename ``source`` to ``kept`` and ``incoming`` to ``source``, cutting the source's sessions."""
    with pgdata.connect(admin) as conn:
        _execute_on(conn, sql.SQL("ALTER DATABASE {} ALLOW_CONNECTIONS false"), source)
        for attempt in range(attempts):
            conn.execute(
                "SELECT pg_terminate_backend(pid) FROM pg_stat_activity"
                " WHERE datname = %s AND pid <> pg_backend_pid()",
                (source,),
            )
            try:
                _execute_on(conn, sql.SQL("ALTER DATABASE {} RENAME TO {}"), source, kept)
                break
            except psycopg.errors.ObjectInUse:
                if attempt == attempts - 1:
                    _execute_on(conn, sql.SQL("ALTER DATABASE {} ALLOW_CONNECTIONS true"), source)
                    raise DrillbookError(
                        f"cannot swap in the restored database: {source} still has sessions"
                    ) from None
                time.sleep(0.1)
        _execute_on(conn, sql.SQL("ALTER DATABASE {} RENAME TO {}"), incoming, source)


def _name(base: str, suffix: str) -> str:
    """``base + suffix`` within PostgreSQL's 63 bytes."""
    return base.encode()[: 63 - len(suffix.encode())].decode(errors="ignore") + suffix


def _execute(admin: str, query: sql.SQL, *names: str) -> None:
    with pgdata.connect(admin) as conn:
        _execute_on(conn, query, *names)


def _execute_on(conn: pgdata.Conn, query: sql.SQL, *names: str) -> None:
    conn.execute(query.format(*(sql.Identifier(n) for n in names)))
