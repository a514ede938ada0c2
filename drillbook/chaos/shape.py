"""One chaos drill shape, three faults.

    preflight  steady state: every piece healthy, the target accepting   -> Steady
    act        marker row, observers, healthy baseline, SIGKILL witnessed -> Injected
    observe    hold, restart, wait for recovery, the fault's figures      -> its record
    verify     core evaluates the fault's declared checks
    restore    stop the observers, start the target unless back (always)

:class:`ChaosDrill` runs that shape for every fault; kill_db.py, kill_redis.py and
kill_app.py say what "reacted" and "recovered" mean for their service, what they
measure (their own :class:`~drillbook.chaos.measures.ChaosMeasurements` record)
and which checks judge it. Each phase hands its result to the next: nothing is
left on ``self`` for a later phase to find (or not).

The restore is registered before the kill, so a failed check, an exception,
Ctrl-C or SIGTERM all still put the service back; a SIGKILL of the drill itself is
what ``chaos.recover`` is for.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import Any, ClassVar, Self, TypeVar

from drillbook.chaos import analysis as an
from drillbook.chaos import workload
from drillbook.chaos.fault import Attempt, Kill, Restorer, hold, inject
from drillbook.chaos.measures import (
    ChaosMeasurements,
    Seen,
    common_figures,
    not_recovered_detail,
    write_timeline,
)
from drillbook.chaos.observers import Observers, witness_check
from drillbook.chaos.plan import ChaosPlan, Fault, build_plan, guard_production, load_settings
from drillbook.chaos.witness import Observation, Witness
from drillbook.core import health
from drillbook.core.drill import Drill, DrillRun
from drillbook.core.errors import ConfigError
from drillbook.core.inventory import Inventory
from drillbook.core.probes import Sample

M = TypeVar("M", bound=ChaosMeasurements)


@dataclass(frozen=True)
class Steady:
    """What preflight proved and act needs: the service was healthy, here is where its data lives."""

    dsn: str
    origin_wall: float  # when the drill began (wall clock): the origin of timeline.json


@dataclass(frozen=True)
class Injected:
    """What act did: the marker written, the observers running, the fault witnessed, the way back."""

    marker: workload.Marker
    ledger: workload.WriteLedger
    observers: Observers
    kill: Kill
    restorer: Restorer


class ChaosDrill(Drill[Steady, Injected, M]):
    """The shared shape; a fault sets ``fault``, ``measured``, ``checks`` and the hooks at the bottom."""

    fault: ClassVar[Fault]
    #: Measurements the end-of-drill summary shows first.
    key_figures: ClassVar[tuple[str, ...]] = ("recovery_s", "data_intact")

    def __init__(
        self,
        plan: ChaosPlan,
        *,
        duration_s: float | None = None,
        traffic_rps: float | None = None,
        allow_production: bool = False,
    ) -> None:
        s = plan.settings
        self.plan = plan
        self.s = s
        self.duration_s = float(duration_s if duration_s is not None else s.duration_s)
        self.traffic_rps = float(traffic_rps if traffic_rps is not None else s.traffic_rps)
        self.allow_production = allow_production
        super().__init__(
            thresholds=self.judged_settings(plan),
            duration_s=self.duration_s,
            traffic_rps=self.traffic_rps,
            target=plan.target.pattern,
            hosts=list(plan.target.hosts),
            allow_production=allow_production,
        )
        #: Every attempt to bring the target back, for the report (even when the drill errs).
        self.attempts: list[Attempt] = []

    @classmethod
    def for_inventory(
        cls,
        inv: Inventory,
        *,
        duration_s: float | None = None,
        traffic_rps: float | None = None,
        instance: str | int | None = None,
        allow_production: bool = False,
    ) -> Self:
        """Build the drill from the inventory (settings, plan); refuses production unless allowed."""
        guard_production(inv, allow_production)
        plan = build_plan(inv, cls.fault, load_settings(inv), instance=instance)
        return cls(plan, duration_s=duration_s, traffic_rps=traffic_rps, allow_production=allow_production)

    # -- lifecycle -------------------------------------------------------------------
    def preflight(self, run: DrillRun) -> Steady:
        origin = time.time()
        guard_production(run.inventory, self.allow_production)
        lacking = self.profile_needs()
        if lacking:
            raise ConfigError(f"{self.name} cannot measure without {'; '.join(lacking)}")
        t = self.plan.target
        run.measure("target", {"service": t.service, "hosts": list(t.hosts), "process": t.process})
        run.note(f"target: {t.service} on {', '.join(t.hosts)} ({t.process})")
        with run.phase("steady-state"):
            self._steady_state(run)
        return Steady(dsn=run.inventory.topology.postgres_dsn, origin_wall=origin)

    def act(self, run: DrillRun, plan: Steady) -> Injected:
        s = self.s
        work = workload.Workload.for_inventory(run.inventory)
        run.on_restore("close the workload's connections", work.close)
        with run.phase("marker"):
            marker = workload.write_marker(work)
            run.on_restore("remove the marker", lambda: workload.cleanup_marker(marker))
            ok, detail = workload.marker_in_db(plan.dsn, marker)
            run.require("marker_written", ok, True, ok, detail)
            run.measure("marker_key", marker.key, witness="the marker's verify steps (service_marker)")
        ledger = workload.WriteLedger()
        traffic = workload.background(
            work, ledger, self.plan.lb_url, self.traffic_rps, s.traffic_timeout_s, run.report_dir / "traffic"
        )
        observers = Observers(self.plan, traffic)
        run.on_restore("stop probes and traffic", observers.stop)
        observers.start()
        run.note(
            f"probes every {s.probe_interval_s * 1000:g} ms, "
            f"witness every {s.witness_interval_s * 1000:g} ms, traffic {self.traffic_rps:g} rps"
        )
        with run.phase("baseline"):
            observers.wait_baseline(run, self.steady_sample)
        restorer = Restorer(self.plan, observers.witness, self.attempts)
        run.on_restore(f"restore {self.plan.target.service}", lambda: restorer.ensure(run))
        with run.phase("inject"):
            kill = inject(run, self.plan, observers.witness)
        return Injected(marker, ledger, observers, kill, restorer)

    def observe(self, run: DrillRun, plan: Steady, acted: Injected) -> M:
        obs, kill = acted.observers, acted.kill
        with run.phase("hold"):
            restore_cmd = hold(
                run,
                self.plan,
                self.duration_s,
                kill,
                self.observe_for(),
                lambda: self.observed_enough(obs, kill.origin),
            )
        with run.phase("restart"):
            acted.restorer.restart(run)
        with run.phase("recovery"):
            back, recovered = self._wait_recovery(run, obs, kill, restore_cmd)
            time.sleep(min(0.5, 3 * self.s.probe_interval_s))  # a few samples past recovery
        end = time.monotonic()
        obs.stop()
        lb = obs.lb_tables()
        if lb and lb[-1].error:
            run.note(f"HAProxy stats: {lb[-1].error}")
        seen = Seen(
            plan=self.plan,
            kill=kill,
            restore_cmd=restore_cmd,
            back=back,
            recovered=recovered,
            end=end,
            samples=obs.samples(),
            lb=lb,
            outcomes=obs.outcomes(),
            witness=obs.observations(),
        )
        not_recovered = (
            ""
            if recovered
            else not_recovered_detail(
                self.recovered_what(), self.plan, obs, self.recovered_sample, self.attempts
            )
        )
        common = common_figures(
            seen, not_recovered=not_recovered, marker=acted.marker, ledger=acted.ledger, dsn=plan.dsn
        )
        measured = self.measure(seen, common, acted)
        acted.restorer.recovery_measured = True
        write_timeline(run, seen, plan.origin_wall)
        return measured

    def restore(self, run: DrillRun) -> None:
        pieces = health.service(run.inventory.topology, self.plan.readiness)
        bad = [f"{p.piece}: {p.detail}" for p in pieces if not p.ok]
        run.measure("healthy_after", not bad)
        if bad:
            run.note(f"[red]not healthy after the drill:[/red] {'; '.join(bad)}")

    def report(self, run: DrillRun, measured: M | None) -> str:
        # The end-of-drill summary prints the first measurements: put the key figures there.
        m = run.journal.measurements
        run.journal.measurements = {k: m[k] for k in self.key_figures if k in m} | m
        lines = [f"Fault: SIGKILL {self.plan.target.service} on {', '.join(self.plan.target.hosts)}."]
        flips = self.flips_table(measured) if measured is not None else None
        if flips:
            lines += ["", "| instance | flip_s |", "|---|---|"]
            lines += [f"| {k} | {v} |" for k, v in flips.items()]
        if self.attempts:
            lines += ["", "Restore attempts:", ""]
            lines += [
                f"- {a.action}: {'ok' if a.ok else 'FAILED'} in {a.duration_s:.1f}s {a.detail}"
                for a in self.attempts
            ]
        return "\n".join(lines)

    # -- steady state and recovery ----------------------------------------------------
    def _steady_state(self, run: DrillRun) -> None:
        pieces = health.service(run.inventory.topology, self.plan.readiness)
        bad = [f"{p.piece}: {p.detail}" for p in pieces if not p.ok]
        run.require(
            "steady_state",
            f"{len(pieces) - len(bad)}/{len(pieces)} healthy",
            "all healthy",
            not bad,
            "; ".join(bad) + " - no fault injected" if bad else "",
        )
        degraded = []
        for inst in self.plan.instances:
            sample = self.plan.readiness.check(inst.url, self.s.probe_timeout_s)
            if not self.steady_sample(sample):
                state = self.plan.readiness.state(sample)
                degraded.append(f"{inst.name}: {state} {(sample.body or '')[:80]}")
        run.require(
            "steady_state_readiness",
            not degraded,
            True,
            not degraded,
            "; ".join(degraded) + " - no fault injected" if degraded else "",
        )
        t = self.plan.target
        look = Witness(t.service, witness_check(self.plan)).look()
        run.require(
            "steady_state_target",
            look.detail,
            "accepting",
            look.up,
            f"{t.service} at {t.address} - no fault injected" if not look.up else "",
        )

    def _wait_recovery(
        self, run: DrillRun, obs: Observers, kill: Kill, restore_cmd: float
    ) -> tuple[Observation | None, float | None]:
        """(first witness look accepting again, when every instance recovered); None: not within the limit."""
        deadline = restore_cmd + self.s.recovery_limit_s
        back: Observation | None = None
        while time.monotonic() < deadline:
            back = obs.witness.first_up_after(kill.origin) or back
            if back is not None:
                at = self.recovered_at(obs, back.t, restore_cmd)
                if at is not None:
                    run.note(f"recovered {at - restore_cmd:.2f} s after the start command")
                    return back, at
            time.sleep(self.s.probe_interval_s)
        run.note(f"[red]not recovered within {self.s.recovery_limit_s:g} s of the start command[/red]")
        return back, None

    # -- hooks ------------------------------------------------------------------------
    def profile_needs(self) -> list[str]:
        """What the fault needs from the service profile and lacks: the variable, and why."""
        return []

    def judged_settings(self, plan: ChaosPlan) -> Any:
        """The settings the checks read their limits from (a fault may switch off what it cannot see)."""
        return plan.settings

    def steady_sample(self, sample: Sample) -> bool:
        """A readiness answer that counts as steady state before the fault (the profile's "ready")."""
        return self.plan.readiness.ready(sample)

    def observe_for(self) -> float:
        """Seconds after the kill the hold must last at least, unless ``observed_enough``."""
        return 0.0

    def observed_enough(self, obs: Observers, kill: float) -> bool:
        return True

    def recovered_sample(self, sample: Sample) -> bool:
        """What a probe answer looks like when this instance has recovered (the profile's "ready")."""
        return self.plan.readiness.ready(sample)

    def recovered_at(self, obs: Observers, back: float, restore_cmd: float) -> float | None:
        """When every instance answered "recovered" after the service came back (None: not yet)."""
        firsts = []
        for samples in obs.samples().values():
            hit = an.first_seen(samples, back, self.recovered_sample)
            if hit is None:
                return None
            firsts.append(an.seen_at(hit))
        return max(firsts) if firsts else None

    def recovered_what(self) -> str:
        """What "recovered" means, in the recovery_s check's explanation."""
        return "readiness"

    def flips_table(self, measured: M) -> dict[str, float | None] | None:
        """Per-instance reaction times for the summary's table, if the fault has them."""
        return None

    def measure(self, seen: Seen, common: dict[str, Any], acted: Injected) -> M:
        """The fault's record: ``common`` (the shared fields) plus its own figures."""
        raise NotImplementedError
