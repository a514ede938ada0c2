"""Everything that watches a chaos drill, started and stopped together, and the baseline it must show.

Four witnesses, each a core/sampling.py sampler with timestamps: the direct
witness of the target (protocol-level, every 50 ms), a readiness probe per app
instance (as the service profile asks it: path and ready statuses, or TCP),
HAProxy's server table (when the inventory names its admin socket),
and background traffic through the load balancer. The drill reads them while
they run (has the reaction happened yet?) and after they stop (the figures).
"""

from __future__ import annotations

import time
from collections.abc import Callable

from drillbook.chaos import analysis as an
from drillbook.chaos.plan import ChaosPlan
from drillbook.chaos.witness import Check, Observation, Witness, postgres_check, redis_check, tcp_check
from drillbook.core.checks import Measurements
from drillbook.core.drill import DrillRun
from drillbook.core.haproxy import HAProxyWatch, ServerTable
from drillbook.core.probes import ProbeSet, Sample
from drillbook.core.traffic import Background, Outcome

SampleJudge = Callable[[Sample], bool]


def witness_check(plan: ChaosPlan) -> Check:
    """The protocol-level "accepting?" check of the plan's target."""
    t, s = plan.target, plan.settings
    if t.witness == "postgres":
        return postgres_check(t.host, t.port, t.pg_user, t.pg_database, s.witness_timeout_s)
    if t.witness == "redis":
        return redis_check(t.host, t.port, s.witness_timeout_s)
    return tcp_check(t.host, t.port, s.witness_timeout_s)


class Baseline(Measurements):
    """The healthy stretch before the fault, journaled when it ends."""

    baseline_s: float = 0.0
    baseline_requests: int = 0
    baseline_failed_requests: int = 0


class Observers:
    """The witness, the probes, the HAProxy watch and the traffic of one drill."""

    def __init__(self, plan: ChaosPlan, traffic: Background | None) -> None:
        s = plan.settings
        self.plan = plan
        self.witness = Witness(
            plan.target.service, witness_check(plan), s.witness_interval_s, plan.target.address
        )
        self.probes = ProbeSet(
            plan.readiness.probe(i.name, i.url, interval_s=s.probe_interval_s, timeout_s=s.probe_timeout_s)
            for i in plan.instances
        )
        self.lb = (
            HAProxyWatch(plan.haproxy_socket, plan.haproxy_backend, s.probe_interval_s)
            if plan.haproxy_socket
            else None
        )
        self.traffic = traffic
        self._running = False

    def start(self) -> None:
        self.witness.start()
        self.probes.__enter__()
        if self.lb:
            self.lb.start()
        if self.traffic:
            self.traffic.start()
        self._running = True

    def stop(self) -> None:
        """Idempotent: the observe phase stops them, the restore phase makes sure."""
        if not self._running:
            return
        self._running = False
        if self.traffic:
            self.traffic.stop()
        self.probes.stop()
        if self.lb:
            self.lb.stop()
        self.witness.stop()

    # -- what they saw ----------------------------------------------------------------
    def samples(self) -> dict[str, list[Sample]]:
        """Readiness samples per instance."""
        return {name: loop.snapshot() for name, loop in self.probes.loops.items()}

    def outcomes(self) -> list[Outcome]:
        return self.traffic.snapshot() if self.traffic else []

    def lb_tables(self) -> list[ServerTable] | None:
        """HAProxy's looks, or None when the drill has no HAProxy to watch."""
        return self.lb.snapshot() if self.lb else None

    def observations(self) -> list[Observation]:
        return self.witness.snapshot()

    def wait_baseline(self, run: DrillRun, steady: SampleJudge) -> None:
        """Probes and traffic before the fault: at least ``baseline_s`` and a few samples of each.

        On a busy machine a thread may not get to sample for a while; judging a
        baseline with no samples would refuse (or, worse, pass) on no evidence.
        An unsteady baseline stops the drill before the fault (verdict fail).
        """
        s = self.plan.settings
        t0 = time.monotonic()
        deadline = t0 + s.baseline_s + 10.0
        while time.monotonic() < deadline:
            enough = all(len(loop.samples) >= 3 for loop in self.probes.loops.values())
            if time.monotonic() - t0 >= s.baseline_s and enough and len(self.witness.samples) >= 3:
                break
            time.sleep(0.05)
        bad = []
        for name, window in self.samples().items():
            unsteady = [x for x in window if not steady(x)]
            if not window or unsteady:
                first = f", first bad: {self.plan.readiness.state(unsteady[0])} {unsteady[0].body or ''}"
                counts = an.statuses_between(window, 0.0, time.monotonic())
                bad.append(f"{name}: {counts or 'no answer yet'}{first[:200] if unsteady else ''}")
        observations = self.observations()
        if not observations or not all(o.up for o in observations):
            bad.append(
                f"{self.plan.target.service} witness: {[o.detail for o in observations if not o.up][:3]}"
            )
        traffic = self.outcomes()
        run.record(
            Baseline(
                baseline_s=round(time.monotonic() - t0, 3),
                baseline_requests=len(traffic),
                baseline_failed_requests=sum(1 for o in traffic if not o.ok),
            )
        )
        run.require(
            "steady_state_baseline",
            not bad,
            True,
            not bad,
            "; ".join(bad) + " - no fault injected" if bad else "",
        )
