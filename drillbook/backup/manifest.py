"""The manifest: what a backup holds, written last, so its presence means "complete".

A backup directory is a ``pg_dump -Fd`` dump under ``pg/``, an optional Redis
RDB file under ``redis/``, and ``manifest.json``. The manifest records the
source (server version, database size, WAL position and time at the start),
each table's row count and SQL checksum at the dump's snapshot, and the size
and SHA-256 of every file. It also carries a digest of its own content, so an
edited or truncated manifest is caught as surely as a corrupted data file.
"""

from __future__ import annotations

import hashlib
import json
import os
from collections.abc import Iterable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any

from pydantic import BaseModel, ConfigDict, ValidationError

from drillbook.backup.errors import BackupCorrupt

MANIFEST = "manifest.json"
FORMAT = 1


class FileEntry(BaseModel):
    """One file of the backup, relative to the backup's root."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    path: str
    size: int
    sha256: str


class TableEntry(BaseModel):
    """One table at the dump's snapshot: row count and the SQL checksum named by ``checksum_method``."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    rows: int
    checksum: str


class RedisEntry(BaseModel):
    """The Redis snapshot: which file, when Redis saved it, how many keys it had."""

    model_config = ConfigDict(extra="forbid")

    file: str
    saved_at: str
    keys: int
    redis_version: str
    host: str


class DumpEntry(BaseModel):
    """How ``pg_dump`` ran: version, format, parallel jobs, compression level, seconds taken."""

    model_config = ConfigDict(extra="forbid")

    tool: str  # "pg_dump (PostgreSQL) 15.18"
    format: str = "directory"
    directory: str = "pg"
    jobs: int
    compression: int
    duration_s: float


class Manifest(BaseModel):
    """Everything needed to trust a backup without the source: written last, sealed by its own digest.

    Times are ISO 8601 UTC strings; ``source`` never contains a password.
    """

    model_config = ConfigDict(extra="forbid")

    format: int = FORMAT
    id: str
    database: str
    source: str  # user@host:port/db, never a password
    inventory: str
    environment: str
    server_version: str
    server_version_num: int
    db_size_bytes: int
    started_at: str
    finished_at: str
    wal_lsn_start: str
    dump: DumpEntry
    checksum_method: str
    tables: dict[str, TableEntry]
    files: list[FileEntry]
    redis: RedisEntry | None = None
    digest: str = ""

    # -- derived -------------------------------------------------------------
    @property
    def total_bytes(self) -> int:
        """Bytes of all data files (the manifest itself excluded)."""
        return sum(f.size for f in self.files)

    @property
    def rows(self) -> int:
        """Rows across all tables, as counted at the dump's snapshot."""
        return sum(t.rows for t in self.tables.values())

    @property
    def started(self) -> datetime:
        """``started_at`` as an aware UTC datetime."""
        return parse_time(self.started_at)

    @property
    def finished(self) -> datetime:
        """``finished_at`` as an aware UTC datetime."""
        return parse_time(self.finished_at)

    def file(self, path: str) -> FileEntry | None:
        """The entry for a path relative to the backup root; None if the backup does not list it."""
        return next((f for f in self.files if f.path == path), None)

    # -- serialisation ---------------------------------------------------------
    def _content_digest(self) -> str:
        body = self.model_dump(mode="json", exclude={"digest"})
        return hashlib.sha256(json.dumps(body, sort_keys=True).encode()).hexdigest()

    def to_json(self) -> str:
        """The manifest with a fresh digest; call it only after every other field is final."""
        sealed = self.model_copy(update={"digest": self._content_digest()})
        return sealed.model_dump_json(indent=2) + "\n"

    @classmethod
    def from_json(cls, text: str | bytes, where: str = MANIFEST) -> Manifest:
        """Parse and check the self-digest; any defect is :class:`BackupCorrupt` naming ``where``."""
        try:
            manifest = cls.model_validate_json(text)
        except ValidationError as exc:
            first = exc.errors()[0]
            if first["type"] == "json_invalid":
                reason = f"not valid JSON (truncated?): {first['msg']}"
            else:
                loc = ".".join(str(p) for p in first["loc"])
                reason = f"{loc}: {first['msg']}"
            raise BackupCorrupt(f"{where}: {reason}") from None
        if manifest.format != FORMAT:
            raise BackupCorrupt(f"{where}: format {manifest.format} is not supported (expected {FORMAT})")
        if manifest.digest != manifest._content_digest():
            raise BackupCorrupt(f"{where}: content does not match its digest (edited or damaged)")
        return manifest


def parse_time(text: str) -> datetime:
    """Parse a manifest time (ISO 8601, ``Z`` or ``+00:00``) into an aware datetime."""
    return datetime.fromisoformat(text.replace("Z", "+00:00"))


# -- files -----------------------------------------------------------------------------
def sha256_file(path: Path) -> str:
    """Hex SHA-256 of a file, streamed (constant memory for multi-GB dump files)."""
    with path.open("rb") as fh:
        return hashlib.file_digest(fh, "sha256").hexdigest()


def describe_files(root: Path, jobs: int = 4) -> list[FileEntry]:
    """Size and SHA-256 of every file under ``root`` (hashed in parallel; hashlib releases the GIL)."""
    paths = sorted(p for p in root.rglob("*") if p.is_file() and p.name != MANIFEST)
    with ThreadPoolExecutor(max_workers=max(1, jobs), thread_name_prefix="sha256") as pool:
        digests = list(pool.map(sha256_file, paths))
    return [
        FileEntry(path=p.relative_to(root).as_posix(), size=p.stat().st_size, sha256=d)
        for p, d in zip(paths, digests, strict=True)
    ]


@dataclass(frozen=True)
class FileProblem:
    """One file that fails the integrity check; ``str()`` is the line shown to the user."""

    path: str
    reason: str

    def __str__(self) -> str:
        return f"{self.path}: {self.reason}"


def check_files(root: Path, files: Iterable[FileEntry], jobs: int = 4) -> list[FileProblem]:
    """Every file present, of the recorded size and SHA-256; one problem per bad file.

    The size is checked first (cheap, and it names truncation for what it is).
    """

    def one(entry: FileEntry) -> FileProblem | None:
        path = root / entry.path
        try:
            size = path.stat().st_size
        except FileNotFoundError:
            return FileProblem(entry.path, "missing")
        if size != entry.size:
            return FileProblem(entry.path, f"size {size} bytes, manifest says {entry.size} (truncated?)")
        digest = sha256_file(path)
        if digest != entry.sha256:
            return FileProblem(entry.path, f"sha256 {digest[:12]}..., manifest says {entry.sha256[:12]}...")
        return None

    with ThreadPoolExecutor(max_workers=max(1, jobs), thread_name_prefix="sha256") as pool:
        return [p for p in pool.map(one, list(files)) if p is not None]


def fsync_tree(root: Path) -> None:
    """Flush a tree's directories to disk so the manifest never lands before the data it describes."""
    for directory in [root, *(p for p in root.rglob("*") if p.is_dir())]:
        fd = os.open(directory, os.O_RDONLY)
        try:
            os.fsync(fd)
        finally:
            os.close(fd)


def summary(manifest: Manifest) -> dict[str, Any]:
    """A few figures for listings and journals."""
    return {
        "id": manifest.id,
        "started_at": manifest.started_at,
        "bytes": manifest.total_bytes,
        "db_size_bytes": manifest.db_size_bytes,
        "tables": len(manifest.tables),
        "rows": manifest.rows,
        "redis": manifest.redis is not None,
    }
