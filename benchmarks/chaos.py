"""Benchmark of the chaos drills on the lab: how fast is detection, how fast is recovery.

    DRILLBOOK_LAB_DIR=... DRILLBOOK_LAB_PORT_BASE=... python benchmarks/chaos.py [--runs 10]

Runs ``chaos.kill-db`` ``--runs`` times and reports readiness_flip_s and
recovery_s (median, max); runs ``chaos.kill-redis`` and ``chaos.kill-app``
``--runs-other`` times each at ``--traffic`` requests per second and reports
error_pct_during_outage (median, max, and failed/total requests over all runs).
Every run is a full drill with its journal (under --report-dir); a run whose
verdict is not pass is listed. Targets (issue 6): kill-db flip median <= 0.5 s,
max <= 1.5 s; kill-redis 0 failed requests; kill-app <= 1 % failed at 100 RPS.

The lab must be up (``inv lab.up``). Output: a table on stdout and the figures
as JSON (``--json PATH``).
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

from drillbook.chaos import KillApp, KillDb, KillRedis
from drillbook.chaos.drill import ChaosDrill
from drillbook.core.drill import DrillContext, execute
from drillbook.core.inventory import load_inventory
from drillbook.core.journal import Journal


def run_many(
    cls: type[ChaosDrill], runs: int, inventory: str | None, report_root: Path, **options: Any
) -> list[Journal]:
    inv = load_inventory(inventory)
    journals = []
    for i in range(runs):
        drill = cls.for_inventory(inv, **options)
        t0 = time.monotonic()
        load = os.getloadavg()[0]
        journal = execute(drill, DrillContext(inventory=inv, report_root=report_root, quiet=True))
        m = journal.measurements
        # How busy the machine was: latency figures mean little on an overloaded box.
        m["bench_load_avg_1m"] = round((load + os.getloadavg()[0]) / 2, 2)
        print(
            f"  {cls.name} run {i + 1}/{runs}: {journal.verdict} in {time.monotonic() - t0:.1f}s "
            f"flip={m.get('readiness_flip_s')} recovery={m.get('recovery_s')} "
            f"errors={m.get('error_pct_during_outage')}% ({m.get('failed_during_outage')}/"
            f"{m.get('requests_during_outage')}) lb_detect={m.get('lb_detect_s')} "
            f"p95={m.get('outage_p95_ms')}ms (baseline {m.get('baseline_p95_ms')}ms) "
            f"load={m['bench_load_avg_1m']}",
            file=sys.stderr,
            flush=True,
        )
        journals.append(journal)
    return journals


def stats(journals: list[Journal], key: str) -> dict[str, Any]:
    values = [j.measurements.get(key) for j in journals]
    numbers = [float(v) for v in values if isinstance(v, (int, float)) and not isinstance(v, bool)]
    return {
        "n": len(numbers),
        "missing": len(values) - len(numbers),
        "median": round(statistics.median(numbers), 3) if numbers else None,
        "max": round(max(numbers), 3) if numbers else None,
        "min": round(min(numbers), 3) if numbers else None,
    }


def totals(journals: list[Journal]) -> dict[str, int]:
    return {
        "failed": sum(int(j.measurements.get("failed_during_outage") or 0) for j in journals),
        "requests": sum(int(j.measurements.get("requests_during_outage") or 0) for j in journals),
    }


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    ap.add_argument("--runs", type=int, default=10, help="kill-db runs (default 10)")
    ap.add_argument("--runs-other", type=int, default=5, help="kill-redis and kill-app runs each (default 5)")
    ap.add_argument("--duration", type=float, default=2.0, help="seconds each fault is held (default 2)")
    ap.add_argument("--traffic", type=float, default=100.0, help="background requests/s (default 100)")
    ap.add_argument("--inventory", default=None)
    ap.add_argument("--report-dir", default=None, help="journals go here (default: a temp dir)")
    ap.add_argument("--json", default=None, help="also write the figures to this file")
    ap.add_argument("--only", choices=["kill-db", "kill-redis", "kill-app"], action="append")
    args = ap.parse_args(argv)
    root = Path(args.report_dir or tempfile.mkdtemp(prefix="drillbook-bench-chaos-"))
    only = set(args.only or ["kill-db", "kill-redis", "kill-app"])
    opts = {"duration_s": args.duration, "traffic_rps": args.traffic}
    result: dict[str, Any] = {"runs": args.runs, "runs_other": args.runs_other, **opts, "reports": str(root)}
    verdicts: dict[str, list[str]] = {}
    if "kill-db" in only:
        js = run_many(KillDb, args.runs, args.inventory, root, **opts)
        verdicts["kill-db"] = [j.verdict for j in js]
        result["kill-db"] = {
            "readiness_flip_s": stats(js, "readiness_flip_s"),
            "recovery_s": stats(js, "recovery_s"),
            "recovery_after_service_back_s": stats(js, "recovery_after_service_back_s"),
            "restart_s": stats(js, "restart_s"),
            "kill_witness_lag_s": stats(js, "kill_witness_lag_s"),
            "kill_witnessed_after_playbook_start_s": stats(js, "kill_witnessed_after_playbook_start_s"),
            "outage_p95_ms": stats(js, "outage_p95_ms"),
            "lb_detect_s": stats(js, "lb_detect_s"),
            "baseline_p95_ms": stats(js, "baseline_p95_ms"),
            "load_avg_1m": stats(js, "bench_load_avg_1m"),
        }
    for name, cls in (("kill-redis", KillRedis), ("kill-app", KillApp)):
        if name not in only:
            continue
        js = run_many(cls, args.runs_other, args.inventory, root, **opts)
        verdicts[name] = [j.verdict for j in js]
        result[name] = {
            "error_pct_during_outage": stats(js, "error_pct_during_outage"),
            "outage_requests": totals(js),
            "outage_p95_ms": stats(js, "outage_p95_ms"),
            "recovery_s": stats(js, "recovery_s"),
            "baseline_p95_ms": stats(js, "baseline_p95_ms"),
            "load_avg_1m": stats(js, "bench_load_avg_1m"),
            "failed_checks": sorted({c.name for j in js for c in j.failed_checks}),
        }
        if name == "kill-app":
            result[name]["lb_detect_s"] = stats(js, "lb_detect_s")
        else:
            result[name]["degraded_flip_s"] = stats(js, "degraded_flip_s")
    result["verdicts"] = verdicts
    result["cpus"] = os.cpu_count()
    print(json.dumps(result, indent=2))
    if args.json:
        Path(args.json).write_text(json.dumps(result, indent=2) + "\n")
    return 0 if all(v == "pass" for vs in verdicts.values() for v in vs) else 1


if __name__ == "__main__":
    sys.exit(main())
