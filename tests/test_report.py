"""The scorecard read back from real journals: list, staleness, HTML with plots, Prometheus metrics.

Journals are written with the real Journal class into a temp report root, as a drill
would write them, plus a few broken ones a full disk or a hand edit leaves behind.
"""

from __future__ import annotations

import base64
import io
import re
from datetime import UTC, datetime, timedelta
from html.parser import HTMLParser
from pathlib import Path
from typing import Any

import pytest
from prometheus_client.parser import text_string_to_metric_families
from rich.console import Console

from drillbook.core.errors import ConfigError
from drillbook.core.journal import Check, Journal, summary_markdown
from drillbook.core.paths import LAB_INVENTORY
from drillbook.core.store import load_entries
from drillbook.report.figures import headline, key_figure, parse_limit
from drillbook.report.html import write_html
from drillbook.report.prom import write_metrics
from drillbook.report.scorecard import ReportSettings, build_scorecard, load_settings, render_terminal

NOW = datetime.now(UTC)


def iso(at: datetime) -> str:
    return at.isoformat(timespec="milliseconds").replace("+00:00", "Z")


def journal(
    root: Path,
    drill: str,
    verdict: str,
    days_ago: float,
    measurements: dict[str, Any] | None = None,
    checks: list[Check] | None = None,
    duration_s: float = 12.0,
) -> Path:
    start = NOW - timedelta(days=days_ago)
    j = Journal(
        drill=drill,
        inventory="inventory/lab",
        environment="lab",
        started_at=iso(start),
        finished_at=None if verdict == "running" else iso(start + timedelta(seconds=duration_s)),
        verdict=verdict,  # type: ignore[arg-type]
        measurements=measurements or {},
        checks=checks or [],
    )
    report = root / f"{start.strftime('%Y%m%dT%H%M%SZ')}-{drill}"
    j.report_dir = str(report)
    j.write(report / "journal.json")
    (report / "summary.md").write_text(summary_markdown(j))
    return report


def restore_run(root: Path, verdict: str, days_ago: float, restore_s: float) -> Path:
    return journal(
        root,
        "backup.restore-test",
        verdict,
        days_ago,
        {"restore_s": restore_s, "rows": 1000},
        [Check("restore_s", restore_s, "<= 300", restore_s <= 300), Check("rows_match", True, True, True)],
    )


@pytest.fixture()
def root(tmp_path: Path) -> Path:
    r = tmp_path / "reports"
    restore_run(r, "pass", 10, 120.5)
    restore_run(r, "pass", 5, 140.0)
    restore_run(r, "fail", 1, 350.0)
    journal(
        r,
        "load.run",
        "pass",
        3,
        {"achieved_rps": 98.0, "p95_ms": 80.0},
        [Check("achieved_rps", 98.0, ">= 95", True), Check("p95_ms", 80.0, "<= 250", True)],
    )
    journal(
        r,
        "load.run",
        "fail",
        2,
        {"achieved_rps": 70.5, "p95_ms": 400.0},
        [Check("achieved_rps", 70.5, ">= 95", False), Check("p95_ms", 400.0, "<= 250", False)],
    )
    journal(
        r,
        "chaos.kill-db",
        "pass",
        2,
        {"readiness_flip_s": 1.8},
        [Check("readiness_flip_s", 1.8, "<= 5", True)],
    )
    journal(r, "custom.drill", "pass", 4, {"widgets": 3, "flag": True})
    journal(r, "custom.drill", "error", 3, {"widgets": 5})
    journal(r, "quiet.drill", "pass", 6)
    journal(r, "quiet.drill", "pass", 5, duration_s=30)
    journal(r, "chaos.kill-db", "running", 0.01)  # in progress (or killed): never the latest verdict
    # what a full disk or a hand edit leaves behind
    (r / "20260101T000000Z-chaos.kill-redis").mkdir()
    (r / "20260101T000000Z-chaos.kill-redis" / "journal.json").write_text(
        '{"drill": "chaos.kill-redis", "verd'
    )
    (r / "20260102T000000Z-backup.run").mkdir()
    (r / "20260102T000000Z-backup.run" / "journal.json").write_text("[1, 2]")
    (r / "20260103T000000Z-x").mkdir()
    (r / "20260103T000000Z-x" / "journal.json").write_text(
        '{"drill": "x", "verdict": "maybe", "started_at": "now"}'
    )
    (r / "incidents").mkdir()
    (r / "incidents" / "20260104T000000Z-db-outage.md").write_text("# Incident log\n")
    return r


SETTINGS = ReportSettings(
    freshness_days={"backup.restore-test": 7, "chaos.kill-db": 14, "deploy.canary": 7},
    key_figures={"load.run": ["achieved_rps", "p95_ms"]},
)


