"""Backup repositories: a local directory or an S3 bucket, with the same contract.

Layout (a directory, or keys under ``<prefix>/`` in a bucket)::

    <id>/pg/...             pg_dump -Fd output (toc.dat, one file per table)
    <id>/redis/dump.rdb     Redis snapshot, when the inventory has a cache group
    <id>/manifest.json      written last: its presence makes the backup exist
    verified/<id>.json      the last restore drill of that backup (verdict, time, figures)

Immutability: data files first, then the manifest in one atomic step (a rename
on disk, a single PUT on S3). Listings only show ids with a manifest, so a
backup interrupted half-way never appears, and deletion removes the manifest
first for the same reason. Ids are UTC timestamps, so they sort by age.

S3 goes through boto3's normal code path: the client honours ``endpoint_url``
(any S3 API), region, server-side encryption and storage class from the
inventory; credentials come only from the AWS chain; files travel through
boto3's transfer manager (multipart above the threshold, parallel across
files). Unreachable endpoints, missing buckets and refused credentials become
one :class:`RepositoryError` line.
"""

from __future__ import annotations

import json
import re
import shutil
import tempfile
from abc import ABC, abstractmethod
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from pydantic import BaseModel, ValidationError

from drillbook.backup.errors import BackupCorrupt, RepositoryError
from drillbook.backup.manifest import MANIFEST, Manifest, fsync_tree
from drillbook.backup.settings import BackupSettings
from drillbook.core.errors import ConfigError
from drillbook.core.journal import utc_stamp, write_atomic

ID_RE = re.compile(r"^\d{8}T\d{6}Z(-\d+)?$")
VERIFIED = "verified"
Progress = Callable[[str], None]


class VerificationRecord(BaseModel):
    """The outcome of the last restore drill of one backup."""

    backup_id: str
    drill_at: str
    verdict: str
    verified_at: str | None  # drill_at when the drill passed, else None
    total_s: float | None = None
    rpo_s: float | None = None
    report_dir: str | None = None


@dataclass
class Fetched:
    """A backup made available as local files for pg_restore and the integrity check."""

    path: Path
    downloaded_bytes: int
    temporary: bool  # True when the files were copied and must be removed afterwards

    def cleanup(self) -> None:
        """Remove downloaded copies; a no-op for a local repository, whose files are the originals."""
        if self.temporary:
            shutil.rmtree(self.path, ignore_errors=True)


class Repository(ABC):
    """The contract shared by the local and S3 stores; listings, prune and drills use only this.

    A backup exists once its manifest does: :meth:`commit` writes it last,
    :meth:`delete` removes it first.
    """

    kind: str = "?"

    @property
    @abstractmethod
    def location(self) -> str:
        """Where, for messages: a path or an s3:// URL."""

    @abstractmethod
    def check(self, *, write: bool = False) -> None:
        """Raise :class:`RepositoryError` unless the repository can be read (and written)."""

    @abstractmethod
    def ids(self) -> list[str]:
        """Every backup id present, complete or not, oldest first."""

    @abstractmethod
    def read_manifest(self, backup_id: str) -> Manifest | None:
        """The manifest, None while the backup is incomplete; :class:`BackupCorrupt` if unreadable."""

    @abstractmethod
    def staging_dir(self, backup_id: str) -> Path:
        """Where a new backup's files are written before :meth:`commit`."""

    @abstractmethod
    def commit(self, manifest: Manifest, staging: Path, progress: Progress | None = None) -> None:
        """Store the files listed in the manifest, then the manifest itself, last and atomically."""

    @abstractmethod
    def abort(self, backup_id: str, staging: Path) -> None:
        """Remove whatever a failed or interrupted backup left behind."""

    @abstractmethod
    def fetch(self, manifest: Manifest, dest_root: Path, progress: Progress | None = None) -> Fetched:
        """Make the backup's files available locally (missing files are left for the integrity check)."""

    @abstractmethod
    def delete(self, backup_id: str) -> None:
        """Delete a backup: manifest first, so a half-deleted backup is simply incomplete."""

    @abstractmethod
    def _read_record(self, backup_id: str) -> bytes | None: ...

    @abstractmethod
    def _write_record(self, backup_id: str, data: bytes) -> None: ...

    @abstractmethod
    def _delete_record(self, backup_id: str) -> None: ...

    # -- shared ----------------------------------------------------------------
    def new_id(self, at: datetime | None = None) -> str:
        """A fresh, sortable id: the UTC time, with a suffix if that second is taken."""
        base = utc_stamp(at or datetime.now(UTC))
        taken = set(self.ids())
        candidate, n = base, 1
        while candidate in taken:
            n += 1
            candidate = f"{base}-{n}"
        return candidate

    def record(self, backup_id: str) -> VerificationRecord | None:
        """The last restore drill of this backup; None if never drilled or if the record is not valid."""
        data = self._read_record(backup_id)
        if data is None:
            return None
        try:
            return VerificationRecord.model_validate_json(data)
        except ValidationError:
            return None

    def write_record(self, record: VerificationRecord) -> None:
        """Replace the backup's drill record (only the latest drill is kept)."""
        self._write_record(record.backup_id, record.model_dump_json(indent=2).encode() + b"\n")


