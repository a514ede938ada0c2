"""Database migrations with a safety net: status, rehearsal on a copy, upgrade and rollback.

The public surface (the task layer and the demo import only these names):

* :func:`load_settings` - the inventory's ``migrate_*`` variables, validated.
* :func:`migration_status` - current revision, head(s), pending revisions and their downgrades.
* :class:`Rehearse` - ``migrate.rehearse``: up, back down and up again on a scratch copy,
  comparing schema and data.
* :class:`Up`, :class:`Rollback` - ``migrate.up`` / ``migrate.rollback``: change the real
  database with a pre-migration backup, post-migration checks and automatic undo.
"""

from __future__ import annotations

from typing import Any

from drillbook.core import settings as core_settings
from drillbook.core.inventory import Inventory
from drillbook.migrate.rehearse import Rehearse
from drillbook.migrate.settings import MigrateSettings
from drillbook.migrate.status import MigrationStatus, status
from drillbook.migrate.target import Migrations
from drillbook.migrate.up import Rollback, Up

__all__ = [
    "MigrateSettings",
    "MigrationStatus",
    "Migrations",
    "Rehearse",
    "Rollback",
    "Up",
    "load_settings",
    "migration_status",
]


def load_settings(inv: Inventory, **overrides: Any) -> MigrateSettings:
    """``migrate_*`` from the inventory, then ``overrides`` (e.g. ``env={...}``), validated together.

    Through core's one loader: a bad variable or override is one ConfigError line naming
    ``migrate_<field>``, and an override naming no setting is refused.
    """
    return core_settings.load_settings(inv, MigrateSettings, "migrate_", overrides)


def migration_status(
    inv: Inventory, *, ini: str | None = None, database: str | None = None
) -> MigrationStatus:
    """Read-only status of the inventory's database (or ``database`` on the same server)."""
    migrations = Migrations(inv, load_settings(inv), ini=ini)
    db = migrations.source.copy_named(database) if database else None
    return status(migrations, db)
