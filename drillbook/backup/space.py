"""Free disk space where a restore will write, checked before the restore drill acts.

A restore drill that fills the restore server's disk halfway through would
take the service down with it; checking first turns that into a refusal
(``error``, nothing changed). Only what can be known from the control machine
is checked; what cannot is said in the journal.
"""

from __future__ import annotations

import shutil
from dataclasses import dataclass
from pathlib import Path

from drillbook.backup.manifest import Manifest
from drillbook.backup.repository import Repository, work_dir
from drillbook.backup.settings import BackupSettings
from drillbook.core import pgdata


@dataclass(frozen=True)
class SpaceCheck:
    """Free space for one need (download, database, scratch cluster) on the filesystem holding ``path``."""

    what: str
    path: str
    need_bytes: int
    free_bytes: int

    @property
    def ok(self) -> bool:
        """True when free bytes cover the need (the need already includes headroom)."""
        return self.free_bytes >= self.need_bytes

    def __str__(self) -> str:
        return (
            f"{self.what} at {self.path}: need {self.need_bytes / 1e6:.0f} MB, "
            f"free {self.free_bytes / 1e6:.0f} MB"
        )


def _free(path: Path) -> tuple[Path, int]:
    probe = path
    while not probe.exists() and probe != probe.parent:
        probe = probe.parent
    return probe, shutil.disk_usage(probe).free


def space_checks(
    manifest: Manifest, repo: Repository, settings: BackupSettings, admin_dsn: str | None
) -> tuple[list[SpaceCheck], list[str]]:
    """Free space where the restore will write, when it can be known from here.

    The download needs the backup's size on the control machine (S3 only); the
    database needs about the source's size where the restore server keeps its
    data, which is known when that server runs on this machine (``admin_dsn``
    None: a scratch cluster in the work directory). Returns the
    checks made and the ones that could not be made (for the journal).
    """
    checks: list[SpaceCheck] = []
    unknown: list[str] = []
    head = settings.disk_headroom
    if repo.kind != "local":
        where, free = _free(work_dir(settings))
        checks.append(SpaceCheck("download", str(where), int(manifest.total_bytes * head), free))
    if admin_dsn is None:  # a scratch cluster in the work directory
        where, free = _free(work_dir(settings))
        need = manifest.db_size_bytes + (manifest.total_bytes if repo.kind != "local" else 0)
        checks[:] = [SpaceCheck("scratch cluster + download", str(where), int(need * head), free)]
        return checks, unknown
    params = pgdata.dsn_params(admin_dsn)
    host = str(params.get("host") or "localhost")
    if host in ("127.0.0.1", "localhost", "::1") or host.startswith("/"):
        with pgdata.connect(admin_dsn) as conn:
            data_dir = pgdata.data_directory(conn)
        if data_dir and Path(data_dir).exists():
            where, free = _free(Path(data_dir))
            checks.append(SpaceCheck("database", str(where), int(manifest.db_size_bytes * head), free))
        else:
            unknown.append(f"database: data directory of {pgdata.describe(admin_dsn)} not visible here")
    else:
        unknown.append(f"database: {host} is remote, its free space is not known from here")
    return checks, unknown
