"""Backup failures, placed in core's hierarchy so the task layer maps them to exit codes.

::

    TargetUnreachable
     └── RepositoryError        exit 2  repository unreachable, bucket missing, access denied
    DrillbookError
     └── BackupFailed           exit 2  pg_dump, pg_restore or a Redis snapshot failed
    CheckFailed
     ├── BackupCorrupt          exit 1  manifest unreadable, file missing or checksum wrong
     └── RestoreMismatch        exit 1  restored data differs from the manifest
"""

from __future__ import annotations

from drillbook.core.errors import CheckFailed, DrillbookError, TargetUnreachable


class RepositoryError(TargetUnreachable):
    """The backup repository cannot be used: unreachable, missing, or credentials refused."""


class BackupFailed(DrillbookError):
    """A tool (pg_dump, pg_restore, BGSAVE, fetch) failed; the message carries its own words."""


class BackupCorrupt(CheckFailed):
    """A backup is not what its manifest says; ``problems`` names each bad file."""

    def __init__(self, message: str, problems: list[str] | None = None) -> None:
        super().__init__(message)
        self.problems = problems or [message]


class RestoreMismatch(CheckFailed):
    """Restored tables differ from the manifest (row counts or checksums)."""

    def __init__(self, message: str, mismatches: list[str]) -> None:
        super().__init__(message)
        self.mismatches = mismatches
