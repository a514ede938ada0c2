"""Load runs, the pure parts: schedule, records, plan validation, judging, witnesses, report, plot."""

from __future__ import annotations

import json
import random
from pathlib import Path
from typing import Any

import pytest

import drillbook.load
from drillbook.core.checks import evaluate
from drillbook.core.errors import ConfigError
from drillbook.core.inventory import load_inventory
from drillbook.core.journal import Check, Journal
from drillbook.core.metrics import parse
from drillbook.load.drill import LoadRun
from drillbook.load.judge import LoadFigures, compute, judge
from drillbook.load.latency import Histogram, Recorder, bucket_of, bucket_value
from drillbook.load.measured import limits_for, measured_from
from drillbook.load.plan import LoadPlan, LoadSettings, make_plan, parse_duration
from drillbook.load.plot import plot_run
from drillbook.load.report import find_run, reprint, section
from drillbook.load.runner import CpuSample, LocustFiles, LocustOutcome, locust_command, parse_history
from drillbook.load.schedule import ArrivalPlan, Pacer, pool_size
from drillbook.load.witness import ServerFigures, Witnesses

INVENTORY = Path(__file__).parent / "data" / "inventory"
SETTINGS = LoadSettings(rps=100, sla_p95_ms=50, sla_p99_ms=200)


# -- the arrival schedule ---------------------------------------------------------------
def test_plan_integral_and_inverse_agree() -> None:
    plan = ArrivalPlan(rate=100, ramp_s=10, duration_s=60)
    assert plan.expected(10) == pytest.approx(500)  # half the rate on average during the ramp
    assert plan.total == pytest.approx(500 + 50 * 100)
    for s in (0.5, 10, 499.9, 500, 1234.5, 5499):
        t = plan.time_of(s)
        assert t is not None and plan.expected(t) == pytest.approx(s)
    assert plan.time_of(plan.total) is None
    assert plan.rate_at(5) == 50 and plan.rate_at(30) == 100 and plan.rate_at(60) == 0


def _claims(pacer: Pacer, until: float) -> list[float]:
    """Drive a pacer as idle users would (always one idle): the due times it hands out."""
    times, now = [], 0.0
    while True:
        delay = pacer.claim(now)
        if delay is None:
            return times
        now += delay
        times.append(now)
        if now > until:
            return times


def test_jittered_pacer_holds_the_count_in_every_second() -> None:
    pacer = Pacer(ArrivalPlan(rate=250, ramp_s=0, duration_s=20), rng=random.Random(1))
    pacer.start(0.0)
    times = _claims(pacer, 30)
    assert len(times) == 5000
    per_second = [sum(1 for t in times if s <= t < s + 1) for s in range(20)]
    assert max(per_second) - min(per_second) <= 2, per_second
    assert pacer.stats.late == 0 and pacer.stats.dropped == 0


def test_jittered_arrivals_do_not_clump_like_lockstep() -> None:
    """At 1,000/s, no 10 ms slot gets more than a couple of arrivals (lockstep bursts gave up to 30)."""
    pacer = Pacer(ArrivalPlan(rate=1000, ramp_s=0, duration_s=5), rng=random.Random(2))
    pacer.start(0.0)
    slots: dict[int, int] = {}
    for t in _claims(pacer, 10):
        slots[int(t * 100)] = slots.get(int(t * 100), 0) + 1
    assert max(slots.values()) <= 12
    assert len(slots) >= 495  # almost no empty slot


def test_poisson_pacer_has_the_right_mean() -> None:
    pacer = Pacer(ArrivalPlan(rate=200, ramp_s=0, duration_s=50), arrivals="poisson", rng=random.Random(3))
    pacer.start(0.0)
    assert len(_claims(pacer, 60)) == pytest.approx(10_000, rel=0.05)


