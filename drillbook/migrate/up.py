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

A Ctrl-C during step 3 lets the step finish (or roll back) first; the journal
says which, then the drill stops as interrupted.
"""

from __future__ import annotations

import time
from typing import ClassVar

from drillbook.core import interrupts
from drillbook.core.drill import DrillRun, LegacyDrill
from drillbook.core.errors import ConfigError
from drillbook.core.heartbeat import TABLES as HEARTBEAT_TABLES
from drillbook.migrate import checks, data, proof, revisions, safety
from drillbook.migrate.checks import Outcome
from drillbook.migrate.revisions import Plan, RevisionGraph, label
from drillbook.migrate.settings import MigrateSettings
from drillbook.migrate.steps import Step, run_step
from drillbook.migrate.target import Migrations

DATA_WITNESS = "row counts, row checksums and column digests read from the database before and after"


class _Change(LegacyDrill):
    """What migrate.up and migrate.rollback share: backup, critical section, automatic undo."""

    runbook = "runbooks/migration-rollback.md"
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
        self.migrations: Migrations | None = None
        self.plan: Plan | None = None
        self.backup_id: str | None = None
        self.data_before: dict[str, data.TableData] | None = None
        self.proof: proof.Proof | None = None

    def make_plan(self, graph: RevisionGraph, current: list[str]) -> Plan:
        raise NotImplementedError

    # -- preflight ---------------------------------------------------------------------------
    def preflight(self, run: DrillRun) -> None:
        # The key figures first, so they lead the journal and the summary even when the drill stops early.
        for key, value in (
            ("migrate_s", None),
            ("rolled_back", False),
            ("rollback_s", None),
            ("proof_s", None),
        ):
            run.measure(key, value)
        run.measure("restored_from_backup", False)
        m = self.migrations = Migrations(run.inventory, self.settings, ini=self.ini)
        graph = m.graph()
        current = m.current()
        plan = self.plan = self.make_plan(graph, current)
        run.measure("from_revision", label(plan.current), witness="version table of the database")
        run.measure("to_revision", label(plan.target))
        run.measure("steps", [r.id for r in plan.steps])
        if not self.backup and run.inventory.is_production:
            raise ConfigError(
                "refusing to migrate production without a pre-migration backup (migrate_backup_before)"
            )
        if plan.unknown_downgrade:
            run.note(
                f"cannot read the scripts of {', '.join(plan.unknown_downgrade)} here: downgrade unknown"
            )
        run.note(f"plan: {plan.describe()} on {m.source.describe()} (command runs on {m.command.where})")
        if plan.direction == "none":
            return
        with run.phase("proof") as record:
            self.proof = proof.Proof(run, m, graph, m.source)
            self.proof.before_writing()
            record.detail = f"the command reads {m.source.name}"
        failed = [o for o in self._post_checks(run, "before", record=False) if not o.ok]
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

    # -- act ---------------------------------------------------------------------------------
    def act(self, run: DrillRun) -> None:
        m, plan = self.migrations, self.plan
        assert m is not None and plan is not None
        if plan.direction == "none":
            self._measure_outcome(run, migrate_s=0.0, rolled_back=False, rollback_s=None, restored=False)
            return
        if self.compare_after_undo:
            with run.phase("fingerprint-before"):
                self.data_before = data.fingerprint(m.source.admin_dsn, exclude=self._volatile)
            run.measure("rows_before", data.total_rows(self.data_before), witness=DATA_WITNESS)
        if self.backup:
            self.backup_id = safety.take_pre_migration_backup(run, m)
            if self.proof is not None:
                self.proof.restore_hint = (
                    f"Its pre-migration backup is {self.backup_id} (inv backup.restore --id "
                    f"{self.backup_id} --into <new database>); the database the command did migrate is "
                    "not one drillbook knows: restore it from its own backups "
                    "(runbooks/restore-from-backup.md)"
                )
        else:
            run.note("[yellow]no pre-migration backup (migrate_backup_before is off)[/yellow]")
            if self.proof is not None:
                self.proof.restore_hint = (
                    "No pre-migration backup was taken (migrate_backup_before is off); the database the "
                    "command did migrate is not one drillbook knows: restore it from its own backups "
                    "(runbooks/restore-from-backup.md)"
                )
        with interrupts.shielded():
            rolled_back = self._critical(run)
        signal_name = interrupts.requested()
        if signal_name:
            outcome = "rolled back" if rolled_back else "finished and verified"
            run.measure("interrupted_during", self.verb)
            run.note(
                f"[yellow]{signal_name} arrived during the {self.verb}: the step was {outcome} "
                f"before stopping; the database is at {', '.join(m.current()) or 'base'}[/yellow]"
            )
        interrupts.raise_if_requested()

    def _critical(self, run: DrillRun) -> bool:
        """Migrate, check, undo on failure. Returns True when the change was rolled back."""
        m, plan = self.migrations, self.plan
        assert m is not None and plan is not None
        before = m.current()
        step = run_step(run, m, m.source, self.verb, self.verb, plan.target)
        self._guard(step, before)
        problems = [] if step.ok else [f"{self.verb} failed: {step.result.why()}"]
        if step.ok:
            outcomes = self._post_checks(run, f"after_{self.verb}")
            problems += [f"{o.name}={o.value}" for o in outcomes if not o.ok]
        if not problems:
            run.note(f"[green]{self.verb} to {label(plan.target)} passed its checks[/green]")
            self._measure_outcome(
                run, step.result.duration_s, rolled_back=False, rollback_s=None, restored=False
            )
            return False
        run.note(f"[red]{'; '.join(problems[:5])}[/red]: rolling back to {label(plan.current)}")
        t0 = time.monotonic()
        restored = self._undo(run)
        self._measure_outcome(run, step.result.duration_s, True, time.monotonic() - t0, restored)
        return True

    def _undo(self, run: DrillRun) -> bool:
        """Bring the database back to the plan's start; returns True when that took a restore."""
        m, plan = self.migrations, self.plan
        assert m is not None and plan is not None
        start = [plan.current] if plan.current else []
        restored = False
        try:
            at: list[str] | None = m.current()
        except Exception:
            at = None
        if at == start:
            run.note(
                f"the failed {self.verb} left the database at {label(plan.current)} "
                "(PostgreSQL rolled its transaction back): nothing to undo"
            )
            method = "transaction"
        else:
            undo = run_step(run, m, m.source, "rollback", self.undo_verb, plan.current)
            self._guard(undo, at)
            method = self.undo_verb if undo.ok else ""
            if not undo.ok:
                run.note(f"[bold red]the {self.undo_verb} failed too: {undo.result.why()}[/bold red]")
                restored = self._restore(run)
                method = "restore" if restored else "none"
        run.measure("rollback_method", method)
        now = m.current()
        run.check(
            "rolled_back_to_start",
            ", ".join(now) or "base",
            label(plan.current),
            now == start,
            "version table after the rollback",
        )
        self._post_checks(run, "after_rollback")
        if self.compare_after_undo and self.data_before is not None:
            self._compare_data(run)
        return restored

    def _guard(self, step: Step, before: list[str] | None) -> None:
        """Stop at once (WrongDatabase) if the step reported success but the database did not move."""
        if self.proof is not None and before is not None:
            self.proof.after_step(step, before)

    def _restore(self, run: DrillRun) -> bool:
        m = self.migrations
        assert m is not None
        if self.backup_id is None:
            run.journal.error = "the undo failed and there is no pre-migration backup to restore"
            run.note(f"[bold red]{run.journal.error}: follow {self.runbook}[/bold red]")
            return False
        if run.inventory.is_production and not self.allow_restore_source:
            run.journal.error = (
                f"the undo failed; NOT restoring backup {self.backup_id} into production database "
                f"{m.source.name} without --allow-restore-source: follow {self.runbook}"
            )
            run.note(f"[bold red]{run.journal.error}[/bold red]")
            return False
        safety.restore_source(run, m, self.backup_id)
        return True

    @property
    def _volatile(self) -> tuple[str, ...]:
        """Left out of the data comparison: the inventory's tables and drillbook's heartbeat."""
        return (*self.settings.volatile_tables, *HEARTBEAT_TABLES)

    def _compare_data(self, run: DrillRun) -> None:
        m = self.migrations
        assert m is not None and self.data_before is not None
        with run.phase("fingerprint-after"):
            after = data.fingerprint(m.source.admin_dsn, exclude=self._volatile)
        diffs = data.diff(self.data_before, after)
        for d in diffs:
            run.check(
                f"data {d.kind} {d.name}", d.after or "missing", d.before or "absent", False, d.describe()
            )
        run.measure("rows_after", data.total_rows(after), witness=DATA_WITNESS)
        run.check_at_most(
            "data_intact_differences",
            len(diffs),
            0,
            f"{len(after)} tables, {data.total_rows(after)} rows; left out: {', '.join(self._volatile)}",
        )

    # -- checks ------------------------------------------------------------------------------
    def _post_checks(self, run: DrillRun, prefix: str, *, record: bool = True) -> list[Outcome]:
        m = self.migrations
        assert m is not None
        instances = run.inventory.topology.app_instances
        outcomes = [
            *checks.readiness(instances, self.settings.ready_timeout_s),
            *checks.smoke(instances, self.settings.smoke_requests),
            *checks.sql_assertions(m.source.dsn, self.settings.sql_assertions),
        ]
        if record:
            for o in outcomes:
                run.check(f"{prefix}.{o.name}", o.value, o.limit, o.ok, o.detail)
        return outcomes

    def _measure_outcome(
        self, run: DrillRun, migrate_s: float, rolled_back: bool, rollback_s: float | None, restored: bool
    ) -> None:
        m = self.migrations
        assert m is not None
        run.measure("migrate_s", round(migrate_s, 3), witness=f"wall clock around `{self.verb}`")
        run.measure("rolled_back", rolled_back)
        run.measure(
            "rollback_s",
            round(rollback_s, 3) if rollback_s is not None else None,
            witness="from the failed check to the re-checked start revision",
        )
        run.measure("restored_from_backup", restored)
        run.measure(
            "final_revision", ", ".join(m.current()) or "base", witness="version table of the database"
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
