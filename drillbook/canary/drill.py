"""The Canary Drill (``deploy.canary``), and ``deploy.promote`` / ``deploy.rollback`` around it.

``deploy.canary --version V``::

    preflight  steady fleet (one release everywhere, all ready, weights as configured),
               artifact of V exists, no unfinished rollout, HAProxy reachable
    act        canary weight 0 -> deploy V on the canary hosts -> for each step:
               shift the canary's share, let the judge look every interval over the
               window -> breach: roll back (canary weight 0 at once, previous release
               redeployed, readiness verified, weights restored), verdict fail
               -> all steps pass: rolling promotion (or pause for deploy.promote)
    restore    an unfinished rollout (Ctrl-C, an error) is rolled back; traffic stops
    measures   detection_s, rollback_s, failed_requests(_pct), steps[...]

Every state change of the rollout is written to the rollout record
(:mod:`drillbook.canary.state`) before it happens, so another process (or the
operator after a crash) always knows what the fleet is in the middle of.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any

from pydantic import ValidationError

from drillbook.canary.fleet import FleetOps
from drillbook.canary.judge import Assessment, Judge, Window
from drillbook.canary.releases import check_artifact, read_links
from drillbook.canary.settings import CanarySettings
from drillbook.canary.sources import PrometheusSource, ScrapeSource, Source
from drillbook.canary.state import Rollout, read_fleet
from drillbook.canary.watch import ServerWatch, backend_totals
from drillbook.core import interrupts
from drillbook.core.drill import DrillRun, LegacyDrill
from drillbook.core.errors import AnsibleFailed, CheckFailed, ConfigError, TargetUnreachable
from drillbook.core.traffic import Request, Traffic, constant, items_mix, seed_items, summarize

RUNBOOK = "runbooks/canary-rollback.md"


def load_settings(inv: Any, **overrides: Any) -> CanarySettings:
    """The inventory's ``canary_*`` settings, with command-line overrides (None = keep)."""
    settings: CanarySettings = inv.settings(CanarySettings, prefix="canary_")
    changes = {k: v for k, v in overrides.items() if v is not None}
    if isinstance(changes.get("steps"), str):
        try:
            changes["steps"] = [float(x) for x in changes["steps"].split(",") if x.strip()]
        except ValueError:
            raise ConfigError(
                f"--steps: expected percentages like 5,25,50,100, got {overrides['steps']!r}"
            ) from None
    if not changes:
        return settings
    try:
        return CanarySettings.model_validate({**settings.model_dump(), **changes})
    except ValidationError as exc:
        first = exc.errors()[0]
        raise ConfigError(f"{'.'.join(str(p) for p in first['loc']) or 'option'}: {first['msg']}") from None


class _DeployDrill(LegacyDrill):
    """What the three deploy drills share: settings, fleet operations, the rollout record."""

    runbook = RUNBOOK

    def __init__(self, settings: CanarySettings, **options: Any) -> None:
        super().__init__(settings, **options)
        self.settings = settings
        self._ops: FleetOps | None = None

    @property
    def ops(self) -> FleetOps:
        if self._ops is None:
            raise RuntimeError("preflight has not run")
        return self._ops

    def _open(self, run: DrillRun) -> FleetOps:
        self._ops = FleetOps(run.inventory, self.settings, run.note)
        self._ops.check_lb()
        return self._ops

    def _require_answering(self, run: DrillRun) -> None:
        probes = self.ops.probe(self.ops.plan.everyone)
        silent = [
            f"{i.name} ({i.url}: {probes[i.host].detail})"
            for i in self.ops.plan.everyone
            if probes[i.host].version is None
        ]
        if silent:
            raise TargetUnreachable(
                f"app instance(s) not answering: {', '.join(silent)}; see inv deploy.status"
            )


