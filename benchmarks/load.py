"""Benchmark of load.run: how fast one Locust process can hold a rate, and where the lab's p95 breaks.

Not a test (nothing here asserts); it prints what it measured and writes it as JSON.

    python benchmarks/load.py trivial            # against HAProxy answering by itself
    python benchmarks/load.py lab                # against the lab (run inv lab.up first)
    python benchmarks/load.py trivial lab --out reports/bench-load.json

trivial
    A loopback target that costs almost nothing: an HAProxy frontend that answers
    every request itself (``http-request return``), started here on a free port,
    with its admin socket so load.run's HAProxy witness works as on the lab.
    1. raw Locust: one process, FastHttpUser, closed loop with no wait (the most
       Locust itself can send), its own requests/s;
    2. the highest rate ``load.run`` holds within 3 % from one process, climbing
       from 30 % of the raw figure in steps of 10 % of it until a rate is not held
       twice in a row (then raw Locust once more: the machine may have changed);
    3. achieved/target at 50 %, 80 % and 100 % of that rate.
lab
    The reference service behind HAProxy with the realistic mix of
    loadtests/locustfile.py: rates from 200 req/s up, always including 1,000 req/s,
    until the client-side p95 crosses 200 ms (or the rate can no longer be held);
    the crossing is interpolated between the last run under and the first over.

Other people's work on the same machine shares its cores; the script records the
machine's load average next to each figure so a depressed figure can be told apart.
"""

from __future__ import annotations

import argparse
import contextlib
import itertools
import json
import os
import shutil
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import yaml

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from drillbook.core.drill import DrillContext, execute  # noqa: E402
from drillbook.core.inventory import load_inventory  # noqa: E402
from drillbook.load import LoadRun, load_settings, make_plan  # noqa: E402
from drillbook.load.runner import parse_stats  # noqa: E402

TRIVIAL_LOCUSTFILE = '''
from locust import task
from locust.contrib.fasthttp import FastHttpUser


class Hammer(FastHttpUser):
    """Closed loop, no wait: as many requests as one process can send (raw Locust)."""

    @task
    def get(self):
        self.client.get("/")
'''

HAPROXY_CFG = """
global
    maxconn 4000
    nbthread 1
    stats socket {sock} mode 600 level admin
defaults
    mode http
    timeout connect 2s
    timeout client 30s
    timeout server 30s
frontend trivial
    bind 127.0.0.1:{port}
    http-request return status 200 content-type text/plain string "ok"
"""


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def loadavg() -> float:
    return round(os.getloadavg()[0], 2)


class Trivial:
    """HAProxy answering every request itself, on a free loopback port."""

    def __init__(self, work: Path) -> None:
        self.work = work
        self.port = free_port()
        self.sock = work / "haproxy.sock"
        self.pidfile = work / "haproxy.pid"
        (work / "haproxy.cfg").write_text(HAPROXY_CFG.format(port=self.port, sock=self.sock))

    def __enter__(self) -> Trivial:
        haproxy = shutil.which("haproxy") or "/usr/sbin/haproxy"
        subprocess.run(
            [haproxy, "-f", str(self.work / "haproxy.cfg"), "-D", "-p", str(self.pidfile)], check=True
        )
        time.sleep(0.3)
        return self

    def __exit__(self, *exc: object) -> None:
        if self.pidfile.exists():
            pid = int(self.pidfile.read_text().split()[0])
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, 15)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"


def raw_locust(url: str, locustfile: Path, work: Path, seconds: int, users: int = 32) -> dict[str, Any]:
    """Raw Locust, one process, closed loop: its own requests/s over the run."""
    prefix = work / "raw"
    cmd = [sys.executable, "-m", "locust", "-f", str(locustfile), "--headless", "-H", url]
    cmd += ["-u", str(users), "-r", str(users), "-t", f"{seconds}s", "--csv", str(prefix), "--only-summary"]
    load = loadavg()
    before = os.times()
    subprocess.run(cmd, capture_output=True, text=True, check=False)
    after = os.times()
    total = next(r for r in parse_stats(Path(f"{prefix}_stats.csv")) if r.name == "Aggregated")
    cpu = (after.children_user - before.children_user) + (after.children_system - before.children_system)
    return {
        "rps": round(total.rps, 1),
        "requests": total.requests,
        "cpu_s": round(cpu, 2),
        "requests_per_cpu_s": round(total.requests / cpu) if cpu else None,
        "loadavg_1m": load,
    }


