"""load.run against the real lab: the reference service behind HAProxy, with its own histograms.

Short runs at a low rate. The SLA of the first run is widened on purpose: it
proves the rate is held (within 3 %) and that the witnesses agree, on a CI box
whose latency nobody controls; the SLA checks are proven by the impossible one.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from drillbook.core.drill import DrillContext, execute
from drillbook.load import LoadRun, load_settings, make_plan

pytestmark = pytest.mark.lab


def _run(lab_inventory: Any, report_root: Path, **overrides: Any) -> Any:
    settings = load_settings(lab_inventory).model_copy(update=overrides)
    plan = make_plan(lab_inventory, settings, rps=30, headroom=0.2, duration="14s", ramp="4s", local=True)
    ctx = DrillContext(inventory=lab_inventory, report_root=report_root, quiet=True)
    return execute(LoadRun(settings, plan), ctx)


def test_short_run_holds_the_rate_and_the_witnesses_agree(
    lab: dict[str, Any], lab_inventory: Any, report_root: Path
) -> None:
    journal = _run(lab_inventory, report_root, sla_p95_ms=5000, sla_p99_ms=10000)
    report = Path(journal.report_dir)
    assert journal.verdict == "pass", (journal.error, journal.checks)
    m = journal.measurements
    assert m["target_rps"] == 36 and abs(m["achieved_rps"] - 36) <= 0.03 * 36
    assert m["error_pct"] <= 1
    # The load balancer counted what Locust sent; the instances' histograms saw the requests.
    assert m["haproxy_rps"] == pytest.approx(m["achieved_rps"], rel=0.08)
    assert m["server_p95_ms"] is not None and m["server_requests"] > 0
    names = {row["name"] for row in m["endpoints"]}
    assert {"GET /items/[id]", "POST /items", "GET /items?limit=20&cursor=[c]"} <= names
    for name in ("locust.html", "locust_stats.csv", "locust_stats_history.csv", "drillbook_load.json"):
        assert (report / name).stat().st_size > 0, name
    png = report / "load.png"
    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n" and png.stat().st_size > 20_000
    summary = (report / "summary.md").read_text()
    assert "![achieved rate and p95 over time](load.png)" in summary and "HAProxy frontend" in summary


def test_impossible_sla_fails_and_names_the_thresholds(
    lab: dict[str, Any], lab_inventory: Any, report_root: Path
) -> None:
    journal = _run(lab_inventory, report_root, sla_p95_ms=0.001, sla_p99_ms=0.002)
    assert journal.verdict == "fail" and journal.exit_code == 1
    assert [c.name for c in journal.failed_checks] == ["p95_ms", "p99_ms"]
    data = json.loads((Path(journal.report_dir) / "journal.json").read_text())
    checks = {c["name"]: c for c in data["checks"]}
    assert (checks["p95_ms"]["op"], checks["p95_ms"]["limit"]) == ("<=", 0.001)
    assert checks["p95_ms"]["limit_from"] == "sla_p95_ms" and data["thresholds"]["sla_p95_ms"] == 0.001
    assert (checks["achieved_rps"]["op"], checks["achieved_rps"]["limit"]) == (">=", pytest.approx(36 * 0.97))
    summary = (Path(journal.report_dir) / "summary.md").read_text()
    assert "| p95_ms |" in summary and "**NO**" in summary