class CanaryDrill(_DeployDrill):
    """Deploy a release to the canary hosts, judge it on live traffic, promote it or roll it back."""

    name = "deploy.canary"

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
        self.judge = Judge(settings)
        self.rollout: Rollout | None = None
        self.stage = "idle"  # idle -> canary -> rolling_back -> rolled_back | paused | promoting -> promoted
        self.traffic: Traffic | None = None
        self.watch: ServerWatch | None = None
        self.lb_before: dict[str, Any] = {}
        self.first_step_at: float | None = None
        self.decision_at: float | None = None
        self.steps: list[dict[str, Any]] = []

    # -- preflight --------------------------------------------------------------------
    def preflight(self, run: DrillRun) -> None:
        ops = self._open(run)
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
        self._require_answering(run)
        fleet = read_fleet(run.inventory, canary_hosts=ops.plan.canary_hosts)
        run.require(
            "steady state",
            fleet.steady,
            True,
            fleet.steady,
            ""
            if fleet.steady
            else "; ".join(fleet.problems())
            + " (inv deploy.status shows the fleet; inv deploy.rollback repairs it)",
        )
        current = str(fleet.version)
        if current == self.version:
            raise ConfigError(f"every instance already runs {self.version}: nothing to canary")
        target = current if self.settings.rollback_target == "previous" else self.settings.rollback_target
        if target != current:
            check_artifact(run.inventory, target)
        self.rollout = Rollout(
            version=self.version,
            previous=target,
            canary_hosts=ops.plan.canary_hosts,
            report_dir=str(run.report_dir),
        )
        run.measure("from_version", current, witness="GET /version on every instance")
        run.measure("to_version", self.version)
        run.measure("canary_instances", [i.name for i in ops.plan.canary])
        run.note(
            f"canary {self.version} on {', '.join(i.name for i in ops.plan.canary)} against "
            f"{current} on {', '.join(i.name for i in ops.plan.baseline)}; steps "
            f"{', '.join(f'{s:g}%' for s in self.settings.steps)}, window {self.settings.window_s:g}s"
        )

    # -- act ----------------------------------------------------------------------------
    def act(self, run: DrillRun) -> None:
        ops, s = self.ops, self.settings
        assert self.rollout is not None
        self._start_witnesses(run)
        ops.store.save(self.rollout, "canary", f"deploy.canary of {self.version}")
        self.stage = "canary"
        run.on_restore("roll back an unfinished rollout", lambda: self._undo(run))

        ops.weights.canary_off()
        try:
            with run.phase("deploy canary"):
                ops.deploy(ops.plan.canary, self.version, migrate=True)
                ops.wait_serving(ops.plan.canary, self.version)
                ops.wait_lb_up(ops.plan.canary)
        except (AnsibleFailed, CheckFailed) as exc:
            run.check("canary deployed and ready", False, True, False, str(exc))
            self._rollback(run, f"canary deploy failed: {exc}")
            return

        reference: Window | None = None
        for index, percent in enumerate(s.steps):
            with run.phase(f"step {percent:g}%"):
                share = ops.weights.set_share(percent)
                if index == 0:
                    self.first_step_at = time.monotonic()
                ratio = ops.weights.load_ratio(percent)
                run.note(
                    f"canary share {share:g}% (asked {percent:g}%), {ratio:.2g}x a baseline server's load: "
                    f"analysing for {s.window_s:g}s"
                    + (
                        ""
                        if ratio <= s.latency_max_load_ratio
                        else " (errors and readiness; latency not judged)"
                    )
                )
                verdict, held_s = self._analyse(run, percent, reference)
            self._record_step(run, percent, share, held_s, verdict, ratio)
            if verdict.decision == "breach":
                run.check(
                    "canary analysis", "breach", "no breach", False, f"step {percent:g}%: {verdict.reason}"
                )
                self._rollback(run, verdict.reason)
                return
            if percent < 100:
                reference = verdict.baseline
        run.check("canary analysis", "pass", "no breach", True, f"{len(s.steps)} steps")
        if self.pause:
            ops.weights.restore()
            ops.store.save(self.rollout, "paused", "analysis passed; waiting for inv deploy.promote")
            self.stage = "paused"
            run.note(
                f"[bold]paused[/bold]: {self.version} on the canary at its normal share; "
                "inv deploy.promote continues, inv deploy.rollback undoes"
            )
            return
        promote(run, ops, self.rollout, on_stage=self._set_stage)

    def _start_witnesses(self, run: DrillRun) -> None:
        ops = self.ops
        self.lb_before = {
            "servers": {st.server: st for st in ops.haproxy.stats(ops.backend)},
            "backend": backend_totals(ops.haproxy, ops.backend),
        }
        self.watch = ServerWatch(ops.haproxy, ops.backend, [i.name for i in ops.plan.canary]).start()
        run.on_restore("stop the HAProxy watch", self.watch.stop)
        if self.rps > 0:
            lb_url = run.inventory.topology.lb_url
            try:
                source = items_mix(seed_items(lb_url, count=20))
            except Exception as exc:  # the service cannot take writes: read-only traffic still judges
                run.note(f"could not seed items ({type(exc).__name__}); background traffic reads /items only")
                source = constant(Request("GET /items", "GET", "/items?limit=10"))
            self.traffic = Traffic(lb_url, self.rps, source).start()
            run.on_restore("stop background traffic", self._stop_traffic)
            run.note(f"background traffic: {self.rps:g} requests/s through {lb_url}")

    def _stop_traffic(self) -> None:
        if self.traffic is not None:
            self.traffic.stop()

    def _source(self, run: DrillRun) -> Source:
        s, plan = self.settings, self.ops.plan
        if s.prometheus_url:
            names = {
                i.host: str(run.inventory.var("prometheus_instance", "", host=i.host) or "")
                for i in plan.everyone
            }
            return PrometheusSource(
                s.prometheus_url,
                plan.canary,
                plan.baseline,
                label=s.prometheus_instance_label,
                names={k: v for k, v in names.items() if v},
                exclude_routes=s.exclude_routes,
            )
        return ScrapeSource(plan.canary, plan.baseline, exclude_routes=s.exclude_routes)

    def _analyse(self, run: DrillRun, percent: float, reference: Window | None) -> tuple[Assessment, float]:
        """Look every interval until the judge decides; (assessment, seconds the step was held)."""
        s = self.settings
        assert self.watch is not None
        source = self._source(run)
        latency_fair = self.ops.weights.load_ratio(percent) <= s.latency_max_load_ratio
        try:
            source.begin()
            t0 = time.monotonic()
            ready_failures, k, last_note, marked = 0, 0, t0, s.settle_s == 0
            if marked:
                source.look(mark=True)
            while True:
                k += 1
                time.sleep(max(0.0, t0 + k * s.interval_s - time.monotonic()))
                mark = not marked and time.monotonic() - t0 >= s.settle_s
                look = source.look(mark=mark)
                marked = marked or mark
                down = self.watch.canary_down() + [
                    f"{n} /metrics unreachable"
                    for n in look.unreachable
                    if n in {i.name for i in self.ops.plan.canary}
                ]
                ready_failures = ready_failures + 1 if down else 0
                baseline = reference if percent >= 100 and reference is not None else look.baseline
                now = time.monotonic()
                verdict = self.judge.assess(
                    look.canary,
                    baseline,
                    ready=ready_failures < s.ready_failures,
                    ready_detail=", ".join(down),
                    window_done=now - t0 >= s.window_s,
                    waited_out=now - t0 >= s.window_s + s.sample_wait_s,
                    judge_latency=look.settled is not None and latency_fair,
                    latency=look.settled,
                )
                if now - last_note >= 2.0 or verdict.decision != "continue":
                    last_note = now
                    f = verdict.figures()
                    run.note(
                        f"  {now - t0:4.1f}s canary {f['canary_requests']} req {f['canary_errors']} 5xx "
                        f"p95 {f['canary_p95_ms']} ms | baseline {f['baseline_requests']} req "
                        f"{f['baseline_errors']} 5xx p95 {f['baseline_p95_ms']} ms -> {verdict.decision}"
                    )
                if verdict.decision != "continue":
                    if verdict.decision == "breach":
                        self.decision_at = now
                    return verdict, now - t0
        finally:
            source.close()

    def _record_step(
        self, run: DrillRun, percent: float, share: float, held_s: float, a: Assessment, ratio: float
    ) -> None:
        self.steps.append(
            {
                "weight": percent,
                "share_set_pct": share,
                "load_ratio": round(ratio, 3) if ratio != float("inf") else None,
                "latency_judged": ratio <= self.settings.latency_max_load_ratio,
                "window_s": round(held_s, 2),
                "decision": a.decision,
                "reason": a.reason,
                **a.figures(),
            }
        )
        run.measure("steps", self.steps, witness="instances' /metrics, differenced over each step")

    # -- rollback -------------------------------------------------------------------------
    def _rollback(self, run: DrillRun, reason: str) -> None:
        """The breach path: runs to its end even through Ctrl-C (the signal is acted on afterwards)."""
        assert self.rollout is not None
        decided = self.decision_at or time.monotonic()
        self.decision_at = decided
        with interrupts.shielded(), run.phase("rollback"):
            if self.watch and self.first_step_at is not None:
                first = self.watch.first_canary_request(self.first_step_at)
                if first is not None:
                    run.measure(
                        "detection_s",
                        round(decided - first, 3),
                        witness="HAProxy per-server request counter (first canary response) to the decision",
                    )
            self.stage = "rolling_back"
            self.ops.store.save(self.rollout, "rolling_back", reason)
            called = time.monotonic()
            timings = self.ops.rollback(self.rollout.previous, self.ops.plan.canary)
            run.measure(
                "rollback_s",
                round(called - decided + timings["serving_s"], 3),
                witness="decision to GET /version = previous and /health/ready 200 on the canary instances",
            )
            run.measure(
                "canary_off_ms", round(1000 * timings["canary_off_s"], 3), witness="HAProxy get weight"
            )
            self.ops.store.save(self.rollout, "rolled_back", reason)
            self.stage = "rolled_back"
        interrupts.raise_if_requested()

    def _set_stage(self, stage: str) -> None:
        self.stage = stage

    def _undo(self, run: DrillRun) -> None:
        """Restore-phase safety net: whatever stage the rollout reached, leave the fleet consistent."""
        assert self.rollout is not None
        if self.stage in ("canary", "rolling_back"):
            run.note("rolling back the canary (interrupted or failed)")
            self.stage = "rolling_back"
            self.ops.store.save(self.rollout, "rolling_back", self.rollout.reason or "interrupted")
            try:
                self.ops.rollback(self.rollout.previous, self.ops.plan.canary)
            except Exception as exc:
                self.ops.store.save(self.rollout, "failed", f"rollback failed: {exc}")
                raise
            self.ops.store.save(self.rollout, "rolled_back")
            self.stage = "rolled_back"
        elif self.stage == "promoting":
            rollback_fleet(run, self.ops, self.rollout, "promotion interrupted or failed")
            self.stage = "rolled_back"

    # -- measurements ----------------------------------------------------------------------
    def restore(self, run: DrillRun) -> None:
        if not self.lb_before:
            return
        try:
            ops = self.ops
            after = {st.server: st for st in ops.haproxy.stats(ops.backend)}
            req_after, err_after = backend_totals(ops.haproxy, ops.backend)
        except Exception as exc:  # the measurement must not hide the drill's outcome
            run.note(f"could not read HAProxy counters at the end: {exc}")
            return
        before = self.lb_before["servers"]
        failed = sum(
            after[n].http_5xx - before[n].http_5xx
            for n in (i.name for i in ops.plan.canary)
            if n in after and n in before
        )
        req_before, err_before = self.lb_before["backend"]
        requests, lb_5xx = req_after - req_before, err_after - err_before
        run.measure(
            "failed_requests", failed, witness="HAProxy hrsp_5xx of the canary servers, deploy to verdict"
        )
        run.measure("lb_requests", requests, witness="HAProxy backend req_tot, deploy to verdict")
        run.measure(
            "failed_requests_pct",
            round(100 * lb_5xx / requests, 3) if requests else 0.0,
            witness="HAProxy backend hrsp_5xx / req_tot, deploy to verdict",
        )
        if self.traffic is not None:
            stats = summarize(self.traffic.snapshot())
            run.measure("traffic_requests", stats.requests, witness="drillbook's own client")
            run.measure("traffic_error_pct", stats.error_pct, witness="drillbook's own client")
        run.measure("rollout_phase", self.stage)