def test_late_claims_are_counted_and_far_behind_is_dropped_not_burst() -> None:
    pacer = Pacer(ArrivalPlan(rate=100, ramp_s=0, duration_s=60), rng=random.Random(4))
    pacer.start(0.0)
    assert pacer.claim(0.5) == 0.0  # the first arrival was due at ~5 ms
    assert pacer.stats.late == 1
    pacer.claim(5.0)  # 4.5 s behind: the missed arrivals are skipped
    assert pacer.stats.dropped == pytest.approx(500 - 2, abs=2)
    delay = pacer.claim(5.0)
    assert delay is not None and delay <= 0.011  # back on schedule, no catch-up burst


def test_tasks_in_flight_are_counted_exactly() -> None:
    pacer = Pacer(ArrivalPlan(rate=100, ramp_s=0, duration_s=10), rng=random.Random(6))
    pacer.start(0.0)
    delays = [pacer.claim(0.0) for _ in range(3)]
    assert pacer.outstanding == 3 and pacer.running == 0
    pacer.started(0.010, due=delays[0] or 0.0)
    pacer.started(0.100, due=delays[1] or 0.0)  # ~85 ms after it was due: the generator was late
    assert pacer.running == 2 and pacer.stats.starts == 2 and pacer.stats.start_late == 1
    pacer.finished(0.200, was_running=True)
    pacer.finished(0.200, was_running=False)  # claimed, never started (stopped while waiting)
    assert pacer.running == 1 and pacer.outstanding == 1
    mean, peak = pacer.take_in_flight(0.300)
    # 1 task over 0.010..0.100, 2 over 0.100..0.200, 1 over 0.200..0.300: L = 0.49 / 0.29 s
    assert peak == 2 and mean == pytest.approx((0.09 * 1 + 0.1 * 2 + 0.1 * 1) / 0.29)
    assert pacer.take_in_flight(1.300) == (pytest.approx(1.0), 1)


def test_requests_per_task_scale_the_schedule() -> None:
    pacer = Pacer(ArrivalPlan(rate=100, ramp_s=0, duration_s=10), rng=random.Random(5))
    pacer.start(0.0)
    pacer.observe(requests=200, tasks=100)  # each task sends two requests
    assert len(_claims(pacer, 20)) == 500


def test_pool_size_follows_littles_law() -> None:
    assert pool_size(1000, 0.020) == 54  # L = 20 busy on average: 40 + 3 x sqrt(20)
    assert pool_size(1000, 0.020, in_flight=100) == 230  # L observed above the estimate
    assert pool_size(10, 0.001) == 10  # never below the minimum
    with pytest.raises(ValueError):
        pool_size(10, 0.1, utilisation=0)


# -- records ------------------------------------------------------------------------------
def test_histogram_quantiles_within_two_percent() -> None:
    h = Histogram()
    for ms in range(1, 1001):
        h.add(float(ms))
    assert h.quantile(0.5) == pytest.approx(500, rel=0.02)
    assert h.quantile(0.95) == pytest.approx(950, rel=0.02)
    assert h.quantile(0.99) == pytest.approx(990, rel=0.02)
    assert h.quantile(1.0) == pytest.approx(1000, rel=0.02)
    assert Histogram().quantile(0.5) is None
    assert bucket_value(bucket_of(12.3)) == pytest.approx(12.3, rel=0.02)


def test_recorder_files_by_issue_time_and_merges() -> None:
    a, b = Recorder(ramp_s=2, duration_s=6), Recorder(ramp_s=2, duration_s=6)
    a.start(1000.0)
    b.start(1000.0)
    for i in range(600):
        t = 1000.0 + i / 100
        (a if i % 2 else b).record(t, "GET /x", 5.0 + i % 7, failed=i % 50 == 0)
    a.merge(Recorder.from_dict(json.loads(json.dumps(b.to_dict()))))
    assert a.steady_seconds() == [2, 3, 4, 5]
    steady = a.window(a.steady_seconds())
    assert steady.requests == 400 and steady.failures == 8
    assert set(a.endpoints) == {"ramp", "steady"}
    assert a.steady_seconds(stopped_at_s=4.5) == [2, 3]
    taken = a.take()
    assert taken.seconds and not a.seconds


