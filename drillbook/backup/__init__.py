"""Backups and timed restore drills.

The public surface (other capabilities import only these names):

* :func:`take_backup` - dump the inventory's database (and Redis) into its repository.
* :func:`restore_into` - restore a backup into a new database, checked file by
  file and table by table; the one restore: ``backup.restore``, the migration
  rehearsal and the restore drill all run it (:class:`RestoreHooks` observes it).
* :class:`BackupRun`, :class:`RestoreTest` - the drills behind ``inv backup.run``
  and ``inv backup.restore-test``.
* :func:`list_backups`, :func:`prune`, :func:`open_repository`, :func:`load_settings`.
"""

from drillbook.backup.drill import BackupRun
from drillbook.backup.errors import BackupCorrupt, BackupFailed, RepositoryError, RestoreMismatch
from drillbook.backup.manifest import Manifest
from drillbook.backup.prune import prune
from drillbook.backup.repository import BackupEntry, Repository, list_backups, open_repository
from drillbook.backup.restore import RestoreHooks, RestoreResult, restore_admin_dsn, restore_into
from drillbook.backup.restore_drill import RestoreTest
from drillbook.backup.settings import BackupSettings, load_settings
from drillbook.backup.take import Backup, take_backup

__all__ = [
    "Backup",
    "BackupCorrupt",
    "BackupEntry",
    "BackupFailed",
    "BackupRun",
    "BackupSettings",
    "Manifest",
    "Repository",
    "RepositoryError",
    "RestoreHooks",
    "RestoreMismatch",
    "RestoreResult",
    "RestoreTest",
    "list_backups",
    "load_settings",
    "open_repository",
    "prune",
    "restore_admin_dsn",
    "restore_into",
    "take_backup",
]