# -- local -------------------------------------------------------------------------------
class LocalRepository(Repository):
    """A directory on the control machine (the lab default; also NFS or a mounted volume)."""

    kind = "local"

    def __init__(self, root: Path) -> None:
        self.root = root

    @property
    def location(self) -> str:
        """The directory path, as given (not resolved)."""
        return str(self.root)

    def check(self, *, write: bool = False) -> None:
        """Without ``write``, existence only; with it, create the directory and write a probe file."""
        if write:
            try:
                self.root.mkdir(parents=True, exist_ok=True)
                with tempfile.NamedTemporaryFile(dir=self.root, prefix=".probe-"):
                    pass
            except OSError as exc:
                raise RepositoryError(f"backup repository {self.root} is not writable: {exc}") from exc
        elif not self.root.is_dir():
            raise RepositoryError(f"backup repository {self.root} does not exist (no backup taken yet?)")

    def ids(self) -> list[str]:
        """Directory names shaped like ids, manifest or not; an absent root is an empty repository."""
        if not self.root.is_dir():
            return []
        return sorted(p.name for p in self.root.iterdir() if p.is_dir() and ID_RE.match(p.name))

    def read_manifest(self, backup_id: str) -> Manifest | None:
        """None when ``manifest.json`` is absent; :class:`RepositoryError` if it cannot be read."""
        path = self.root / backup_id / MANIFEST
        try:
            data = path.read_bytes()
        except FileNotFoundError:
            return None
        except OSError as exc:
            raise RepositoryError(f"cannot read {path}: {exc}") from exc
        return Manifest.from_json(data, where=f"{backup_id}/{MANIFEST}")

    def staging_dir(self, backup_id: str) -> Path:
        """The backup's final directory: files land in place, the manifest rename makes them visible."""
        path = self.root / backup_id
        path.mkdir(parents=True, exist_ok=False)
        return path

    def commit(self, manifest: Manifest, staging: Path, progress: Progress | None = None) -> None:
        """fsync the data, then rename the manifest in: a crash never leaves a manifest without data."""
        fsync_tree(staging)
        write_atomic(staging / MANIFEST, manifest.to_json())

    def abort(self, backup_id: str, staging: Path) -> None:
        """Manifest first, then the tree; pieces already gone are not an error."""
        (self.root / backup_id / MANIFEST).unlink(missing_ok=True)
        shutil.rmtree(self.root / backup_id, ignore_errors=True)

    def fetch(self, manifest: Manifest, dest_root: Path, progress: Progress | None = None) -> Fetched:
        """No copy: the backup's own directory, marked not temporary so cleanup never deletes it."""
        return Fetched(path=self.root / manifest.id, downloaded_bytes=0, temporary=False)

    def delete(self, backup_id: str) -> None:
        """Manifest first, then files, then the drill record; missing pieces are not an error."""
        (self.root / backup_id / MANIFEST).unlink(missing_ok=True)
        shutil.rmtree(self.root / backup_id, ignore_errors=True)
        self._delete_record(backup_id)

    def _record_path(self, backup_id: str) -> Path:
        return self.root / VERIFIED / f"{backup_id}.json"

    def _read_record(self, backup_id: str) -> bytes | None:
        try:
            return self._record_path(backup_id).read_bytes()
        except FileNotFoundError:
            return None

    def _write_record(self, backup_id: str, data: bytes) -> None:
        write_atomic(self._record_path(backup_id), data.decode())

    def _delete_record(self, backup_id: str) -> None:
        self._record_path(backup_id).unlink(missing_ok=True)


# -- opening and listing -------------------------------------------------------------------
def work_dir(settings: BackupSettings) -> Path:
    """Scratch space on the control machine for staging uploads and downloads."""
    return Path(settings.work_dir) if settings.work_dir else Path(tempfile.gettempdir()) / "drillbook-backup"


def open_repository(settings: BackupSettings) -> Repository:
    """The repository the settings name; :class:`ConfigError` when the local path or bucket is unset."""
    if settings.repository == "s3":
        from drillbook.backup.s3_repository import S3Repository  # it builds on this module

        return S3Repository(settings, work_dir(settings))
    if not settings.local_path:
        raise ConfigError("backup_repository is local but backup_local_path is not set")
    return LocalRepository(Path(settings.local_path).expanduser())


@dataclass
class BackupEntry:
    """One backup as a listing shows it."""

    id: str
    manifest: Manifest | None
    problem: str | None  # why the manifest cannot be read
    record: VerificationRecord | None

    @property
    def complete(self) -> bool:
        """True once a manifest exists, even an unreadable one: prune never treats it as interrupted."""
        return self.manifest is not None or self.problem is not None

    @property
    def verified_at(self) -> str | None:
        """When the last passing restore drill ran; None if none passed or none was recorded."""
        return self.record.verified_at if self.record else None

    def to_dict(self) -> dict[str, Any]:
        """A ``backup.list --json`` row; manifest fields are None when it is missing or corrupt."""
        m = self.manifest
        return {
            "id": self.id,
            "started_at": m.started_at if m else None,
            "finished_at": m.finished_at if m else None,
            "bytes": m.total_bytes if m else None,
            "db_size_bytes": m.db_size_bytes if m else None,
            "tables": len(m.tables) if m else None,
            "rows": m.rows if m else None,
            "redis": (m.redis is not None) if m else None,
            "verified_at": self.verified_at,
            "last_drill": self.record.model_dump() if self.record else None,
            "problem": self.problem,
        }


def list_backups(repo: Repository, *, include_incomplete: bool = False) -> list[BackupEntry]:
    """Backups oldest first; incomplete ones (no manifest yet) only when asked for."""
    entries = []
    for backup_id in repo.ids():
        problem = None
        try:
            manifest = repo.read_manifest(backup_id)
        except BackupCorrupt as exc:
            manifest, problem = None, str(exc)
        if manifest is None and problem is None and not include_incomplete:
            continue
        entries.append(BackupEntry(backup_id, manifest, problem, repo.record(backup_id)))
    return entries


def dump_json(entries: list[BackupEntry]) -> str:
    """The listing for ``backup.list --json``: a JSON array of :meth:`BackupEntry.to_dict`, oldest first."""
    return json.dumps([e.to_dict() for e in entries], indent=2)
