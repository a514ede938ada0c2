"""Benchmark of deploy.canary on the lab: which regressions are caught, how fast; how often a good one is not.

    DRILLBOOK_LAB_DIR=... DRILLBOOK_LAB_PORT_BASE=... python benchmarks/canary.py \
        [--errors 0.01,0.02,0.05] [--latency 20,60,150] [--tail-share 0.2] [--bad-runs 1] [--good-runs 20] \
        [--traffic 200] [--first-step 5] [--window S] [--stop-at HH:MM] [--json out.json]

Bad releases: for each error rate (share of /items requests answered 500), each
added latency (ms on every /items request) and, with ``--tail-share``, a slow tail
that puts p95 at 2 x p95, or at p95 + twice ``canary_latency_effect_ms`` where that is more
(that share of /items requests slowed; p50 and p95 of the lab's server time measured
just before), ``--bad-runs`` canaries at ``--traffic``
requests per second with a ``--first-step`` % first step. Per run: caught or not (the
analysis found a breach; "not enough evidence" is counted apart), the step that
caught it, ``detection_s`` (first canary response seen by HAProxy -> rollback
decision), the canary's requests and 5xx until then (HAProxy's per-server counters),
and the reason the journal gives.

Good releases: a release as good as the running one, canaried through every step and
promoted; a rollback (or "not enough evidence") is a false alarm. Each good run
deploys the good release that is not running (A, then B, ...), so no run has to undo
the previous one; at the end the lab is rolled back to the release it started on.

Not a test: nothing asserts; figures go to stdout as a Markdown table (and --json).
Other people's work shares the machine's cores, so the 1-minute load average is
recorded with every run (mean of its start and end). ``--stop-at`` (UTC) starts no
new run after that time and says how many were done.
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from drillbook import labenv as lab_
from drillbook.canary.drill import CanaryDrill, RollbackDrill, load_settings
from drillbook.canary.status import fleet_status
from drillbook.core.drill import DrillContext, execute
from drillbook.core.errors import ConfigError
from drillbook.core.inventory import Inventory, load_inventory
from drillbook.core.journal import Journal


def build(inv: Inventory, version: str, **knobs: Any) -> str:
    """Build ``version``; a fresh name when the source changed since an earlier build of it."""
    try:
        lab_.build_release(inv, version, **knobs)
        return version
    except ConfigError:
        fresh = f"{version}+{int(time.time())}"
        lab_.build_release(inv, fresh, **knobs)
        return fresh


def canary(inv: Inventory, version: str, args: argparse.Namespace, reports: Path) -> Journal:
    settings = load_settings(inv, window_s=args.window)
    steps = [args.first_step, *[s for s in settings.steps if s > args.first_step]]
    settings = settings.model_copy(update={"steps": steps})
    t0, load0 = time.monotonic(), os.getloadavg()[0]
    journal = execute(
        CanaryDrill(settings, version, traffic_rps=args.traffic),
        DrillContext(inventory=inv, report_root=reports, quiet=True),
    )
    m = journal.measurements
    m["bench_wall_s"] = round(time.monotonic() - t0, 1)
    m["bench_load_avg_1m"] = round((load0 + os.getloadavg()[0]) / 2, 2)
    m["bench_load_avg_5m"] = round(os.getloadavg()[1], 2)
    return journal


def server_time_quantiles(inv: Inventory, n: int = 300) -> tuple[float, float]:
    """(p50, p95) of the service's server time (HAProxy's X-Server-Time) over ``n`` requests, now."""
    import httpx
    import numpy as np

    times = []
    with httpx.Client(base_url=inv.topology.lb_url, timeout=5) as client:
        for _ in range(n):
            resp = client.get("/items?limit=10")
            if "x-server-time" in resp.headers:
                times.append(float(resp.headers["x-server-time"]))
            time.sleep(0.01)
    if not times:
        raise ConfigError("no X-Server-Time header: is haproxy_server_time_header set?")
    p50, p95 = np.quantile(times, [0.5, 0.95])
    return float(p50), float(p95)


def outcome(j: Journal) -> dict[str, Any]:
    """One run as a row: caught where and how fast, what the canary served meanwhile."""
    m = j.measurements
    steps = m.get("steps") or []
    last = steps[-1] if steps else {}
    judged = [s for s in steps if s.get("canary_p95_ms") is not None] or [last]
    return {
        "verdict": j.verdict,
        "analysis": m.get("analysis"),
        "caught_at_step": last.get("weight") if m.get("analysis") == "breach" else None,
        "detection_s": m.get("detection_s"),
        "canary_requests": sum(s.get("canary_requests", 0) for s in steps),
        "first_step_s": steps[0].get("window_s") if steps else None,
        "first_step_canary_requests": steps[0].get("canary_requests") if steps else None,
        "analysis_s": round(sum(s.get("window_s", 0) for s in steps), 1),
        "steps_held_s": [s.get("window_s") for s in steps],
        "overload_excused": sum(s.get("overload_canary", 0) for s in steps),
        "overload_excused_baseline": sum(s.get("overload_baseline", 0) for s in steps),
        "promote_s": m.get("promote_s"),
        "failed_requests": m.get("failed_requests"),
        # the last step that judged latency (a promoted release's 100 % step judges none)
        "canary_p95_ms": judged[-1].get("canary_p95_ms"),
        "baseline_p95_ms": judged[-1].get("baseline_p95_ms"),
        "latency_source": judged[-1].get("latency_source"),
        "wall_s": m.get("bench_wall_s"),
        "load_avg_1m": m.get("bench_load_avg_1m"),
        "load_avg_5m": m.get("bench_load_avg_5m"),
        "reason": m.get("reason") or j.error,
    }


def summary(values: list[float]) -> str:
    if not values:
        return "-"
    if len(values) == 1:
        return f"{values[0]:g}"
    return f"median {statistics.median(values):g}, max {max(values):g}"


def past(stop_at: str | None) -> bool:
    if not stop_at:
        return False
    now = dt.datetime.now(dt.UTC)
    hour, minute = (int(x) for x in stop_at.split(":"))
    return (now.hour, now.minute) >= (hour, minute)


def main() -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--inventory", default=None)
    parser.add_argument("--errors", default="0.01,0.02,0.05", help="error rates of bad releases ('' none)")
    parser.add_argument("--latency", default="20,60,150", help="added ms of bad releases ('' none)")
    parser.add_argument(
        "--tail-share", type=float, default=0.2, help="share of requests slowed to double p95 (0: none)"
    )
    parser.add_argument("--bad-runs", type=int, default=1, help="runs per bad release")
    parser.add_argument("--good-runs", type=int, default=20)
    parser.add_argument("--traffic", type=float, default=200.0, help="background requests/s")
    parser.add_argument("--window", type=float, default=None, help="seconds per step (default: inventory)")
    parser.add_argument("--first-step", type=float, default=5.0, help="canary share of the first step, %%")
    parser.add_argument("--stop-at", default=None, help="UTC HH:MM after which no new run starts")
    parser.add_argument("--report-dir", type=Path, default=None)
    parser.add_argument("--json", type=Path, default=None)
    args = parser.parse_args()

    inv = load_inventory(args.inventory)
    reports = args.report_dir or Path(tempfile.mkdtemp(prefix="bench-canary-"))
    start = fleet_status(inv)
    if not start.steady or start.version is None:
        print(f"the fleet is not steady: {'; '.join(start.problems())}", file=sys.stderr)
        return 2
    base = start.version
    bad: list[tuple[str, str]] = []
    for rate in [float(x) for x in args.errors.split(",") if x.strip()]:
        bad.append((f"{100 * rate:g} % errors", build(inv, f"bench-err-{rate:g}", error_rate=rate)))
    for ms in [int(x) for x in args.latency.split(",") if x.strip()]:
        bad.append((f"+{ms} ms", build(inv, f"bench-lat-{ms}", latency_ms=ms)))
    if args.tail_share > 0:
        p50, p95 = server_time_quantiles(inv)
        # The slow share lands at 2 x p95, or, when the service is so fast that doubling its p95
        # stays under the absolute effect size the inventory declares (the lab's quiet p95 is
        # 3 ms: x2 is +3 ms against a 10 ms floor, not a regression by the user's own terms),
        # twice that floor above p95: a slow path the judge is asked to catch, not to ignore.
        floor = load_settings(inv).latency_effect_ms
        extra = round(max(2 * p95, p95 + 2 * floor) - p50)
        label = (
            f"slow tail ({100 * args.tail_share:g} % of requests +{extra} ms: p95 "
            f"{p95:g} -> ~{p50 + extra:g} ms; p50 {p50:g} ms)"
        )
        version = build(inv, f"bench-tail-{extra}", latency_ms=extra, latency_share=args.tail_share)
        bad.append((label, version))
    good = [build(inv, "bench-good-a"), build(inv, "bench-good-b")]
    print(
        f"lab on {base}; traffic {args.traffic:g} rps, first step {args.first_step:g} %; reports {reports}; "
        f"load average {os.getloadavg()[0]:.2f}",
        flush=True,
    )

    rows: dict[str, list[dict[str, Any]]] = {}
    for label, version in bad:
        for i in range(1, args.bad_runs + 1):
            if past(args.stop_at):
                break
            journal = canary(inv, version, args, reports)
            if journal.interrupted:
                print("interrupted: the lab is rolled back; no further runs", file=sys.stderr)
                return 130
            row = outcome(journal)
            rows.setdefault(label, []).append(row)
            if fleet_status(inv).version != base:  # a missed regression was promoted: back to the base
                execute(
                    RollbackDrill(load_settings(inv), to_version=base),
                    DrillContext(inventory=inv, report_root=reports, quiet=True),
                )
            print(f"  {label} {i}/{args.bad_runs}: {json.dumps(row)}", flush=True)
    goods: list[dict[str, Any]] = []
    for i in range(1, args.good_runs + 1):
        if past(args.stop_at):
            print(f"  --stop-at {args.stop_at}: {len(goods)} of {args.good_runs} good runs done", flush=True)
            break
        running = fleet_status(inv).version
        journal = canary(inv, good[1] if running == good[0] else good[0], args, reports)
        if journal.interrupted:
            print("interrupted: the lab is rolled back; no further runs", file=sys.stderr)
            return 130
        row = outcome(journal)
        goods.append(row)
        print(f"  good {i}/{args.good_runs}: {json.dumps(row)}", flush=True)
    if fleet_status(inv).version != base:
        execute(
            RollbackDrill(load_settings(inv), to_version=base),
            DrillContext(inventory=inv, report_root=reports, quiet=True),
        )

    print()
    print(
        "| release | caught | step | detection_s | canary requests until then | 5xx served "
        "| p95 canary vs baseline (ms) | first step held (s) | load avg 1 m |"
    )
    print("|---|---|---|---|---|---|---|---|---|")
    for label, runs in rows.items():
        caught = [r for r in runs if r["analysis"] == "breach"]
        where = ", ".join(f"{r['caught_at_step']:g} %" for r in caught) or "-"
        detection = summary([r["detection_s"] for r in caught if r["detection_s"] is not None])
        served = summary([r["canary_requests"] for r in caught])
        failed = summary([r["failed_requests"] for r in runs if r["failed_requests"] is not None])
        load = summary([r["load_avg_1m"] for r in runs])
        p95s = ", ".join(
            f"{r['canary_p95_ms']:g} vs {r['baseline_p95_ms']:g}"
            for r in runs
            if r["canary_p95_ms"] is not None and r["baseline_p95_ms"] is not None
        )
        held = summary([r["first_step_s"] for r in runs if r["first_step_s"] is not None])
        print(
            f"| {label} | {len(caught)}/{len(runs)} | {where} | {detection} | {served} | {failed} "
            f"| {p95s or '-'} | {held} "
            f"| {load} |"
        )
    false_alarms = [r for r in goods if r["verdict"] != "pass"]
    print(
        f"| good release | false rollbacks {len(false_alarms)}/{len(goods)} | | | | "
        f"{summary([r['failed_requests'] for r in goods if r['failed_requests'] is not None])} | | "
        f"{summary([r['first_step_s'] for r in goods if r['first_step_s'] is not None])} | "
        f"{summary([r['load_avg_1m'] for r in goods])} |"
    )
    if goods:
        print(
            f"good releases: analysis {summary([r['analysis_s'] for r in goods])} s, first step "
            f"{summary([r['first_step_canary_requests'] or 0 for r in goods])} canary requests, promotion "
            f"{summary([r['promote_s'] for r in goods if r['promote_s'] is not None])} s, whole run "
            f"{summary([r['wall_s'] for r in goods])} s; overload answers left out "
            f"{summary([r['overload_excused'] for r in goods])} (canary), "
            f"{summary([r['overload_excused_baseline'] for r in goods])} (baseline)"
        )
    for r in false_alarms:
        print(f"  false alarm: {r['verdict']} {r['analysis']}: {r['reason']}")
    if args.json:
        args.json.write_text(
            json.dumps({"bad": rows, "good": goods, "args": vars(args)}, default=str, indent=2)
        )
    return 0


if __name__ == "__main__":
    sys.exit(main())
