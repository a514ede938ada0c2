"""What the migration drills measure, as the records their declared checks read.

``migrate.rehearse`` returns :class:`RehearseMeasured`; ``migrate.up`` and
``migrate.rollback`` return :class:`ChangeMeasured`. Core's verify compares them
with the drills' ``checks`` (core/checks.py): nothing in migrate decides a verdict
by itself. Lists of :class:`~drillbook.core.checks.Outcome` (post-migration
checks, round-trip differences, the undo's checks) become one journal check per
item through ``each_ok``; they are left out of the journal's measurements
(``exclude=True``), where the checks already carry them.

Limits come from settings fields: ``migrate_max_lock_s`` for the longest lock,
and, for a rehearsal, :class:`RehearseLimits` adds ``roundtrip_max_differences``
(0 when the way back is rehearsed, ``None`` when it is not: irreversible revisions
rehearsed with ``--allow-irreversible``, or nothing to rehearse), so a round trip
that was never run is not judged as if it had been.
"""

from __future__ import annotations

from pydantic import BaseModel, Field

from drillbook.core import pgdata
from drillbook.core.checks import Measurements, Outcome, witnessed
from drillbook.migrate.settings import MigrateSettings

_LOCKS = (
    "pg_locks sampled from a side connection during each step "
    "(lower bound; resolution migrate_lock_sample_interval_s)"
)
DATA_WITNESS = "row counts, row checksums and column digests read from the database before and after"
_CLOCK = "wall clock around the migration command"


class RehearseLimits(MigrateSettings):
    """The ``migrate_*`` settings plus the round trip's limit for this rehearsal's plan."""

    roundtrip_max_differences: int | None = Field(
        default=0, description="0 when the downgrade is rehearsed; null when it is not (nothing judged)"
    )


class StepFigures(BaseModel):
    """One line of the rehearsal's step table in summary.md."""

    name: str
    command: str
    seconds: float
    locks: str


class RehearseMeasured(Measurements):
    """A rehearsal on a scratch copy: the copy, each step's time, locks, and what the round trip changed."""

    copy_source: str | None = None
    copy_s: float | None = witnessed("wall clock around restore/pg_restore")
    tables: int | None = None
    rows: int | None = witnessed("count(*) per table on the scratch copy")
    prepare_s: float | None = witnessed(_CLOCK)
    upgrade_s: float | None = witnessed(_CLOCK)
    downgrade_s: float | None = witnessed(_CLOCK)
    reupgrade_s: float | None = witnessed(_CLOCK)
    longest_lock_s: float | None = witnessed(_LOCKS)
    longest_lock_detail: str = ""
    proof_s: float | None = witnessed("wall clock of the target proof (read-only call, marker, fingerprints)")
    schema_differences: list[str] | None = witnessed("pg_catalog before upgrade vs after downgrade")
    data_differences: list[str] | None = witnessed(
        f"row counts, {pgdata.CHECKSUM_METHOD}, per-column digests"
    )
    schema_roundtrip_differences: int | None = None
    schema_detail: str = ""
    data_roundtrip_differences: int | None = None
    data_detail: str = ""
    #: The SQL assertions on the copy at the target revision (checks ``at_target.sql.<name>``).
    at_target: list[Outcome] = Field(default_factory=list, exclude=True)
    #: One failed outcome per schema or data difference (checks ``roundtrip <kind> <name>``).
    roundtrip: list[Outcome] = Field(default_factory=list, exclude=True)
    steps: list[StepFigures] = Field(default_factory=list, exclude=True)


class ChangeMeasured(Measurements):
    """``migrate.up`` / ``migrate.rollback``: how the change went, and how it was undone if it was."""

    migrate_s: float | None = witnessed(_CLOCK)
    rolled_back: bool = False
    rollback_s: float | None = witnessed("from the failed check to the re-checked start revision")
    rollback_method: str | None = None
    restored_from_backup: bool = False
    final_revision: str | None = witnessed("version table of the database")
    backup_id: str | None = None
    rows_before: int | None = witnessed(DATA_WITNESS)
    rows_after: int | None = witnessed(DATA_WITNESS)
    longest_lock_s: float | None = witnessed(_LOCKS)
    longest_lock_detail: str = ""
    #: ``<verb>_ok`` (the command reached its target) and the post-migration checks ``after_<verb>.*``.
    change: list[Outcome] = Field(default_factory=list, exclude=True)
    #: After a rollback: ``rolled_back_to_start``, ``after_rollback.*`` and, for up, the data comparison.
    undo: list[Outcome] = Field(default_factory=list, exclude=True)
