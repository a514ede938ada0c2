"""backup.*: take backups, list them, prove the newest restores within the RTO, apply retention.

Runbook: runbooks/restore-from-backup.md.
"""

from __future__ import annotations

import json
import re
from datetime import UTC, datetime

from invoke.context import Context
from rich import box
from rich.table import Table

from drillbook.core.console import Progress, out, plain
from drillbook.core.errors import ConfigError
from drillbook.tasks._cli import (
    CommonOptions,
    cli_errors,
    cli_task,
    drill_task,
    int_option,
    open_inventory,
    run_drill,
)

DB_NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_]{0,62}$")


@drill_task()
def run(c: Context, *, opts: CommonOptions) -> None:
    """Back up PostgreSQL and Redis into the repository (runbooks/restore-from-backup.md).

    The manifest (server version, size, WAL LSN, per-table rows and checksums,
    SHA-256 of every file) is written last: an interrupted backup never lists.
    """
    from drillbook.backup import BackupRun, load_settings

    with cli_errors(opts.debug):
        inv = open_inventory(opts.inventory)
        run_drill(BackupRun(load_settings(inv)), inv, opts)


@cli_task(
    name="list",
    common=("inventory", "debug"),
    writes=False,
    help={
        "json": "Print JSON (id, started_at, bytes, verified_at, last_drill, ...) instead of a table.",
        "all": "Also show incomplete backups (no manifest yet: running or interrupted).",
    },
)
def list_(c: Context, json_: bool = False, all_: bool = False, *, opts: CommonOptions) -> None:
    """List backups: id, time, size, age, verified-at (runbooks/restore-from-backup.md).

    --json adds tables, rows, Redis, database size and the last drill's figures.
    """
    from drillbook.backup import list_backups, load_settings, open_repository
    from drillbook.backup.manifest import parse_time
    from drillbook.backup.repository import dump_json
    from drillbook.core.timefmt import age

    with cli_errors(opts.debug):
        inv = open_inventory(opts.inventory)
        repo = open_repository(load_settings(inv))
        repo.check()
        entries = list_backups(repo, include_incomplete=all_)
        if json_:
            print(dump_json(entries))
            return
        now = datetime.now(UTC)
        table = Table(title=f"backups in {plain(repo.location)}", box=box.SIMPLE_HEAD, show_edge=False)
        for col in ("id", "time (UTC)", "size", "age", "rows", "verified at"):
            table.add_column(col, no_wrap=True)
        for e in reversed(entries):
            m = e.manifest
            if m is None:
                state = "manifest unreadable (see --json)" if e.problem else "incomplete (no manifest)"
                table.add_row(plain(e.id), f"[red]{state}[/red]", "", "", "", "")
                continue
            rec = e.record
            if e.verified_at:
                verified = e.verified_at[:16].replace("T", " ")
            elif rec:
                verified = f"[red]{rec.verdict} {rec.drill_at[:16].replace('T', ' ')}[/red]"
            else:
                verified = "[yellow]never[/yellow]"
            table.add_row(
                plain(e.id),
                m.started_at[:16].replace("T", " "),
                _size(m.total_bytes),
                age(now, parse_time(m.started_at)),
                str(m.rows),
                verified,
            )
        out.print(table)
        if not entries:
            out.print("no backups yet: run `inv backup.run`")


@drill_task(
    help={
        "id": "Backup id to restore (default: the newest complete backup).",
        "scratch": "Where to restore: db (a scratch database on the restore server, default) or "
        "cluster (a throwaway cluster on this machine: initdb, restore, remove).",
        "scratch_name": "Name of the scratch database (default: <backup_scratch_prefix>_<id>_<pid>).",
        "boot_app": "Also start one instance of the service on the restored database and "
        "count RTO until its /health/ready answers 200.",
    }
)
def restore_test(
    c: Context,
    id_: str | None = None,
    scratch: str = "db",
    scratch_name: str | None = None,
    boot_app: bool = False,
    *,
    opts: CommonOptions,
) -> None:
    """Prove the newest backup restores, intact, within the RTO (runbooks/restore-from-backup.md).

    Checks every file's SHA-256, restores with pg_restore -j N into a scratch
    database, compares per-table rows and checksums with the manifest, runs
    backup_verify_queries, measures the RPO from the newest heartbeat row and
    the total time against backup_rto_s; then drops the scratch database.
    """
    from drillbook.backup import RestoreTest, load_settings

    with cli_errors(opts.debug):
        inv = open_inventory(opts.inventory)
        drill = RestoreTest(
            load_settings(inv), backup_id=id_, scratch=scratch, scratch_name=scratch_name, boot_app=boot_app
        )
        run_drill(drill, inv, opts)


