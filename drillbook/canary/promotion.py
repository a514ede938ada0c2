"""Promotion and the fleet-wide rollback: the moves after the analysis; deploy.promote, deploy.rollback.

:func:`promote` is the canary drill's last step when its analysis passed and what
``deploy.promote`` runs after a person's go-ahead; :func:`rollback_fleet` is what
either does when a promotion batch fails. :class:`RollbackDrill` is the incident
fast path without any analysis. Every move goes through
:class:`~drillbook.canary.fleet.FleetOps`, so "roll back" means the same thing
everywhere (canary weight 0 first, previous release redeployed, readiness
verified on the instances, weights restored).
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass

from pydantic import Field

from drillbook.canary.base import IDENTITY, READINESS, DeployDrill, name_witnesses, require_answering
from drillbook.canary.fleet import FleetOps
from drillbook.canary.releases import check_artifact, read_links
from drillbook.canary.settings import CanarySettings
from drillbook.canary.state import Rollout, read_fleet
from drillbook.core import interrupts
from drillbook.core.checks import Measurements, at_most, is_true, witnessed
from drillbook.core.drill import DrillRun
from drillbook.core.errors import AnsibleFailed, CheckFailed, ConfigError, TargetUnreachable
from drillbook.core.profile import load_profile


@dataclass(frozen=True)
class Promotion:
    """How a promotion ended: promoted everywhere, or rolled back after a failed batch."""

    promoted: bool
    detail: str
    promote_s: float | None = None


def promote(
    run: DrillRun, ops: FleetOps, rollout: Rollout, on_stage: Callable[[str], None] = lambda _s: None
) -> Promotion:
    """Rolling promotion of ``rollout.version`` to the baseline hosts; a failed batch rolls the fleet back."""
    s = ops.settings
    ops.store.save(rollout, "promoting", "analysis passed")
    on_stage("promoting")
    ops.weights.restore()
    try:
        with run.phase("promote"):
            t0 = time.monotonic()
            ops.deploy(ops.plan.baseline, rollout.version, serial=s.promote_serial)
            ops.wait_serving(ops.plan.everyone, rollout.version)
            took = round(time.monotonic() - t0, 2)
    except (AnsibleFailed, TargetUnreachable, CheckFailed) as exc:
        rollback_fleet(run, ops, rollout, f"promotion failed: {exc}")
        on_stage("rolled_back")
        return Promotion(False, f"promotion failed, fleet rolled back: {exc}")
    ops.weights.restore()
    ops.restore_states()
    ops.store.save(rollout, "promoted", "every instance serves the release")
    on_stage("promoted")
    return Promotion(True, f"{rollout.version} on every instance", took)


def rollback_fleet(run: DrillRun, ops: FleetOps, rollout: Rollout, reason: str) -> None:
    """Every instance back on ``rollout.previous`` (canary weight 0 first)."""
    with interrupts.shielded():
        run.note(f"rolling the fleet back to {rollout.previous}: {reason}")
        ops.store.save(rollout, "rolling_back", reason)
        try:
            timings = ops.rollback(rollout.previous)
        except Exception as exc:
            ops.store.save(rollout, "failed", f"rollback failed: {exc}")
            raise
        name_witnesses(run, {"rollback_s": "{identity} and {readiness} on every instance"})
        run.measure("rollback_s", round(timings["serving_s"], 3))
        ops.store.save(rollout, "rolled_back", reason)


# -- deploy.promote ------------------------------------------------------------------------


@dataclass(frozen=True)
class PausedCanary:
    ops: FleetOps
    rollout: Rollout


class PromoteMeasured(Measurements):
    from_version: str | None = witnessed("rollout record")
    to_version: str | None = None
    promoted: bool | None = witnessed(f"{IDENTITY} on every instance")
    promote_detail: str = ""
    promote_s: float | None = witnessed(f"{IDENTITY} on every instance")


#: The promotion's witnesses, as this profile asks.
PROMOTE_WITNESSES = {
    "promoted": "{identity} on every instance",
    "promote_s": "{identity} and {readiness} on every instance",
}


class PromoteDrill(DeployDrill[PausedCanary, Promotion, PromoteMeasured]):
    """A person's go-ahead: promote the paused canary to every instance, in rolling batches."""

    name = "deploy.promote"
    measured = PromoteMeasured
    checks = (is_true("promoted", detail_from="promote_detail"),)

    def preflight(self, run: DrillRun) -> PausedCanary:
        ops = self.open_fleet(run)
        record = ops.store.load()
        if record is None or record.phase != "paused":
            state = (
                f"the last rollout ({record.version}) is {record.phase}" if record else "no rollout on record"
            )
            raise ConfigError(
                f"nothing to promote: {state}; run inv deploy.canary --version V --pause-before-promote first"
            )
        require_answering(ops)
        name_witnesses(run, PROMOTE_WITNESSES)
        fleet = read_fleet(run.inventory, canary_hosts=ops.plan.canary_hosts)
        wrong = [
            f"{i.instance} runs {i.version}"
            for i in fleet.instances
            if i.version != (record.version if i.host in record.canary_hosts else record.previous)
        ]
        problems = wrong + [f"{i.instance} not ready ({i.detail})" for i in fleet.instances if not i.ready]
        run.require(
            "fleet as the paused canary left it",
            not problems,
            True,
            not problems,
            "; ".join(problems) + " (inv deploy.rollback repairs it)" if problems else "",
        )
        return PausedCanary(ops, record)

    def act(self, run: DrillRun, plan: PausedCanary) -> Promotion:
        stage = ["paused"]

        def undo() -> None:
            if stage[-1] == "promoting":
                rollback_fleet(run, plan.ops, plan.rollout, "promotion interrupted or failed")
                stage.append("rolled_back")

        run.on_restore("roll back an unfinished promotion", undo)
        return promote(run, plan.ops, plan.rollout, on_stage=stage.append)

    def observe(self, run: DrillRun, plan: PausedCanary, acted: Promotion) -> PromoteMeasured:
        return PromoteMeasured(
            from_version=plan.rollout.previous,
            to_version=plan.rollout.version,
            promoted=acted.promoted,
            promote_detail=acted.detail,
            promote_s=acted.promote_s,
        )


