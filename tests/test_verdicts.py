"""``error`` (could not run) is shown apart from ``fail`` (failing) wherever verdicts are counted.

Two drills' latest runs: smoke failed a threshold, backup.restore-test could not
run (an unreachable host). The checklist, the scorecard and the Prometheus export
must not count the second as the service failing.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from clirun import inv
from prometheus_client.parser import text_string_to_metric_families

from drillbook.core.journal import Check, Journal

UNREACHABLE = "host lab-db is unreachable: ssh: connect to host 10.0.0.1 port 22: Connection refused"


def _journal(root: Path, drill: str, verdict: str, error: str | None, checks: list[Check]) -> None:
    start = datetime.now(UTC) - timedelta(minutes=5)
    j = Journal(
        drill=drill,
        inventory="inventory/lab",
        environment="lab",
        started_at=start.isoformat().replace("+00:00", "Z"),
        finished_at=(start + timedelta(seconds=3)).isoformat().replace("+00:00", "Z"),
        verdict=verdict,  # type: ignore[arg-type]
        checks=checks,
        error=error,
    )
    report = root / f"{start.strftime('%Y%m%dT%H%M%SZ')}-{drill}"
    j.report_dir = str(report)
    j.write(report / "journal.json")


@pytest.fixture()
def root(tmp_path: Path) -> Path:
    r = tmp_path / "reports"
    _journal(r, "smoke", "fail", None, [Check("lb readiness", 503, "2xx", False)])
    _journal(r, "backup.restore-test", "error", UNREACHABLE, [])
    return r


def test_checklist_shows_could_not_run_apart_from_failing(root: Path) -> None:
    ran = inv("checklist", "-r", str(root))
    assert ran.rc == 1 and "Traceback" not in ran.stderr, ran.describe()
    rows = {line.split("│")[2].strip(): line for line in ran.stdout.splitlines() if line.count("│") > 4}
    assert "FAILING" in rows["api-smoke"], ran.stdout
    restore = rows["data-backup-restores"]
    assert "ERROR (could not run)" in restore and "FAILING" not in restore, ran.stdout
    assert "1 failing, 1 could not run" in ran.stdout + ran.stderr, ran.describe()


def test_scorecard_and_metrics_tell_them_apart(root: Path, tmp_path: Path) -> None:
    ran = inv("report.scorecard", "-r", str(root))
    assert ran.rc == 0, ran.describe()
    assert "fail (failing)" in ran.stdout and "error (could not run)" in ran.stdout, ran.stdout
    out = tmp_path / "drillbook.prom"
    ran = inv("report.metrics", "-r", str(root), "--out", str(out))
    assert ran.rc == 0, ran.describe()
    samples = {
        (s.name, s.labels.get("drill")): s.value
        for family in text_string_to_metric_families(out.read_text())
        for s in family.samples
    }
    assert samples[("drillbook_drill_failing", "smoke")] == 1
    assert samples[("drillbook_drill_could_not_run", "smoke")] == 0
    assert samples[("drillbook_drill_failing", "backup.restore-test")] == 0
    assert samples[("drillbook_drill_could_not_run", "backup.restore-test")] == 1
