"""One migration step inside a drill: run the command, watch its locks, journal what happened."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

from drillbook.core.drill import DrillRun
from drillbook.migrate.command import CommandResult
from drillbook.migrate.locks import LockReport, LockSampler
from drillbook.migrate.revisions import label
from drillbook.migrate.target import Database, Migrations

LOCK_WITNESS = (
    "pg_locks sampled from a side connection every {ms:.0f} ms (lower bound; resolution one interval)"
)


@dataclass(frozen=True)
class Step:
    name: str
    verb: str
    target: str | None
    result: CommandResult
    locks: LockReport
    revision_after: list[str] | None

    @property
    def ok(self) -> bool:
        """The command succeeded and the version table says it reached its target."""
        want = [self.target] if self.target else []
        return self.result.ok and self.revision_after == want


def run_step(
    run: DrillRun, migrations: Migrations, db: Database, name: str, verb: str, target: str | None
) -> Step:
    """``verb target`` against ``db`` as phase ``name``; measures ``<name>_s`` and ``<name>_lock_s``.

    The step's locks are judged by the drill's declared ``longest_lock_s`` check, not here.
    """
    settings = migrations.settings
    run.note(f"{name}: {verb} {db.name} to {label(target)}")
    with run.phase(name) as record:
        with LockSampler(db.admin_dsn, settings.lock_sample_interval_s) as sampler:
            result = migrations.migrate(verb, target, db)
        locks = sampler.stop()
        log = run.report_dir / f"{name}.log"
        log.write_text(result.log() + f"\nlocks: {locks.summary()}\n")
        run.artefact(log)
        try:
            after: list[str] | None = migrations.current(db)
        except Exception as exc:  # the database itself may be gone; the step failed either way
            after = None
            run.note(f"{name}: cannot read the version table afterwards: {exc}")
        step = Step(name, verb, target, result, locks, after)
        where = ", ".join(after) if after else ("base" if after == [] else "unknown")
        record.detail = (
            f"{verb} to {label(target)}: " + ("ok" if result.ok else result.why()) + f"; now at {where}"
        )
        if not step.ok:
            record.ok = False
    run.measure(
        f"{name}_s", round(result.duration_s, 3), witness=f"wall clock around `{verb}` on {result.where}"
    )
    run.measure(
        f"{name}_lock_s",
        locks.longest_s,
        witness=LOCK_WITNESS.format(ms=settings.lock_sample_interval_s * 1000),
    )
    if locks.longest:
        run.measure(f"{name}_lock", locks.longest.describe())
    run.note(f"{name}: {record.detail} in {result.duration_s:.2f}s; locks: {locks.summary()}")
    return step


def longest_lock(steps: Iterable[Step]) -> tuple[float | None, str]:
    """The longest write-blocking lock of ``steps`` and which step held it (judged against ``max_lock_s``).

    ``0.0`` when no step ran (nothing was locked); ``None`` when steps ran but none
    could be watched (every side connection failed).
    """
    ran = list(steps)
    if not ran:
        return 0.0, "no migration step ran"
    measured = [(s.locks.longest_s, s) for s in ran if s.locks.longest_s is not None]
    if not measured:
        return None, "; ".join(f"{s.name}: {s.locks.summary()}" for s in ran)
    value, step = max(measured, key=lambda x: x[0] or 0.0)
    return value, f"{step.name}: {step.locks.summary()}"
