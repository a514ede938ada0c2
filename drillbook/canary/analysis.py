"""The analysis loop (the canary drill's ``observe``): shift the canary's share step by step, look, decide.

For each step of ``canary_steps`` the loop gives the canary its share through
HAProxy (:meth:`~drillbook.canary.weights.Weights.set_share`), then looks every
``interval_s``: the instances' counters since the step began (errors, pooled with the
earlier steps), per-request latencies of canary and baseline answers since the step
settled (latency), HAProxy's view of the canary (readiness). The judge
(:mod:`drillbook.canary.judge`) decides at each look; the loop stops at the first
``breach`` or ``insufficient``, or passes every step. It changes nothing but the
weights: the rollback belongs to the drill's restore phase, the promotion to
:mod:`drillbook.canary.promotion`.

Where per-request latencies come from: the drill's own traffic
(:class:`~drillbook.core.traffic.Traffic`) records each answer with the
``X-Served-By`` and ``X-Server-Time`` headers HAProxy adds, so canary and baseline
answers are sorted by the server that really answered, in the same seconds, and
timed by the load balancer (request sent to the server -> its response headers).
The client's own clock is the fallback: on a busy machine the drill's client
queues its requests for hundreds of milliseconds (the same for both groups, but
noise that buries a 20 ms shift, and it inflated the relative tolerance). Without
any header (no generated traffic, another load balancer) the instances' latency
histograms since the step settled are compared instead (coarser: one value per bucket).

Readiness is judged canary against baseline: a look in which HAProxy holds the
canary DOWN counts towards ``ready_failures`` only when no baseline server is down
or unscrapable in the same look (a shared cause: the machine, the database), and,
at steps where the canary carries more than a baseline server's load, only when the
failure is a hard one (an answer of 503, a refused connection), not a health check
that timed out: an instance carrying 2x or 100x a baseline server's share of a
saturated machine answers slowly whatever its release, and what users meet there is
judged by the error test. Such flaps are counted per step and named in the record.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable
from dataclasses import dataclass, field

import numpy as np
from numpy.typing import NDArray
from pydantic import BaseModel

from drillbook.canary.fleet import FleetOps
from drillbook.canary.judge import (
    Assessment,
    Judge,
    LatencyFinding,
    LatencySource,
    Window,
    histogram_latencies,
)
from drillbook.canary.sources import Look, Source
from drillbook.canary.watch import ServerWatch
from drillbook.core.drill import DrillRun
from drillbook.core.traffic import Outcome, Traffic


class StepRecord(BaseModel):
    """One step as the journal keeps it: the share, how long it was held, what the judge saw."""

    weight: float
    share_set_pct: float
    load_ratio: float | None
    latency_judged: bool
    #: The servers the canary's latency was compared with (the control, or every baseline server).
    latency_against: list[str] = []
    window_s: float
    decision: str
    reason: str
    canary_requests: int
    canary_errors: int
    baseline_requests: int
    baseline_errors: int
    rollout_canary_requests: int
    rollout_baseline_requests: int
    error_increase_pct: float | None = None
    error_increase_bound_pct: float | None = None
    error_fisher_p: float | None = None
    error_detectable_pct: float | None = None
    latency_source: str | None = None
    canary_latency_n: int | None = None
    baseline_latency_n: int | None = None
    canary_p50_ms: float | None = None
    canary_p95_ms: float | None = None
    baseline_p50_ms: float | None = None
    baseline_p95_ms: float | None = None
    latency_shift_ms: float | None = None
    latency_shift_lower_ms: float | None = None
    latency_tolerance_ms: float | None = None
    latency_u_p: float | None = None
    canary_tail_ms: float | None = None
    canary_tail_lower_ms: float | None = None
    baseline_tail_ms: float | None = None
    #: Answers above the tail limit, canary and baseline (percent), and the Fisher p of the difference.
    canary_tail_above_pct: float | None = None
    baseline_tail_above_pct: float | None = None
    tail_fisher_p: float | None = None
    latency_tail_limit_ms: float | None = None
    #: Looks with the canary not held UP, and how many of them counted (the canary's own fault).
    canary_down_looks: int = 0
    canary_down_counted: int = 0
    readiness_note: str = ""
    #: Answers with an overload status (canary_overload_statuses) left out of the error test at
    #: a step where the canary carried more than a baseline server's load (canary, baseline).
    overload_canary: int = 0
    overload_baseline: int = 0


@dataclass
class AnalysisResult:
    """What the loop ends with: the decision, the step records, the deciding look."""

    decision: str = "not run"
    reason: str = ""
    steps: list[StepRecord] = field(default_factory=list)
    last: Assessment | None = None
    #: The latest latency finding with a bound, at any judged step (what the latency check reads).
    latency: LatencyFinding | None = None
    first_step_at: float | None = None  # monotonic
    decided_at: float | None = None  # monotonic, when a breach was seen
    ready: bool = True
    ready_detail: str = ""


def _r(value: float | None, digits: int) -> float | None:
    return None if value is None or math.isinf(value) else round(value, digits)


def _p(value: float | None) -> float | None:
    return None if value is None else float(f"{value:.3g}")


class Analysis:
    """Runs the steps for one canary drill."""

    def __init__(
        self,
        ops: FleetOps,
        judge: Judge,
        watch: ServerWatch,
        traffic: Traffic | None,
        new_source: Callable[[], Source],
    ) -> None:
        self.ops = ops
        self.settings = ops.settings
        self.judge = judge
        self.watch = watch
        self.traffic = traffic
        self.new_source = new_source
        self.canary_names = {i.name for i in ops.plan.canary}
        self.baseline_names = {i.name for i in ops.plan.baseline}
        #: The servers latency is compared with at the current step (the control, or every baseline one).
        self.compared = set(self.baseline_names)

    def run(self, run: DrillRun) -> AnalysisResult:
        s, weights = self.settings, self.ops.weights
        result = AnalysisResult()
        before = (Window(), Window())  # canary and baseline of the completed steps
        for index, percent in enumerate(s.steps):
            with run.phase(f"step {percent:g}%"):
                controlled = s.latency_control and weights.plan_control(percent) is not None
                share = weights.set_share(percent, control=controlled)
                if index == 0:
                    result.first_step_at = time.monotonic()
                ratio = weights.load_ratio(percent, control=controlled)
                judged = controlled or ratio <= s.latency_max_load_ratio
                self.compared = set(weights.control) if controlled else self.baseline_names
                against = (
                    f"latency against the control {', '.join(weights.control)} at the canary's weight"
                    if controlled
                    else "latency against every baseline server"
                    if judged
                    else "errors and readiness; latency not judged"
                )
                run.note(
                    f"canary share {share:g}% (asked {percent:g}%), {ratio:.2g}x a baseline server's load: "
                    f"analysing for {s.window_s:g}s ({against})"
                )
                a, held_s, flaps, overload = self._step(run, result, before, judged, ratio)
            record = self._record(percent, share, ratio, judged, held_s, a)
            record.canary_down_looks, record.canary_down_counted, record.readiness_note = flaps
            record.overload_canary, record.overload_baseline = overload
            record.latency_against = sorted(self.compared) if judged else []
            result.steps.append(record)
            run.measure("steps", [st.model_dump() for st in result.steps])
            result.last = a
            before = (before[0] + a.step_canary, before[1] + a.step_baseline)
            if a.decision != "pass":
                result.decision, result.reason = a.decision, f"step {percent:g}%: {a.reason}"
                return result
        result.decision = "pass"
        # what the evidence cost, step by step: the first step holds longest (its counts start from 0)
        held = ", ".join(f"{st.weight:g} % {st.window_s:.1f} s" for st in result.steps)
        first = result.steps[0]
        result.reason = (
            f"{len(s.steps)} steps held {held} (the first until {first.canary_requests} canary requests): "
            f"{result.last.reason if result.last else ''}"
        )
        return result

    def _step(
        self,
        run: DrillRun,
        result: AnalysisResult,
        before: tuple[Window, Window],
        judged: bool,
        ratio: float,
    ) -> tuple[Assessment, float, tuple[int, int, str], tuple[int, int]]:
        """Look every interval until the judge decides.

        Returns the assessment, the seconds the step was held, the readiness flaps
        (looks with the canary down, how many counted, the last uncounted reason), and the
        overload answers left out of the error test (canary, baseline).
        """
        s = self.settings
        source = self.new_source()
        try:
            source.begin()
            t0 = time.monotonic()
            settled_at = t0 + s.settle_s
            ready_failures, k, last_note, marked = 0, 0, t0, s.settle_s == 0
            down_looks, counted, excused = 0, 0, ""
            overload = (0, 0)
            if marked:
                source.look(mark=True)
            while True:
                k += 1
                time.sleep(max(0.0, t0 + k * s.interval_s - time.monotonic()))
                mark = not marked and time.monotonic() >= settled_at
                look = source.look(mark=mark)
                marked = marked or mark
                outcomes = self.traffic.snapshot() if self.traffic is not None else []
                if ratio > 1 and s.overload_statuses:
                    look, overload = self._without_overload(look, t0, outcomes)
                down, why_not = self._readiness(look.unreachable, ratio)
                if down:
                    down_looks += 1
                    counted += 0 if why_not else 1
                    excused = f"{', '.join(down)}: {why_not}" if why_not else excused
                ready_failures = ready_failures + 1 if down and not why_not else 0
                now = time.monotonic()
                errors = self.judge.errors(before[0] + look.canary, before[1] + look.baseline)
                latency = None
                if judged and look.settled is not None:
                    latency = self._latency(look.settled, settled_at, now, outcomes)
                if latency is not None and latency.effect_ratio is not None:
                    result.latency = latency
                ready = ready_failures < s.ready_failures
                if not ready:
                    result.ready, result.ready_detail = False, ", ".join(down)
                a = self.judge.assess(
                    errors,
                    latency,
                    look.canary,
                    ready=ready,
                    ready_detail=", ".join(down),
                    window_done=now - t0 >= s.window_s,
                    waited_out=now - t0 >= s.window_s + s.sample_wait_s,
                    latency_due=judged,
                )
                a = Assessment(a.decision, a.reason, a.errors, a.latency, look.canary, look.baseline)
                if now - last_note >= 2.0 or a.decision != "continue":
                    last_note = now
                    # past its window a step holds for its evidence: say which, or the wait looks like a hang
                    waiting = a.decision == "continue" and a.reason.startswith("waiting")
                    run.note(f"  {now - t0:4.1f}s {self._brief(a)} -> {a.reason if waiting else a.decision}")
                if a.decision != "continue":
                    if a.decision == "breach":
                        result.decided_at = now
                        a = self._with_evidence(a, result, now, t0)
                    elif a.decision == "pass":
                        a = Assessment(
                            a.decision,
                            f"{a.reason} (enough evidence {now - t0:.1f} s into the step, on "
                            f"{a.errors.canary.requests} canary requests over the rollout)",
                            a.errors,
                            a.latency,
                            a.step_canary,
                            a.step_baseline,
                        )
                    note = f"{down_looks - counted} looks with the canary down not counted ({excused})"
                    return a, now - t0, (down_looks, counted, note if excused else ""), overload
        finally:
            source.close()

    def _readiness(self, unreachable: list[str], ratio: float) -> tuple[list[str], str]:
        """The canary's readiness problems at this look, and why they do not count ("" : they do)."""
        r = self.watch.readiness()
        down = r.canary_down + [f"{n} /metrics unreachable" for n in unreachable if n in self.canary_names]
        if not down:
            return [], ""
        shared = r.baseline_down + [
            f"{n} /metrics unreachable" for n in unreachable if n in self.baseline_names
        ]
        if shared:
            return down, f"the baseline failed too ({', '.join(shared)}): a shared cause"
        if ratio > 1 and (r.timeouts_only or not r.canary_down):
            return down, (
                f"health checks timing out (or /metrics slow) at {ratio:.2g}x a baseline server's load: "
                "load, judged by the error test"
            )
        return down, ""

    def _without_overload(
        self, look: Look, since: float, outcomes: list[Outcome]
    ) -> tuple[Look, tuple[int, int]]:
        """``look`` without the step's overload answers (503, 504 by default) on either side.

        At a step where the canary carries more than a baseline server's load, an answer
        saying "overloaded" (the service's database pool timed out waiting: 503) is the
        machine's, not the release's: the lab's one false rollback in ten good releases was
        8 such answers of 870 while the canary carried 100 req/s of a saturated 2-core
        machine. The drill's own answers name the server (``X-Served-By``) and the status;
        that many are taken out of each side's requests and errors (the instances' counts),
        never more than the errors counted. A release that fails with 500 still counts, and
        one that is only slow under load is the latency test's at the steps with a control.
        Without generated traffic nothing is taken out.
        """
        if self.traffic is None:
            return look, (0, 0)
        codes = set(self.settings.overload_statuses)
        canary = baseline = 0
        for o in outcomes:
            if o.t >= since and o.status in codes and o.server is not None:
                if o.server in self.canary_names:
                    canary += 1
                elif o.server in self.baseline_names:
                    baseline += 1

        def less(w: Window, n: int) -> tuple[Window, int]:
            n = min(n, w.errors)
            return Window(w.requests - n, w.errors - n, w.buckets), n

        c, canary = less(look.canary, canary)
        b, baseline = less(look.baseline, baseline)
        return Look(c, b, look.unreachable, look.settled), (canary, baseline)

    def _latency(
        self, settled: tuple[Window, Window], settled_at: float, now: float, outcomes: list[Outcome]
    ) -> LatencyFinding:
        answers = self._answers(settled_at, now, outcomes)
        if answers is not None:
            half = self._answers(settled_at + (now - settled_at) / 2, now, outcomes)
            recent = (half[0], half[1]) if half is not None else None
            return self.judge.latency(answers[0], answers[1], source=answers[2], recent=recent)
        canary, baseline = settled
        return self.judge.latency(histogram_latencies(canary), histogram_latencies(baseline), "histogram")

    def _answers(
        self, since: float, until: float, outcomes: list[Outcome]
    ) -> tuple[NDArray[np.float64], NDArray[np.float64], LatencySource] | None:
        """Latencies (ms) of canary and baseline answers to the drill's requests sent in [since, until].

        The load balancer's server time when every answer carries it, else the client's.
        None when the drill sends no traffic or no answer names its server. Failed answers are
        left out (errors are judged on their own; a fast 500 is not a fast answer).
        """
        if self.traffic is None or not any(o.server is not None for o in outcomes):
            return None
        window = [
            o
            for o in outcomes
            if since <= o.t <= until and o.server is not None and o.status is not None and o.status < 500
        ]
        timed = all(o.server_ms is not None for o in window)
        source: LatencySource = "server time" if timed else "requests"

        def ms(o: Outcome) -> float:
            return o.server_ms if timed and o.server_ms is not None else o.latency_ms

        canary = [ms(o) for o in window if o.server in self.canary_names]
        baseline = [ms(o) for o in window if o.server in self.compared]
        return np.asarray(canary, dtype=float), np.asarray(baseline, dtype=float), source

    def _with_evidence(self, a: Assessment, result: AnalysisResult, now: float, t0: float) -> Assessment:
        """Say how much traffic and time the decision needed."""
        since_first = now - (result.first_step_at or t0)
        extra = (
            f" (decided {now - t0:.1f} s into the step, {since_first:.1f} s after the first step began, "
            f"on {a.errors.canary.requests} canary requests)"
        )
        return Assessment(a.decision, a.reason + extra, a.errors, a.latency, a.step_canary, a.step_baseline)

    @staticmethod
    def _brief(a: Assessment) -> str:
        e, lat = a.errors, a.latency
        text = (
            f"canary {a.step_canary.requests} req {a.step_canary.errors} 5xx | baseline "
            f"{a.step_baseline.requests} req {a.step_baseline.errors} 5xx"
        )
        if e.lower is not None:
            text += f" | errors +{100 * (e.increase or 0):.2f} % (>= {100 * e.lower:+.2f} %)"
        if lat is not None and lat.shift is not None:
            text += (
                f" | p95 {lat.canary_p95 or 0:.0f} vs {lat.baseline_p95 or 0:.0f} ms, shift "
                f"{lat.shift.estimate_ms:+.1f} ms (tol {lat.tolerance_ms:.0f})"
            )
            if lat.tail is not None and lat.tail.ratio is not None:
                text += f", tail bound/limit {lat.tail.ratio:.2f}"

        return text

    @staticmethod
    def _record(
        percent: float, share: float, ratio: float, judged: bool, held_s: float, a: Assessment
    ) -> StepRecord:
        e, lat = a.errors, a.latency
        shift = lat.shift if lat else None
        tail = lat.tail if lat else None
        return StepRecord(
            weight=percent,
            share_set_pct=share,
            load_ratio=round(ratio, 3) if ratio != float("inf") else None,
            latency_judged=judged,
            window_s=round(held_s, 2),
            decision=a.decision,
            reason=a.reason,
            canary_requests=a.step_canary.requests,
            canary_errors=a.step_canary.errors,
            baseline_requests=a.step_baseline.requests,
            baseline_errors=a.step_baseline.errors,
            rollout_canary_requests=e.canary.requests,
            rollout_baseline_requests=e.baseline.requests,
            error_increase_pct=_r(None if e.increase is None else 100 * e.increase, 3),
            error_increase_bound_pct=_r(None if e.lower is None else 100 * e.lower, 3),
            error_fisher_p=_p(e.fisher_p),
            error_detectable_pct=_r(None if e.detectable is None else 100 * e.detectable, 3),
            latency_source=lat.source if lat else None,
            canary_latency_n=lat.canary_count if lat else None,
            baseline_latency_n=lat.baseline_count if lat else None,
            canary_p50_ms=_r(lat.canary_p50, 1) if lat else None,
            canary_p95_ms=_r(lat.canary_p95, 1) if lat else None,
            baseline_p50_ms=_r(lat.baseline_p50, 1) if lat else None,
            baseline_p95_ms=_r(lat.baseline_p95, 1) if lat else None,
            latency_shift_ms=_r(shift.estimate_ms, 2) if shift else None,
            latency_shift_lower_ms=_r(shift.lower_ms, 2) if shift else None,
            latency_tolerance_ms=_r(lat.tolerance_ms, 2) if lat else None,
            latency_u_p=_p(shift.u_p) if shift else None,
            canary_tail_ms=_r(tail.canary_ms, 1) if tail else None,
            canary_tail_lower_ms=_r(tail.canary_lower_ms, 1) if tail else None,
            baseline_tail_ms=_r(tail.baseline_ms, 1) if tail else None,
            canary_tail_above_pct=_r(100 * tail.canary_above / tail.canary_n, 2) if tail else None,
            baseline_tail_above_pct=_r(100 * tail.baseline_above / tail.baseline_n, 2) if tail else None,
            tail_fisher_p=_p(tail.fisher_p) if tail else None,
            latency_tail_limit_ms=_r(tail.limit_ms, 1) if tail else None,
        )
