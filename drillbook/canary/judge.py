"""The canary judge: is the canary worse than the baseline, by more than the user tolerates, and are we sure?

What it compares
----------------
* **Errors**: the canary's 5xx share against the baseline's, counted by the
  instances themselves (``/metrics``, differenced) and pooled over the rollout so
  far, so a 1 % regression that a 5 % step cannot show in ten seconds is seen once
  the later steps have added their requests. Breach when the lower confidence bound
  of the increase (:func:`~drillbook.canary.stats.error_increase_bound`) exceeds
  ``error_margin``. A shared cause (the database down for everyone) raises both
  rates and is not blamed on the canary.
* **Latency**: per-request latencies of canary and baseline answers taken in the
  same seconds (the drill's own traffic; HAProxy's ``X-Served-By`` header says which
  server answered and ``X-Server-Time`` how long it took, without the drill's own
  client queueing; without them, the instances' histograms). Two tests, each at half
  the latency budget: the Mann-Whitney U test and Hodges-Lehmann shift
  (:func:`~drillbook.canary.stats.latency_shift`) against a tolerance of
  ``max(latency_effect_pct % of the baseline's median, latency_effect_ms)`` (breach
  when the shift's lower confidence bound exceeds it: everything slower), and the
  tail (:func:`~drillbook.canary.stats.tail_bound`): breach when the canary's p95 is,
  with confidence, more than ``latency_tail_pct`` % above the baseline's (a slow
  path that doubles p95 and leaves the median alone).
  Judged after ``settle_s``, against the control at the canary's weight
  (:mod:`drillbook.canary.weights`) or where the load ratio allows.
* **Readiness**: ``ready_failures`` consecutive looks with HAProxy holding the
  canary DOWN or its ``/metrics`` unreachable, counted only when the cause is the
  canary's (see :mod:`drillbook.canary.analysis`: not shared with the baseline, not a
  health-check timeout while the canary carries more than a baseline server's load).

Decisions, and "not enough evidence"
------------------------------------
Each look ends ``breach`` (any of the above), ``continue`` (the window is not over,
or it is and the evidence is still short), ``pass``, or ``insufficient``: the
step's window and its ``sample_wait_s`` ended before the tests could decide. A step
has enough evidence when the canary served ``min_samples`` requests in it, the
baseline ``min_samples`` over the rollout, latency (where judged) had
``latency_min_samples`` answers on each side for the shift and
``latency_tail_min_samples`` for the tail, and the error counts pooled so far give
the test an ``error_power`` chance to see an increase of ``error_detectable``. The
step's length is thus set by the evidence, up to the user's bound: at 200 req/s
and a 5 % first step the canary needs ~430 requests (~45 s) before a 1 % regression
has an 80 % chance to show, so the first step holds that long and every later step
already has it. ``insufficient`` is never a pass: the rollout is not promoted and
says what was missing.

Every test runs at Pocock-boundary levels (:mod:`drillbook.canary.stats`).
"""

from __future__ import annotations

import math
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Literal

import numpy as np
from numpy.typing import NDArray

from drillbook.canary.settings import CanarySettings
from drillbook.canary.stats import (
    Shift,
    Tail,
    error_evidence,
    error_increase_bound,
    fisher_p,
    latency_shift,
    level,
    quantile_ms,
    tail_bound,
)
from drillbook.core.metrics import Snapshot, quantile
from drillbook.core.profile import Metrics

Decision = Literal["breach", "pass", "continue", "insufficient"]
LatencySource = Literal["server time", "requests", "histogram"]


@dataclass(frozen=True)
class Window:
    """What one group of instances (canary or baseline) served during one analysis window."""

    requests: int = 0
    errors: int = 0
    #: Cumulative latency histogram: ((upper bound in seconds, count), ...), sorted, ending at +Inf.
    buckets: tuple[tuple[float, float], ...] = ()

    @property
    def error_rate(self) -> float | None:
        return self.errors / self.requests if self.requests else None

    @property
    def observations(self) -> int:
        return int(self.buckets[-1][1]) if self.buckets else 0

    def quantile_ms(self, q: float) -> float | None:
        value = quantile(q, list(self.buckets))
        return None if value is None else value * 1000

    def __add__(self, other: Window) -> Window:
        merged: dict[float, float] = {}
        for le, count in (*self.buckets, *other.buckets):
            merged[le] = merged.get(le, 0.0) + count
        return Window(
            self.requests + other.requests, self.errors + other.errors, tuple(sorted(merged.items()))
        )