# -- plan validation -----------------------------------------------------------------------
@pytest.fixture(scope="module")
def inv() -> Any:
    return load_inventory(INVENTORY)


def test_plan_defaults_and_target(inv: Any) -> None:
    plan = make_plan(inv, SETTINGS)
    assert plan.target_rps == pytest.approx(120) and plan.steady_s == 50
    assert plan.url == "http://127.0.0.1:9" and not plan.distributed
    assert plan.locustfile.parts[-2:] == ("loadtests", "locustfile.py")  # the profile's service_traffic
    assert make_plan(inv, SETTINGS, rps=50, headroom=0).target_rps == 50


@pytest.mark.parametrize(
    ("options", "message"),
    [
        ({"rps": 0}, "--rps must be a positive"),
        ({"rps": -5}, "--rps must be a positive"),
        ({"rps": 1e9}, "above load_max_rps"),
        ({"headroom": -0.1}, "--headroom must be 0 or more"),
        ({"headroom": 20}, "give a fraction"),
        ({"duration": "5s", "ramp": "10s"}, "not longer than --ramp"),
        ({"duration": "10s", "ramp": "10s"}, "no steady phase"),
        ({"duration": "11s", "ramp": "10s"}, "at least 2s"),
        ({"duration": "fast"}, "expected a duration"),
        ({"processes": 0}, "--processes must be 1"),
        ({"locustfile": "nope.py"}, "does not exist"),
    ],
)
def test_bad_input_is_one_clear_error(inv: Any, options: dict[str, Any], message: str) -> None:
    with pytest.raises(ConfigError, match=message):
        make_plan(inv, SETTINGS, **options)


def test_durations() -> None:
    assert parse_duration("90") == 90 and parse_duration(30) == 30
    assert parse_duration("1m30s") == 90 and parse_duration("2m") == 120 and parse_duration("1h") == 3600
    assert parse_duration("1.5s") == 1.5
    for bad in ("", "10x", "500ms", "-5", "m"):
        with pytest.raises(ConfigError):
            parse_duration(bad)


def test_settings_from_inventory_name_the_bad_variable(inv: Any) -> None:
    with pytest.raises(ConfigError, match="load_rps"):
        inv.settings(LoadSettings, prefix="load_")  # the test inventory sets no load_rps


def test_public_surface_matches_all() -> None:
    for name in drillbook.load.__all__:
        assert getattr(drillbook.load, name) is not None
    with pytest.raises(AttributeError):
        _ = drillbook.load.nothing_here  # type: ignore[attr-defined]


def test_locust_command_carries_the_plan(tmp_path: Path) -> None:
    plan = _plan(processes=2)
    cmd = locust_command(plan, SETTINGS, LocustFiles(tmp_path), latency_ms=12.5)
    text = " ".join(cmd)
    assert "plugin.py," in text and "--headless" in text and "--csv-full-history" in text
    assert "--drillbook-rps 120" in text and "--drillbook-ramp 2" in text and "--processes 2" in text
    master = locust_command(_plan(), SETTINGS, LocustFiles(tmp_path), expect_workers=3)
    assert "--master" in master and master[master.index("--expect-workers") + 1] == "3"


# -- judging ---------------------------------------------------------------------------------
def _plan(**kw: Any) -> LoadPlan:
    base: dict[str, Any] = dict(
        rps=100.0,
        headroom=0.2,
        target_rps=120.0,
        duration_s=10.0,
        ramp_s=2.0,
        processes=1,
        locustfile=Path("loadtests/locustfile.py"),
        arrivals="jittered",
        url="http://127.0.0.1:9",
    )
    base.update(kw)
    return LoadPlan(**base)


