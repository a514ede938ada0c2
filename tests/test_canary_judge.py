"""The canary judge on synthetic counts: exact tests, flaky requests, bad and slow releases, samples."""

from __future__ import annotations

import math
import random

import pytest
from pydantic import ValidationError

from drillbook.canary.judge import Judge, Window, pooled, window_from
from drillbook.canary.settings import CanarySettings
from drillbook.canary.stats import fisher_greater
from drillbook.core.metrics import parse

BOUNDS = (0.005, 0.01, 0.025, 0.05, 0.075, 0.1, 0.15, 0.2, 0.3, 0.5, 0.75, 1.0, 2.0, 5.0, math.inf)


def brute_fisher(a: int, n_a: int, b: int, n_b: int) -> float:
    n, k = n_a + n_b, a + b
    total = math.comb(n, n_a)
    return sum(math.comb(k, x) * math.comb(n - k, n_a - x) for x in range(a, min(k, n_a) + 1)) / total


@pytest.mark.parametrize(
    ("a", "n_a", "b", "n_b"),
    [(1, 10, 0, 190), (2, 10, 0, 190), (3, 20, 1, 380), (5, 50, 5, 50), (0, 10, 3, 30), (7, 9, 2, 11)],
)
def test_fisher_matches_the_definition(a: int, n_a: int, b: int, n_b: int) -> None:
    assert fisher_greater(a, n_a, b, n_b) == pytest.approx(brute_fisher(a, n_a, b, n_b), rel=1e-9)


def test_fisher_edges_and_large_counts() -> None:
    assert fisher_greater(0, 10, 0, 10) == 1.0  # nothing bad at all
    assert fisher_greater(3, 3, 0, 0) == 1.0  # no baseline: nothing to compare
    # One error in a 5 % canary is exactly as likely as the canary's share of traffic.
    assert fisher_greater(1, 10, 0, 190) == pytest.approx(0.05)
    # 200k requests do not overflow, and a 10x error rate is overwhelming evidence.
    assert fisher_greater(1000, 100_000, 100, 100_000) < 1e-100
    with pytest.raises(ValueError):
        fisher_greater(5, 4, 0, 10)


def histogram(latencies_ms: list[float]) -> tuple[tuple[float, float], ...]:
    counts = []
    for bound in BOUNDS:
        counts.append((bound, float(sum(1 for v in latencies_ms if v / 1000 <= bound))))
    return tuple(counts)


def window(requests: int, errors: int, latency_ms: float = 8.0, slow_share: float = 0.0) -> Window:
    rng = random.Random(requests * 31 + errors)
    lat = [latency_ms * rng.uniform(0.5, 1.5) for _ in range(requests)]
    for i in range(int(requests * slow_share)):
        lat[i] += 300
    return Window(requests, errors, histogram(lat))


@pytest.fixture()
def judge() -> Judge:
    return Judge(CanarySettings())


def test_one_flaky_request_is_not_a_breach(judge: Judge) -> None:
    for errors in (1, 2):
        a = judge.assess(window(10, errors), window(190, 0))
        assert a.decision == "continue", a.reason


def test_twenty_percent_errors_breach_within_a_few_errors(judge: Judge) -> None:
    # 200 rps with a 5 % canary: 10 canary requests a second, 20 % of them failing.
    for seconds in range(1, 10):
        a = judge.assess(window(10 * seconds, 2 * seconds), window(190 * seconds, 0))
        if a.decision == "breach":
            break
    assert a.decision == "breach" and seconds <= 2, (seconds, a.reason)
    assert "error rate" in a.reason and a.error_p is not None and a.error_p < judge.alpha


def test_shared_errors_are_not_blamed_on_the_canary(judge: Judge) -> None:
    # The database is down for everyone: canary and baseline fail alike.
    a = judge.assess(window(100, 20), window(1900, 380), window_done=True)
    assert a.decision == "pass", a.reason


def test_slow_release_breaches_and_a_small_difference_does_not(judge: Judge) -> None:
    slow = judge.assess(window(40, 0, latency_ms=8, slow_share=1.0), window(760, 0, latency_ms=8))
    assert slow.decision == "breach" and "p95" in slow.reason, slow.reason
    assert slow.canary_latency_ms is not None and slow.canary_latency_ms > 250
    # 8 ms -> 12 ms is 1.5x but far below the 100 ms margin: not a breach.
    close = judge.assess(window(200, 0, latency_ms=12), window(1800, 0, latency_ms=8), window_done=True)
    assert close.decision == "pass", close.reason


def test_latency_can_be_left_out_when_there_is_no_same_window_baseline(judge: Judge) -> None:
    # The 100 % step: the canary carries the whole load and is judged against an earlier window.
    loaded = window(200, 0, latency_ms=8, slow_share=0.5)
    assert judge.assess(loaded, window(800, 0)).decision == "breach"
    assert judge.assess(loaded, window(800, 0), judge_latency=False, window_done=True).decision == "pass"


def test_a_few_slow_requests_do_not_roll_back(judge: Judge) -> None:
    # 3 % of canary requests hit a slow path: p95 stays where the baseline's is.
    a = judge.assess(window(200, 0, slow_share=0.03), window(1800, 0), window_done=True)
    assert a.decision == "pass", a.reason


def test_unready_canary_is_a_breach(judge: Judge) -> None:
    a = judge.assess(window(10, 0), window(190, 0), ready=False, ready_detail="app-1 DOWN")
    assert a.decision == "breach" and "app-1 DOWN" in a.reason


def test_insufficient_samples_wait_then_fail_closed(judge: Judge) -> None:
    few = window(5, 0)
    assert judge.assess(few, window(500, 0)).decision == "continue"
    waiting = judge.assess(few, window(500, 0), window_done=True)
    assert waiting.decision == "continue" and "waiting for samples" in waiting.reason
    closed = judge.assess(few, window(500, 0), window_done=True, waited_out=True)
    assert closed.decision == "breach"
    assert "insufficient samples" in closed.reason and "canary served 5 requests" in closed.reason
    assert judge.assess(window(60, 0), window(500, 0), window_done=True).decision == "pass"


def test_false_rollback_rate_of_a_good_release_stays_below_alpha() -> None:
    """Both groups fail 0.5 % of requests at random; 300 simulated steps of 20 looks each."""
    settings = CanarySettings(window_s=10, interval_s=0.5, sample_wait_s=0)
    judge = Judge(settings)
    rng = random.Random(42)
    rollbacks = 0
    for _ in range(300):
        c = b = Window()
        for _look in range(settings.looks_per_step):
            cn, bn = 5, 95  # a 5 % step at 200 rps, half a second per look
            ce = sum(rng.random() < 0.005 for _ in range(cn))
            be = sum(rng.random() < 0.005 for _ in range(bn))
            c, b = c + Window(cn, ce, ()), b + Window(bn, be, ())
            if judge.assess(c, b).decision == "breach":
                rollbacks += 1
                break
    assert rollbacks / 300 <= settings.alpha


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
    assert settings.steps == [5, 25, 50, 100] and settings.alpha_per_look < settings.alpha