# -- deploy.rollback -----------------------------------------------------------------------


@dataclass(frozen=True)
class RollbackPlan:
    ops: FleetOps
    target: str
    rollout: Rollout | None


class RollbackMeasured(Measurements):
    to_version: str = ""
    rollback_s: float | None = witnessed(f"{IDENTITY} and {READINESS} on every instance")
    canary_off_ms: float | None = witnessed("HAProxy set weight")
    redeployed: list[str] = Field(default_factory=list)
    total_s: float | None = None
    on_target: bool | None = witnessed(f"{IDENTITY} on every instance, after the rollback")
    fleet_steady: bool | None = witnessed(f"{IDENTITY}, {READINESS} and HAProxy weights, after the rollback")
    fleet_detail: str = ""


class RollbackDrill(DeployDrill[RollbackPlan, RollbackMeasured, RollbackMeasured]):
    """The incident fast path: canary weight 0, the previous release back everywhere, no analysis."""

    name = "deploy.rollback"
    measured = RollbackMeasured
    checks = (
        is_true("on_target", name="every instance on the target", detail_from="fleet_detail"),
        is_true("fleet_steady", name="fleet steady", detail_from="fleet_detail"),
        at_most("rollback_s", limit_from="rollback_budget_s"),
    )

    def __init__(self, settings: CanarySettings, to_version: str | None = None) -> None:
        super().__init__(settings, to_version=to_version)
        self.to_version = to_version

    def preflight(self, run: DrillRun) -> RollbackPlan:
        ops = self.open_fleet(run)
        rollout = ops.store.load()
        target = self._target(run, ops, rollout)
        check_artifact(run.inventory, target)
        name_witnesses(
            run,
            {
                "rollback_s": "{identity} and {readiness} on every instance",
                "on_target": "{identity} on every instance, after the rollback",
                "fleet_steady": "{identity}, {readiness} and HAProxy weights, after the rollback",
            },
        )
        return RollbackPlan(ops, target, rollout)

    def _target(self, run: DrillRun, ops: FleetOps, rollout: Rollout | None) -> str:
        """--to, else the rollout record's previous release, else what the hosts' links say."""
        if self.to_version:
            return self.to_version
        if rollout is not None and rollout.phase != "rolled_back":
            return rollout.previous
        if self.settings.rollback_target != "previous":
            return self.settings.rollback_target
        links = read_links(run.inventory, [i.host for i in ops.plan.everyone])
        currents = {lk.current for lk in links.values()}
        if rollout is not None and rollout.phase == "rolled_back" and currents == {rollout.previous}:
            return rollout.previous
        previous = {lk.previous for lk in links.values() if lk.previous}
        if len(previous) == 1:
            return previous.pop()
        raise ConfigError(
            "cannot tell the previous release (no rollout on record, hosts' previous links: "
            f"{', '.join(sorted(p or '-' for p in previous)) or 'none'}); pass --to VERSION"
        )

    def act(self, run: DrillRun, plan: RollbackPlan) -> RollbackMeasured:
        ops, target, rollout = plan.ops, plan.target, plan.rollout
        unfinished = rollout is not None and rollout.phase != "rolled_back"
        with interrupts.shielded(), run.phase("rollback"):
            if rollout is not None and unfinished:
                ops.store.save(rollout, "rolling_back", f"inv deploy.rollback to {target}")
            t0 = time.monotonic()
            todo = ops.off_target(target)
            run.note(
                f"rolling back to {target}: "
                + (", ".join(i.name for i in todo) if todo else "every instance already runs it")
            )
            timings = ops.rollback(target, todo)
            done = RollbackMeasured(
                to_version=target,
                rollback_s=round(timings["serving_s"], 3),
                canary_off_ms=round(1000 * timings["canary_off_s"], 3),
                redeployed=[i.name for i in todo],
                total_s=round(time.monotonic() - t0, 3),
            )
            if rollout is not None and unfinished:
                ops.store.save(rollout, "rolled_back", f"inv deploy.rollback to {target}")
            elif load_profile(run.inventory).identity is None:
                # No instance can name its release: the record is the only place that says what runs.
                record = Rollout(target, target, [], phase="rolled_back")
                ops.store.save(record, "rolled_back", f"inv deploy.rollback to {target}")
        interrupts.raise_if_requested()
        return done

    def observe(self, run: DrillRun, plan: RollbackPlan, acted: RollbackMeasured) -> RollbackMeasured:
        fleet = read_fleet(run.inventory, canary_hosts=plan.ops.plan.canary_hosts)
        return acted.model_copy(
            update={
                "on_target": fleet.version == plan.target,
                "fleet_steady": fleet.steady,
                "fleet_detail": "; ".join(fleet.problems()) or f"{plan.target} everywhere, steady",
            }
        )