def window_from(
    delta: Snapshot, exclude_routes: Iterable[str] = (), metrics: Metrics | None = None
) -> Window:
    """Requests, 5xx and the latency histogram of a scrape difference, without excluded route prefixes.

    Metric and label names are the profile's (``service_metrics``; its defaults when None).
    """
    m = metrics or Metrics()
    prefixes = tuple(exclude_routes)
    requests = errors = 0.0
    buckets: dict[float, float] = {}
    for (name, label_items), value in delta.samples.items():
        labels = dict(label_items)
        if prefixes and labels.get(m.route_label, "").startswith(prefixes):
            continue
        if name == m.requests_total:
            requests += value
            if labels.get(m.status_label, "").startswith("5"):
                errors += value
        elif name == f"{m.duration_seconds}_bucket" and "le" in labels:
            le = labels["le"]
            bound = math.inf if le in ("+Inf", "inf", "Inf") else float(le)
            buckets[bound] = buckets.get(bound, 0.0) + value
    return Window(round(requests), round(errors), tuple(sorted(buckets.items())))


def pooled(windows: Iterable[Window]) -> Window:
    total = Window()
    for w in windows:
        total = total + w
    return total


def histogram_latencies(w: Window) -> NDArray[np.float64]:
    """One latency (ms) per observation, at its bucket's upper bound (+Inf: twice the last bound).

    The fallback when no per-request latencies exist: a rank test on bucketed values
    treats each bucket as a tie, coarse but still a comparison of whole distributions.
    """
    values: list[NDArray[np.float64]] = []
    previous, last_finite = 0.0, 0.0
    for le, cumulative in w.buckets:
        count = round(cumulative - previous)
        previous = cumulative
        bound = 2 * last_finite if math.isinf(le) else le
        last_finite = last_finite if math.isinf(le) else le
        if count > 0:
            values.append(np.full(count, 1000 * bound))
    return np.concatenate(values) if values else np.zeros(0)


def _pct(value: float | None, digits: int = 1) -> str:
    return "n/a" if value is None else f"{100 * value:.{digits}f} %"


def _ms(value: float | None) -> str:
    return "n/a" if value is None else f"{value:.0f} ms" if abs(value) >= 10 else f"{value:.1f} ms"


def _p(value: float) -> str:
    return f"{value:.2g}"


@dataclass(frozen=True)
class ErrorFinding:
    """The error test at one look, on counts pooled over the rollout so far."""

    canary: Window
    baseline: Window
    increase: float | None  # canary rate - baseline rate (point estimate)
    lower: float | None  # its one-sided lower confidence bound
    fisher_p: float
    detectable: float | None  # smallest increase these counts would call a breach
    power: float | None  # chance these counts show a canary failing error_detectable more
    confidence: float
    margin: float
    breach: bool

    def text(self) -> str:
        c, b = self.canary, self.baseline
        head = (
            f"error rate {_pct(c.error_rate, 2)} ({c.errors}/{c.requests}) vs baseline "
            f"{_pct(b.error_rate, 2)} ({b.errors}/{b.requests})"
        )
        if self.increase is None or self.lower is None:
            return head
        return (
            f"{head}: {100 * self.increase:+.2f} %, at least {100 * self.lower:+.2f} % with "
            f"{100 * self.confidence:.2f} % confidence (limit +{100 * self.margin:.2f} %), "
            f"Fisher p = {_p(self.fisher_p)}"
        )