def _outcome(
    tmp_path: Path,
    *,
    rate: float = 120,
    latency_ms: float = 10.0,
    fail_every: int = 0,
    cpu: float = 20.0,
    system: float = 40.0,
    wake_ms: float = 1.0,
) -> LocustOutcome:
    rec = Recorder(ramp_s=2, duration_s=10)
    rec.start(1000.0)
    n = int(rate * 10)
    for i in range(n):
        t = 1000.0 + i / rate
        failed = bool(fail_every) and i % fail_every == 0
        rec.record(t, "GET /items/[id]" if i % 3 else "POST /items", latency_ms * (1 + (i % 10) / 10), failed)
    records = {
        "started_wall": 1000.0,
        "stopped_at_s": 10.5,
        "completed": True,
        "recorder": rec.to_dict(),
        "pacer": {"claims": n, "late": 0, "dropped": 0},
        "wake": {"late_ms_mean": wake_ms},
        "users_max": 12,
        "timeline": [{"t": 3.0, "users": 12, "cpu_pct": {"local": cpu}}],
    }
    samples = [CpuSample(1000.0 + s, {4242: cpu}, system) for s in range(11)]
    return LocustOutcome(LocustFiles(tmp_path), 0, None, records, cpu=samples)


def test_figures_over_the_steady_phase(tmp_path: Path) -> None:
    fig = compute(_plan(), _outcome(tmp_path), None)
    assert fig.steady_s == 8 and fig.requests == 960 and fig.achieved_rps == 120
    assert fig.p50_ms is not None and 13.5 <= fig.p50_ms <= 15.5
    assert {row.name for row in fig.endpoints} == {"GET /items/[id]", "POST /items"}
    assert fig.series[0]["target_rps"] == pytest.approx(30)  # 120 x (0.5 / 2) during the first second
    assert fig.generator.cpu_mean_pct == {"pid 4242": 20.0}


def test_passing_run_has_four_ok_checks(tmp_path: Path) -> None:
    judgement = judge(compute(_plan(), _outcome(tmp_path), None), SETTINGS)
    assert [c.name for c in judgement.checks] == ["achieved_rps", "p95_ms", "p99_ms", "error_pct"]
    assert judgement.breached == [] and judgement.generator_limit is None


def test_fail_names_every_breached_threshold(tmp_path: Path) -> None:
    fig = compute(_plan(), _outcome(tmp_path, rate=100, latency_ms=200, fail_every=10), None)
    judgement = judge(fig, SETTINGS)
    assert judgement.breached == ["achieved_rps", "p95_ms", "p99_ms", "error_pct"]
    assert judgement.generator_limit is None  # the generator was fine: this is the service


def test_rate_overshoot_also_fails(tmp_path: Path) -> None:
    judgement = judge(compute(_plan(), _outcome(tmp_path, rate=130), None), SETTINGS)
    assert judgement.breached == ["achieved_rps"]


def test_saturated_generator_is_a_generator_limit(tmp_path: Path) -> None:
    fig = compute(_plan(), _outcome(tmp_path, rate=100, cpu=99.0), None)
    judgement = judge(fig, SETTINGS)
    assert judgement.generator_limit and "generator limit" in judgement.generator_limit
    assert "CPU was saturated" in judgement.generator_limit and "--processes" in judgement.generator_limit


def test_starved_generator_on_a_busy_machine_is_a_generator_limit(tmp_path: Path) -> None:
    fig = compute(_plan(), _outcome(tmp_path, rate=100, cpu=40, system=100, wake_ms=25), None)
    limit = judge(fig, SETTINGS).generator_limit
    assert limit and "timers woke 25 ms late" in limit


def test_service_histograms_break_the_tie_against_a_busy_generator(tmp_path: Path) -> None:
    fig = compute(_plan(), _outcome(tmp_path, rate=100, latency_ms=200, cpu=99.0), None)
    fig.server = ServerFigures(3, 100.0, 1000, 150.0, 180.0, 260.0, 8.0, [])
    judgement = judge(fig, SETTINGS)
    assert judgement.generator_limit is None  # the service's own p95 (180 ms) broke the SLA too
    assert "p95_ms" in judgement.breached and any("generator under strain" in n for n in judgement.notes)
    fig.server = ServerFigures(3, 100.0, 1000, 5.0, 9.0, 20.0, 8.0, [])
    assert judge(fig, SETTINGS).generator_limit  # the service kept it: the shortfall is the generator's


