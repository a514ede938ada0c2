"""The canary drill (``deploy.canary``): each lifecycle phase does what its name says.

::

    preflight  steady fleet (one release everywhere, all ready, weights as configured),
               artifact of V exists, no unfinished rollout, HAProxy reachable -> CanaryPlan
    act        the witnesses start (HAProxy watch, background traffic), canary weight 0,
               V deployed on the canary hosts and ready; the rollback is registered as an
               undo action -> Deployed
    observe    the analysis loop (analysis.py): per step the canary's share is shifted and
               the judge looks every interval; when every step passed, the promotion
               (promotion.py) or the pause -> CanaryMeasured
    verify     core compares the record with the declared checks below
    restore    the undo action rolls back whatever the rollout reached (a breach, not
               enough evidence, Ctrl-C, an error): canary weight 0 at once, the previous
               release redeployed and verified; then traffic and watch stop

Every state change of the rollout is written to the rollout record
(:mod:`drillbook.canary.state`) before it happens, so another process (or the operator
after a crash) always knows what the fleet is in the middle of. deploy.promote and
deploy.rollback live in :mod:`drillbook.canary.promotion`.
"""

from __future__ import annotations

import math
import time
from dataclasses import dataclass, field

from pydantic import Field

from drillbook.canary.analysis import Analysis, AnalysisResult, StepRecord
from drillbook.canary.base import (
    IDENTITY,
    READINESS,
    DeployDrill,
    load_settings,
    name_witnesses,
    require_answering,
)
from drillbook.canary.fleet import FleetOps
from drillbook.canary.judge import Judge
from drillbook.canary.promotion import PROMOTE_WITNESSES, PromoteDrill, RollbackDrill, promote, rollback_fleet
from drillbook.canary.releases import check_artifact
from drillbook.canary.settings import CanarySettings
from drillbook.canary.sources import (
    LoadBalancerSource,
    PrometheusSource,
    ScrapeSource,
    Source,
    source_kind,
)
from drillbook.canary.state import Rollout, read_fleet
from drillbook.canary.watch import ServerWatch
from drillbook.core import identity, interrupts
from drillbook.core.checks import Measurements, at_most, is_true, witnessed
from drillbook.core.drill import DrillRun
from drillbook.core.errors import AnsibleFailed, CheckFailed, ConfigError
from drillbook.core.flow import Flow
from drillbook.core.haproxy import ServerStat
from drillbook.core.profile import load_profile
from drillbook.core.traffic import StepMix, Traffic, summarize

__all__ = ["CanaryDrill", "PromoteDrill", "RollbackDrill", "load_settings"]


@dataclass(frozen=True)
class CanaryPlan:
    """What preflight established: the fleet operations and the rollout about to start."""

    ops: FleetOps
    rollout: Rollout
    current: str


@dataclass
class Control:
    """Where the rollout stands, shared by observe and the undo action (the only mutable state)."""

    stage: str = "idle"  # idle -> canary -> paused | promoting -> promoted | rolled_back
    decided_at: float | None = None  # monotonic time of the rollback decision


@dataclass
class Deployed:
    """What act left running: the canary (ready or not), the witnesses, the traffic."""

    ready: bool
    detail: str
    watch: ServerWatch
    traffic: Traffic | None
    servers_before: dict[str, ServerStat]
    backend_before: tuple[int, int]
    control: Control = field(default_factory=Control)


class CanaryMeasured(Measurements):
    """The canary drill's record: what every check reads, and the figures on-call looks for."""

    from_version: str = witnessed(f"{IDENTITY} on every instance")
    to_version: str
    canary_instances: list[str]
    canary_deployed: bool = witnessed(f"{IDENTITY} and {READINESS} on the canary, HAProxy UP")
    deploy_detail: str = ""
    canary_ready: bool | None = witnessed("HAProxy health checks and the canary's /metrics, every look")
    ready_detail: str = ""
    analysis: str = "not run"  # pass | breach | insufficient | not run
    reason: str = ""
    error_increase_bound_pct: float | None = witnessed(
        "instances' /metrics (http_requests_total by status), differenced, pooled over the steps"
    )
    error_detail: str = ""
    latency_effect_ratio: float | None = witnessed(
        "the drill's own requests: server from HAProxy's X-Served-By, "
        "response time from its X-Server-Time (%Tr)"
    )
    latency_detail: str = ""
    enough_evidence: bool | None = None
    evidence_detail: str = ""
    detection_s: float | None = witnessed(
        "HAProxy per-server request counter (first canary response) to the decision"
    )
    failed_requests: int | None = witnessed("HAProxy hrsp_5xx of the canary servers, deploy to decision")
    steps: list[StepRecord] = Field(default_factory=list)
    promoted: bool | None = witnessed(f"{IDENTITY} on every instance")
    promote_detail: str = ""
    promote_s: float | None = witnessed(f"{IDENTITY} on every instance")


