"""``migrate.up`` and ``migrate.rollback``: change the real database, with a way back at every step.

The sequence (both drills, mirrored):

1. preflight: plan the change and refuse bad input (unknown revision, several
   heads, a database the code does not know, an irreversible step) before
   anything happens; prove that the migration command talks to the database
   drillbook names (:mod:`drillbook.migrate.proof`: its read-only ``current``
   agrees with the version table, and it honours a marked probe database); the
   service must pass its post-migration checks *before* too, or a failure
   afterwards would prove nothing;
2. fingerprint the data (row counts, checksums, column digests) and take a
   pre-migration backup through the backup capability;
3. the critical section, shielded from Ctrl-C so it always ends in a known state:
   migrate, run the post-migration checks, and on any failure undo the change
   (downgrade after a failed upgrade, upgrade after a failed downgrade) and
   check again; if the undo fails too, restore the pre-migration backup into the
   source database, loudly. A step the command reports as successful that did
   not move the database stops the drill at once (exit 2, no undo: the command
   migrated another database, and an undo would land there too);
4. after a rollback, compare the data with the fingerprint of step 2.

Steps 2 to 4 are ``act`` (the outcomes decide whether to undo, never the verdict);
``observe`` returns :class:`~drillbook.migrate.measured.ChangeMeasured` and core
judges its declared checks. A Ctrl-C during step 3 lets the step finish (or roll back) first; the journal
says which, then the drill stops as interrupted.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from typing import ClassVar

from drillbook.core import interrupts
from drillbook.core.checks import Outcome, at_most, each_ok
from drillbook.core.drill import Drill, DrillRun
from drillbook.core.errors import ConfigError
from drillbook.core.readiness import Readiness
from drillbook.migrate import checks, data, proof, revisions, safety
from drillbook.migrate.measured import DATA_WITNESS, ChangeMeasured
from drillbook.migrate.revisions import Plan, RevisionGraph, label
from drillbook.migrate.settings import MigrateSettings
from drillbook.migrate.steps import Step, longest_lock, run_step
from drillbook.migrate.target import Migrations


@dataclass(frozen=True)
class ChangePlan:
    """What preflight settled: the command, the way from the database's revision to the target."""

    migrations: Migrations
    route: Plan
    #: The proof of target, watching every step; None when there is nothing to do.
    guard: proof.Proof | None


@dataclass
class Change:
    """What act did, filled as it goes (observe turns it into :class:`ChangeMeasured`)."""

    steps: list[Step] = field(default_factory=list)
    change: list[Outcome] = field(default_factory=list)
    undo: list[Outcome] = field(default_factory=list)
    migrate_s: float | None = None
    rolled_back: bool = False
    rollback_s: float | None = None
    rollback_method: str | None = None
    restored: bool = False
    backup_id: str | None = None
    data_before: dict[str, data.TableData] | None = None
    rows_after: int | None = None