def promote(
    run: DrillRun, ops: FleetOps, rollout: Rollout, on_stage: Callable[[str], None] = lambda _s: None
) -> None:
    """Rolling promotion of ``rollout.version`` to the baseline hosts; a failure rolls the fleet back."""
    s = ops.settings
    ops.store.save(rollout, "promoting", "analysis passed")
    on_stage("promoting")
    ops.weights.restore()
    try:
        with run.phase("promote"):
            t0 = time.monotonic()
            ops.deploy(ops.plan.baseline, rollout.version, serial=s.promote_serial)
            ops.wait_serving(ops.plan.everyone, rollout.version)
            run.measure(
                "promote_s", round(time.monotonic() - t0, 2), witness="GET /version on every instance"
            )
    except (AnsibleFailed, TargetUnreachable, CheckFailed) as exc:
        run.check("promoted", False, True, False, str(exc))
        rollback_fleet(run, ops, rollout, f"promotion failed: {exc}")
        on_stage("rolled_back")
        return
    ops.weights.restore()
    ops.restore_states()
    ops.store.save(rollout, "promoted", "every instance serves the release")
    on_stage("promoted")
    run.check("promoted", True, True, True, f"{rollout.version} on every instance")


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
        run.measure("rollback_s", round(timings["serving_s"], 3), witness="GET /version on every instance")
        ops.store.save(rollout, "rolled_back", reason)


