"""Benchmark of deploy.canary on the lab: how fast is a bad release caught, how often is a good one not.

    DRILLBOOK_LAB_DIR=... DRILLBOOK_LAB_PORT_BASE=... python benchmarks/canary.py \
        [--bad-runs 5] [--good-runs 20] [--traffic 200] [--window 10] [--json out.json]

Bad runs: a release failing 20 % of its /items requests, canaried at --traffic
requests per second with a 5 % first step. Reported per run and as median/max:
``detection_s`` (first canary response seen by HAProxy -> rollback decision),
``failed_requests`` (5xx the canary servers sent, HAProxy's hrsp_5xx),
``rollback_s`` and ``failed_requests_pct``. Targets (issue 5): detection_s <= 10 s
(aim 5), failed_requests <= 30, where Flagger's defaults (1 m interval, 5 failed
checks) would serve about 1 m x 5 x 10 req/s x 20 % = 600 bad responses.

Good runs: a release as good as the running one, canaried through every step
(inventory canary_steps) and promoted; a rollback is a false alarm. Each good run
deploys the good release that is not running (A, then B, then A...), so no run has
to undo the previous one; at the end the lab is rolled back to the release it
started on (that full-fleet deploy.rollback is reported too).

Not a test: nothing asserts; the figures go to stdout (and --json). Other people's
work on the same machine shares its cores, so the machine's load average is
recorded next to every run: a deploy that takes a minute on a box with load 15
takes seconds on an idle one.
"""

from __future__ import annotations

import argparse
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

FLAGGER_BAD_RESPONSES = 600  # 1 m interval x 5 failed checks x 10 req/s x 20 % errors


def build(inv: Inventory, version: str, **knobs: Any) -> str:
    """Build ``version``; a fresh name when the source changed since an earlier build of it."""
    try:
        lab_.build_release(inv, version, **knobs)
        return version
    except ConfigError:
        fresh = f"{version}+{int(time.time())}"
        lab_.build_release(inv, fresh, **knobs)
        return fresh


def canary(
    inv: Inventory, version: str, args: argparse.Namespace, reports: Path, first_step: float
) -> Journal:
    settings = load_settings(inv, window_s=args.window)
    steps = [first_step, *[s for s in settings.steps if s > first_step]]
    settings = settings.model_copy(update={"steps": steps})
    t0, load0 = time.monotonic(), os.getloadavg()[0]
    journal = execute(
        CanaryDrill(settings, version, traffic_rps=args.traffic),
        DrillContext(inventory=inv, report_root=reports, quiet=True),
    )
    m = journal.measurements
    m["bench_wall_s"] = round(time.monotonic() - t0, 1)
    m["bench_load_avg_1m"] = round((load0 + os.getloadavg()[0]) / 2, 2)
    return journal


def line(kind: str, i: int, n: int, j: Journal) -> str:
    m = j.measurements
    return (
        f"  {kind} {i}/{n}: {j.verdict} in {m.get('bench_wall_s')}s  detection_s={m.get('detection_s')} "
        f"failed_requests={m.get('failed_requests')} failed_pct={m.get('failed_requests_pct')} "
        f"rollback_s={m.get('rollback_s')} load={m.get('bench_load_avg_1m')}"
        + (f"  error={j.error}" if j.error else "")
    )


def summary(values: list[float]) -> dict[str, float | None]:
    if not values:
        return {"median": None, "max": None}
    return {"median": round(statistics.median(values), 3), "max": round(max(values), 3)}


