"""The safety net of migrate.up/rollback: a pre-migration backup, and the restore that uses it.

The backup is the backup capability's own (``take_backup``), so it lands in the
same repository, with the same manifest and checksums, as any other backup, and
its id goes into the journal. Restoring it *into the source database* is the
one place drillbook overwrites live data: only when a migration failed and its
undo failed too, said loudly, and refused in production unless the operator
allowed it on the command line.
"""

from __future__ import annotations

import time

from psycopg import sql

from drillbook.core import pgdata
from drillbook.core.drill import DrillRun
from drillbook.core.errors import DrillbookError
from drillbook.migrate.target import Migrations


def take_pre_migration_backup(run: DrillRun, migrations: Migrations) -> str:
    """Back up the source database now; returns the backup id (journaled as ``backup_id``)."""
    from drillbook.backup import load_settings, take_backup

    t0 = time.monotonic()
    with run.phase("backup"):
        # The database is what a migration changes: the Redis snapshot would only add time.
        settings = load_settings(migrations.inv, redis=False)
        backup = take_backup(migrations.inv, settings=settings, progress=run.note, phase=run.phase)
    run.measure("backup_id", backup.id, witness=f"manifest.json of {backup.location}")
    run.measure("backup_s", round(time.monotonic() - t0, 3), witness="wall clock around take_backup")
    return backup.id


def restore_source(run: DrillRun, migrations: Migrations, backup_id: str) -> None:
    """Replace the source database with backup ``backup_id``. Loud, and journaled step by step."""
    from drillbook.backup import restore_into

    src = migrations.source
    banner = (
        f"[bold red]RESTORING THE SOURCE DATABASE {src.name} "
        f"FROM PRE-MIGRATION BACKUP {backup_id}[/bold red]: "
        "the migration and its undo both failed; every connection to it is cut, and anything written "
        "since the backup is lost"
    )
    run.note(banner)
    run.journal.notes.append(f"RESTORE TO SOURCE: {src.describe()} <- backup {backup_id}")
    with run.phase("restore-source") as record:
        record.detail = f"{src.name} <- backup {backup_id}"
        result = restore_into(
            migrations.inv,
            src.name,
            backup_id=backup_id,
            admin_dsn=migrations.server_admin_dsn,
            allow_source=True,
            replace=True,
            progress=run.note,
            phase=run.phase,
        )
        owner = pgdata.dsn_params(src.dsn).get("user")
        if owner:
            # The restore re-created the database as the superuser; give it back to the service.
            with pgdata.connect(migrations.server_admin_dsn) as conn:
                conn.execute(
                    sql.SQL("ALTER DATABASE {} OWNER TO {}").format(
                        sql.Identifier(src.name), sql.Identifier(owner)
                    )
                )
    if result.verify is not None and not result.verify.ok:
        raise DrillbookError(f"restored {src.name} does not match backup {backup_id}")
    run.note(f"[bold red]source database {src.name} restored from backup {backup_id}[/bold red]")