class PromoteDrill(_DeployDrill):
    """A person's go-ahead: promote the paused canary to every instance, in rolling batches."""

    name = "deploy.promote"

    def __init__(self, settings: CanarySettings) -> None:
        super().__init__(settings)
        self.rollout: Rollout | None = None
        self.stage = "paused"

    def preflight(self, run: DrillRun) -> None:
        ops = self._open(run)
        record = ops.store.load()
        if record is None or record.phase != "paused":
            state = (
                f"the last rollout ({record.version}) is {record.phase}" if record else "no rollout on record"
            )
            raise ConfigError(
                f"nothing to promote: {state}; run inv deploy.canary --version V --pause-before-promote first"
            )
        self._require_answering(run)
        fleet = read_fleet(run.inventory, canary_hosts=ops.plan.canary_hosts)
        wrong = [
            f"{i.instance} runs {i.version}"
            for i in fleet.instances
            if i.version != (record.version if i.host in record.canary_hosts else record.previous)
        ]
        not_ready = [f"{i.instance} not ready ({i.detail})" for i in fleet.instances if not i.ready]
        problems = wrong + not_ready
        run.require(
            "fleet as the paused canary left it",
            not problems,
            True,
            not problems,
            "; ".join(problems) + " (inv deploy.rollback repairs it)" if problems else "",
        )
        self.rollout = record
        run.measure("from_version", record.previous, witness="rollout record")
        run.measure("to_version", record.version)

    def act(self, run: DrillRun) -> None:
        assert self.rollout is not None
        rollout = self.rollout
        run.on_restore("roll back an unfinished promotion", lambda: self._undo(run))
        promote(run, self.ops, rollout, on_stage=self._set_stage)
        run.measure("rollout_phase", self.stage)

    def _set_stage(self, stage: str) -> None:
        self.stage = stage

    def _undo(self, run: DrillRun) -> None:
        if self.stage == "promoting" and self.rollout is not None:
            rollback_fleet(run, self.ops, self.rollout, "promotion interrupted or failed")
            self.stage = "rolled_back"