@dataclass(frozen=True)
class LatencyFinding:
    """The latency test at one look, on the step's answers since it settled."""

    source: LatencySource
    canary_count: int
    baseline_count: int
    canary_p50: float | None
    canary_p95: float | None
    baseline_p50: float | None
    baseline_p95: float | None
    shift: Shift | None  # None: too few answers to test
    tolerance_ms: float
    breach: bool
    tail: Tail | None = None

    @property
    def shift_ratio(self) -> float | None:
        """Lower confidence bound of the shift over the tolerance: above 1 is a breach."""
        if self.shift is None or math.isinf(self.shift.lower_ms):
            return None
        return self.shift.lower_ms / self.tolerance_ms if self.tolerance_ms > 0 else math.inf

    @property
    def effect_ratio(self) -> float | None:
        """The larger of the shift's and the tail's bound over its limit: above 1 is a breach."""
        ratios = [r for r in (self.shift_ratio, self.tail.ratio if self.tail else None) if r is not None]
        return max(ratios) if ratios else None

    def text(self, settings: CanarySettings) -> str:
        head = (
            f"canary p50 {_ms(self.canary_p50)} p95 {_ms(self.canary_p95)} vs baseline p50 "
            f"{_ms(self.baseline_p50)} p95 {_ms(self.baseline_p95)}"
        )
        if self.shift is None:
            return head
        s = self.shift
        lower = "n/a" if math.isinf(s.lower_ms) else f"{s.lower_ms:+.1f} ms"
        text = (
            f"{head} ({self.source}): shift {s.estimate_ms:+.1f} ms (at least {lower}; "
            f"tolerance {self.tolerance_ms:.1f} ms = "
            f"max({settings.latency_effect_pct:g} % of {_ms(self.baseline_p50)}, "
            f"{settings.latency_effect_ms:g} ms)), U-test p = {_p(s.u_p)}"
        )
        t = self.tail
        if t is not None:
            q = f"p{100 * t.q:g}"
            c_low = "n/a" if math.isinf(t.canary_lower_ms) else _ms(t.canary_lower_ms)
            text += (
                f"; tail: canary {q} at least {c_low} vs limit {_ms(t.limit_ms)} (baseline {q} "
                f"{_ms(t.baseline_ms)} +{settings.latency_tail_pct:g} %, at least "
                f"+{settings.latency_effect_ms:g} ms), answers above it {t.canary_above}/{t.canary_n} vs "
                f"{t.baseline_above}/{t.baseline_n}, Fisher p = {_p(t.fisher_p)}"
            )
        return text + f" ({s.canary_n} vs {s.baseline_n} {_unit(self)})"


@dataclass(frozen=True)
class Assessment:
    """One look of the judge: its decision, why, and the findings it was made on."""

    decision: Decision
    reason: str
    errors: ErrorFinding
    latency: LatencyFinding | None
    step_canary: Window
    step_baseline: Window