def trivial_inventory(root: Path, target: Trivial, locustfile: Path) -> Path:
    root.mkdir(parents=True, exist_ok=True)
    hosts = {
        "all": {"vars": {"ansible_connection": "local"}, "children": {"lb": {"hosts": {"bench-lb": None}}}}
    }
    (root / "hosts.yml").write_text(yaml.safe_dump(hosts))
    (root / "group_vars" / "all").mkdir(parents=True, exist_ok=True)
    settings = {
        "drillbook_environment": "bench",
        "drillbook_lock_scope": str(root),
        "lb_url": target.url,
        "haproxy_admin_socket": str(target.sock),
        "load_rps": 1000,
        "load_headroom": 0,
        "load_sla_p95_ms": 1000,
        "load_sla_p99_ms": 2000,
        "load_locustfile": str(locustfile),
        "load_master_port": free_port(),
    }
    (root / "group_vars" / "all" / "main.yml").write_text(yaml.safe_dump(settings))
    return root


def load_run(inv_path: Path | str, reports: Path, rps: float, duration: str, ramp: str) -> dict[str, Any]:
    """One load.run at ``rps`` (no headroom); the figures that matter here."""
    inv = load_inventory(inv_path)
    settings = load_settings(inv)
    plan = make_plan(inv, settings, rps=rps, headroom=0, duration=duration, ramp=ramp, local=True)
    load = loadavg()
    before = os.times()
    journal = execute(LoadRun(settings, plan), DrillContext(inventory=inv, report_root=reports, quiet=True))
    after = os.times()
    cpu = (after.children_user - before.children_user) + (after.children_system - before.children_system)
    m = journal.measurements
    rate_ok = next((c.ok for c in journal.checks if c.name == "achieved_rps"), False)
    row = {
        "target_rps": rps,
        "achieved_rps": m.get("achieved_rps"),
        "ratio": round(m["achieved_rps"] / rps, 4) if m.get("achieved_rps") else None,
        "held": bool(rate_ok),
        "p50_ms": m.get("p50_ms"),
        "p95_ms": m.get("p95_ms"),
        "p99_ms": m.get("p99_ms"),
        "error_pct": m.get("error_pct"),
        "haproxy_rps": m.get("haproxy_rps"),
        "server_p95_ms": m.get("server_p95_ms"),
        "generator_cpu_max_pct": m.get("generator_cpu_max_pct"),
        "users_max": m.get("users_max"),
        "locust_cpu_s": round(cpu, 2),
        "requests_per_cpu_s": round(m["locust_requests_total"] / cpu)
        if cpu and m.get("locust_requests_total")
        else None,
        "empty_10ms_slots_pct": m.get("arrivals_empty_slots_pct"),
        "max_per_10ms": m.get("arrivals_max_per_10ms"),
        "verdict": journal.verdict,
        "error": journal.error,
        "loadavg_1m": load,
        "report": journal.report_dir,
    }
    print(
        f"  {rps:>8.0f} req/s -> achieved {row['achieved_rps']} ({'held' if row['held'] else 'NOT held'}), "
        f"p95 {row['p95_ms']} ms, generator CPU {row['generator_cpu_max_pct']} %, load {load}",
        flush=True,
    )
    return row


def bench_trivial(work: Path, seconds: int) -> dict[str, Any]:
    work.mkdir(parents=True, exist_ok=True)
    locustfile = work / "hammer.py"
    locustfile.write_text(TRIVIAL_LOCUSTFILE)
    out: dict[str, Any] = {}
    with Trivial(work) as target:
        print("raw Locust, one process, closed loop:", flush=True)
        out["raw"] = raw_locust(target.url, locustfile, work, seconds)
        print(f"  {out['raw']}", flush=True)
        inv = trivial_inventory(work / "inv", target, locustfile)
        raw = out["raw"]["rps"]
        print("load.run, one process, climbing until the rate is no longer held:", flush=True)
        runs = []
        rate, step = round(raw * 0.3, -1), max(round(raw * 0.1, -1), 10)
        highest = None
        for _ in range(30):
            row = load_run(inv, work / "reports", rate, f"{seconds}s", "4s")
            runs.append(row)
            if not row["held"]:
                # A shared machine has bad seconds: a rate counts as not held only twice in a row.
                row = load_run(inv, work / "reports", rate, f"{seconds}s", "4s")
                runs.append(row)
                if not row["held"]:
                    break
            highest = rate
            rate += step
        out["climb"] = runs
        out["highest_held_rps"] = highest
        print("raw Locust again (the machine may have changed meanwhile):", flush=True)
        out["raw_after"] = raw_locust(target.url, locustfile, work, seconds)
        print(f"  {out['raw_after']}", flush=True)
        best_raw = max(raw, out["raw_after"]["rps"])
        out["highest_vs_raw"] = round(highest / best_raw, 3) if highest and best_raw else None
        if highest:
            print(f"ratios at 50/80/100 % of {highest:g}:", flush=True)
            out["ratios"] = {
                f"{int(frac * 100)}%": load_run(
                    inv, work / "reports", round(highest * frac), f"{seconds}s", "4s"
                )
                for frac in (0.5, 0.8, 1.0)
            }
    return out


