"""migrate.*: database migrations with a safety net (runbook: runbooks/migration-rollback.md)."""

from __future__ import annotations

import json

from invoke.context import Context

from drillbook.core.console import out
from drillbook.core.errors import ConfigError
from drillbook.tasks._cli import CommonOptions, cli_errors, cli_task, drill_task, open_inventory, run_drill

_INI = "The release's alembic.ini (default: migrate_alembic_ini), e.g. of a release not deployed yet."
_ALLOW_IRREVERSIBLE = "Go ahead although a revision on the way has no downgrade."


@cli_task(
    common=("inventory", "debug"),
    writes=False,
    help={
        "ini": _INI,
        "database": "Another database on the same server (default: the service's).",
        "json": "Print JSON (current, head, pending[{revision, has_downgrade}], ...).",
    },
)
def status(
    c: Context,
    ini: str | None = None,
    database: str | None = None,
    json_: bool = False,
    *,
    opts: CommonOptions,
) -> None:
    """Current revision, head, pending revisions and whether each has a downgrade (read-only).

    Runbook: runbooks/migration-rollback.md.
    """
    from drillbook.migrate import migration_status

    with cli_errors(opts.debug):
        st = migration_status(open_inventory(opts.inventory), ini=ini, database=database)
        if json_:
            print(json.dumps(st.to_dict(), indent=2))
        else:
            for line in st.lines():
                out.print(line, markup=False)


@drill_task(
    help={
        "to": "Target revision (default: head).",
        "from_": "Start the rehearsal at this revision (default: the database's own); the copy is "
        "migrated there first.",
        "ini": _INI,
        "source": "Copy of the data: auto (newest backup, else pg_dump), backup or dump.",
        "allow_irreversible": "Rehearse the upgrade only when a revision has no downgrade.",
    }
)
def rehearse(
    c: Context,
    to: str | None = None,
    from_: str | None = None,
    ini: str | None = None,
    source: str | None = None,
    allow_irreversible: bool = False,
    *,
    opts: CommonOptions,
) -> None:
    """Rehearse on a scratch copy: up to REV, checks, back down, compare schema+data, up again.

    Fails naming every schema or data difference the round trip leaves (a lossy
    downgrade); reports each step's duration and the longest write-blocking lock.
    The scratch database is dropped afterwards. Runbook: runbooks/migration-rollback.md.
    """
    from drillbook.migrate import Rehearse, load_settings

    with cli_errors(opts.debug):
        inv = open_inventory(opts.inventory)
        if source not in (None, "auto", "backup", "dump"):
            raise ConfigError(f"--source must be auto, backup or dump, not {source!r}")
        drill = Rehearse(
            load_settings(inv),
            to=to,
            from_=from_,
            ini=ini,
            allow_irreversible=allow_irreversible,
            source=source,  # type: ignore[arg-type]
        )
        run_drill(drill, inv, opts)


_CHANGE_HELP = {
    "ini": _INI,
    "allow_restore_source": "Production only: allow restoring the pre-migration backup into the "
    "source database when the automatic undo fails.",
    "no_backup": "Skip the pre-migration backup (refused in production).",
}


@drill_task(
    help={**_CHANGE_HELP, "to": "Target revision (default: head).", "allow_irreversible": _ALLOW_IRREVERSIBLE}
)
def up(
    c: Context,
    to: str | None = None,
    ini: str | None = None,
    allow_irreversible: bool = False,
    allow_restore_source: bool = False,
    no_backup: bool = False,
    *,
    opts: CommonOptions,
) -> None:
    """Upgrade the database: backup, upgrade, post-checks, automatic rollback on failure.

    Post-checks: readiness of every app instance, migrate_smoke_requests and
    migrate_sql_assertions. A failed undo restores the pre-migration backup.
    Runbook: runbooks/migration-rollback.md.
    """
    from drillbook.migrate import Up, load_settings

    with cli_errors(opts.debug):
        inv = open_inventory(opts.inventory)
        drill = Up(
            load_settings(inv),
            to=to,
            ini=ini,
            allow_irreversible=allow_irreversible,
            allow_restore_source=allow_restore_source,
            backup=False if no_backup else None,
        )
        run_drill(drill, inv, opts)


@drill_task(help={**_CHANGE_HELP, "to": "Target revision (default: one revision back)."})
def rollback(
    c: Context,
    to: str | None = None,
    ini: str | None = None,
    allow_restore_source: bool = False,
    no_backup: bool = False,
    *,
    opts: CommonOptions,
) -> None:
    """Deliberately downgrade the database, with the same backup, checks and automatic undo as up.

    Refuses revisions without a downgrade. Runbook: runbooks/migration-rollback.md.
    """
    from drillbook.migrate import Rollback, load_settings

    with cli_errors(opts.debug):
        inv = open_inventory(opts.inventory)
        drill = Rollback(
            load_settings(inv),
            to=to,
            ini=ini,
            allow_restore_source=allow_restore_source,
            backup=False if no_backup else None,
        )
        run_drill(drill, inv, opts)