class Judge:
    """Applies :class:`CanarySettings` to canary and baseline evidence."""

    def __init__(self, settings: CanarySettings) -> None:
        self.settings = settings
        self.error_z = settings.error_z
        self.latency_z = settings.latency_z

    def errors(self, canary: Window, baseline: Window) -> ErrorFinding:
        s = self.settings
        c, b = canary, baseline
        lower = error_increase_bound(c.errors, c.requests, b.errors, b.requests, self.error_z)
        detectable, power = error_evidence(
            c.requests, b.errors, b.requests, self.error_z, s.error_margin, s.error_detectable
        )
        increase = None if lower is None else (c.error_rate or 0.0) - (b.error_rate or 0.0)
        return ErrorFinding(
            canary=c,
            baseline=b,
            increase=increase,
            lower=lower,
            fisher_p=fisher_p(c.errors, c.requests, b.errors, b.requests),
            detectable=detectable,
            power=power,
            confidence=1 - level(self.error_z),
            margin=s.error_margin,
            breach=lower is not None and lower > s.error_margin,
        )

    def latency(
        self,
        canary: NDArray[np.float64],
        baseline: NDArray[np.float64],
        source: LatencySource = "requests",
        recent: tuple[NDArray[np.float64], NDArray[np.float64]] | None = None,
    ) -> LatencyFinding:
        """Shift and tail of ``canary`` against ``baseline``; a tail breach must show in ``recent``
        (the window's latest half) too, as point estimates: more than 1 - q of the canary's
        recent answers above the limit, and a larger share than the baseline's. A cold canary
        growing its pools when its share rises makes a heavy tail at a step's start (lab, load
        10: p95 402 vs 106 ms, medians equal) that its later answers do not have.
        """
        s = self.settings
        b50 = quantile_ms(baseline, 0.5)
        tolerance = max(s.latency_effect_pct / 100 * (b50 or 0.0), s.latency_effect_ms)
        shift, tail = None, None
        if len(canary) >= s.latency_min_samples and len(baseline) >= s.latency_min_samples:
            shift = latency_shift(canary, baseline, self.latency_z, tolerance)
            tail = tail_bound(
                canary,
                baseline,
                self.latency_z,
                s.latency_tail_quantile,
                s.latency_tail_pct,
                s.latency_effect_ms,
            )
        tail_breach = tail is not None and tail.breach
        if tail is not None and tail_breach and recent is not None:
            rc, rb = recent
            share_c = float(np.mean(rc > tail.limit_ms)) if len(rc) else 0.0
            share_b = float(np.mean(rb > tail.limit_ms)) if len(rb) else 0.0
            tail_breach = (
                len(rc) >= s.latency_min_samples
                and share_c > 1 - s.latency_tail_quantile
                and share_c > share_b
            )
        return LatencyFinding(
            source=source,
            canary_count=len(canary),
            baseline_count=len(baseline),
            canary_p50=quantile_ms(canary, 0.5),
            canary_p95=quantile_ms(canary, 0.95),
            baseline_p50=b50,
            baseline_p95=quantile_ms(baseline, 0.95),
            shift=shift,
            tolerance_ms=tolerance,
            breach=(shift is not None and shift.lower_ms > tolerance) or tail_breach,
            tail=tail,
        )

    def assess(
        self,
        errors: ErrorFinding,
        latency: LatencyFinding | None,
        step_canary: Window,
        *,
        ready: bool = True,
        ready_detail: str = "",
        window_done: bool = False,
        waited_out: bool = False,
        latency_due: bool = False,
    ) -> Assessment:
        """One look. ``latency`` None: not judged at this step (load) or not yet settled
        (``latency_due``: it is judged here, so the step cannot pass without it).

        ``window_done``: the step's window is over; ``waited_out``: so is its sample wait.
        """
        s = self.settings

        def make(decision: Decision, reason: str) -> Assessment:
            return Assessment(decision, reason, errors, latency, step_canary, errors.baseline)

        found = [
            text
            for text, hit in (
                (f"readiness: {ready_detail}", not ready),
                (errors.text(), errors.breach),
                (latency.text(s) if latency else "", latency is not None and latency.breach),
            )
            if hit
        ]
        if found:
            return make("breach", "; ".join(found))
        if not window_done:
            return make("continue", "analysing")
        short = self.missing(errors, latency, step_canary)
        if latency_due and latency is None:
            short.append("latency: the step has not settled yet (no answers since canary_settle_s)")
        if not short:
            return make("pass", self.no_difference(errors, latency))
        if waited_out:
            return make(
                "insufficient",
                "not enough evidence: " + "; ".join(short) + " (no evidence is no promotion: is traffic "
                "reaching the canary? use --traffic RPS on an idle fleet, or longer windows)",
            )
        return make("continue", "waiting for evidence: " + "; ".join(short))

    def missing(self, errors: ErrorFinding, latency: LatencyFinding | None, step_canary: Window) -> list[str]:
        """What the step still lacks to decide, one phrase each (empty: enough evidence)."""
        s = self.settings
        short = []
        if step_canary.requests < s.min_samples:
            short.append(f"canary served {step_canary.requests} requests in this step (need {s.min_samples})")
        if errors.baseline.requests < s.min_samples:
            short.append(f"baseline served {errors.baseline.requests} requests (need {s.min_samples})")
        if latency is not None and latency.shift is None:
            short.append(
                f"latency: {latency.canary_count} canary and {latency.baseline_count} baseline "
                f"{_unit(latency)} since the step settled (need {s.latency_min_samples} each)"
            )
        if latency is not None and latency.shift is not None:
            fewest = min(latency.canary_count, latency.baseline_count)
            if fewest < s.latency_tail_min_samples:
                short.append(
                    f"latency tail: {latency.canary_count} canary and {latency.baseline_count} baseline "
                    f"{_unit(latency)} (need {s.latency_tail_min_samples} each to see a doubled "
                    f"p{100 * s.latency_tail_quantile:g})"
                )
        if errors.power is None or errors.power < s.error_power:
            can = f"a {100 * errors.power:.0f} % chance" if errors.power is not None else "no chance"
            short.append(
                f"errors: {errors.canary.requests} canary requests give {can} to see an error-rate "
                f"increase of {100 * s.error_detectable:g} % (need {100 * s.error_power:g} %)"
            )
        return short

    def no_difference(self, errors: ErrorFinding, latency: LatencyFinding | None) -> str:
        parts = [errors.text()]
        if latency is not None:
            parts.append(latency.text(self.settings))
        return "no difference beyond the limits: " + "; ".join(parts)


def _unit(latency: LatencyFinding) -> str:
    return "histogram counts" if latency.source == "histogram" else "answers"
