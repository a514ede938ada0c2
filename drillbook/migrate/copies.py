"""A scratch copy of the real data for a rehearsal: the newest backup, or a fresh pg_dump.

Restoring the newest backup rehearses on exactly what a disaster would bring
back (and proves that backup restores); a fresh ``pg_dump`` is today's data
when there is no backup yet. Either way the copy lands in a new database on the
same server, owned by the service's database user so that its migrations run
with the privileges they will have for real.
"""

from __future__ import annotations

import os
import subprocess
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

from psycopg import sql

from drillbook.core import pgdata
from drillbook.core.drill import DrillRun
from drillbook.core.errors import ConfigError, DrillbookError, TargetUnreachable
from drillbook.migrate.target import Database, Migrations

Source = Literal["auto", "backup", "dump"]


@dataclass(frozen=True)
class Copy:
    database: Database
    source: str  # "backup <id>" or "pg_dump of <db>"
    seconds: float


def make_copy(run: DrillRun, migrations: Migrations, name: str, source: Source) -> Copy:
    """Create database ``name`` holding a copy of the source's data; the caller drops it."""
    src = migrations.source
    scratch = src.copy_named(name)
    protect = {src.name}
    t0 = time.monotonic()
    how = ""
    if source in ("auto", "backup"):
        try:
            how = _from_backup(run, migrations, name)
        except (ConfigError, TargetUnreachable) as exc:  # no repository (unreachable) or no complete backup
            if source == "backup":
                raise
            run.note(f"no backup to rehearse on ({exc}); taking a fresh pg_dump instead")
    if not how:
        pgdata.create_database(migrations.server_admin_dsn, name, protect=protect)
        _dump_restore(migrations, src, scratch)
        how = f"pg_dump of {src.name}"
    owner = pgdata.dsn_params(src.dsn).get("user")
    if owner:
        # pg_restore keeps table owners; the database (and so PostgreSQL 15's public
        # schema) must belong to the service's user too, or its migrations cannot create tables.
        with pgdata.connect(migrations.server_admin_dsn) as conn:
            conn.execute(
                sql.SQL("ALTER DATABASE {} OWNER TO {}").format(sql.Identifier(name), sql.Identifier(owner))
            )
    return Copy(scratch, how, time.monotonic() - t0)


def _from_backup(run: DrillRun, migrations: Migrations, name: str) -> str:
    from drillbook.backup import restore_into

    result = restore_into(
        migrations.inv, name, admin_dsn=migrations.server_admin_dsn, progress=run.note, phase=run.phase
    )
    return f"backup {result.backup_id}"


def _tool(migrations: Migrations, name: str) -> str:
    bin_dir = migrations.settings.pg_bin_dir
    path = Path(bin_dir) / name if bin_dir else Path(name)
    if bin_dir and not path.exists():
        raise ConfigError(f"{path} does not exist (migrate_pg_bin_dir)")
    return str(path)


def _dump_restore(migrations: Migrations, src: Database, scratch: Database) -> None:
    """``pg_dump -Fc`` of the source piped into ``pg_restore``; passwords through the environment."""
    dump_conn = pgdata.tool_env(src.admin_dsn)
    load_conn = pgdata.tool_env(scratch.admin_dsn)
    dump = subprocess.Popen(
        [_tool(migrations, "pg_dump"), "--format=custom", f"--dbname={dump_conn.conninfo}"],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        env=dump_conn.env,
        start_new_session=True,
    )
    load = subprocess.Popen(
        [_tool(migrations, "pg_restore"), "--exit-on-error", f"--dbname={load_conn.conninfo}"],
        stdin=dump.stdout,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        env=load_conn.env,
        start_new_session=True,
    )
    assert dump.stdout is not None
    dump.stdout.close()  # pg_restore holds the pipe now; pg_dump sees SIGPIPE if it dies
    try:
        _, load_err = load.communicate(timeout=migrations.settings.timeout_s)
        _, dump_err = dump.communicate(timeout=30)
    except BaseException:
        for proc in (dump, load):
            if proc.poll() is None:
                os.killpg(proc.pid, 15)
                proc.wait()
        raise
    for what, proc, err in (("pg_dump", dump, dump_err), ("pg_restore", load, load_err)):
        if proc.returncode:
            lines = [ln for ln in err.decode(errors="replace").splitlines() if ln.strip()]
            raise DrillbookError(
                f"{what} failed (exit {proc.returncode}): {lines[-1] if lines else 'no output'}"
            )