class CanaryDrill(DeployDrill[CanaryPlan, Deployed, CanaryMeasured]):
    """Deploy a release to the canary hosts, judge it on live traffic, promote it or roll it back."""

    name = "deploy.canary"
    measured = CanaryMeasured
    checks = (
        is_true("canary_deployed", name="canary deployed and ready", detail_from="deploy_detail"),
        is_true("canary_ready", name="canary stays ready", detail_from="ready_detail"),
        at_most(
            "error_increase_bound_pct",
            limit_from="error_margin_pct",
            name="error-rate increase, lower confidence bound (%)",
            detail_from="error_detail",
        ),
        at_most(
            "latency_effect_ratio",
            limit=1.0,
            name="latency shift, lower confidence bound / tolerance",
            detail_from="latency_detail",
        ),
        is_true("enough_evidence", name="enough evidence to decide", detail_from="evidence_detail"),
        at_most("failed_requests", limit_from="max_failed_requests", name="failed requests served"),
        is_true("promoted", name="promoted (or paused as asked)", detail_from="promote_detail"),
    )

    def __init__(
        self,
        settings: CanarySettings,
        version: str,
        *,
        traffic_rps: float | None = None,
        pause_before_promote: bool = False,
    ) -> None:
        rps = settings.traffic_rps if traffic_rps is None else traffic_rps
        super().__init__(
            settings, version=version, traffic_rps=rps, pause_before_promote=pause_before_promote
        )
        if rps < 0:
            raise ConfigError(f"--traffic must be >= 0 requests per second, got {rps}")
        self.version = version
        self.rps = rps
        self.pause = pause_before_promote

    # -- preflight ------------------------------------------------------------------------
    def preflight(self, run: DrillRun) -> CanaryPlan:
        ops = self.open_fleet(run)
        record = ops.store.load()
        if record and record.unfinished:
            run.require(
                "no unfinished rollout",
                f"{record.version} {record.phase}",
                "none",
                False,
                f"a rollout of {record.version} is {record.phase} ({record.reason or 'no reason given'}): "
                "finish it with inv deploy.promote or undo it with inv deploy.rollback",
            )
        check_artifact(run.inventory, self.version)
        require_answering(ops)
        name_witnesses(
            run,
            {
                "from_version": "{identity} on every instance",
                "canary_deployed": "{identity} and {readiness} on the canary, HAProxy UP",
                **PROMOTE_WITNESSES,
            },
        )
        fleet = read_fleet(run.inventory, canary_hosts=ops.plan.canary_hosts)
        problems = "; ".join(fleet.problems())
        hint = " (inv deploy.status shows the fleet; inv deploy.rollback repairs it)"
        run.require("steady state", fleet.steady, True, fleet.steady, "" if fleet.steady else problems + hint)
        current = str(fleet.version)
        if current == self.version:
            raise ConfigError(f"every instance already runs {self.version}: nothing to canary")
        s = self.settings
        target = current if s.rollback_target == "previous" else s.rollback_target
        if target != current:
            check_artifact(run.inventory, target)
        run.note(
            f"canary {self.version} on {', '.join(i.name for i in ops.plan.canary)} against "
            f"{current} on {', '.join(i.name for i in ops.plan.baseline)}; steps "
            f"{', '.join(f'{p:g}%' for p in s.steps)}, window {s.window_s:g}s; errors at "
            f"{s.error_level_per_look:.2g} and latency at {s.latency_level_per_look:.2g} per look (Pocock)"
        )
        rollout = Rollout(self.version, target, ops.plan.canary_hosts, report_dir=str(run.report_dir))
        plan = CanaryPlan(ops, rollout, current)
        source = self._source(run, plan)
        try:
            if isinstance(source, PrometheusSource):  # before anything moves: URL, templates, labels
                source.check()
        finally:
            source.close()
        return plan

    # -- act: the canary deploy ------------------------------------------------------------
    def act(self, run: DrillRun, plan: CanaryPlan) -> Deployed:
        ops = plan.ops
        watch = ServerWatch(
            ops.haproxy.address,
            ops.backend,
            [i.name for i in ops.plan.canary],
            [i.name for i in ops.plan.baseline],
        )
        deployed = Deployed(
            ready=False,
            detail="",
            watch=watch,
            traffic=None,
            servers_before={st.server: st for st in ops.haproxy.stats(ops.backend)},
            backend_before=ops.haproxy.backend_totals(ops.backend),
        )
        run.on_restore("count what users met", lambda: self._totals(run, plan, deployed))
        watch.start()
        run.on_restore("stop the HAProxy watch", lambda: _stop(watch))
        deployed.traffic = self._start_traffic(run)
        ops.store.save(plan.rollout, "canary", f"deploy.canary of {self.version}")
        deployed.control.stage = "canary"
        run.on_restore("roll back an unfinished rollout", lambda: self._undo(run, plan, deployed))
        ops.weights.canary_off()
        try:
            with run.phase("deploy canary"):
                ops.deploy(ops.plan.canary, self.version, migrate=True)
                ops.wait_serving(ops.plan.canary, self.version)
                ops.wait_lb_up(ops.plan.canary)
        except (AnsibleFailed, CheckFailed) as exc:
            deployed.detail = str(exc)
            deployed.control.decided_at = time.monotonic()
            return deployed
        deployed.ready = True
        deployed.detail = f"{self.version} serving on {', '.join(ops.plan.canary_hosts)}"
        return deployed

    def _start_traffic(self, run: DrillRun) -> Traffic | None:
        if self.rps <= 0:
            return None
        lb_url = run.inventory.topology.lb_url
        flow = Flow.for_inventory(run.inventory)
        steps = flow.profile.traffic.requests
        if not steps:
            run.note("service_traffic.requests is empty: no background traffic, the service's own is judged")
            return None
        source = StepMix(steps, auth=flow.auth_headers(), values={"run_id": flow.values["run_id"]})
        s = self.settings
        traffic = Traffic(
            lb_url,
            self.rps,
            source,
            server_header=s.server_header or None,
            time_header=s.server_time_header or None,
        ).start()
        run.on_restore("stop background traffic", lambda: _stop(traffic))
        run.note(f"background traffic: {self.rps:g} requests/s through {lb_url}")
        return traffic

    # -- observe: the analysis loop, then promotion ----------------------------------------
    def observe(self, run: DrillRun, plan: CanaryPlan, acted: Deployed) -> CanaryMeasured:
        measured = CanaryMeasured(
            from_version=plan.current,
            to_version=self.version,
            canary_instances=[i.name for i in plan.ops.plan.canary],
            canary_deployed=acted.ready,
            deploy_detail=acted.detail,
        )
        if not acted.ready:
            measured.failed_requests = self._failed(plan, acted)
            measured.promoted, measured.promote_detail = False, "not promoted: the canary never became ready"
            return measured
        analysis = Analysis(
            plan.ops, Judge(self.settings), acted.watch, acted.traffic, lambda: self._source(run, plan)
        )
        result = analysis.run(run)
        if result.decision != "pass":
            acted.control.decided_at = result.decided_at or time.monotonic()
        self._fill(measured, result, plan, acted)
        if result.decision == "pass":
            self._finish(run, plan, acted, measured)
        else:
            measured.promoted, measured.promote_detail = False, f"not promoted: {result.decision}"
        return measured

    def _fill(self, m: CanaryMeasured, result: AnalysisResult, plan: CanaryPlan, acted: Deployed) -> None:
        last = result.last
        m.analysis, m.reason, m.steps = result.decision, result.reason, result.steps
        m.canary_ready, m.ready_detail = result.ready, result.ready_detail or "HAProxy held the canary UP"
        if last is not None and last.errors.lower is not None:
            m.error_increase_bound_pct = round(100 * last.errors.lower, 4)
            m.error_detail = last.errors.text()
        lat = (
            last.latency
            if last is not None and last.latency and last.latency.effect_ratio is not None
            else None
        )
        lat = lat or result.latency
        if lat is not None and lat.effect_ratio is not None:
            m.latency_effect_ratio = round(lat.effect_ratio, 3) if math.isfinite(lat.effect_ratio) else None
            m.latency_detail = lat.text(self.settings)
        else:
            m.latency_detail = "not judged: the analysis ended before a step had enough settled answers"
        m.enough_evidence = result.decision in ("pass", "breach")
        m.evidence_detail = result.reason if result.decision == "insufficient" else "the tests could decide"
        if result.decided_at is not None and result.first_step_at is not None:
            first = acted.watch.first_canary_request(result.first_step_at)
            if first is not None:
                m.detection_s = round(result.decided_at - first, 3)
        m.failed_requests = self._failed(plan, acted)

    def _finish(self, run: DrillRun, plan: CanaryPlan, acted: Deployed, m: CanaryMeasured) -> None:
        ops, control = plan.ops, acted.control
        if self.pause:
            ops.weights.restore()
            ops.store.save(plan.rollout, "paused", "analysis passed; waiting for inv deploy.promote")
            control.stage = "paused"
            run.note(
                f"[bold]paused[/bold]: {self.version} on the canary at its normal share; "
                "inv deploy.promote continues, inv deploy.rollback undoes"
            )
            m.promoted, m.promote_detail = True, "paused before promotion, as asked"
            return

        def stage(name: str) -> None:
            control.stage = name

        done = promote(run, ops, plan.rollout, on_stage=stage)
        m.promoted, m.promote_detail, m.promote_s = done.promoted, done.detail, done.promote_s

    def _failed(self, plan: CanaryPlan, acted: Deployed) -> int | None:
        """5xx the canary servers sent since the deploy (HAProxy's count)."""
        try:
            after = {st.server: st for st in plan.ops.haproxy.stats(plan.ops.backend)}
        except Exception:  # the measurement must not hide the drill's outcome
            return None
        before = acted.servers_before
        names = [i.name for i in plan.ops.plan.canary]
        return sum(after[n].http_5xx - before[n].http_5xx for n in names if n in after and n in before)

    def _source(self, run: DrillRun, plan: CanaryPlan) -> Source:
        """Where the judge's counts come from, as the profile says (sources.source_kind)."""
        s, p = self.settings, plan.ops.plan
        metrics = load_profile(run.inventory).metrics
        kind, url = source_kind(metrics, s.prometheus_url)
        if kind == "haproxy":
            return LoadBalancerSource(plan.ops.haproxy, plan.ops.backend, p.canary, p.baseline)
        if kind == "prometheus" and url:
            names = {
                i.host: str(run.inventory.var("prometheus_instance", "", host=i.host) or "")
                for i in p.everyone
            }
            if metrics is not None and s.prometheus_instance_label != "instance":
                metrics = metrics.model_copy(update={"instance_label": s.prometheus_instance_label})
            return PrometheusSource(
                url,
                p.canary,
                p.baseline,
                metrics=metrics,
                names={k: v for k, v in names.items() if v},
                exclude_routes=s.exclude_routes,
                grace_s=s.window_s,
            )
        return ScrapeSource(p.canary, p.baseline, exclude_routes=s.exclude_routes, metrics=metrics)

    # -- restore: the rollback ---------------------------------------------------------------
    def _undo(self, run: DrillRun, plan: CanaryPlan, acted: Deployed) -> None:
        """Whatever stage the rollout reached, one release everywhere (runs to its end through Ctrl-C)."""
        ops, control, rollout = plan.ops, acted.control, plan.rollout
        if control.stage == "promoting":
            rollback_fleet(run, ops, rollout, "promotion interrupted or failed")
            control.stage = "rolled_back"
        if control.stage != "canary":
            return
        reason = run.journal.measurements.get("reason") or run.journal.error or "interrupted"
        decided = control.decided_at or time.monotonic()
        with interrupts.shielded(), run.phase("rollback"):
            ops.store.save(rollout, "rolling_back", str(reason))
            try:
                called = time.monotonic()
                timings = ops.rollback(rollout.previous, ops.plan.canary)
            except Exception as exc:
                ops.store.save(rollout, "failed", f"rollback failed: {exc}")
                raise
            run.measure(
                "rollback_s",
                round(called - decided + timings["serving_s"], 3),
                witness="decision to the previous release named by "
                f"{identity.describe(load_profile(run.inventory).identity)}, ready, on the canary instances",
            )
            run.measure(
                "canary_off_ms", round(1000 * timings["canary_off_s"], 3), witness="HAProxy get weight"
            )
            ops.store.save(rollout, "rolled_back", str(reason))
            control.stage = "rolled_back"

    def _totals(self, run: DrillRun, plan: CanaryPlan, acted: Deployed) -> None:
        """What users met overall, deploy to the end of the rollback (the last restore step)."""
        run.measure("rollout_phase", acted.control.stage)
        if acted.traffic is not None:
            stats = summarize(acted.traffic.snapshot())
            run.measure("traffic_requests", stats.requests, witness="drillbook's own client")
            run.measure("traffic_error_pct", stats.error_pct, witness="drillbook's own client")
        try:
            req, err = plan.ops.haproxy.backend_totals(plan.ops.backend)
        except Exception as exc:  # the measurement must not hide the drill's outcome
            run.note(f"could not read HAProxy counters at the end: {exc}")
            return
        requests, lb_5xx = req - acted.backend_before[0], err - acted.backend_before[1]
        run.measure("lb_requests", requests, witness="HAProxy backend req_tot, deploy to the end")
        run.measure(
            "failed_requests_pct",
            round(100 * lb_5xx / requests, 3) if requests else 0.0,
            witness="HAProxy backend hrsp_5xx / req_tot, deploy to the end",
        )


def _stop(sampler: Traffic | ServerWatch) -> None:
    sampler.stop()  # (a restore action returns nothing)
