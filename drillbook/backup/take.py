"""Taking a backup: one consistent snapshot, dumped and fingerprinted, then sealed by a manifest.

The order matters:

1. A read-only REPEATABLE READ session exports a snapshot and reads the WAL
   position, the server version and the database size at that instant.
2. ``pg_dump -Fd -j N -Z level --snapshot`` dumps exactly that snapshot while
   the table fingerprints (row counts and SQL checksums) are computed from the
   same snapshot in parallel sessions: the manifest describes precisely what
   the dump holds, even though the service keeps writing.
3. The Redis snapshot (BGSAVE + fetch) when the inventory has a cache group.
4. SHA-256 of every file, then the manifest, written last and atomically
   (uploaded last on S3): until then the backup does not exist for listings.

Anything that fails or is interrupted removes the partial backup.
"""

from __future__ import annotations

import subprocess
import tempfile
import time
from collections.abc import Callable, Iterator
from contextlib import AbstractContextManager, contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from psycopg import sql

from drillbook.backup.errors import BackupFailed
from drillbook.backup.manifest import MANIFEST, DumpEntry, Manifest, TableEntry, describe_files
from drillbook.backup.redis_snapshot import snapshot_redis
from drillbook.backup.repository import Repository, open_repository
from drillbook.backup.settings import BackupSettings, load_settings
from drillbook.backup.tools import find_tool, stop_group
from drillbook.core import interrupts, pgdata
from drillbook.core.errors import ConfigError
from drillbook.core.inventory import Inventory
from drillbook.core.journal import utc_now

ProgressFn = Callable[[str], None]
PhaseFn = Callable[[str], AbstractContextManager[Any]]


@contextmanager
def _no_phase(name: str) -> Iterator[None]:
    yield


@dataclass
class Backup:
    """A backup that exists: its manifest and the repository holding it."""

    id: str
    manifest: Manifest
    repository: Repository
    duration_s: float
    dump_s: float

    @property
    def location(self) -> str:
        """``<repository>/<id>``, a path or an s3:// URL, for messages and the journal."""
        return f"{self.repository.location}/{self.id}"


def source_dsn(inv: Inventory, settings: BackupSettings) -> str:
    """The DSN backups read from: ``backup_source_dsn``, else the admin DSN aimed at the app's database.

    The superuser sees every table whatever its grants; every session opened on
    it by this package is read-only.
    """
    if settings.source_dsn:
        return settings.source_dsn
    topo = inv.topology
    return pgdata.dsn_for(topo.postgres_admin_dsn, pgdata.database_name(topo.postgres_dsn))