def test_busy_generator_that_kept_the_rate_is_only_a_note(tmp_path: Path) -> None:
    judgement = judge(compute(_plan(), _outcome(tmp_path, cpu=95), None), SETTINGS)
    assert judgement.generator_limit is None and judgement.breached == []
    assert any("generator under strain" in n for n in judgement.notes)


@pytest.mark.parametrize(
    "scenario",
    [{}, {"rate": 100, "latency_ms": 200, "fail_every": 10}, {"rate": 130}, {"rate": 100}, {"cpu": 95}],
)
def test_declared_checks_judge_as_the_judge_does(tmp_path: Path, scenario: dict[str, Any]) -> None:
    """LoadRun's declared checks fail exactly where the judge's four did, with numeric limits."""
    plan = _plan()
    fig = compute(plan, _outcome(tmp_path, **scenario), None)
    checks = evaluate(LoadRun.checks, measured_from(fig, plan), limits_for(SETTINGS, plan))
    failed = sorted({c.name.removesuffix("_max") for c in checks if not c.ok})
    assert failed == sorted(judge(fig, SETTINGS).breached)
    by_name = {c.name: c for c in checks}
    assert by_name["achieved_rps"].limit == pytest.approx(120 * (1 - SETTINGS.rate_tolerance_pct / 100))
    assert (by_name["achieved_rps_max"].op, by_name["p95_ms"].op) == ("<=", "<=")
    assert by_name["p95_ms"].limit == SETTINGS.sla_p95_ms and by_name["p95_ms"].limit_from == "sla_p95_ms"


# -- witnesses -----------------------------------------------------------------------------------
HIST = """# TYPE http_request_duration_seconds histogram
http_request_duration_seconds_bucket{{route="/items/{{item_id}}",method="GET",le="0.01"}} {a}
http_request_duration_seconds_bucket{{route="/items/{{item_id}}",method="GET",le="0.05"}} {b}
http_request_duration_seconds_bucket{{route="/items/{{item_id}}",method="GET",le="+Inf"}} {b}
http_request_duration_seconds_count{{route="/items/{{item_id}}",method="GET"}} {b}
http_request_duration_seconds_bucket{{route="/metrics",method="GET",le="0.01"}} {b}
http_request_duration_seconds_bucket{{route="/metrics",method="GET",le="+Inf"}} {b}
"""


def test_witness_figures_from_deltas() -> None:
    w = Witnesses(haproxy=None, instances=[])
    w.lb = [
        (100.0, {"public.requests": 1000, "public.5xx": 0, "stats.requests": 5}),
        (101.0, {"public.requests": 1120, "public.5xx": 1, "stats.requests": 6}),
        (110.0, {"public.requests": 2200, "public.5xx": 2, "stats.requests": 9}),
    ]
    lb = w.lb_figures(100.0, 110.0)
    assert lb is not None and lb.frontend == "public" and lb.rps == pytest.approx(120) and lb.errors_5xx == 2
    assert w.lb_series()[0] == (100.5, 120.0)
    w.metrics = [
        (100.0, {"app-1": parse(HIST.format(a=100, b=100)), "app-2": parse(HIST.format(a=0, b=0))}),
        (110.0, {"app-1": parse(HIST.format(a=600, b=700)), "app-2": parse(HIST.format(a=500, b=600))}),
    ]
    server = w.server_figures(100.0, 110.0)
    assert server is not None and server.requests == 1200 and server.rps == pytest.approx(120)
    assert server.p50_ms is not None and server.p50_ms <= 10
    assert server.p95_ms is not None and 10 < server.p95_ms <= 50
    assert [r["name"] for r in server.routes] == ["GET /items/{item_id}"]  # /metrics left out
    assert w.lb_figures(200.0, 300.0) is None


