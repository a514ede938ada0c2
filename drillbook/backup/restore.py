"""Restoring a backup: choose it, fetch it, prove its files intact, pg_restore it, prove its data.

:func:`restore_into` chains the steps and is the only restore there is: the
real recovery (``backup.restore``), the migration rehearsal and the restore
drill (``backup.restore-test``) all run it, so a drill that passes has proven
the code a 3 a.m. recovery runs. The drill observes the stages through
:class:`RestoreHooks` and chooses the scratch target through ``admin_dsn``.
The steps stay separate functions for the benchmark and the tests.
"""

from __future__ import annotations

import shutil
import time
from collections.abc import Callable, Iterator
from contextlib import AbstractContextManager, contextmanager
from dataclasses import dataclass, field
from typing import Any, Literal

from drillbook.backup.errors import BackupCorrupt, RestoreMismatch
from drillbook.backup.manifest import FileProblem, Manifest, check_files
from drillbook.backup.repository import Fetched, Repository, open_repository, work_dir
from drillbook.backup.settings import BackupSettings, load_settings
from drillbook.backup.take import source_dsn
from drillbook.backup.tools import find_tool, run_tool
from drillbook.core import interrupts, pgdata
from drillbook.core.errors import ConfigError
from drillbook.core.inventory import Inventory

ProgressFn = Callable[[str], None]
PhaseFn = Callable[[str], AbstractContextManager[Any]]


@contextmanager
def _no_phase(name: str) -> Iterator[None]:
    yield


# -- choosing -------------------------------------------------------------------------------
def pick_backup(repo: Repository, backup_id: str | None = None) -> Manifest:
    """The manifest of ``backup_id``, or of the newest complete backup.

    Backups still being written (no manifest) are skipped; an unreadable
    manifest is not skipped but raised as :class:`BackupCorrupt`, since it is
    exactly what a restore drill exists to find.
    """
    if backup_id:
        manifest = repo.read_manifest(backup_id)
        if manifest is None:
            known = repo.ids()
            state = "is incomplete (no manifest)" if backup_id in known else "does not exist"
            raise ConfigError(f"backup {backup_id} {state} in {repo.location}")
        return manifest
    for candidate in reversed(repo.ids()):
        manifest = repo.read_manifest(candidate)
        if manifest is not None:
            return manifest
    raise ConfigError(f"no complete backup in {repo.location}: run `inv backup.run` first")


def restore_admin_dsn(inv: Inventory, settings: BackupSettings) -> str:
    """Superuser DSN of the server restores go to: ``backup_restore_dsn``, else the inventory's admin DSN."""
    return settings.restore_dsn or inv.topology.postgres_admin_dsn


def protected_names(inv: Inventory, settings: BackupSettings) -> set[str]:
    """Database names a restore must never create over or drop: the source's."""
    return {pgdata.database_name(source_dsn(inv, settings)), pgdata.database_name(inv.topology.postgres_dsn)}


# -- fetching and integrity -------------------------------------------------------------------
def fetch(
    repo: Repository, manifest: Manifest, settings: BackupSettings, progress: ProgressFn | None = None
) -> Fetched:
    """Make the backup's files local under the work dir; call :meth:`Fetched.cleanup` when done."""
    return repo.fetch(manifest, work_dir(settings), progress=progress)


def integrity_problems(fetched: Fetched, manifest: Manifest, jobs: int) -> list[FileProblem]:
    """Every file of the manifest present with its size and SHA-256, plus the RDB file readable."""
    problems = check_files(fetched.path, manifest.files, jobs=max(2, jobs))
    if manifest.redis and not any(p.path == manifest.redis.file for p in problems):
        checker = shutil.which("redis-check-rdb")
        if checker:
            import subprocess

            res = subprocess.run(
                [checker, str(fetched.path / manifest.redis.file)],
                capture_output=True,
                text=True,
                timeout=300,
            )
            if res.returncode != 0:
                last = [line for line in res.stdout.splitlines() if line.strip()][-1:] or ["invalid"]
                problems.append(FileProblem(manifest.redis.file, f"redis-check-rdb: {last[0]}"))
    return problems