def take_backup(
    inv: Inventory,
    *,
    settings: BackupSettings | None = None,
    repository: Repository | None = None,
    progress: ProgressFn | None = None,
    phase: PhaseFn | None = None,
    redis: bool | None = None,
) -> Backup:
    """Back up the inventory's database (and Redis) into its repository; return the sealed backup.

    ``settings`` defaults to the inventory's ``backup_*`` variables,
    ``repository`` to the one they describe. ``redis=False`` leaves the Redis
    snapshot out whatever ``backup_redis`` says (a pre-migration backup: a migration
    changes the database only); ``None`` follows the settings. ``phase(name)`` is a context
    manager timing each step (a drill passes ``run.phase``). Raises
    :class:`~drillbook.backup.errors.RepositoryError`, :class:`BackupFailed`,
    :class:`~drillbook.core.errors.TargetUnreachable` or ConfigError; leaves no
    partial backup behind.
    """
    settings = settings or load_settings(inv)
    repo = repository or open_repository(settings)
    say = progress or (lambda _msg: None)
    step = phase or _no_phase
    dsn = source_dsn(inv, settings)
    jobs = settings.effective_jobs
    t0 = time.monotonic()

    repo.check(write=True)
    exporter = pgdata.connect(dsn, read_only=True, application_name="drillbook-backup")
    staging: Path | None = None
    backup_id = ""
    try:
        exporter.execute("BEGIN ISOLATION LEVEL REPEATABLE READ READ ONLY")
        started_at = utc_now()
        info = pgdata.server_info(exporter)
        snapshot = str(pgdata.scalar(exporter, "SELECT pg_export_snapshot()"))
        lsn = pgdata.current_wal_lsn(exporter)
        db_size = pgdata.database_size(exporter)
        dbname = str(pgdata.scalar(exporter, "SELECT current_database()"))
        tables = pgdata.list_tables(exporter)
        pg_dump = find_tool("pg_dump", info.major, settings.pg_bin_dir)

        backup_id = repo.new_id()
        staging = repo.staging_dir(backup_id)
        say(
            f"backup {backup_id}: {dbname} ({db_size / 1e6:.1f} MB, {len(tables)} tables) "
            f"at LSN {lsn} -> {repo.location}"
        )
        with step("dump"):
            dump_s, fps = _dump_and_fingerprint(
                dsn, pg_dump.path, staging / "pg", snapshot, tables, jobs, settings.compression, say
            )
        exporter.execute("COMMIT")

        redis_entry = None
        if (settings.redis if redis is None else redis) and inv.has_group("cache"):
            with step("redis"):
                rdb = staging / "redis" / "dump.rdb"
                redis_entry = snapshot_redis(
                    inv, rdb, tag=backup_id, timeout_s=settings.redis_timeout_s, progress=say
                ).model_copy(update={"file": "redis/dump.rdb"})
        with step("checksums"):
            files = describe_files(staging, jobs=max(2, jobs))
        manifest = Manifest(
            id=backup_id,
            database=dbname,
            source=pgdata.describe(dsn),
            inventory=inv.name,
            environment=inv.environment,
            server_version=info.version,
            server_version_num=info.version_num,
            db_size_bytes=db_size,
            started_at=started_at,
            finished_at=utc_now(),
            wal_lsn_start=lsn,
            dump=DumpEntry(
                tool=pg_dump.version, jobs=jobs, compression=settings.compression, duration_s=round(dump_s, 3)
            ),
            checksum_method=pgdata.CHECKSUM_METHOD,
            tables={name: TableEntry(rows=fp.rows, checksum=fp.checksum) for name, fp in fps.items()},
            files=files,
            redis=redis_entry,
        )
        with step("commit"):
            repo.commit(manifest, staging, progress=say)
        say(f"backup {backup_id} sealed: {len(files)} files, {manifest.total_bytes / 1e6:.1f} MB")
        return Backup(backup_id, manifest, repo, time.monotonic() - t0, dump_s)
    except BaseException:
        if staging is not None:
            with interrupts.shielded():
                repo.abort(backup_id, staging)
        raise
    finally:
        exporter.close()


def _dump_and_fingerprint(
    dsn: str,
    pg_dump: Path,
    out_dir: Path,
    snapshot: str,
    tables: list[pgdata.Table],
    jobs: int,
    compression: int,
    say: ProgressFn,
) -> tuple[float, dict[str, pgdata.TableFingerprint]]:
    """pg_dump and the fingerprints, both reading ``snapshot``, side by side."""
    tool = pgdata.tool_env(dsn)
    argv = [
        str(pg_dump),
        f"--dbname={tool.conninfo}",
        "--format=directory",
        f"--jobs={jobs}",
        f"--compress={compression}",
        f"--snapshot={snapshot}",
        f"--file={out_dir}",
    ]
    say(f"pg_dump -Fd -j {jobs} -Z {compression}, fingerprinting {len(tables)} tables alongside")
    t0 = time.monotonic()
    with tempfile.TemporaryFile(mode="w+", prefix="drillbook-pg_dump-") as errfile:
        proc = subprocess.Popen(
            argv,
            env=tool.env,
            stdin=subprocess.DEVNULL,
            stdout=subprocess.DEVNULL,
            stderr=errfile,
            start_new_session=True,
        )
        try:
            fps = pgdata.fingerprints(dsn, tables, jobs=jobs, snapshot=snapshot)
            rc = proc.wait()
        except BaseException:
            stop_group(proc)
            raise
        if rc != 0:
            errfile.seek(0)
            lines = [line for line in errfile.read().splitlines() if line.strip()]
            raise BackupFailed(f"pg_dump failed: {lines[-1] if lines else f'exit code {rc}'}")
    return time.monotonic() - t0, fps


def check_source(inv: Inventory, settings: BackupSettings) -> str:
    """Connect to the source read-only and confirm it is reachable; returns its description."""
    dsn = source_dsn(inv, settings)
    with pgdata.connect(dsn, read_only=True) as conn:
        info = pgdata.server_info(conn)
        name = str(pgdata.scalar(conn, sql.SQL("SELECT current_database()")))
    if not name:
        raise ConfigError("the source DSN names no database")
    return f"{pgdata.describe(dsn)} (PostgreSQL {info.version})"


__all__ = ["MANIFEST", "Backup", "check_source", "source_dsn", "take_backup"]
