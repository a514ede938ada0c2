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
    """A query whose first column of its first row must be true (``SELECT count(*) > 0 FROM orders``)."""

    name: str
    sql: str


class MigrateSettings(BaseModel):
    """``migrate_*`` variables; unset ones keep these defaults."""

    #: The migration tool, without its verb; ``upgrade REV``, ``downgrade REV``,
    #: ``history --verbose`` and ``current`` are appended. Alembic by default. Argv items
    #: may hold the connection placeholders ``{dsn}`` (without its password), ``{host}``,
    #: ``{port}``, ``{database}``, ``{user}`` (never ``{password}``: argv is public).
    cmd: str = "alembic -c {ini}"
    #: The release's alembic.ini, substituted for ``{ini}`` in ``cmd``.
    alembic_ini: str = "alembic.ini"
    #: Working directory of the command (default: the directory of ``alembic_ini``).
    workdir: str | None = None
    #: ``control``: run on this machine; ``host``: on ``host`` through Ansible.
    run_on: Literal["control", "host"] = "control"
    #: Host pattern whose first host runs the command when ``run_on: host``.
    host: str = "app"
    #: Shorthand for ``env: {<dsn_env>: "{dsn}"}``: the variable through which the command
    #: receives the database URL (null: none; then ``cmd`` or ``env`` must use a placeholder).
    dsn_env: str | None = "DATABASE_URL"
    #: The database URL as the command's machine sees it (default: the inventory's postgres_dsn).
    dsn: str | None = None
    #: Environment of the command: variable -> template. Templates may use every connection
    #: placeholder, ``{password}`` included, so a service whose env.py reads its own settings
    #: (``APP_DB_HOST``, ``APP_DB_NAME``, ...) gets the database drillbook names.
    env: dict[str, str] = Field(default_factory=dict)
    #: The read-only call that prints the revision of the database the command talks to;
    #: drillbook runs it before anything writes to prove which database that is.
    current_args: list[str] = Field(default_factory=lambda: ["current"], min_length=1)
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
