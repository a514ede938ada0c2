"""One chaos drill shape, three faults.

    steady state -> marker row -> traffic + probes + witnesses -> baseline
    -> SIGKILL through Ansible -> hold -> start through Ansible -> wait for recovery
    -> verify -> (restore, always)

:class:`ChaosDrill` runs that shape once for every fault; :class:`KillDb`,
:class:`KillRedis` and :class:`KillApp` only say what counts as "reacted" and
"recovered" for their service and which checks judge the result.

Times are measured from the witnessed fault (the first moment a direct probe saw
the service refuse connections), not from the playbook that caused it; the
playbook's own kill time (reported by the role's kill task) is journaled next to
it, so the difference is visible. Restores are registered before the kill, so a
check that fails, an exception, Ctrl-C or SIGTERM all still put the service
back; a SIGKILL of the drill itself is what ``chaos.recover`` is for.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any, ClassVar

from drillbook.chaos import analysis as an
from drillbook.chaos import workload
from drillbook.chaos.plan import ChaosPlan, Fault, build_plan, guard_production, load_settings
from drillbook.chaos.witness import (
    Check,
    LbWatch,
    Observation,
    Witness,
    lb_down,
    lb_up,
    postgres_check,
    redis_check,
    tcp_check,
)
from drillbook.core import health, interrupts
from drillbook.core.ansible import PlaybookResult, run_playbook
from drillbook.core.drill import DrillRun, LegacyDrill
from drillbook.core.errors import DrillbookError, TargetUnreachable
from drillbook.core.inventory import Inventory
from drillbook.core.probes import Probe, ProbeSet, Sample, check_url, percentile, wait_until
from drillbook.core.traffic import Outcome, Traffic

PLAYBOOK = "chaos.yml"


def iso(wall: float | None) -> str | None:
    if wall is None:
        return None
    return datetime.fromtimestamp(wall, UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")


def mono_from_wall(wall: float) -> float:
    """A wall-clock instant on the monotonic clock (for times reported by a host)."""
    return time.monotonic() - (time.time() - wall)


def witness_check(plan: ChaosPlan) -> Check:
    t, s = plan.target, plan.settings
    if t.witness == "postgres":
        return postgres_check(t.host, t.port, t.pg_user, t.pg_database, s.witness_timeout_s)
    if t.witness == "redis":
        return redis_check(t.host, t.port, s.witness_timeout_s)
    return tcp_check(t.host, t.port, s.witness_timeout_s)


@dataclass
class Attempt:
    """One thing tried to bring the service back, for the journal."""

    action: str
    ok: bool
    duration_s: float
    detail: str = ""


@dataclass
class Timeline:
    """Instants of the drill (monotonic, plus wall clock where a person will read them)."""

    origin_wall: float = field(default_factory=time.time)
    inject_cmd: float | None = None
    kill_pb: PlaybookResult | None = None
    killed: dict[str, dict[str, Any]] = field(default_factory=dict)  # host -> {pid, killed_at}
    kill: Observation | None = None  # first witness observation that saw the service refuse
    kill_mono: float | None = None  # the instant measurements count from
    restore_cmd: float | None = None
    restore_pb: PlaybookResult | None = None
    back: Observation | None = None  # first witness observation accepting again
    recovered: float | None = None
    end: float | None = None


class ChaosDrill(LegacyDrill):
    """The shared shape; subclasses set ``fault`` and fill in the hooks at the bottom."""

    fault: ClassVar[Fault]
    #: Measurements the summary shows first.
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
            thresholds=s,
            duration_s=self.duration_s,
            traffic_rps=self.traffic_rps,
            target=plan.target.pattern,
            hosts=list(plan.target.hosts),
            allow_production=allow_production,
        )
        self.tl = Timeline()
        self.witness = Witness(
            plan.target.service, witness_check(plan), s.witness_interval_s, plan.target.address
        )
        self.probes = ProbeSet(
            Probe(name, url, interval_s=s.probe_interval_s, timeout_s=s.probe_timeout_s, keep_body=True)
            for name, url in plan.readiness_urls
        )
        self.lb = (
            LbWatch(plan.haproxy_socket, plan.haproxy_backend, s.probe_interval_s)
            if plan.haproxy_socket
            else None
        )
        self.traffic: Traffic | None = None
        self.ledger = workload.WriteLedger()
        self.marker: workload.Marker | None = None
        self.attempts: list[Attempt] = []
        self._observing = False
        self._restored = False
        self._recovery_judged = False
        self._dsn = ""

    @classmethod
    def for_inventory(
        cls,
        inv: Inventory,
        *,
        duration_s: float | None = None,
        traffic_rps: float | None = None,
        instance: str | int | None = None,
        allow_production: bool = False,
    ) -> ChaosDrill:
        """Build the drill from the inventory (settings, plan); refuses production unless allowed."""
        guard_production(inv, allow_production)
        plan = build_plan(inv, cls.fault, load_settings(inv), instance=instance)
        return cls(plan, duration_s=duration_s, traffic_rps=traffic_rps, allow_production=allow_production)

    # -- lifecycle -------------------------------------------------------------------
    def preflight(self, run: DrillRun) -> None:
        guard_production(run.inventory, self.allow_production)
        t = self.plan.target
        self._dsn = run.inventory.topology.postgres_dsn
        run.measure("target", {"service": t.service, "hosts": list(t.hosts), "process": t.process})
        run.note(f"target: {t.service} on {', '.join(t.hosts)} ({t.process})")
        with run.phase("steady-state"):
            self._steady_state(run)

    def act(self, run: DrillRun) -> None:
        s = self.s
        with run.phase("marker"):
            self.marker = workload.write_marker(self.plan.lb_url)
            ok, detail = workload.marker_in_db(self._dsn, self.marker)
            run.require("marker_written", ok, True, ok, detail)
            run.measure("marker_item_id", self.marker.item_id, witness="row read back from PostgreSQL")
        items = workload.seed(self.plan.lb_url)
        self.traffic = Traffic(
            self.plan.lb_url,
            self.traffic_rps,
            workload.chaos_mix(items, self.ledger),
            timeout_s=s.traffic_timeout_s,
        )
        run.on_restore("stop probes and traffic", self._stop_observing)
        self._start_observing()
        run.note(
            f"probes every {s.probe_interval_s * 1000:g} ms, "
            f"witness every {s.witness_interval_s * 1000:g} ms, traffic {self.traffic_rps:g} rps"
        )
        with run.phase("baseline"):
            self._wait_baseline(run)
        run.on_restore(f"restore {self.plan.target.service}", lambda: self._ensure_restored(run))
        with run.phase("inject"):
            self._inject(run)

    def observe(self, run: DrillRun) -> None:
        with run.phase("hold"):
            self._hold(run)
        with run.phase("restart"):
            self._restart(run)
        with run.phase("recovery"):
            self._wait_recovery(run)
            time.sleep(min(0.5, 3 * self.s.probe_interval_s))  # a few samples past recovery
        self.tl.end = time.monotonic()
        self._stop_observing()
        self._measure_common(run)
        self.measure(run)
        self._write_timeline(run)

    def verify(self, run: DrillRun) -> None:
        self._verify_fault_witnessed(run)
        self.judge(run)
        self._verify_data(run)
        # The end-of-drill summary prints the first measurements: put the key figures there.
        m = run.journal.measurements
        run.journal.measurements = {k: m[k] for k in self.key_figures if k in m} | m

    def restore(self, run: DrillRun) -> None:
        pieces = health.service(run.inventory.topology)
        bad = [f"{p.piece}: {p.detail}" for p in pieces if not p.ok]
        run.measure("healthy_after", not bad)
        if bad:
            run.note(f"[red]not healthy after the drill:[/red] {'; '.join(bad)}")

    def report(self, run: DrillRun) -> str:
        flips = run.journal.measurements.get("readiness_flip_by_instance")
        lines = [f"Fault: SIGKILL {self.plan.target.service} on {', '.join(self.plan.target.hosts)}."]
        if isinstance(flips, dict):
            lines += ["", "| instance | flip_s |", "|---|---|"]
            lines += [f"| {k} | {v} |" for k, v in flips.items()]
        if self.attempts:
            lines += ["", "Restore attempts:", ""]
            lines += [
                f"- {a.action}: {'ok' if a.ok else 'FAILED'} in {a.duration_s:.1f}s {a.detail}"
                for a in self.attempts
            ]
        return "\n".join(lines)

    # -- steady state and baseline ----------------------------------------------------
    def _steady_state(self, run: DrillRun) -> None:
        pieces = health.service(run.inventory.topology)
        bad = [f"{p.piece}: {p.detail}" for p in pieces if not p.ok]
        run.require(
            "steady_state",
            f"{len(pieces) - len(bad)}/{len(pieces)} healthy",
            "all healthy",
            not bad,
            "; ".join(bad) + " - no fault injected" if bad else "",
        )
        degraded = []
        for name, url in self.plan.readiness_urls:
            sample = _one_sample(url, self.s.probe_timeout_s)
            if not self.steady_sample(sample):
                degraded.append(f"{name}: {sample.status or sample.error} {(sample.body or '')[:80]}")
        run.require(
            "steady_state_readiness",
            not degraded,
            True,
            not degraded,
            "; ".join(degraded) + " - no fault injected" if degraded else "",
        )
        look = self.witness.look()
        run.require(
            "steady_state_target",
            look.detail,
            "accepting",
            look.up,
            f"{self.plan.target.service} at {self.plan.target.address} - no fault injected"
            if not look.up
            else "",
        )

    def _wait_baseline(self, run: DrillRun) -> None:
        """Probes and traffic before the fault: at least ``baseline_s`` and a few samples of each.

        On a busy machine a thread may not get to sample for a while; judging a
        baseline with no samples would refuse (or, worse, pass) on no evidence.
        """
        t0 = time.monotonic()
        deadline = t0 + self.s.baseline_s + 10.0
        while time.monotonic() < deadline:
            enough = all(len(loop.samples) >= 3 for loop in self.probes.loops.values())
            if time.monotonic() - t0 >= self.s.baseline_s and enough and len(self.witness.observations) >= 3:
                break
            time.sleep(0.05)
        bad = []
        for name, loop in self.probes.loops.items():
            window = list(loop.samples)
            unsteady = [s for s in window if not self.steady_sample(s)]
            if not window or unsteady:
                first = f", first bad: {unsteady[0].status or unsteady[0].error} {unsteady[0].body or ''}"
                counts = an.statuses_between(window, 0.0, time.monotonic())
                bad.append(f"{name}: {counts or 'no answer yet'}{first[:200] if unsteady else ''}")
        observations = list(self.witness.observations)
        if not observations or not all(o.up for o in observations):
            bad.append(
                f"{self.plan.target.service} witness: {[o.detail for o in observations if not o.up][:3]}"
            )
        traffic = self.traffic.snapshot() if self.traffic else []
        run.measure("baseline_s", round(time.monotonic() - t0, 3))
        run.measure("baseline_requests", len(traffic))
        run.measure("baseline_failed_requests", sum(1 for o in traffic if not o.ok))
        run.require(
            "steady_state_baseline",
            not bad,
            True,
            not bad,
            "; ".join(bad) + " - no fault injected" if bad else "",
        )

    # -- observers ---------------------------------------------------------------------
    def _start_observing(self) -> None:
        self.witness.start()
        self.probes.__enter__()
        if self.lb:
            self.lb.start()
        if self.traffic:
            self.traffic.start()
        self._observing = True

    def _stop_observing(self) -> None:
        if not self._observing:
            return
        self._observing = False
        if self.traffic:
            self.traffic.stop()
        self.probes.stop()
        if self.lb:
            self.lb.stop()
        self.witness.stop()

    # -- fault ---------------------------------------------------------------------------
    def _playbook(self, run: DrillRun, action: str, *, cancellable: bool) -> PlaybookResult:
        t = self.plan.target
        return run_playbook(
            run.inventory,
            PLAYBOOK,
            limit=t.pattern,
            extravars={"chaos_target": t.pattern, "chaos_role": t.role, "chaos_action": action},
            progress=run.note,
            cancellable=cancellable,
        )

    def _inject(self, run: DrillRun) -> None:
        t = self.plan.target
        run.note(f"SIGKILL {t.service} on {', '.join(t.hosts)}")
        self.tl.inject_cmd = time.monotonic()
        pb = self._playbook(run, "kill", cancellable=True)
        self.tl.kill_pb = pb
        interrupts.raise_if_requested()
        for r in pb.for_task("Report what was killed"):
            facts = r.res.get("ansible_facts", {}) or {}
            killed = facts.get("chaos_killed") or {}
            if isinstance(killed, dict):
                self.tl.killed[r.host] = killed
        run.measure("kill_playbook_started_at", iso(pb.started_at), witness="ansible-runner")
        run.measure("kill_playbook_s", round(pb.duration_s, 3))
        run.measure("killed_pids", {h: k.get("pid") for h, k in self.tl.killed.items()})
        kill_walls = [float(k["killed_at"]) for k in self.tl.killed.values() if k.get("killed_at")]
        run.measure(
            "kill_at_playbook", iso(min(kill_walls)) if kill_walls else None, witness="role kill task"
        )
        if self.tl.killed and not any(k.get("pid") for k in self.tl.killed.values()):
            run.note(f"[yellow]the kill task found no running {t.service} process[/yellow]")
        # Wait for the witness to see the service refuse.
        deadline = self.tl.inject_cmd + self.s.witness_kill_timeout_s + pb.duration_s
        while time.monotonic() < deadline:
            seen = self.witness.first_down_after(self.tl.inject_cmd)
            if seen:
                self.tl.kill = seen
                break
            time.sleep(self.s.witness_interval_s)
        if self.tl.kill:
            before = self.witness.last_up_before(self.tl.kill.t)
            self.tl.kill_mono = self.tl.kill.t
            run.measure(
                "kill_witnessed_at",
                iso(self.tl.kill.wall),
                witness=f"direct {t.witness} probe of {t.address} "
                f"every {self.s.witness_interval_s * 1000:g} ms",
            )
            run.measure("kill_witness_detail", self.tl.kill.detail)
            if before:
                run.measure("kill_witness_resolution_s", round(self.tl.kill.t - before.t, 3))
            if kill_walls:
                run.measure("kill_witness_lag_s", round(self.tl.kill.wall - min(kill_walls), 3))
            run.measure("kill_witnessed_after_playbook_start_s", round(self.tl.kill.wall - pb.started_at, 3))
            run.note(f"fault witnessed: {t.service} {self.tl.kill.detail}")
        else:
            run.note(f"[red]the witness never saw {t.service} refuse connections[/red]")
            self.tl.kill_mono = (
                mono_from_wall(min(kill_walls)) if kill_walls else mono_from_wall(pb.finished_at)
            )

    def _hold(self, run: DrillRun) -> None:
        start = self.tl.kill_mono or time.monotonic()
        until = start + self.duration_s
        # Never cut short what the drill is there to see (a flip within its limit).
        must_observe = start + self.observe_for()
        run.note(f"holding the fault for {self.duration_s:g} s")
        while True:
            now = time.monotonic()
            if now >= until and (now >= must_observe or self.observed_enough(start)):
                break
            time.sleep(min(self.s.probe_interval_s, max(0.01, until - now)))
        self.tl.restore_cmd = time.monotonic()

    def _run_restore(self, run: DrillRun) -> Attempt:
        t = self.plan.target
        action = f"playbooks/{PLAYBOOK}: {t.role} start + wait_ready on {t.pattern}"
        t0 = time.monotonic()
        try:
            pb = self._playbook(run, "start", cancellable=False)
        except DrillbookError as exc:
            attempt = Attempt(action, False, round(time.monotonic() - t0, 3), str(exc))
        else:
            self.tl.restore_pb = self.tl.restore_pb or pb
            attempt = Attempt(action, True, round(pb.duration_s, 3), f"{pb.changed} changed")
        self.attempts.append(attempt)
        run.measure("restore_attempts", [a.__dict__ for a in self.attempts], witness="ansible-runner")
        return attempt

    def _restart(self, run: DrillRun) -> None:
        run.note(f"restarting {self.plan.target.service}")
        self.tl.restore_cmd = self.tl.restore_cmd or time.monotonic()
        with interrupts.shielded():
            attempt = self._run_restore(run)
            self._restored = attempt.ok
        run.measure(
            "restore_playbook_started_at", iso(time.time() - (time.monotonic() - self.tl.restore_cmd))
        )
        interrupts.raise_if_requested()
        if not attempt.ok:
            run.note(f"[red]restore failed:[/red] {attempt.detail}")

    def _wait_recovery(self, run: DrillRun) -> None:
        assert self.tl.restore_cmd is not None
        deadline = self.tl.restore_cmd + self.s.recovery_limit_s
        while time.monotonic() < deadline:
            back = self.witness.first_up_after(self.tl.kill_mono or self.tl.restore_cmd)
            if back is not None:
                self.tl.back = back
                at = self.recovered_at(back.t)
                if at is not None:
                    self.tl.recovered = at
                    run.note(f"recovered {at - self.tl.restore_cmd:.2f} s after the start command")
                    return
            time.sleep(self.s.probe_interval_s)
        run.note(f"[red]not recovered within {self.s.recovery_limit_s:g} s of the start command[/red]")

    def _ensure_restored(self, run: DrillRun) -> None:
        """The always-run undo: start the service unless it is back already; idempotent."""
        look = self.witness.look()
        if self._restored and look.up:
            run.note(f"{self.plan.target.service} already restored")
            return
        run.note(f"restoring {self.plan.target.service} ({look.detail})")
        attempt = self._run_restore(run)
        if not attempt.ok:
            if self._recovery_judged:  # already a failed check with the story; do not turn fail into error
                run.note(f"[red]second restore attempt failed too:[/red] {attempt.detail}")
                return
            raise TargetUnreachable(f"could not restart {self.plan.target.service}: {attempt.detail}")
        self._restored = True
        waited = _wait(lambda: self.witness.look().up, self.s.recovery_limit_s)
        if waited is None:
            raise TargetUnreachable(
                f"{self.plan.target.service} at {self.plan.target.address} still refuses connections "
                f"{self.s.recovery_limit_s:g} s after the start"
            )
        # Give the instances a moment to see it (readiness), without failing the restore on it.
        _wait(lambda: all(an.ready(_one_sample(u, 1.0)) for _n, u in self.plan.readiness_urls), 10.0)

    # -- measurements --------------------------------------------------------------------
    def samples(self) -> dict[str, list[Sample]]:
        return {name: list(loop.samples) for name, loop in self.probes.loops.items()}

    def outcomes(self) -> list[Outcome]:
        return self.traffic.snapshot() if self.traffic else []

    def _measure_common(self, run: DrillRun) -> None:
        tl = self.tl
        t = self.plan.target
        if tl.back:
            run.measure("service_back_witnessed_at", iso(tl.back.wall), witness=f"direct {t.witness} probe")
            if tl.kill:
                run.measure(
                    "outage_s", round(tl.back.t - tl.kill.t, 3), witness="direct probe, kill to accept"
                )
            if tl.restore_cmd:
                run.measure(
                    "restart_s", round(tl.back.t - tl.restore_cmd, 3), witness="start command to accept"
                )
        recovery = round(tl.recovered - tl.restore_cmd, 3) if tl.recovered and tl.restore_cmd else None
        run.measure("recovery_s", recovery, witness=self.recovery_witness())
        if tl.recovered and tl.back:
            run.measure("recovery_after_service_back_s", round(tl.recovered - tl.back.t, 3))
        traffic = self.outcomes()
        run.measure("requests_total", len(traffic))
        if tl.inject_cmd is not None:
            before = [o.latency_ms for o in traffic if o.t < tl.inject_cmd]
            p95 = percentile(before, 95)
            run.measure(
                "baseline_p95_ms",
                round(p95, 2) if p95 is not None else None,
                witness="latency of the same traffic before the fault (how busy the machine is)",
            )
        if tl.kill_mono is not None:
            end = tl.recovered or tl.end or time.monotonic()
            outage = an.outage_traffic(traffic, tl.kill_mono, end)
            run.measure("requests_during_outage", outage.requests, witness="background traffic via the LB")
            run.measure("failed_during_outage", outage.failed)
            run.measure("error_pct_during_outage", outage.error_pct, witness="background traffic via the LB")
            run.measure("outage_p95_ms", outage.p95_ms, witness="latency of requests sent during the outage")
            run.measure("outage_by_endpoint", outage.by_endpoint)
        if self.lb and self.lb.observations and self.lb.observations[-1].error:
            run.note(f"HAProxy stats: {self.lb.observations[-1].error}")

    def _write_timeline(self, run: DrillRun) -> None:
        origin = self.tl.origin_wall
        data = {
            "origin": iso(origin),
            "kill_witnessed_at_s": round(self.tl.kill.wall - origin, 3) if self.tl.kill else None,
            "witness": an.witness_transitions(self.witness.observations, origin),
            "probes": {n: an.probe_transitions(s, origin) for n, s in self.samples().items()},
            "haproxy": an.lb_transitions(self.lb.observations, origin) if self.lb else [],
            "traffic_per_second": an.per_second(self.outcomes(), origin),
        }
        path = run.report_dir / "timeline.json"
        path.write_text(json.dumps(data, indent=2) + "\n")
        run.artefact(path)

    # -- verification shared by every fault ------------------------------------------------
    def _verify_fault_witnessed(self, run: DrillRun) -> None:
        kill = self.tl.kill
        run.check_true(
            "fault_witnessed",
            kill is not None,
            f"{self.plan.target.service} refused at {iso(kill.wall)}"
            if kill
            else "the witness never saw the service refuse connections: the kill did not take",
        )

    def _verify_recovery(self, run: DrillRun, what: str) -> None:
        self._recovery_judged = True
        recovery = run.journal.measurements.get("recovery_s")
        detail = "" if recovery is not None else self._not_recovered_detail(what)
        run.check_at_most("recovery_s", recovery, self.s.recovery_limit_s, detail)

    def _not_recovered_detail(self, what: str) -> str:
        t = self.plan.target
        look = self.witness.look()
        parts = [f"{what} not back within {self.s.recovery_limit_s:g} s of the start command"]
        parts.append(f"{t.service} at {t.address}: {look.detail}")
        for name, samples in self.samples().items():
            last = samples[-1] if samples else None
            if last is not None and not self.recovered_sample(last):
                parts.append(f"{name} last answered {last.status or last.error}")
        tried = "; ".join(f"{a.action} -> {'ok' if a.ok else a.detail}" for a in self.attempts) or "nothing"
        parts.append(f"tried: {tried}")
        return "; ".join(parts)

    def _verify_data(self, run: DrillRun) -> None:
        if self.marker is None:
            return
        intact, detail = workload.marker_in_db(self._dsn, self.marker)
        run.measure("data_intact", intact, witness="marker row read back in PostgreSQL itself")
        run.check_true("data_intact", intact, detail)
        lost, detail = workload.writes_in_db(self._dsn, self.ledger.snapshot())
        run.measure("acknowledged_writes", len(self.ledger.snapshot()))
        run.measure(
            "acknowledged_writes_lost", lost, witness="acknowledged (201) writes looked up in PostgreSQL"
        )
        run.check("acknowledged_writes_lost", lost, 0, lost == 0, detail)

    # -- hooks ------------------------------------------------------------------------------
    def steady_sample(self, sample: Sample) -> bool:
        """A readiness answer that counts as steady state before the fault."""
        return an.ready(sample)

    def observe_for(self) -> float:
        """Seconds after the kill the hold must last at least, unless ``observed_enough``."""
        return 0.0

    def observed_enough(self, kill: float) -> bool:
        return True

    def recovered_sample(self, sample: Sample) -> bool:
        """What a probe answer looks like when this instance has recovered."""
        return an.ready(sample)

    def recovered_at(self, back: float) -> float | None:
        """When every instance answered "recovered" after the service came back (None: not yet)."""
        firsts = []
        for samples in self.samples().values():
            hit = an.first_seen(samples, back, self.recovered_sample)
            if hit is None:
                return None
            firsts.append(an.seen_at(hit))
        return max(firsts) if firsts else None

    def recovery_witness(self) -> str:
        return "readiness probes: start command to all instances ready"

    def measure(self, run: DrillRun) -> None:
        """Fault-specific measurements."""

    def judge(self, run: DrillRun) -> None:
        """Fault-specific checks."""


class KillDb(ChaosDrill):
    """SIGKILL PostgreSQL: readiness must flip to 503 fast, come back after the restart, lose nothing."""

    name = "chaos.kill-db"
    runbook = "runbooks/db-outage.md"
    fault = "kill-db"
    key_figures = (
        "readiness_flip_s",
        "recovery_s",
        "data_intact",
        "outage_p95_ms",
        "error_pct_during_outage",
        "lb_detect_s",
        "kill_witnessed_at",
        "kill_at_playbook",
    )

    def observe_for(self) -> float:
        return self.s.readiness_flip_limit_s + 0.2

    def observed_enough(self, kill: float) -> bool:
        return all(f.seen for f in an.flips(self.samples(), kill, an.status_is(503)))

    def measure(self, run: DrillRun) -> None:
        kill, tl = self.tl.kill_mono, self.tl
        if kill is None:
            return
        flips = an.flips(self.samples(), kill, an.status_is(503), until=tl.restore_cmd)
        run.measure(
            "readiness_flip_s",
            an.slowest(flips),
            witness=f"readiness probes every {self.s.probe_interval_s * 1000:g} ms, from the witnessed kill",
        )
        run.measure("readiness_flip_by_instance", {f.name: f.seconds for f in flips})
        if tl.kill_pb:
            first_answer = [an.seen_at(f.sample) for f in flips if f.sample]
            if len(first_answer) == len(flips) and flips:
                lag = mono_from_wall(tl.kill_pb.started_at)
                run.measure("readiness_flip_from_playbook_start_s", round(max(first_answer) - lag, 3))
        end = tl.restore_cmd or time.monotonic()
        run.measure(
            "readiness_during_outage",
            {n: an.statuses_between(s, kill, end) for n, s in self.samples().items()},
        )
        if self.lb:
            names = [i.name for i in self.plan.instances]
            all_down = next(
                (
                    o
                    for o in self.lb.observations
                    if o.t >= kill and names and all(lb_down(o.status.get(n, "")) for n in names)
                ),
                None,
            )
            run.measure(
                "lb_detect_s",
                round(all_down.t - kill, 3) if all_down else None,
                witness="HAProxy stats: every server DOWN",
            )
            if tl.restore_cmd:
                any_up = next(
                    (
                        o
                        for o in self.lb.observations
                        if o.t >= tl.restore_cmd and any(lb_up(o.status.get(n, "")) for n in names)
                    ),
                    None,
                )
                run.measure(
                    "lb_back_s",
                    round(any_up.t - tl.restore_cmd, 3) if any_up else None,
                    witness="HAProxy stats: first server UP again, from the start command",
                )

    def judge(self, run: DrillRun) -> None:
        m = run.journal.measurements
        flips: dict[str, float | None] = m.get("readiness_flip_by_instance") or {}
        never = [n for n, v in flips.items() if v is None]
        detail = ""
        if never:
            seen = m.get("readiness_during_outage", {})
            detail = "; ".join(
                f"{n} never answered 503 (answers during the outage: {seen.get(n)})" for n in never
            )
            if all(set(seen.get(n, {})) <= {"200"} for n in never):
                detail += " - readiness ignores the database"
        run.check_at_most(
            "readiness_flip_s", m.get("readiness_flip_s"), self.s.readiness_flip_limit_s, detail
        )
        self._verify_recovery(run, "readiness")
        run.check_at_most(
            "outage_p95_ms",
            m.get("outage_p95_ms"),
            self.s.outage_p95_limit_ms,
            "requests during the outage must fail fast, not hang",
        )


class KillRedis(ChaosDrill):
    """SIGKILL Redis: the service must degrade gracefully (ready, correct, fast) and get its cache back."""

    name = "chaos.kill-redis"
    runbook = "runbooks/redis-outage.md"
    fault = "kill-redis"
    key_figures = (
        "error_pct_during_outage",
        "outage_p95_ms",
        "readiness_stayed_200",
        "degraded_flip_s",
        "recovery_s",
        "cache_back",
        "data_intact",
        "kill_witnessed_at",
        "kill_at_playbook",
    )

    def observe_for(self) -> float:
        return self.s.readiness_flip_limit_s + 0.2

    def observed_enough(self, kill: float) -> bool:
        return all(f.seen for f in an.flips(self.samples(), kill, an.ready_degraded))

    def recovered_sample(self, sample: Sample) -> bool:
        return an.ready_not_degraded(sample)

    def steady_sample(self, sample: Sample) -> bool:
        # Already degraded before the kill would make "degraded during the outage" meaningless.
        return an.ready_not_degraded(sample)

    def recovery_witness(self) -> str:
        return "readiness probes: start command to degraded=false on every instance"

    def measure(self, run: DrillRun) -> None:
        kill, tl = self.tl.kill_mono, self.tl
        if kill is None:
            return
        end = tl.back.t if tl.back else (tl.restore_cmd or time.monotonic())
        samples = self.samples()
        degraded = an.flips(samples, kill, an.ready_degraded, until=end)
        run.measure(
            "degraded_flip_s",
            an.slowest(degraded),
            witness="readiness probes: 200 with degraded=true, from the witnessed kill",
        )
        run.measure("degraded_flip_by_instance", {f.name: f.seconds for f in degraded})
        run.measure(
            "readiness_during_outage", {n: an.statuses_between(s, kill, end) for n, s in samples.items()}
        )
        not_ready = {
            n: c for n, s in samples.items() if (c := an.statuses_between(s, kill, end)) and set(c) != {"200"}
        }
        run.measure("readiness_stayed_200", not not_ready)

    def judge(self, run: DrillRun) -> None:
        m = run.journal.measurements
        s = self.s
        run.check_true(
            "readiness_stayed_200",
            bool(m.get("readiness_stayed_200")),
            ""
            if m.get("readiness_stayed_200")
            else f"answers during the outage: {m.get('readiness_during_outage')}",
        )
        never = [n for n, v in (m.get("degraded_flip_by_instance") or {}).items() if v is None]
        run.check_at_most(
            "degraded_flip_s",
            m.get("degraded_flip_s"),
            s.readiness_flip_limit_s,
            f"never reported degraded: {', '.join(never)}" if never else "",
        )
        run.check_at_most(
            "error_pct_during_outage",
            m.get("error_pct_during_outage"),
            s.redis_error_pct_limit,
            f"{m.get('failed_during_outage')} of {m.get('requests_during_outage')} failed: "
            f"{m.get('outage_by_endpoint')}"
            if m.get("failed_during_outage")
            else "",
        )
        run.check_at_most("outage_p95_ms", m.get("outage_p95_ms"), s.redis_latency_p95_limit_ms)
        self._verify_recovery(run, "cache (degraded=false)")
        self._verify_cache(run)

    def _verify_cache(self, run: DrillRun) -> None:
        if self.marker is None or not self.plan.redis_url:
            return
        key = self.s.cache_key_template.format(id=self.marker.item_id)
        cached, detail = False, ""
        deadline = time.monotonic() + 3.0
        while time.monotonic() < deadline:
            codes = workload.read_through_lb(self.plan.lb_url, self.marker.item_id)
            cached, detail = workload.cache_holds(self.plan.redis_url, key)
            detail = f"{detail} after GET /items/{self.marker.item_id} -> {codes}"
            if cached:
                break
            time.sleep(0.2)
        run.measure("cache_back", cached, witness="Redis itself: the marker item cached again after a read")
        run.check_true("cache_back", cached, detail)


class KillApp(ChaosDrill):
    """SIGKILL one app instance: HAProxy must route around it and take it back after the restart."""

    name = "chaos.kill-app"
    runbook = "runbooks/app-outage.md"
    fault = "kill-app"
    key_figures = (
        "killed_instance",
        "lb_detect_s",
        "error_pct_during_outage",
        "recovery_s",
        "data_intact",
        "kill_witnessed_at",
        "kill_at_playbook",
    )

    @property
    def killed(self) -> str:
        assert self.plan.killed_instance is not None
        return self.plan.killed_instance.name

    def others(self) -> list[str]:
        return [i.name for i in self.plan.instances if i.name != self.killed]

    def observe_for(self) -> float:
        return self.s.lb_detect_limit_s + 0.2

    def observed_enough(self, kill: float) -> bool:
        return self.lb is None or self.lb.first_where(self.killed, kill, lb_down) is not None

    def recovered_at(self, back: float) -> float | None:
        ready = super().recovered_at(back)
        if ready is None or self.lb is None:
            return ready
        restore = self.tl.restore_cmd or back
        up = self.lb.first_where(self.killed, max(restore, back), lb_up)
        return max(ready, up.t) if up else None

    def recovery_witness(self) -> str:
        return "HAProxy stats (server UP again) and readiness probes, from the start command"

    def measure(self, run: DrillRun) -> None:
        kill, tl = self.tl.kill_mono, self.tl
        if kill is None:
            return
        if self.lb:
            down = self.lb.first_where(self.killed, kill, lb_down)
            run.measure(
                "lb_detect_s",
                round(down.t - kill, 3) if down else None,
                witness=f"HAProxy stats every {self.s.probe_interval_s * 1000:g} ms: {self.killed} DOWN",
            )
            if tl.restore_cmd:
                up = self.lb.first_where(self.killed, tl.restore_cmd, lb_up)
                run.measure(
                    "lb_back_s",
                    round(up.t - tl.restore_cmd, 3) if up else None,
                    witness=f"HAProxy stats: {self.killed} UP again, from the start command",
                )
        end = tl.back.t if tl.back else (tl.restore_cmd or time.monotonic())
        samples = self.samples()
        others = {n: an.statuses_between(samples[n], kill, end) for n in self.others()}
        run.measure("others_during_outage", others, witness="readiness probes of the other instances")
        if self.lb:
            dropped = sorted(
                {
                    n
                    for o in self.lb.observations
                    if kill <= o.t <= end
                    for n in self.others()
                    if lb_down(o.status.get(n, ""))
                }
            )
            run.measure("others_dropped_by_lb", dropped, witness="HAProxy stats: other servers marked DOWN")
        run.measure("killed_instance", self.killed)

    def judge(self, run: DrillRun) -> None:
        m = run.journal.measurements
        s = self.s
        if self.lb:
            run.check_at_most(
                "lb_detect_s",
                m.get("lb_detect_s"),
                s.lb_detect_limit_s,
                "" if m.get("lb_detect_s") is not None else f"HAProxy never marked {self.killed} DOWN",
            )
        run.check_at_most(
            "error_pct_during_outage",
            m.get("error_pct_during_outage"),
            s.app_error_pct_limit,
            f"{m.get('failed_during_outage')} of {m.get('requests_during_outage')} failed",
        )
        # The survivors must stay in rotation: judged by HAProxy itself (one slow
        # readiness answer does not take a server out; `fall` of them do).
        others: dict[str, dict[str, int]] = m.get("others_during_outage") or {}
        if self.lb:
            dropped = m.get("others_dropped_by_lb") or []
            run.check_true(
                "others_stayed_in_rotation",
                not dropped,
                f"HAProxy marked {', '.join(dropped)} DOWN too (readiness answers: {others})"
                if dropped
                else "",
            )
        else:
            bad = {n: c for n, c in others.items() if set(c) - {"200"}}
            run.check_true("others_stayed_in_rotation", not bad, f"readiness answers: {bad}" if bad else "")
        self._verify_recovery(run, f"{self.killed} (back in rotation)")


DRILLS: dict[Fault, type[ChaosDrill]] = {"kill-db": KillDb, "kill-redis": KillRedis, "kill-app": KillApp}


def _one_sample(url: str, timeout_s: float) -> Sample:
    return check_url(url, timeout_s)


def _wait(predicate: Callable[[], bool], timeout_s: float, interval_s: float = 0.1) -> float | None:
    return wait_until(predicate, timeout_s, interval_s)