# -- restoring --------------------------------------------------------------------------------
def pg_restore(
    fetched: Fetched,
    manifest: Manifest,
    target_dsn: str,
    *,
    jobs: int,
    no_owner: bool,
    pg_bin_dir: str | None = None,
    timeout_s: float | None = None,
) -> float:
    """``pg_restore -j N`` of the backup's dump into an existing, empty database; returns seconds."""
    with pgdata.connect(target_dsn) as conn:
        server_major = pgdata.server_info(conn).major
    tool = find_tool("pg_restore", max(server_major, manifest.server_version_num // 10000), pg_bin_dir)
    conn_args = pgdata.tool_env(target_dsn)
    argv = [
        str(tool.path),
        f"--dbname={conn_args.conninfo}",
        f"--jobs={jobs}",
        "--exit-on-error",
        str(fetched.path / manifest.dump.directory),
    ]
    if no_owner:
        argv[3:3] = ["--no-owner", "--no-privileges"]
    return run_tool(argv, env=conn_args.env, what="pg_restore", timeout_s=timeout_s)


# -- verifying --------------------------------------------------------------------------------
@dataclass
class TableCheck:
    """One table compared with the manifest; a None count means absent from that side."""

    table: str
    expected_rows: int | None
    rows: int | None
    checksum_ok: bool

    @property
    def ok(self) -> bool:
        """Present on both sides with equal row count and checksum; an extra table is never ok."""
        return self.expected_rows is not None and self.rows == self.expected_rows and self.checksum_ok

    def __str__(self) -> str:
        if self.expected_rows is None:
            return f"{self.table}: not in the backup's manifest"
        if self.rows is None:
            return f"{self.table}: missing from the restored database"
        if self.rows != self.expected_rows:
            return f"{self.table}: {self.rows} rows, manifest says {self.expected_rows}"
        return (
            f"{self.table}: checksum differs from the manifest"
            if not self.checksum_ok
            else f"{self.table}: ok"
        )


@dataclass
class VerifyResult:
    """The per-table comparison of a restored database with its manifest, in table-name order."""

    tables: list[TableCheck] = field(default_factory=list)

    @property
    def mismatches(self) -> list[TableCheck]:
        """Tables that differ, are missing, or exist only in the restored database."""
        return [t for t in self.tables if not t.ok]

    @property
    def tables_verified(self) -> int:
        """Tables that matched row count and checksum."""
        return sum(1 for t in self.tables if t.ok)

    @property
    def rows_verified(self) -> int:
        """Rows in the tables that matched (rows of mismatched tables are not counted)."""
        return sum(t.rows or 0 for t in self.tables if t.ok)

    @property
    def ok(self) -> bool:
        """True when every table matched; an empty backup with an empty database is ok."""
        return not self.mismatches


def verify_tables(dsn: str, manifest: Manifest, jobs: int) -> VerifyResult:
    """Row counts and checksums of every table in the restored database against the manifest."""
    actual = pgdata.fingerprints(dsn, jobs=jobs)
    names = sorted(set(actual) | set(manifest.tables))
    result = VerifyResult()
    for name in names:
        want = manifest.tables.get(name)
        got = actual.get(name)
        result.tables.append(
            TableCheck(
                table=name,
                expected_rows=want.rows if want else None,
                rows=got.rows if got else None,
                checksum_ok=bool(want and got and want.checksum == got.checksum),
            )
        )
    return result


# -- all in one -------------------------------------------------------------------------------
@dataclass
class RestoreResult:
    """A backup restored (and by default verified) into ``database``."""

    backup_id: str
    manifest: Manifest
    database: str
    dsn: str  # superuser DSN of the restored database
    admin_dsn: str  # superuser DSN of its server (to drop it: pgdata.drop_database(admin_dsn, database))
    download_s: float
    integrity_s: float
    restore_s: float
    verify_s: float
    restored_bytes: int
    verify: VerifyResult | None


class RestoreHooks:
    """An observer of one restore, told as each stage starts and ends (no-op methods: override some).

    :func:`restore_into` is the one restore there is: ``backup.restore``, the migration
    rehearsal and the restore drill all run it, so the drill tests exactly what a
    recovery runs. What the drill needs beyond a plain restore it learns through
    this hook rather than through a copy of the steps: the seconds of every stage
    as it ends (so a restore that fails at ``integrity`` still tells how long the
    download took) and which stage was running when something raised.
    """

    def stage_started(self, stage: Stage) -> None:
        """``stage`` begins."""

    def stage_done(self, stage: Stage, seconds: float, detail: str) -> None:
        """``stage`` ended without raising after ``seconds``; ``detail`` says what it did."""


Stage = Literal["download", "integrity", "restore", "verify"]


def restore_into(
    inv: Inventory,
    database: str,
    *,
    backup_id: str | None = None,
    settings: BackupSettings | None = None,
    repository: Repository | None = None,
    admin_dsn: str | None = None,
    replace: bool = False,
    allow_source: bool = False,
    verify: bool = True,
    progress: ProgressFn | None = None,
    phase: PhaseFn | None = None,
    hooks: RestoreHooks | None = None,
    raise_on_mismatch: bool = True,
) -> RestoreResult:
    """Restore a backup (``backup_id``, default the newest) into a new database named ``database``.

    The database is created on the restore server (``admin_dsn``, default
    ``backup_restore_dsn`` or the inventory's admin DSN; a scratch cluster's DSN
    for the drill's ``--scratch cluster``); the source's name is
    refused unless ``allow_source`` (and then an existing database is only
    dropped with ``replace`` too). Files are checked against their SHA-256
    before pg_restore, and with ``verify`` every table's rows and checksum
    after. On any failure, including an interrupt, a database this call
    created is dropped again (a replaced one is left for the operator). Raises :class:`BackupCorrupt`,
    :class:`RestoreMismatch`, ``BackupFailed``, ``RepositoryError``,
    ``ConfigError``.

    ``hooks`` observes the stages (see :class:`RestoreHooks`). With
    ``raise_on_mismatch=False`` a verified restore whose tables differ from the
    manifest is returned (``result.verify.ok`` False, the database kept) instead
    of raising: for the restore drill, which goes on measuring and lets its
    declared checks judge the mismatch.

    Callers inside a drill that keep the database should register its drop
    *before* calling, so Ctrl-C during the restore drops it too (the drop is
    idempotent)::

        admin = restore_admin_dsn(inv, settings)
        run.on_restore("drop rehearsal db", lambda: pgdata.drop_database(admin, "rehearsal"))
        result = restore_into(inv, "rehearsal", admin_dsn=admin, phase=run.phase)
    """
    settings = settings or load_settings(inv)
    repo = repository or open_repository(settings)
    say = progress or (lambda _msg: None)
    watch = hooks or RestoreHooks()
    step = phase or _no_phase
    admin = admin_dsn or restore_admin_dsn(inv, settings)
    protect = set() if allow_source else protected_names(inv, settings)
    pgdata.guard(database, protect)
    jobs = settings.effective_jobs

    took: dict[Stage, float] = {}

    @contextmanager
    def stage(name: Stage) -> Iterator[list[str]]:
        """Time one stage as a phase of the caller's and report it to ``hooks``; yields a detail slot.

        The clock runs inside the caller's phase, so a journal written when the phase ends
        (``run.phase`` saves it) is not counted as restore time.
        """
        watch.stage_started(name)
        detail: list[str] = []
        with step(name):
            t0 = time.monotonic()
            yield detail
            took[name] = time.monotonic() - t0
        watch.stage_done(name, took[name], "; ".join(detail))

    repo.check()
    manifest = pick_backup(repo, backup_id)
    say(f"restoring backup {manifest.id} from {repo.location} into {database}")
    with stage("download") as detail:
        fetched = fetch(repo, manifest, settings, progress=say)
        detail.append(
            f"{fetched.downloaded_bytes / 1e6:.1f} MB" if fetched.temporary else "local, read in place"
        )
    created = False
    try:
        with stage("integrity") as detail:
            problems = integrity_problems(fetched, manifest, jobs)
            detail.append(f"{len(manifest.files)} files, {manifest.total_bytes / 1e6:.1f} MB")
        if problems:  # after the stage: its seconds are reported even for a corrupt backup
            raise BackupCorrupt(
                f"backup {manifest.id}: {len(problems)} bad file(s): " + "; ".join(map(str, problems[:5])),
                [str(p) for p in problems],
            )
        with pgdata.connect(admin) as conn:
            existed = pgdata.database_exists(conn, database)
        if existed and not replace:
            raise ConfigError(f"database {database!r} already exists on {pgdata.describe(admin)}")
        with stage("restore") as detail:
            # from here on a database this call created is dropped on failure; one it replaced is
            # left as it is for the operator (dropping it too would leave nothing at all)
            created = not existed
            pgdata.create_database(admin, database, protect=protect, replace=replace)
            target = pgdata.dsn_for(admin, database)
            say(f"pg_restore -j {jobs} into {database}")
            pg_restore(
                fetched,
                manifest,
                target,
                jobs=jobs,
                no_owner=not pgdata.same_server(admin, source_dsn(inv, settings)),
                pg_bin_dir=settings.pg_bin_dir,
            )
            detail.append(f"pg_restore -j {jobs} into {database}")
        with pgdata.connect(target) as conn:
            restored_bytes = pgdata.database_size(conn)
        result = None
        if verify:
            with stage("verify") as detail:
                result = verify_tables(target, manifest, jobs)
                detail.append(f"{result.tables_verified}/{len(result.tables)} tables match the manifest")
            if not result.ok and raise_on_mismatch:
                raise RestoreMismatch(
                    f"restored {database} differs from backup {manifest.id}: "
                    + "; ".join(map(str, result.mismatches[:5])),
                    [str(m) for m in result.mismatches],
                )
        restore_s = took["restore"]
        say(f"restored {manifest.id} into {database} in {restore_s:.1f}s")
        return RestoreResult(
            backup_id=manifest.id,
            manifest=manifest,
            database=database,
            dsn=target,
            admin_dsn=admin,
            download_s=took["download"],
            integrity_s=took["integrity"],
            restore_s=restore_s,
            verify_s=took.get("verify", 0.0),
            restored_bytes=restored_bytes,
            verify=result,
        )
    except BaseException:
        # never drop the source itself, even one this call re-created: a half-restored source
        # is still more than none, and the operator decides
        if created and database not in protected_names(inv, settings):
            with interrupts.shielded():
                pgdata.drop_database(admin, database, protect=protect)
        raise
    finally:
        fetched.cleanup()