def main() -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--inventory", default=None)
    parser.add_argument("--bad-runs", type=int, default=5)
    parser.add_argument("--good-runs", type=int, default=20)
    parser.add_argument("--traffic", type=float, default=200.0, help="background requests/s")
    parser.add_argument("--window", type=float, default=None, help="seconds per step (default: inventory)")
    parser.add_argument("--first-step", type=float, default=5.0, help="canary share of the first step, %%")
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
    bad = build(inv, "bench-bad", error_rate=0.2)
    good = [build(inv, "bench-good-a"), build(inv, "bench-good-b")]
    print(
        f"lab on {base}; bad={bad}; good={good}; traffic {args.traffic:g} rps; reports {reports}", flush=True
    )

    bad_runs: list[Journal] = []
    for i in range(1, args.bad_runs + 1):
        j = canary(inv, bad, args, reports, args.first_step)
        bad_runs.append(j)
        print(line("bad", i, args.bad_runs, j), flush=True)
        if j.interrupted:
            break

    good_runs: list[Journal] = []
    for i in range(1, 0 if any(j.interrupted for j in bad_runs) else args.good_runs + 1):
        # The release that is not running (after a false rollback the same one again).
        running = fleet_status(inv).version
        j = canary(inv, good[1] if running == good[0] else good[0], args, reports, args.first_step)
        good_runs.append(j)
        print(line("good", i, args.good_runs, j), flush=True)
        if j.interrupted:
            break
    fleet_rollback: Journal | None = None
    if fleet_status(inv).version != base:
        fleet_rollback = execute(
            RollbackDrill(load_settings(inv), to_version=base),
            DrillContext(inventory=inv, report_root=reports, quiet=True),
        )

    caught = [j for j in bad_runs if j.verdict == "fail" and "detection_s" in j.measurements]
    false_rollbacks = [j for j in good_runs if j.verdict == "fail"]
    errors = [j for j in good_runs if j.verdict == "error"]
    figures = {
        "traffic_rps": args.traffic,
        "first_step_pct": args.first_step,
        "bad_runs": len(bad_runs),
        "bad_caught": len(caught),
        "detection_s": summary([j.measurements["detection_s"] for j in caught]),
        "failed_requests": summary([j.measurements.get("failed_requests", 0) for j in caught]),
        "failed_requests_pct": summary([j.measurements.get("failed_requests_pct", 0.0) for j in caught]),
        "rollback_s": summary(
            [j.measurements["rollback_s"] for j in caught if "rollback_s" in j.measurements]
        ),
        "good_runs": len(good_runs),
        "false_rollbacks": len(false_rollbacks),
        "good_errors": [j.error for j in errors],
        "false_rollback_verdicts": [
            f"{j.verdict}: {j.error or [c.detail for c in j.failed_checks]}" for j in false_rollbacks
        ],
        "flagger_defaults_bad_responses": FLAGGER_BAD_RESPONSES,
        "fleet_rollback_s": fleet_rollback.measurements.get("rollback_s") if fleet_rollback else None,
        "fleet_rollback_verdict": fleet_rollback.verdict if fleet_rollback else None,
        "load_avg_1m": summary([j.measurements["bench_load_avg_1m"] for j in bad_runs + good_runs]),
        "reports": str(reports),
    }
    print()
    print(f"bad release (20 % errors) at {args.traffic:g} rps, first step {args.first_step:g} %:")
    print(f"  caught {len(caught)}/{len(bad_runs)}")
    print(
        f"  detection_s      median {figures['detection_s']['median']}  max {figures['detection_s']['max']}"
        "   (target <= 10, aim 5)"
    )
    fr = figures["failed_requests"]
    print(
        f"  failed_requests  median {fr['median']}  max {fr['max']}"
        f"   (target <= 30; Flagger defaults ~{FLAGGER_BAD_RESPONSES})"
    )
    print(f"  rollback_s       median {figures['rollback_s']['median']}  max {figures['rollback_s']['max']}")
    if fleet_rollback is not None:
        print(
            f"deploy.rollback of the whole fleet to {base}: rollback_s "
            f"{fleet_rollback.measurements.get('rollback_s')} ({fleet_rollback.verdict}; budget 30 s)"
        )
    print(
        f"good release: false rollbacks {len(false_rollbacks)}/{len(good_runs)}   (target 0/20)"
        + (f"; {len(errors)} run(s) could not run: {errors[0].error}" if errors else "")
    )
    for j in false_rollbacks:
        print(f"  false rollback: {[c.detail for c in j.failed_checks]}")
    print(f"machine load average (1 min) median {figures['load_avg_1m']['median']}")
    if args.json:
        args.json.write_text(json.dumps(figures, indent=2) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