def bench_lab(work: Path, seconds: int) -> dict[str, Any]:
    inv = os.environ.get("DRILLBOOK_INVENTORY") or str(REPO / "inventory" / "lab")
    out: dict[str, Any] = {}
    print("lab, climbing until p95 crosses 200 ms (1,000 req/s is always measured):", flush=True)
    runs = []
    for rate in (200, 400, 600, 800, 1000, 1250, 1500, 2000, 2500, 3000):
        row = load_run(inv, work / "reports", rate, f"{seconds}s", "5s")
        runs.append(row)
        if rate == 1000:
            out["at_1000"] = row
        if ((row["p95_ms"] or 0) > 200 or not row["held"]) and rate >= 1000:
            break
    # Narrow the bracket where p95 crosses 200 ms: two bisection steps.
    for _ in range(2):
        ordered = sorted(runs, key=lambda r: r["target_rps"])
        bracket = next(((a, b) for a, b in itertools.pairwise(ordered) if _under(a) and not _under(b)), None)
        if bracket is None or bracket[1]["target_rps"] - bracket[0]["target_rps"] <= 50:
            break
        mid = round((bracket[0]["target_rps"] + bracket[1]["target_rps"]) / 2, -1)
        runs.append(load_run(inv, work / "reports", mid, f"{seconds}s", "5s"))
    out["climb"] = sorted(runs, key=lambda r: r["target_rps"])
    out["p95_crosses_200ms_at_rps"] = _crossing(out["climb"], 200.0)
    return out


def _under(row: dict[str, Any], limit: float = 200.0) -> bool:
    return bool(row["held"]) and (row["p95_ms"] or 0) <= limit


def _crossing(runs: list[dict[str, Any]], limit: float) -> float | None:
    """The target rate where p95 passes ``limit``: interpolated between the last run under it
    and the next run over it (a run that could not hold its rate counts as over)."""
    for a, b in itertools.pairwise(runs):
        if _under(a, limit) and not _under(b, limit):
            pa, pb = a["p95_ms"] or 0.0, max(b["p95_ms"] or 0.0, limit)
            ra, rb = a["target_rps"], b["target_rps"]
            return round(ra + (rb - ra) * (limit - pa) / (pb - pa), 0) if pb > pa else float(rb)
    return None


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("what", nargs="+", choices=["trivial", "lab"])
    parser.add_argument("--seconds", type=int, default=20, help="length of each run (incl. 4-5 s ramp)")
    parser.add_argument("--out", type=Path, help="write the results as JSON here")
    args = parser.parse_args()
    os.environ.setdefault("DRILLBOOK_STATE_DIR", tempfile.mkdtemp(prefix="drillbook-bench-state-"))
    results: dict[str, Any] = {"cpus": os.cpu_count(), "started_loadavg_1m": loadavg()}
    with tempfile.TemporaryDirectory(prefix="drillbook-bench-load-") as tmp:
        work = Path(tmp)
        if "trivial" in args.what:
            results["trivial"] = bench_trivial(work / "trivial", args.seconds)
        if "lab" in args.what:
            (work / "lab").mkdir()
            results["lab"] = bench_lab(work / "lab", args.seconds)
        text = json.dumps(results, indent=2, default=str)
    print(text)
    if args.out:
        args.out.parent.mkdir(parents=True, exist_ok=True)
        args.out.write_text(text + "\n")


if __name__ == "__main__":
    main()
