"""The canary judge: is the canary worse than the baseline over the same window?

Why this comparison
-------------------
A threshold on one sample ("error rate above 1 % at this check") either rolls back
a good release on one unlucky request or, to avoid that, waits for minutes of
failed checks while a bad release keeps serving errors (Flagger's defaults: one
check a minute, five failed checks). The judge instead treats every analysis
look as a statistical question on counts taken over the same window from both
groups, and answers it exactly:

* **Errors** (5xx share): one-sided Fisher exact test of the canary's 5xx count
  against the baseline's (:func:`drillbook.canary.stats.fisher_greater`). Exact,
  so valid at the handful of requests a 5 % step sees; conditional on the total
  number of errors, so a shared cause (the database is down for everyone) is not
  blamed on the canary. A breach also needs a practical effect: at least
  ``min_errors`` canary errors and an excess of ``error_margin`` over the
  baseline's rate. One flaky request is never a breach; a release failing 20 %
  of its requests is one after three or four errors.
* **Latency**: the q-quantile (p95) of each group is read from the difference of
  two ``/metrics`` scrapes of the ``http_request_duration_seconds`` histogram.
  The canary breaches when its p95 exceeds *both* baseline x ``latency_ratio`` and
  baseline + ``latency_margin_ms`` (ratio alone would flag 2 ms -> 5 ms; margin
  alone would ignore a doubling of a slow endpoint), *and* the share of canary
  requests slower than that bound is significantly larger than the baseline's
  (the same Fisher test on "slow" counts), so a p95 computed from a few dozen
  observations cannot roll back on its own.
* **Load**: latency is compared only at steps where a canary server takes no more
  requests than ``latency_max_load_ratio`` times a baseline server's (the drill
  decides; with one canary and two baseline servers: 5 % and 25 %, not 50 % or
  100 %). Beyond that a p95 difference measures the load, not the release: on a
  busy lab, good releases at twice a baseline host's load were judged slower in
  4 of 25 benchmark runs. Errors and readiness are judged at every step; a slow release
  is caught at the first one.
* **The 100 % step** has (almost) no baseline traffic in its window: errors are
  compared with the baseline of the previous step (an error rate hardly depends on
  load).
* **Settling**: right after a weight change the canary grows its connection pools
  and warms its caches for its new share; its latency then measures that, not
  the release. Latency is judged on windows that start ``settle_s`` after the
  change; errors from the first second.
* **Readiness**: ``ready_failures`` consecutive failed looks (the instance's own
  ``/health/ready`` or HAProxy marking it DOWN) are a breach.
* **Samples**: a step passes only when canary and baseline have served
  ``min_samples`` requests; when the window (plus ``sample_wait_s``) ends without
  them the judge fails closed: no traffic means no evidence, and no evidence is
  no promotion.

The judge looks many times per step, and every look is a chance of a false
alarm, so each look tests at ``alpha / looks`` (Bonferroni): the chance that a
release as good as the baseline is rolled back in a step stays below ``alpha``.
"""

from __future__ import annotations

import math
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Literal

from drillbook.canary.settings import CanarySettings
from drillbook.canary.stats import fisher_greater
from drillbook.core.metrics import Snapshot, quantile

REQUESTS_METRIC = "http_requests_total"
DURATION_METRIC = "http_request_duration_seconds"

Decision = Literal["breach", "pass", "continue"]


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

    def slower_than(self, bound_ms: float) -> int:
        """Observations above ``bound_ms``, read at the first bucket bound >= it (never over-counts)."""
        bound_s = bound_ms / 1000
        for le, count in self.buckets:
            if le >= bound_s:
                return int(self.observations - count)
        return 0

    def __add__(self, other: Window) -> Window:
        merged: dict[float, float] = {}
        for le, count in (*self.buckets, *other.buckets):
            merged[le] = merged.get(le, 0.0) + count
        return Window(
            self.requests + other.requests, self.errors + other.errors, tuple(sorted(merged.items()))
        )


def window_from(delta: Snapshot, exclude_routes: Iterable[str] = ()) -> Window:
    """Requests, 5xx and the latency histogram of a scrape difference, without excluded route prefixes."""
    prefixes = tuple(exclude_routes)

    def counted(labels: dict[str, str]) -> bool:
        route = labels.get("route", "")
        return not (prefixes and route.startswith(prefixes))

    requests = errors = 0.0
    buckets: dict[float, float] = {}
    for (name, label_items), value in delta.samples.items():
        labels = dict(label_items)
        if not counted(labels):
            continue
        if name == REQUESTS_METRIC:
            requests += value
            if labels.get("status", "").startswith("5"):
                errors += value
        elif name == f"{DURATION_METRIC}_bucket" and "le" in labels:
            le = labels["le"]
            bound = math.inf if le in ("+Inf", "inf", "Inf") else float(le)
            buckets[bound] = buckets.get(bound, 0.0) + value
    return Window(round(requests), round(errors), tuple(sorted(buckets.items())))


def pooled(windows: Iterable[Window]) -> Window:
    total = Window()
    for w in windows:
        total = total + w
    return total


