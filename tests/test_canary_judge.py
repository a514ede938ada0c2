"""The canary's statistics and judge on seeded synthetic samples: the tests, their effect sizes, the looks."""

from __future__ import annotations

import math

import numpy as np
import pytest
from pydantic import ValidationError
from scipy import stats as sps

from drillbook.canary.judge import Judge, Window, histogram_latencies, pooled, window_from
from drillbook.canary.settings import CanarySettings
from drillbook.canary.stats import (
    detectable_increase,
    error_increase_bound,
    error_power,
    fisher_p,
    level,
    order_bound,
    pocock_z,
)
from drillbook.core.metrics import parse

SETTINGS = CanarySettings()


def brute_fisher(a: int, n_a: int, b: int, n_b: int) -> float:
    n, k = n_a + n_b, a + b
    total = math.comb(n, n_a)
    return sum(math.comb(k, x) * math.comb(n - k, n_a - x) for x in range(a, min(k, n_a) + 1)) / total


@pytest.mark.parametrize(
    ("a", "n_a", "b", "n_b"),
    [(1, 10, 0, 190), (2, 10, 0, 190), (3, 20, 1, 380), (5, 50, 5, 50), (0, 10, 3, 30), (7, 9, 2, 11)],
)
def test_fisher_matches_the_definition(a: int, n_a: int, b: int, n_b: int) -> None:
    assert fisher_p(a, n_a, b, n_b) == pytest.approx(brute_fisher(a, n_a, b, n_b), rel=1e-9)


def test_fisher_edges() -> None:
    assert fisher_p(0, 10, 0, 10) == 1.0
    assert fisher_p(3, 3, 0, 0) == 1.0
    with pytest.raises(ValueError):
        fisher_p(5, 4, 0, 10)


def test_pocock_boundary_sits_between_one_look_and_bonferroni() -> None:
    assert pocock_z(0.005, 1) == pytest.approx(sps.norm.isf(0.005))
    z = pocock_z(0.005, 41)
    assert sps.norm.isf(0.005) < z < sps.norm.isf(0.005 / 41)
    # More looks, a higher bar; the nominal level per look is what the journal prints.
    assert pocock_z(0.005, 164) > z and level(z) == pytest.approx(sps.norm.sf(z))


def test_pocock_boundary_keeps_the_false_alarm_rate_of_a_z_test_looked_at_41_times() -> None:
    """A mean-zero stream tested at every look against the boundary: alarms in about alpha of the runs."""
    z = pocock_z(0.05, 41)
    rng = np.random.default_rng(3)
    walks = np.cumsum(rng.standard_normal((20_000, 41)), axis=1) / np.sqrt(np.arange(1, 42))
    rate = float((walks.max(axis=1) > z).mean())
    assert 0.04 < rate < 0.06, rate
    naive = float((walks.max(axis=1) > sps.norm.isf(0.05)).mean())
    assert naive > 0.15  # what testing each look at alpha would do


def test_error_bound_is_low_without_errors_and_high_for_a_bad_release() -> None:
    z = SETTINGS.error_z
    assert (error_increase_bound(0, 100, 0, 1900, z) or 0) < 0
    # 200 rps, 5 % step: 10 canary requests a second, 20 % failing: a breach within two seconds.
    seconds = next(
        t for t in range(1, 20) if (error_increase_bound(2 * t, 10 * t, 0, 190 * t, z) or 0) > 0.002
    )
    assert seconds <= 2
    # A shared outage (both fail 20 %) is not the canary's.
    assert (error_increase_bound(20, 100, 380, 1900, z) or 0) < 0.002


def test_one_percent_errors_need_traffic_and_say_so() -> None:
    z, margin = SETTINGS.error_z, SETTINGS.error_margin
    # 100 canary requests (a 5 % step of 10 s at 200 rps) cannot show +1 %: only +3 % or more.
    small = detectable_increase(100, 0, 1900, z, margin)
    assert small is not None and small >= 0.03
    # 4000 canary requests can, and a real +1 % regression crosses the margin there.
    large = detectable_increase(4000, 4, 36_000, z, margin)
    assert large is not None and large < 0.01
    assert (error_increase_bound(44, 4000, 4, 36_000, z) or 0) > margin


