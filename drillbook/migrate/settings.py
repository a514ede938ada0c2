"""What the inventory says about migrations: the command, where it runs, the checks, the limits.

Every field is a ``migrate_<field>`` variable in the inventory's group_vars
(documented in ``inventory/lab/group_vars/all/migrate.yml``), validated once so a
wrong value is one :class:`~drillbook.core.errors.ConfigError` line before
anything touches the database.
"""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, Field, field_validator


class SmokeRequest(BaseModel):
    """One HTTP request sent to every app instance after a migration; read-only by design.

    A smoke request that writes would change the very rows whose checksums prove
    a rollback kept the data intact, so ``GET``/``HEAD`` are the only methods.
    """

    name: str
    path: str
    method: Literal["GET", "HEAD"] = "GET"
    expect_status: list[int] = Field(default_factory=lambda: [200])
    timeout_s: float = Field(default=2.0, gt=0)

    @field_validator("path")
    @classmethod
    def _absolute(cls, value: str) -> str:
        if not value.startswith("/"):
            raise ValueError("must start with /")
        return value


class SqlAssertion(BaseModel):
    """A query whose first column of its first row must be true (``SELECT count(*) > 0 FROM items``)."""

    name: str
    sql: str


class MigrateSettings(BaseModel):
    """``migrate_*`` variables; unset ones keep these defaults."""

    #: The migration tool, without its verb; ``upgrade REV``, ``downgrade REV``,
    #: ``history --verbose`` and ``heads`` are appended. Alembic by default.
    cmd: str = "alembic -c {ini}"
    #: The release's alembic.ini, substituted for ``{ini}`` in ``cmd``.
    alembic_ini: str = "alembic.ini"
    #: Working directory of the command (default: the directory of ``alembic_ini``).
    workdir: str | None = None
    #: ``control``: run on this machine; ``host``: on ``host`` through Ansible.
    run_on: Literal["control", "host"] = "control"
    #: Host pattern whose first host runs the command when ``run_on: host``.
    host: str = "app"
    #: Environment variable through which the command receives the database URL.
    dsn_env: str = "DATABASE_URL"
    #: The database URL as the command's machine sees it (default: the inventory's postgres_dsn).
    dsn: str | None = None
    #: Extra environment for the command (e.g. ``REFSVC_MIGRATION_SET``).
    env: dict[str, str] = Field(default_factory=dict)
    #: Alembic's version table, read directly to know the current revision.
    version_table: str = "alembic_version"
    #: A migration command running longer than this is stopped and counts as failed.
    timeout_s: float = Field(default=900.0, gt=0)

    #: Post-migration checks: readiness of every app instance within this time ...
    ready_timeout_s: float = Field(default=15.0, gt=0)
    #: ... these read-only requests against every instance ...
    smoke_requests: list[SmokeRequest] = Field(default_factory=list)
    #: ... and these SQL assertions against the migrated database (also run by rehearse).
    sql_assertions: list[SqlAssertion] = Field(default_factory=list)

    #: Tables the running service writes continuously (heartbeats): left out of the
    #: data comparison of up/rollback, where the service keeps writing.
    volatile_tables: list[str] = Field(default_factory=list)
    #: Take a pre-migration backup before up/rollback (refused off in production).
    backup_before: bool = True

    #: Lock measurement: sample pg_locks from a side connection this often ...
    lock_sample_interval_s: float = Field(default=0.02, gt=0)
    #: ... and fail a step that holds a lock which blocks writers longer than this (null: report only).
    max_lock_s: float | None = Field(default=None, gt=0)

    #: Rehearsal copy: ``auto`` (newest backup, else a fresh pg_dump), ``backup`` or ``dump``.
    rehearse_source: Literal["auto", "backup", "dump"] = "auto"
    #: Scratch databases are named ``<prefix>_<utc stamp>`` and dropped afterwards.
    scratch_prefix: str = "drillbook_rehearse"
    #: Directory of pg_dump/pg_restore on the control machine (empty: from PATH).
    pg_bin_dir: str = ""