@dataclass(frozen=True)
class Assessment:
    """One look of the judge: its decision, why, and the figures it was made on."""

    decision: Decision
    reason: str
    canary: Window
    baseline: Window
    error_p: float | None = None
    latency_p: float | None = None
    canary_latency_ms: float | None = None
    baseline_latency_ms: float | None = None
    latency_bound_ms: float | None = None
    findings: list[str] = field(default_factory=list)

    def figures(self) -> dict[str, float | int | None]:
        """The numbers a journal keeps for a step."""
        return {
            "canary_requests": self.canary.requests,
            "canary_errors": self.canary.errors,
            "canary_error_rate": _round(self.canary.error_rate, 4),
            "baseline_requests": self.baseline.requests,
            "baseline_errors": self.baseline.errors,
            "baseline_error_rate": _round(self.baseline.error_rate, 4),
            "canary_p95_ms": _round(self.canary_latency_ms, 1),
            "baseline_p95_ms": _round(self.baseline_latency_ms, 1),
            "error_p_value": _round_p(self.error_p),
            "latency_p_value": _round_p(self.latency_p),
        }


def _round(value: float | None, digits: int) -> float | None:
    return None if value is None else round(value, digits)


def _round_p(value: float | None) -> float | None:
    return None if value is None else float(f"{value:.3g}")


def _pct(value: float | None) -> str:
    return "n/a" if value is None else f"{100 * value:.1f}%"


class Judge:
    """Applies :class:`CanarySettings` to canary and baseline windows."""

    def __init__(self, settings: CanarySettings) -> None:
        self.settings = settings
        self.alpha = settings.alpha_per_look

    def errors(self, canary: Window, baseline: Window) -> tuple[bool, float | None, str]:
        s = self.settings
        if canary.errors < s.min_errors or not baseline.requests:
            return False, None, ""
        excess = (canary.error_rate or 0.0) - (baseline.error_rate or 0.0)
        p = fisher_greater(canary.errors, canary.requests, baseline.errors, baseline.requests)
        breach = excess >= s.error_margin and p < self.alpha
        detail = (
            f"error rate {_pct(canary.error_rate)} ({canary.errors}/{canary.requests}) vs baseline "
            f"{_pct(baseline.error_rate)} ({baseline.errors}/{baseline.requests}), "
            f"one-sided Fisher p={p:.2g} (alpha per look {self.alpha:.2g})"
        )
        return breach, p, detail

    def latency(
        self, canary: Window, baseline: Window
    ) -> tuple[bool, float | None, float | None, float | None, float | None, str]:
        """(breach, p, canary quantile, baseline quantile, bound, detail)."""
        s = self.settings
        c_q = canary.quantile_ms(s.latency_quantile)
        b_q = baseline.quantile_ms(s.latency_quantile)
        if (
            c_q is None
            or b_q is None
            or canary.observations < s.latency_min_samples
            or baseline.observations < s.latency_min_samples
        ):
            return False, None, c_q, b_q, None, ""
        bound = max(b_q * s.latency_ratio, b_q + s.latency_margin_ms)
        if c_q <= bound:
            return False, None, c_q, b_q, bound, ""
        p = fisher_greater(
            canary.slower_than(bound), canary.observations, baseline.slower_than(bound), baseline.observations
        )
        q = round(100 * s.latency_quantile)
        detail = (
            f"p{q} {c_q:.0f} ms vs baseline {b_q:.0f} ms (bound {bound:.0f} ms = max(x{s.latency_ratio:g}, "
            f"+{s.latency_margin_ms:g} ms)), slower-than-bound share one-sided Fisher p={p:.2g}"
        )
        return p < self.alpha, p, c_q, b_q, bound, detail

    def assess(
        self,
        canary: Window,
        baseline: Window,
        *,
        ready: bool = True,
        ready_detail: str = "",
        window_done: bool = False,
        waited_out: bool = False,
        judge_latency: bool = True,
        latency: tuple[Window, Window] | None = None,
    ) -> Assessment:
        """One look. ``window_done``: the step's window is over; ``waited_out``: so is the sample wait.

        ``latency``: (canary, baseline) windows to judge latency on, when they differ from the
        error windows (the drill's start after the settle time); ``judge_latency=False``: none.
        """
        s = self.settings
        err_breach, err_p, err_detail = self.errors(canary, baseline)
        lat_canary, lat_baseline = latency or (canary, baseline)
        lat_breach, lat_p, c_q, b_q, bound, lat_detail = self.latency(lat_canary, lat_baseline)
        if not judge_latency:
            lat_breach, lat_p, bound = False, None, None

        def make(decision: Decision, reason: str, findings: list[str] | None = None) -> Assessment:
            return Assessment(
                decision, reason, canary, baseline, err_p, lat_p, c_q, b_q, bound, findings or []
            )

        findings = [
            f
            for f, hit in (
                (f"readiness: {ready_detail}", not ready),
                (err_detail, err_breach),
                (lat_detail, lat_breach),
            )
            if hit
        ]
        if findings:
            return make("breach", "; ".join(findings), findings)
        if not window_done:
            return make("continue", "analysing")
        short = [
            f"{name} served {w.requests} requests (need {s.min_samples})"
            for name, w in (("canary", canary), ("baseline", baseline))
            if w.requests < s.min_samples
        ]
        if not short:
            return make("pass", f"no significant difference ({err_detail or 'no canary errors'})")
        if waited_out:
            reason = (
                "insufficient samples: " + ", ".join(short) + "; no evidence is no promotion "
                "(is traffic reaching the canary? use --traffic RPS on an idle fleet)"
            )
            return make("breach", reason, [reason])
        return make("continue", "waiting for samples: " + ", ".join(short))