def test_error_false_alarms_of_good_releases_stay_below_alpha() -> None:
    """Both groups fail 0.5 % at random; 300 rollouts of 4 steps, the judge looking every half second."""
    z, margin = SETTINGS.error_z, SETTINGS.error_margin  # exactly what Judge.errors compares
    rng = np.random.default_rng(42)
    looks = SETTINGS.looks_per_step - int(SETTINGS.sample_wait_s / SETTINGS.interval_s)
    alarms = 0
    for _ in range(300):
        c = b = Window()
        for share in (0.05, 0.25, 0.5, 0.99):
            cn, bn = round(100 * share), round(100 * (1 - share))  # half a second at 200 rps
            for _look in range(looks):
                c = c + Window(cn, int(rng.binomial(cn, 0.005)))
                b = b + Window(bn, int(rng.binomial(bn, 0.005)))
                if (error_increase_bound(c.errors, c.requests, b.errors, b.requests, z) or 0) > margin:
                    alarms += 1
                    break
            else:
                continue
            break
    assert alarms / 300 <= SETTINGS.alpha


def lognormal(rng: np.random.Generator, n: int, median_ms: float = 8.0) -> np.ndarray:
    return rng.lognormal(math.log(median_ms), 0.5, n)


def test_latency_shift_of_20_ms_is_a_breach_and_5_percent_is_not() -> None:
    judge, rng = Judge(SETTINGS), np.random.default_rng(5)
    base = lognormal(rng, 1500)
    slow = judge.latency(lognormal(rng, 80) + 20, base)
    assert slow.breach and slow.effect_ratio is not None and slow.effect_ratio > 1
    assert slow.shift is not None and 17 < slow.shift.estimate_ms < 23 and slow.shift.u_p < 1e-6
    assert "U-test p =" in slow.text(SETTINGS) and "tolerance 10.0 ms" in slow.text(SETTINGS)
    # 5 % slower on every request: real (a plain U test finds it), but below the tolerance.
    c, b = lognormal(rng, 3000) * 1.05, lognormal(rng, 9000)
    assert sps.mannwhitneyu(c, b, alternative="greater").pvalue < 1e-6
    close = judge.latency(c, b)
    assert not close.breach and close.shift is not None and close.shift.lower_ms < close.tolerance_ms


def test_relative_tolerance_governs_slow_services() -> None:
    judge, rng = Judge(SETTINGS), np.random.default_rng(6)
    base = lognormal(rng, 2000, median_ms=400)
    # +40 ms on a 400 ms service is 10 %: under the 20 % tolerance (80 ms), so no breach ...
    assert not judge.latency(lognormal(rng, 500, median_ms=400) + 40, base).breach
    # ... +200 ms is 50 %: a breach.
    found = judge.latency(lognormal(rng, 500, median_ms=400) + 200, base)
    assert found.breach and found.tolerance_ms == pytest.approx(80, rel=0.1)


def test_latency_false_alarms_of_good_releases_stay_below_alpha() -> None:
    """Same distribution on both sides, no tolerance: 100 steps, 10 looks each on growing samples."""
    settings = CanarySettings(alpha=0.2, latency_effect_ms=0, latency_effect_pct=0, steps=[5, 25])
    judge, rng = Judge(settings), np.random.default_rng(7)
    alarms = 0
    for _ in range(100):
        c, b = lognormal(rng, 150), lognormal(rng, 600)
        for look in range(1, 11):
            if judge.latency(c[: 15 * look], b[: 60 * look]).breach:
                alarms += 1
                break
    # Budget per step: alpha / 2 / steps = 5 %; allow sampling noise (sd ~2 %).
    assert alarms / 100 <= settings.alpha / 2 / len(settings.steps) + 0.04


def test_doubled_p95_with_the_median_unchanged_is_a_breach() -> None:
    """One request in five slow enough to double p95: the shift test may pass it, the tail test does not."""
    judge, rng = Judge(SETTINGS), np.random.default_rng(11)
    base = lognormal(rng, 1500)
    p50, p95 = np.quantile(base, [0.5, 0.95])
    canary = lognormal(rng, 80)
    slow = rng.random(80) < 0.2
    canary[slow] += 2 * p95 - p50
    assert np.quantile(canary, 0.95) / p95 == pytest.approx(2, rel=0.35)
    found = judge.latency(canary, base)
    assert found.breach and found.tail is not None and (found.tail.ratio or 0) > 1
    assert "tail: canary p95 at least" in found.text(SETTINGS) and "Fisher p =" in found.text(SETTINGS)
    # A good release's tail, and a 20 % slower tail, stay under the 50 % tolerance.
    assert not judge.latency(lognormal(rng, 400), base).breach
    assert not judge.latency(lognormal(rng, 400) * 1.2, lognormal(rng, 4000)).breach


