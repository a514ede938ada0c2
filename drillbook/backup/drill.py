"""``backup.run``: take one backup and prove it sealed (the restore drill is in restore_drill.py).

preflight
    Settings, the repository reachable and writable, the source reachable over a
    read-only session: a backup that cannot start fails here, with nothing written.
act
    :func:`~drillbook.backup.take.take_backup`, the same function ``migrate`` uses
    for its safety backup: dump, fingerprints, Redis, checksums, manifest last.
observe
    The backup's figures from its manifest, and the manifest read back from the
    repository (listed and readable): the witness that the backup exists for
    ``backup.list`` and for a restore, not only for the process that wrote it.
verify
    Declared checks: the manifest readable, at least one table.
"""

from __future__ import annotations

from dataclasses import dataclass

from drillbook.backup.repository import Repository, open_repository
from drillbook.backup.settings import BackupSettings, load_settings
from drillbook.backup.take import Backup, check_source, take_backup
from drillbook.core.checks import Measurements, at_least, is_true, witnessed
from drillbook.core.drill import Drill, DrillRun

RUNBOOK = "runbooks/restore-from-backup.md"


@dataclass(frozen=True)
class BackupPlan:
    """What preflight settled: the settings in force and the repository proven writable."""

    settings: BackupSettings
    repository: Repository


class BackupMeasured(Measurements):
    """One backup's figures; every size and count is the manifest's, read at the dump's snapshot."""

    backup_id: str | None = None
    backup_s: float | None = witnessed("drill clock")
    dump_s: float | None = witnessed("pg_dump process lifetime")
    backup_bytes: int | None = witnessed("manifest files[] sizes")
    db_size_bytes: int | None = witnessed("pg_database_size() at the snapshot")
    dump_mb_per_s: float | None = None
    tables: int | None = None
    rows: int | None = witnessed("count(*) per table at the dump's snapshot")
    wal_lsn_start: str | None = witnessed("pg_current_wal_lsn() at the snapshot")
    redis_keys: int | None = witnessed("INFO keyspace at BGSAVE")
    location: str | None = None
    manifest_readable: bool | None = witnessed("the repository's listing and manifest, read back")
    manifest_detail: str = ""


class BackupRun(Drill[BackupPlan, Backup, BackupMeasured]):
    """Take one backup and journal it (what ``inv backup.run`` runs)."""

    name = "backup.run"
    runbook = RUNBOOK
    measured = BackupMeasured
    checks = (
        is_true("manifest_readable", detail_from="manifest_detail"),
        at_least("tables", limit=1),
    )

    def __init__(self, settings: BackupSettings | None = None, repository: Repository | None = None) -> None:
        super().__init__()
        self.settings = settings
        self.repository = repository

    def preflight(self, run: DrillRun) -> BackupPlan:
        """Check the repository is writable and the source reachable before anything is dumped."""
        settings = self.settings or load_settings(run.inventory)
        repo = self.repository or open_repository(settings)
        repo.check(write=True)
        run.note(f"source {check_source(run.inventory, settings)} (read-only session)")
        run.note(f"repository {repo.location}")
        return BackupPlan(settings, repo)

    def act(self, run: DrillRun, plan: BackupPlan) -> Backup:
        """Take the backup through ``take_backup``; its phases and progress lines go into the journal."""
        return take_backup(
            run.inventory,
            settings=plan.settings,
            repository=plan.repository,
            progress=run.note,
            phase=run.phase,
        )

    def observe(self, run: DrillRun, plan: BackupPlan, acted: Backup) -> BackupMeasured:
        """Figures from the manifest, plus whether the new backup is listed and readable back."""
        b, m = acted, acted.manifest
        listed = any(e == b.id for e in plan.repository.ids())
        readable = plan.repository.read_manifest(b.id) is not None
        return BackupMeasured(
            backup_id=b.id,
            backup_s=round(b.duration_s, 3),
            dump_s=round(b.dump_s, 3),
            backup_bytes=m.total_bytes,
            db_size_bytes=m.db_size_bytes,
            dump_mb_per_s=round(m.db_size_bytes / 1e6 / max(b.dump_s, 1e-6), 1),
            tables=len(m.tables),
            rows=m.rows,
            wal_lsn_start=m.wal_lsn_start,
            redis_keys=m.redis.keys if m.redis else None,
            location=b.location,
            manifest_readable=listed and readable,
            manifest_detail=f"{b.id} in {b.repository.location}"
            + ("" if listed else ": not listed")
            + ("" if readable else ": manifest unreadable"),
        )