# -- report and plot ------------------------------------------------------------------------------
def test_plot_is_a_png_with_real_content(tmp_path: Path) -> None:
    import matplotlib.image

    fig = compute(_plan(), _outcome(tmp_path), None)
    path = plot_run(
        fig,
        tmp_path / "load.png",
        sla_p95_ms=50,
        tolerance_pct=3,
        ramp_s=2,
        duration_s=10,
        t0=1000.0,
        lb_series=[(1000.5 + s, 120.0) for s in range(10)],
        server_p95=[(1001.0 + s, 12.0) for s in range(0, 10, 2)],
        users=[{"t": 1.0, "users": 12}, {"t": 5.0, "users": 14}],
    )
    assert path.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    pixels = matplotlib.image.imread(path)
    assert pixels.shape[0] > 400 and pixels.shape[1] > 600
    assert pixels.std() > 0.05  # lines and text, not a blank canvas


def _journal(fig: LoadFigures, tmp_path: Path) -> Journal:
    j = Journal(drill="load.run", inventory="inventory/lab", environment="lab", verdict="fail")
    j.checks = [
        Check("p95_ms", 80.0, "<= 50", False),  # a journal from before declared checks
        Check("p99_ms", 90.0, 60.0, False, op="<=", limit_from="sla_p99_ms"),
    ]
    j.measurements = {
        "target_rps": 120.0,
        "achieved_rps": fig.achieved_rps,
        "p95_ms": fig.p95_ms,
        "steady_s": fig.steady_s,
        "endpoints": [r.to_dict() for r in fig.endpoints],
    }
    j.artefacts = ["load.png", "locust.html"]
    j.notes = ["2026-11-22T00:00:00.000Z note: generator under strain"]
    return j


def test_section_and_reprint(tmp_path: Path) -> None:
    fig = compute(_plan(), _outcome(tmp_path), None)
    j = _journal(fig, tmp_path)
    text = section(j.measurements, j.artefacts)
    assert "![achieved rate and p95 over time](load.png)" in text
    assert "`GET /items/[id]`" in text and "[Locust's HTML report](locust.html)" in text
    again = reprint(j, tmp_path)
    assert again.startswith("# load.run: FAIL") and "| p95_ms | 80 | <= 50 |" in again
    assert "| p99_ms | 90 | <= 60 | **NO** |" in again, "a numeric limit is shown with its comparison"
    assert "note: generator under strain" in again


def test_find_run(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="no load runs"):
        find_run(tmp_path)
    for name in ("20261101T000000Z-load.run", "20261102T000000Z-load.run", "20261102T000000Z-chaos.x"):
        (tmp_path / name).mkdir()
        (tmp_path / name / "journal.json").write_text("{}")
    assert find_run(tmp_path).name == "20261102T000000Z-load.run"
    assert find_run(tmp_path, "1101").name == "20261101T000000Z-load.run"
    with pytest.raises(ConfigError, match="matches 2 runs"):
        find_run(tmp_path, "load")
    with pytest.raises(ConfigError, match="no load run matching"):
        find_run(tmp_path, "chaos")


def test_parse_history(tmp_path: Path) -> None:
    path = tmp_path / "h.csv"
    path.write_text(
        "Timestamp,User Count,Type,Name,Requests/s,Failures/s,50%,95%,Total Request Count\n"
        "1000,10,,Aggregated,0.0,0.0,N/A,N/A,0\n"
        "1001,10,GET,/x,5.0,0.0,3,7,5\n"
        "1001,10,,Aggregated,5.0,0.0,3,7,5\n"
    )
    points = parse_history(path)
    assert [(p.wall, p.rps, p.p95_ms) for p in points] == [(1000.0, 0.0, None), (1001.0, 5.0, 7.0)]