def test_a_heavy_tail_only_at_the_start_of_a_step_is_warm_up_not_a_breach() -> None:
    """The tail must hold in the latest half of the window too: a cold canary's first seconds are not it."""
    judge, rng = Judge(SETTINGS), np.random.default_rng(13)
    base = lognormal(rng, 400, median_ms=25)
    canary = lognormal(rng, 400, median_ms=25)
    canary[:60] += 400  # the first requests waited for new pool connections
    assert judge.latency(canary, base).breach  # judged on the whole window alone: a false alarm
    recent = (canary[200:], base[200:])
    assert not judge.latency(canary, base, recent=recent).breach
    slow = lognormal(rng, 400, median_ms=25)
    slow[rng.random(400) < 0.2] += 150  # a slow path: everywhere in the window
    assert judge.latency(slow, base, recent=(slow[200:], base[200:])).breach


def test_order_bounds_cover_the_quantile() -> None:
    """Distribution-free bounds: the true p95 of a known distribution lies inside at the stated rate."""
    rng = np.random.default_rng(12)
    true = math.exp(sps.norm.ppf(0.95))
    misses = 0
    for _ in range(400):
        x = np.sort(rng.lognormal(0, 1, 200))
        lo, hi = order_bound(x, 0.95, 0.05, upper=False), order_bound(x, 0.95, 0.05, upper=True)
        misses += int(lo > true) + int(hi < true)
    assert misses / 800 <= 0.05 + 0.02
    assert order_bound(np.sort(rng.random(3)), 0.95, 1e-4, upper=False) == -math.inf


def test_too_few_answers_are_not_enough_evidence() -> None:
    judge = Judge(SETTINGS)
    rng = np.random.default_rng(8)
    errors = judge.errors(Window(5, 0), Window(500, 0))
    latency = judge.latency(lognormal(rng, 5), lognormal(rng, 500))
    assert latency.shift is None and not latency.breach
    assert judge.assess(errors, latency, Window(5, 0)).decision == "continue"
    waiting = judge.assess(errors, latency, Window(5, 0), window_done=True)
    assert waiting.decision == "continue" and "waiting for evidence" in waiting.reason
    closed = judge.assess(errors, latency, Window(5, 0), window_done=True, waited_out=True)
    assert closed.decision == "insufficient" and closed.reason.startswith("not enough evidence")
    assert "canary served 5 requests" in closed.reason and "latency: 5 canary" in closed.reason


def test_every_step_needs_the_power_to_see_the_detectable_error_increase() -> None:
    """A step holds until a 1 % regression would show with ``error_power``; then it may pass."""
    judge = Judge(SETTINGS)
    rng = np.random.default_rng(9)
    latency = judge.latency(lognormal(rng, 200), lognormal(rng, 2000))
    few = judge.errors(Window(60, 0), Window(1000, 0))
    assert few.power is not None and few.power < SETTINGS.error_power
    waiting = judge.assess(few, latency, Window(60, 0), window_done=True)
    assert waiting.decision == "continue" and "canary requests give" in waiting.reason
    short = judge.assess(few, latency, Window(60, 0), window_done=True, waited_out=True)
    assert short.decision == "insufficient" and "error-rate increase of 1 %" in short.reason
    many = judge.errors(Window(600, 0), Window(11_400, 0))  # a 5 % step of 60 s at 200 rps
    assert many.power is not None and many.power >= SETTINGS.error_power
    assert judge.assess(many, latency, Window(600, 0), window_done=True).decision == "pass"


def test_error_power_is_the_binomial_chance_of_crossing_the_bound() -> None:
    """Checked by simulation: canaries failing 1 % more, counted like the judge counts them."""
    z, rng = SETTINGS.error_z, np.random.default_rng(21)
    power = error_power(500, 0, 9500, z, 0.0, 0.01)
    assert power is not None and 0.8 < power < 0.95
    caught = sum(
        (error_increase_bound(int(rng.binomial(500, 0.01)), 500, 0, 9500, z) or 0) > 0 for _ in range(2000)
    )
    assert caught / 2000 == pytest.approx(power, abs=0.03)
    assert error_power(20, 0, 380, z, 0.0, 0.01) is None or (error_power(20, 0, 380, z, 0.0, 0.01) or 0) < 0.1


def test_tail_needs_its_answers_before_a_step_passes() -> None:
    judge, rng = Judge(SETTINGS), np.random.default_rng(23)
    errors = judge.errors(Window(600, 0), Window(11_400, 0))
    latency = judge.latency(lognormal(rng, 60), lognormal(rng, 60))
    waiting = judge.assess(errors, latency, Window(600, 0), window_done=True)
    assert waiting.decision == "continue" and "latency tail: 60 canary" in waiting.reason
    enough = judge.latency(lognormal(rng, 200), lognormal(rng, 200))
    assert judge.assess(errors, enough, Window(600, 0), window_done=True).decision == "pass"