def test_corrupt_journals_are_listed_as_unreadable_not_a_crash(root: Path) -> None:
    entries = load_entries(root)
    unreadable = {e.dir.name: e.error for e in entries if not e.readable}
    assert len(entries) == 14 and len(unreadable) == 3
    assert unreadable["20260101T000000Z-chaos.kill-redis"].startswith("not JSON")
    assert "top level is list" in unreadable["20260102T000000Z-backup.run"]
    assert "verdict 'maybe'" in unreadable["20260103T000000Z-x"]
    assert [e.drill for e in entries if not e.readable] == ["chaos.kill-redis", "backup.run", "x"]
    card = build_scorecard(root, SETTINGS)
    assert len(card.unreadable) == 3 and card.get("chaos.kill-redis") is None


def test_scorecard_latest_verdict_key_figure_and_staleness(root: Path) -> None:
    card = build_scorecard(root, SETTINGS)
    assert [d.drill for d in card.drills] == [
        "backup.restore-test",
        "chaos.kill-db",
        "custom.drill",
        "deploy.canary",
        "load.run",
        "quiet.drill",
    ]
    restore = card.status("backup.restore-test")
    assert restore.verdict == "fail" and len(restore.finished) == 3
    assert restore.figure is not None and restore.figure.render() == "restore_s=350 (<= 300)"
    assert not restore.stale  # passed 5 days ago, limit 7
    kill_db = card.status("chaos.kill-db")
    assert (
        kill_db.verdict == "pass" and kill_db.last_run is not None and kill_db.last_run.verdict == "running"
    )
    canary = card.status("deploy.canary")
    assert canary.verdict == "never" and canary.stale_reason == "never passed (limit 7 days)"
    assert card.status("custom.drill").limit_days is None and not card.status("custom.drill").stale
    later = build_scorecard(root, SETTINGS, now=NOW + timedelta(days=3))
    assert later.status("backup.restore-test").stale_reason == "last passed 8d ago (limit 7 days)"


def test_key_figures_and_limits() -> None:
    assert parse_limit("<= 300") == ("<=", 300.0) and parse_limit(">=95.5") == (">=", 95.5)
    assert (
        parse_limit(12) == (None, 12.0)
        and parse_limit(True) == (None, None)
        and parse_limit("x") == (None, None)
    )
    j = Journal(
        drill="d",
        inventory="i",
        environment="lab",
        measurements={"other": 1, "p95_ms": 80.0},
        checks=[Check("latency p95_ms", 80.0, "<= 250", True)],
    )
    fig = key_figure(j)
    assert fig is not None and (fig.name, fig.limit, fig.op, fig.ok) == ("p95_ms", 250.0, "<=", True)
    assert key_figure(Journal(drill="d", inventory="i", environment="lab", measurements={"n": 2})) is not None
    failing = Journal(
        drill="d",
        inventory="i",
        environment="lab",
        measurements={"restore_s": 10},
        checks=[Check("restore_s", 10, "<= 300", True), Check("rows", 1, 2, False), Check("x", 0, 1, False)],
    )
    assert headline(failing) == "restore_s=10 (<= 300); failed rows=1 (2) (+1 more)"
    assert key_figure(Journal(drill="d", inventory="i", environment="lab", measurements={"ok": True})) is None


class _Page(HTMLParser):
    def __init__(self) -> None:
        super().__init__()
        self.images: list[tuple[str, str]] = []  # (section id, src)
        self.links: list[str] = []
        self.section = ""

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        a = dict(attrs)
        if tag == "h3":
            self.section = a.get("id") or ""
        elif tag == "img":
            self.images.append((self.section, a.get("src") or ""))
        elif tag == "a" and not (a.get("href") or "").startswith("#"):
            self.links.append(a.get("href") or "")


def test_html_has_a_plot_per_drill_with_two_runs_and_working_links(root: Path, tmp_path: Path) -> None:
    out = write_html(root, tmp_path / "site" / "scorecard.html", settings=SETTINGS)
    assert out == tmp_path / "site" / "scorecard.html" and oct(out.stat().st_mode & 0o777) == "0o644"
    text = out.read_text()
    page = _Page()
    page.feed(text)
    # two or more finished runs: restore, load, custom, quiet; chaos.kill-db has one (plus one running)
    assert sorted(s for s, _ in page.images) == [
        "drill-backup-restore-test",
        "drill-custom-drill",
        "drill-load-run",
        "drill-quiet-drill",
    ]
    for _, src in page.images:
        assert src.startswith("data:image/png;base64,")
        assert base64.b64decode(src.split(",", 1)[1])[:8] == b"\x89PNG\r\n\x1a\n"
    assert 'alt="trend of restore_s for backup.restore-test"' in text
    assert 'alt="trend of achieved_rps, p95_ms for load.run"' in text
    assert (
        'alt="trend of widgets for custom.drill"' in text
        and 'alt="trend of duration_s for quiet.drill"' in text
    )
    assert page.links and all((out.parent / href).exists() for href in page.links), page.links
    assert "STALE: never passed (limit 7 days)" in text  # deploy.canary
    assert "restore_s=350 (&lt;= 300)" in text
    assert "not JSON" in text  # the unreadable ones are listed