@cli_task(
    common=("inventory", "debug"),
    help={
        "into": "Name of the new database to restore into (an existing one is refused).",
        "id": "Backup id to restore (default: the newest complete backup).",
        "no_verify": "Skip the per-table row count and checksum comparison after pg_restore.",
    },
)
def restore(
    c: Context,
    into: str | None = None,
    id_: str | None = None,
    no_verify: bool = False,
    *,
    opts: CommonOptions,
) -> None:
    """Restore a backup into a new database and keep it (runbooks/restore-from-backup.md).

    The recovery itself: files checked against their SHA-256, pg_restore -j N,
    tables verified against the manifest. The source database's name is
    refused; switching the service over is a deliberate, separate step.
    """
    from drillbook.backup import load_settings, restore_into
    from drillbook.core import pgdata
    from drillbook.core.lock import inventory_lock

    with cli_errors(opts.debug):
        if not into or not DB_NAME.match(into):
            raise ConfigError(f"--into needs a database name (letters, digits, _), got {into!r}")
        inv = open_inventory(opts.inventory)
        settings = load_settings(inv)
        with inventory_lock(inv.lock_scope, "backup.restore", inv.name):
            result = restore_into(
                inv,
                into,
                backup_id=id_,
                settings=settings,
                verify=not no_verify,
                progress=Progress("backup.restore"),
            )
        verified = (
            f"{result.verify.tables_verified} tables, {result.verify.rows_verified} rows verified"
            if result.verify
            else "not verified"
        )
        out.print(
            f"restored backup {plain(result.backup_id)} into [bold]{plain(result.database)}[/bold] "
            f"({plain(pgdata.describe(result.dsn))}) in {result.restore_s:.1f}s; {verified}"
        )


@cli_task(
    common=("inventory", "debug"),
    help={
        "dry_run": "Only print what would be kept and deleted.",
        "keep_last": "Keep the N newest backups (default: backup_keep_last).",
        "keep_daily": "Keep the newest backup of each of the D latest days (default: backup_keep_daily).",
        "json": "Print the decisions as JSON.",
    },
)
def prune(
    c: Context,
    dry_run: bool = False,
    keep_last: str | None = None,
    keep_daily: str | None = None,
    json_: bool = False,
    *,
    opts: CommonOptions,
) -> None:
    """Apply retention; never deletes the newest verified backup (runbooks/restore-from-backup.md).

    Guarded even with --dry-run: the guard runs before the options are read, and a
    dry run against production is one --allow-production away.
    """
    from drillbook.backup import load_settings, open_repository
    from drillbook.backup.prune import prune as prune_backups
    from drillbook.core.lock import inventory_lock

    with cli_errors(opts.debug):
        last = int_option("keep-last", keep_last, minimum=1, maximum=100_000)
        daily = int_option("keep-daily", keep_daily, minimum=0, maximum=100_000)
        inv = open_inventory(opts.inventory)
        settings = load_settings(inv)
        repo = open_repository(settings)
        repo.check()
        with inventory_lock(inv.lock_scope, "backup.prune", inv.name):
            decisions = prune_backups(
                repo,
                keep_last=last if last is not None else settings.keep_last,
                keep_daily=daily if daily is not None else settings.keep_daily,
                incomplete_grace_s=settings.incomplete_grace_s,
                dry_run=dry_run,
            )
        if json_:
            print(
                json.dumps([{"id": d.id, "keep": d.keep, "reasons": d.reasons} for d in decisions], indent=2)
            )
            return
        verb = "would delete" if dry_run else "deleted"
        for d in decisions:
            mark = "[green]keep[/green]  " if d.keep else f"[red]{verb}[/red] "
            out.print(f"{mark} {plain(d.id)}  ({plain(', '.join(d.reasons))})")
        gone = sum(1 for d in decisions if not d.keep)
        out.print(f"{len(decisions) - gone} kept, {gone} {verb}" + (" (dry run)" if dry_run else ""))


def _size(n: int) -> str:
    for unit in ("B", "KB", "MB", "GB", "TB"):
        if n < 1000 or unit == "TB":
            return f"{n:.0f} {unit}" if unit == "B" else f"{n:.1f} {unit}"
        n = n / 1000  # type: ignore[assignment]
    return str(n)
