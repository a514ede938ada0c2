"""``backup_*`` inventory variables as one validated model.

Every field ``x`` is read from the inventory variable ``backup_x`` (see
``inventory/lab/group_vars/all/backup.yml`` for the documented list); a wrong
value fails at load time as one ConfigError line naming the variable.
Credentials are deliberately absent: S3 access comes from the usual AWS chain
(environment, shared config/credentials files, instance or task role).
"""

from __future__ import annotations

import os
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator

from drillbook.core import settings as core_settings
from drillbook.core.inventory import Inventory


class VerifyQuery(BaseModel):
    """A SQL assertion run in the restored database: one value, compared with ``expect``."""

    model_config = ConfigDict(extra="forbid")

    name: str
    sql: str
    expect: Any = True


class BackupSettings(BaseModel):
    """Every ``backup_*`` variable: where backups go, how to dump, what a restore drill checks.

    Unknown ``backup_*`` names are rejected (``extra="forbid"``), so a typo fails
    at load time instead of silently using a default.
    """

    model_config = ConfigDict(extra="forbid")

    # -- where backups go ------------------------------------------------------
    repository: Literal["local", "s3"] = "local"
    local_path: str | None = None
    s3_bucket: str | None = None
    s3_prefix: str = "drillbook"
    s3_region: str | None = None
    s3_endpoint_url: str | None = None
    s3_sse: Literal["AES256", "aws:kms"] | None = None
    s3_kms_key_id: str | None = None
    s3_storage_class: str | None = None
    s3_multipart_threshold_mb: int = Field(default=64, ge=5)
    s3_multipart_chunk_mb: int = Field(default=64, ge=5)
    s3_max_concurrency: int = Field(default=8, ge=1)
    work_dir: str | None = None

    # -- what and how to dump --------------------------------------------------
    source_dsn: str | None = None
    restore_dsn: str | None = None
    jobs: int | None = Field(default=None, ge=1)
    compression: int = Field(default=1, ge=0, le=9)
    pg_bin_dir: str | None = None
    redis: bool = True
    redis_timeout_s: float = Field(default=300, gt=0)

    # -- restore drill ---------------------------------------------------------
    rto_s: float = Field(default=900, gt=0)
    rpo_target_s: float | None = Field(default=None, gt=0)
    max_age_s: float | None = Field(default=None, gt=0)
    # None: the newest beat of drillbook's own heartbeat (core/heartbeat.py) in the restored data
    rpo_query: str | None = None
    verify_queries: list[VerifyQuery] = Field(default_factory=list)
    scratch_prefix: str = Field(default="drillbook_restore", pattern=r"^[a-z_][a-z0-9_]{0,30}$")
    scratch_cluster_user: str = "postgres"
    disk_headroom: float = Field(default=1.2, ge=1.0)
    boot_app_timeout_s: float = Field(default=60, gt=0)

    # -- retention -------------------------------------------------------------
    keep_last: int = Field(default=7, ge=1)
    keep_daily: int = Field(default=7, ge=0)
    incomplete_grace_s: float = Field(default=86400, ge=0)

    @field_validator("verify_queries", mode="before")
    @classmethod
    def _none_is_empty(cls, value: Any) -> Any:
        return [] if value is None else value

    @property
    def effective_jobs(self) -> int:
        """``jobs`` or the control machine's core count."""
        return self.jobs or os.cpu_count() or 1


#: Settings whose documented ``null`` means "off". ``Inventory.settings`` keeps a
#: model default for a variable set to null, so a variable listed here and set to
#: null is passed as None explicitly. Empty today: ``backup_rpo_query: null`` (like
#: unset) means "drillbook's heartbeat", which is also the default.
NULL_MEANS_OFF: tuple[str, ...] = ()
_UNSET = object()


def load_settings(inv: Inventory, **overrides: Any) -> BackupSettings:
    """The inventory's ``backup_*`` variables, with ``overrides`` (tests, command-line options) on top.

    Through core's one loader, so a bad value is one ConfigError line naming ``backup_<field>``;
    an override of ``None`` is kept (``rpo_query=None``: the RPO from drillbook's heartbeat).
    A variable of :data:`NULL_MEANS_OFF` set to null in the inventory switches it off the same way.
    """
    off = {f: None for f in NULL_MEANS_OFF if inv.var(f"backup_{f}", _UNSET) is None}
    return core_settings.load_settings(inv, BackupSettings, "backup_", {**off, **overrides})