def test_doubled_p95_is_caught_on_150_answers_a_side() -> None:
    """The tail test's power where the step's evidence rule lets it decide, and no false alarm."""
    judge, rng = Judge(SETTINGS), np.random.default_rng(29)
    caught = alarms = 0
    for _ in range(100):
        base = lognormal(rng, 150)
        p50, p95 = np.quantile(lognormal(rng, 2000), [0.5, 0.95])
        canary = lognormal(rng, 150)
        canary[rng.random(150) < 0.2] += 2 * p95 - p50
        caught += judge.latency(canary, base).breach
        alarms += judge.latency(lognormal(rng, 150) * 1.05, base).breach
    assert caught >= 90 and alarms == 0


def test_unready_canary_is_a_breach() -> None:
    judge = Judge(SETTINGS)
    a = judge.assess(
        judge.errors(Window(10, 0), Window(190, 0)),
        None,
        Window(10, 0),
        ready=False,
        ready_detail="app-1 DOWN",
    )
    assert a.decision == "breach" and "app-1 DOWN" in a.reason


def test_histogram_latencies_put_each_observation_at_its_bucket_bound() -> None:
    w = Window(5, 0, ((0.01, 2.0), (0.1, 4.0), (math.inf, 5.0)))
    assert list(histogram_latencies(w)) == [10.0, 10.0, 100.0, 100.0, 200.0]
    assert len(histogram_latencies(Window())) == 0


def test_window_from_metrics_excludes_probe_routes() -> None:
    before = parse(
        """# TYPE http_requests_total counter
http_requests_total{route="/items/{item_id}",method="GET",status="200"} 10
http_requests_total{route="/health/ready",method="GET",status="200"} 50
"""
    )
    after = parse(
        """# TYPE http_requests_total counter
http_requests_total{route="/items/{item_id}",method="GET",status="200"} 40
http_requests_total{route="unmatched",method="GET",status="500"} 5
http_requests_total{route="/health/ready",method="GET",status="500"} 70
# TYPE http_request_duration_seconds histogram
http_request_duration_seconds_bucket{route="/items/{item_id}",method="GET",le="0.01"} 30
http_request_duration_seconds_bucket{route="/items/{item_id}",method="GET",le="+Inf"} 35
http_request_duration_seconds_count{route="/items/{item_id}",method="GET"} 35
http_request_duration_seconds_sum{route="/items/{item_id}",method="GET"} 0.3
http_request_duration_seconds_bucket{route="/health/ready",method="GET",le="0.01"} 900
http_request_duration_seconds_bucket{route="/health/ready",method="GET",le="+Inf"} 900
"""
    )
    w = window_from(after - before, ["/health", "/metrics"])
    assert (w.requests, w.errors) == (35, 5)
    assert w.buckets == ((0.01, 30.0), (math.inf, 35.0))
    both = pooled([w, w])
    assert (both.requests, both.errors, both.observations) == (70, 10, 70)


def test_settings_refuse_nonsense() -> None:
    with pytest.raises(ValidationError, match="increase"):
        CanarySettings(steps=[25, 5])
    with pytest.raises(ValidationError, match="reference"):
        CanarySettings(steps=[100])
    with pytest.raises(ValidationError):
        CanarySettings(promote_serial="0")
    assert CanarySettings(promote_serial=2).promote_serial == "2"  # type: ignore[arg-type]
    assert CanarySettings(promote_serial="25%").promote_serial == "25%"


def test_lab_inventory_settings_load() -> None:
    from drillbook.canary.drill import load_settings
    from drillbook.core.inventory import load_inventory
    from drillbook.core.paths import LAB_INVENTORY

    settings = load_settings(load_inventory(LAB_INVENTORY))
    assert settings.steps == [5, 25, 50, 100]
    assert 0 < settings.latency_level_per_look < settings.error_level_per_look < settings.alpha


def test_a_step_that_judges_latency_cannot_pass_before_it_settled() -> None:
    """Found on the lab: a loaded machine's slow looks let a 3 s step pass before latency was judged."""
    judge = Judge(SETTINGS)
    errors = judge.errors(Window(600, 0), Window(11_400, 0))
    assert judge.assess(errors, None, Window(600, 0), window_done=True).decision == "pass"
    due = judge.assess(errors, None, Window(600, 0), window_done=True, latency_due=True)
    assert due.decision == "continue" and "not settled" in due.reason
    out = judge.assess(errors, None, Window(600, 0), window_done=True, waited_out=True, latency_due=True)
    assert out.decision == "insufficient"