class RollbackDrill(_DeployDrill):
    """The incident fast path: canary weight 0, the previous release back everywhere, no analysis."""

    name = "deploy.rollback"

    def __init__(self, settings: CanarySettings, to_version: str | None = None) -> None:
        super().__init__(settings, to_version=to_version)
        self.to_version = to_version
        self.target = ""
        self.rollout: Rollout | None = None

    def preflight(self, run: DrillRun) -> None:
        ops = self._open(run)
        self.rollout = ops.store.load()
        self.target = self._target(run, ops)
        check_artifact(run.inventory, self.target)
        run.measure("to_version", self.target)

    def _target(self, run: DrillRun, ops: FleetOps) -> str:
        """--to, else the rollout record's previous release, else what the hosts' links say."""
        if self.to_version:
            return self.to_version
        if self.rollout is not None and self.rollout.phase != "rolled_back":
            return self.rollout.previous
        if self.settings.rollback_target != "previous":
            return self.settings.rollback_target
        links = read_links(run.inventory, [i.host for i in ops.plan.everyone])
        if self.rollout is not None and self.rollout.phase == "rolled_back":
            versions = {lk.current for lk in links.values()}
            if versions == {self.rollout.previous}:
                return self.rollout.previous
        previous = {lk.previous for lk in links.values() if lk.previous}
        if len(previous) == 1:
            return previous.pop()
        raise ConfigError(
            "cannot tell the previous release (no rollout on record, hosts' previous links: "
            f"{', '.join(sorted(p or '-' for p in previous)) or 'none'}); pass --to VERSION"
        )

    def act(self, run: DrillRun) -> None:
        ops = self.ops
        with interrupts.shielded(), run.phase("rollback"):
            if self.rollout is not None and self.rollout.phase != "rolled_back":
                ops.store.save(self.rollout, "rolling_back", f"inv deploy.rollback to {self.target}")
            t0 = time.monotonic()
            todo = ops.off_target(self.target)
            run.note(
                f"rolling back to {self.target}: "
                + (", ".join(i.name for i in todo) if todo else "every instance already runs it")
            )
            timings = ops.rollback(self.target, todo)
            run.measure(
                "rollback_s",
                round(timings["serving_s"], 3),
                witness="GET /version and /health/ready on every instance",
            )
            run.measure(
                "canary_off_ms", round(1000 * timings["canary_off_s"], 3), witness="HAProxy set weight"
            )
            run.measure("redeployed", [i.name for i in todo])
            run.measure("total_s", round(time.monotonic() - t0, 3))
            if self.rollout is not None and self.rollout.phase != "rolled_back":
                ops.store.save(self.rollout, "rolled_back", f"inv deploy.rollback to {self.target}")
        interrupts.raise_if_requested()

    def verify(self, run: DrillRun) -> None:
        fleet = read_fleet(run.inventory, canary_hosts=self.ops.plan.canary_hosts)
        run.check("every instance on the target", fleet.version, self.target, fleet.version == self.target)
        run.check("fleet steady", fleet.steady, True, fleet.steady, "; ".join(fleet.problems()))
        rollback_s = run.journal.measurements.get("rollback_s")
        run.check_at_most("rollback_s", rollback_s, self.settings.rollback_budget_s)