def test_metrics_parse_with_prometheus_client(root: Path, tmp_path: Path) -> None:
    path = write_metrics(root, tmp_path / "textfile" / "drillbook.prom", settings=SETTINGS)
    families = {f.name: f for f in text_string_to_metric_families(path.read_text())}
    samples = {
        (s.name, tuple(sorted(s.labels.items()))): s.value for f in families.values() for s in f.samples
    }

    def value(metric: str, **labels: str) -> float:
        return samples[(metric, tuple(sorted(labels.items())))]

    assert value("drillbook_drill_verdict", drill="backup.restore-test") == 0
    assert value("drillbook_drill_verdict", drill="load.run") == 0
    assert value("drillbook_drill_verdict", drill="chaos.kill-db") == 1
    assert value("drillbook_drill_verdict", drill="custom.drill") == -1
    last_ok = value("drillbook_drill_last_success_timestamp_seconds", drill="backup.restore-test")
    assert abs(last_ok - (NOW - timedelta(days=5, seconds=-12)).timestamp()) < 1
    assert value("drillbook_drill_last_success_timestamp_seconds", drill="deploy.canary") == 0
    assert value("drillbook_drill_last_run_timestamp_seconds", drill="backup.restore-test") > last_ok
    assert value("drillbook_drill_measurement", drill="backup.restore-test", name="restore_s") == 350
    assert value("drillbook_drill_measurement", drill="load.run", name="p95_ms") == 400
    assert value("drillbook_drill_key_figure_limit", drill="load.run", name="achieved_rps") == 95
    assert value("drillbook_drill_runs", drill="backup.restore-test") == 3
    assert value("drillbook_journals_unreadable") == 3
    assert families["drillbook_drill_verdict"].type == "gauge"


def test_settings_come_from_the_inventory(tmp_path: Path) -> None:
    settings = load_settings(LAB_INVENTORY)
    assert settings.freshness_days["backup.restore-test"] == 7
    assert settings.limit_days("chaos.recover") is None
    inv = tmp_path / "inv"
    (inv / "group_vars").mkdir(parents=True)
    (inv / "hosts.yml").write_text("all:\n  hosts:\n    h1:\n")
    (inv / "group_vars" / "all.yml").write_text("report_freshness_days:\n  backup.restore-test: -1\n")
    with pytest.raises(ConfigError, match="report_freshness_days"):
        load_settings(inv)


def test_render_terminal_prints_the_scorecard(root: Path) -> None:
    console = Console(file=io.StringIO(), width=200)
    card = render_terminal(root, None, console=console)
    text = console.file.getvalue()  # type: ignore[attr-defined]
    assert len(card.drills) == 5
    row = r"backup\.restore-test\s+│\s+fail \(failing\)\s+│\s+restore_s=350 \(<= 300\)"
    assert re.search(row, text), text
    assert "unreadable journal" in text and "20260102T000000Z-backup.run" in text


def test_report_commands(
    root: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("COLUMNS", "250")
    assert drillbook_cli("report.list", "--limit", "50", "--report-dir", str(root)) == 0
    listing = capsys.readouterr().out
    assert "unreadable" in listing and "restore_s=350 (<= 300)" in listing
    assert "achieved_rps=70.5 (>= 95)" in listing  # load.run's key figure from the inventory
    assert drillbook_cli("report.html", "--out", str(tmp_path / "index.html"), "--report-dir", str(root)) == 0
    assert (tmp_path / "index.html").exists() and "scorecard page:" in capsys.readouterr().out
    assert drillbook_cli("report.metrics", "--report-dir", str(root)) == 0
    assert (root / "drillbook.prom").exists()
    assert drillbook_cli("report.scorecard", "--report-dir", str(root)) == 0
    assert "STALE" in capsys.readouterr().out  # migrate.rehearse never ran in this root


def drillbook_cli(*args: str) -> int:
    """Run the drillbook program in this process (as ``inv`` would) and return its exit code."""
    from drillbook.cli import program

    try:
        program.run(["drillbook", *args])
    except SystemExit as exc:
        return int(exc.code or 0)
    return 0