class _Change(Drill[ChangePlan, Change, ChangeMeasured]):
    """What migrate.up and migrate.rollback share: backup, critical section, automatic undo."""

    runbook = "runbooks/migration-rollback.md"
    measured = ChangeMeasured
    checks = (
        each_ok("change"),
        each_ok("undo"),
        at_most("longest_lock_s", limit_from="max_lock_s", detail_from="longest_lock_detail"),
    )
    verb: ClassVar[str] = "upgrade"
    undo_verb: ClassVar[str] = "downgrade"
    #: Compare the data after an undo with the data before (meaningless after a deliberate downgrade).
    compare_after_undo: ClassVar[bool] = True

    def __init__(
        self,
        settings: MigrateSettings,
        *,
        to: str | None = None,
        ini: str | None = None,
        allow_irreversible: bool = False,
        allow_restore_source: bool = False,
        backup: bool | None = None,
    ) -> None:
        super().__init__(
            thresholds=settings,
            to=to,
            ini=ini,
            allow_irreversible=allow_irreversible,
            allow_restore_source=allow_restore_source,
            backup=backup,
        )
        self.settings = settings
        self.to = to
        self.ini = ini
        self.allow_irreversible = allow_irreversible
        self.allow_restore_source = allow_restore_source
        self.backup = settings.backup_before if backup is None else backup

    def make_plan(self, graph: RevisionGraph, current: list[str]) -> Plan:
        raise NotImplementedError

    # -- preflight ---------------------------------------------------------------------------
    def preflight(self, run: DrillRun) -> ChangePlan:
        # The key figures first, so they lead the journal and the summary even when the drill stops early.
        for key, value in (
            ("migrate_s", None),
            ("rolled_back", False),
            ("rollback_s", None),
            ("proof_s", None),
        ):
            run.measure(key, value)
        run.measure("restored_from_backup", False)
        m = Migrations(run.inventory, self.settings, ini=self.ini)
        graph = m.graph()
        current = m.current()
        route = self.make_plan(graph, current)
        run.measure("from_revision", label(route.current), witness="version table of the database")
        run.measure("to_revision", label(route.target))
        run.measure("steps", [r.id for r in route.steps])
        if not self.backup and run.inventory.is_production:
            raise ConfigError(
                "refusing to migrate production without a pre-migration backup (migrate_backup_before)"
            )
        if route.unknown_downgrade:
            run.note(
                f"cannot read the scripts of {', '.join(route.unknown_downgrade)} here: downgrade unknown"
            )
        run.note(f"plan: {route.describe()} on {m.source.describe()} (command runs on {m.command.where})")
        if route.direction == "none":
            return ChangePlan(m, route, None)
        with run.phase("proof") as record:
            guard = proof.Proof(run, m, graph, m.source)
            guard.before_writing()
            record.detail = f"the command reads {m.source.name}"
        failed = [o for o in self._post_checks(run, m) if not o.ok]
        run.require(
            "service_healthy_before",
            len(failed),
            0,
            not failed,
            "; ".join(f"{o.name}={o.value}" for o in failed[:5])
            + " - a migration cannot be judged on a service that already fails its checks"
            if failed
            else "",
        )
        return ChangePlan(m, route, guard)

    # -- act ---------------------------------------------------------------------------------
    def act(self, run: DrillRun, plan: ChangePlan) -> Change:
        m, route = plan.migrations, plan.route
        done = Change()
        if route.direction == "none":
            done.migrate_s = 0.0
            return done
        if self.compare_after_undo:
            with run.phase("fingerprint-before"):
                done.data_before = data.fingerprint(
                    m.source.admin_dsn, exclude=tuple(self.settings.volatile_tables)
                )
            run.measure("rows_before", data.total_rows(done.data_before), witness=DATA_WITNESS)
        if self.backup:
            done.backup_id = safety.take_pre_migration_backup(run, m)
            hint = (
                f"Its pre-migration backup is {done.backup_id} (inv backup.restore --id "
                f"{done.backup_id} --into <new database>); "
            )
        else:
            run.note("[yellow]no pre-migration backup (migrate_backup_before is off)[/yellow]")
            hint = "No pre-migration backup was taken (migrate_backup_before is off); "
        if plan.guard is not None:
            plan.guard.restore_hint = hint + (
                "the database the command did migrate is not one drillbook knows: "
                "restore it from its own backups (runbooks/restore-from-backup.md)"
            )
        with interrupts.shielded():
            self._critical(run, plan, done)
        signal_name = interrupts.requested()
        if signal_name:
            outcome = "rolled back" if done.rolled_back else "finished and verified"
            run.measure("interrupted_during", self.verb)
            run.note(
                f"[yellow]{signal_name} arrived during the {self.verb}: the step was {outcome} "
                f"before stopping; the database is at {', '.join(m.current()) or 'base'}[/yellow]"
            )
            run.record(self._measured(plan, done))  # observe will not run: journal the figures now
        interrupts.raise_if_requested()
        return done

    def _critical(self, run: DrillRun, plan: ChangePlan, done: Change) -> None:
        """Migrate, check, undo on failure (``done.rolled_back`` says whether it was undone)."""
        m, route = plan.migrations, plan.route
        before = m.current()
        step = run_step(run, m, m.source, self.verb, self.verb, route.target)
        done.steps.append(step)
        self._guard(plan, step, before)
        done.migrate_s = round(step.result.duration_s, 3)
        done.change.append(
            Outcome(
                name=f"{self.verb}_ok",
                ok=step.ok,
                value=", ".join(step.revision_after or []) or "base",
                expected=label(route.target),
                detail="" if step.ok else step.result.why(),
            )
        )
        problems = [] if step.ok else [f"{self.verb} failed: {step.result.why()}"]
        if step.ok:
            outcomes = checks.prefixed(f"after_{self.verb}", self._post_checks(run, m))
            done.change.extend(outcomes)
            problems += [f"{o.name}={o.value}" for o in outcomes if not o.ok]
        if not problems:
            run.note(f"[green]{self.verb} to {label(route.target)} passed its checks[/green]")
            return
        run.note(f"[red]{'; '.join(problems[:5])}[/red]: rolling back to {label(route.current)}")
        t0 = time.monotonic()
        done.restored = self._undo(run, plan, done)
        done.rolled_back = True
        done.rollback_s = round(time.monotonic() - t0, 3)

    def _undo(self, run: DrillRun, plan: ChangePlan, done: Change) -> bool:
        """Bring the database back to the plan's start; returns True when that took a restore."""
        m, route = plan.migrations, plan.route
        start = [route.current] if route.current else []
        restored = False
        try:
            at: list[str] | None = m.current()
        except Exception:
            at = None
        if at == start:
            run.note(
                f"the failed {self.verb} left the database at {label(route.current)} "
                "(PostgreSQL rolled its transaction back): nothing to undo"
            )
            method = "transaction"
        else:
            undo = run_step(run, m, m.source, "rollback", self.undo_verb, route.current)
            done.steps.append(undo)
            self._guard(plan, undo, at)
            method = self.undo_verb if undo.ok else ""
            if not undo.ok:
                run.note(f"[bold red]the {self.undo_verb} failed too: {undo.result.why()}[/bold red]")
                restored = safety.restore_after_failed_undo(
                    run,
                    m,
                    done.backup_id,
                    allow_in_production=self.allow_restore_source,
                    runbook=str(self.runbook),
                )
                method = "restore" if restored else "none"
        done.rollback_method = method
        run.measure("rollback_method", method)
        now = m.current()
        done.undo.append(
            Outcome(
                name="rolled_back_to_start",
                ok=now == start,
                value=", ".join(now) or "base",
                expected=label(route.current),
                detail="version table after the rollback",
            )
        )
        done.undo.extend(checks.prefixed("after_rollback", self._post_checks(run, m)))
        if self.compare_after_undo and done.data_before is not None:
            self._compare_data(run, m, done, done.data_before)
        return restored

    def _guard(self, plan: ChangePlan, step: Step, before: list[str] | None) -> None:
        """Stop at once (WrongDatabase) if the step reported success but the database did not move."""
        if plan.guard is not None and before is not None:
            plan.guard.after_step(step, before)

    def _compare_data(
        self, run: DrillRun, m: Migrations, done: Change, before: dict[str, data.TableData]
    ) -> None:
        with run.phase("fingerprint-after"):
            after = data.fingerprint(m.source.admin_dsn, exclude=tuple(self.settings.volatile_tables))
        diffs = data.diff(before, after)
        done.undo.extend(checks.differences("data", diffs))
        done.rows_after = data.total_rows(after)
        run.measure("rows_after", done.rows_after, witness=DATA_WITNESS)
        done.undo.append(
            Outcome(
                name="data_intact_differences",
                ok=not diffs,
                value=len(diffs),
                expected=0,
                detail=f"{len(after)} tables, {done.rows_after} rows; "
                f"left out: {', '.join(self.settings.volatile_tables) or 'none'}",
            )
        )

    def _post_checks(self, run: DrillRun, m: Migrations) -> list[Outcome]:
        """Readiness of every instance, the smoke requests, the SQL assertions (judged by the caller)."""
        instances = run.inventory.topology.app_instances
        return [
            *checks.readiness(instances, Readiness.of(run.inventory), self.settings.ready_timeout_s),
            *checks.smoke(
                instances,
                self.settings.smoke_requests,
                checks.auth_headers(run.inventory) if self.settings.smoke_requests else None,
            ),
            *checks.sql_assertions(m.source.dsn, self.settings.sql_assertions),
        ]

    # -- observe -----------------------------------------------------------------------------
    def observe(self, run: DrillRun, plan: ChangePlan, acted: Change) -> ChangeMeasured:
        return self._measured(plan, acted)

    def _measured(self, plan: ChangePlan, done: Change) -> ChangeMeasured:
        lock_s, lock_detail = longest_lock(done.steps)
        return ChangeMeasured(
            migrate_s=done.migrate_s,
            rolled_back=done.rolled_back,
            rollback_s=done.rollback_s,
            rollback_method=done.rollback_method,
            restored_from_backup=done.restored,
            final_revision=", ".join(plan.migrations.current()) or "base",
            backup_id=done.backup_id,
            rows_before=data.total_rows(done.data_before) if done.data_before is not None else None,
            rows_after=done.rows_after,
            longest_lock_s=lock_s,
            longest_lock_detail=lock_detail,
            change=done.change,
            undo=done.undo,
        )


class Up(_Change):
    """Upgrade the database to ``--to`` (default: head) with checks and automatic rollback."""

    name = "migrate.up"
    verb = "upgrade"
    undo_verb = "downgrade"
    compare_after_undo = True

    def make_plan(self, graph: RevisionGraph, current: list[str]) -> Plan:
        plan = revisions.plan(graph, current, self.to or "head")
        if plan.direction == "down":
            raise ConfigError(
                f"--to {label(plan.target)} is older than the database's {label(plan.current)}: "
                "use migrate.rollback to go back"
            )
        if plan.irreversible and not self.allow_irreversible:
            raise ConfigError(
                f"revision(s) {', '.join(plan.irreversible)} have no downgrade: if the upgrade breaks the "
                "service there is no rollback but a restore; pass --allow-irreversible to go ahead anyway"
            )
        return plan


class Rollback(_Change):
    """Downgrade the database to ``--to`` (default: one revision back) with the same checks and safety."""

    name = "migrate.rollback"
    verb = "downgrade"
    undo_verb = "upgrade"
    compare_after_undo = False

    def make_plan(self, graph: RevisionGraph, current: list[str]) -> Plan:
        if self.to is None:
            here = revisions.plan(graph, current, None).current  # validates the database's revision
            target = label(graph.parent_of(here))
        else:
            target = self.to
        plan = revisions.plan(graph, current, target)
        if plan.direction == "up":
            raise ConfigError(
                f"--to {label(plan.target)} is newer than the database's {label(plan.current)}: "
                "use migrate.up to go forward"
            )
        if plan.irreversible:
            raise ConfigError(
                f"revision(s) {', '.join(plan.irreversible)} have no downgrade: no migration can roll "
                f"them back; restore a backup instead ({self.runbook})"
            )
        return plan
