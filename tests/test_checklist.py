"""The checklist: validation, and statuses from real drill runs (smoke on the lab) with a faked clock."""

from __future__ import annotations

import subprocess
import sys
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from drillbook.app.registry import known_audits, known_drills
from drillbook.checklist import evaluate, load_checklist
from drillbook.checklist.model import validate_references
from drillbook.checklist.render import html_page, markdown
from drillbook.checklist.signoff import record
from drillbook.checklist.status import summary_line
from drillbook.core.drill import DrillContext, execute
from drillbook.core.errors import ConfigError
from drillbook.core.inventory import load_inventory
from drillbook.core.paths import REPO_ROOT
from drillbook.smoke import Smoke
from drillbook.tasks import namespace

DEAD_TARGET = Path(__file__).parent / "data" / "inventory"

SMALL = """
version: 1
items:
  - id: api-smoke
    section: api
    statement: The smoke test passes through the load balancer.
    evidence: {drill: smoke, max_age_days: 1}
  - id: sec-headers
    section: security
    statement: Security headers on every response.
    evidence: {audit: http.security_headers}
  - id: review
    section: security
    statement: A person reviewed the dependencies.
    evidence: {manual: true, max_age_days: 30}
    required: false
"""


def _write(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "checklist.yml"
    path.write_text(text)
    return path


def test_repository_checklist_is_valid_and_names_only_known_evidence() -> None:
    checklist = load_checklist()
    validate_references(checklist, known_drills(namespace), known_audits())
    assert len(checklist.items) >= 25
    assert {i.section for i in checklist.items} == {
        "security",
        "data",
        "api",
        "observability",
        "reliability",
        "deployment",
        "testing",
    }


@pytest.mark.parametrize(
    ("text", "message"),
    [
        (
            SMALL.replace("drill: smoke", "drill: chaos.kill-everything"),
            "unknown drill 'chaos.kill-everything'",
        ),
        (SMALL.replace("http.security_headers", "http.telepathy"), "has no check 'telepathy'"),
        (SMALL.replace("section: api", "section: vibes"), "item api-smoke: section"),
        (SMALL.replace("{manual: true, max_age_days: 30}", "{manual: true, drill: smoke}"), "exactly one"),
    ],
)
def test_bad_checklist_is_a_config_error(tmp_path: Path, text: str, message: str) -> None:
    with pytest.raises(ConfigError, match=message):
        validate_references(load_checklist(_write(tmp_path, text)), known_drills(namespace), known_audits())


def test_unknown_drill_exits_2_through_inv(tmp_path: Path) -> None:
    path = _write(tmp_path, SMALL.replace("drill: smoke", "drill: nope.nope"))
    proc = subprocess.run(
        [sys.executable, "-m", "invoke", "checklist", "--file", str(path), "--report-dir", str(tmp_path)],
        cwd=REPO_ROOT,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert proc.returncode == 2 and "unknown drill 'nope.nope'" in proc.stderr


def test_manual_signoff_proves_then_goes_stale(tmp_path: Path) -> None:
    checklist = load_checklist(_write(tmp_path, SMALL))
    root = tmp_path / "reports"
    record(root, "review", by="alice", note="pip-audit clean")
    now = datetime.now(UTC)
    status = {s.item.id: s for s in evaluate(checklist, root, now=now)}
    assert status["review"].state == "proven" and "alice" in status["review"].reason
    later = {s.item.id: s for s in evaluate(checklist, root, now=now + timedelta(days=31))}
    assert later["review"].state == "stale" and not later["review"].blocking  # optional item


@pytest.mark.lab
def test_smoke_proves_item_then_stale_then_failing(
    lab: dict[str, Any], lab_inventory: Any, tmp_path: Path
) -> None:
    checklist = load_checklist(_write(tmp_path, SMALL))
    root = tmp_path / "reports"
    before = {s.item.id: s for s in evaluate(checklist, root)}
    assert before["api-smoke"].state == "unproven"

    journal = execute(Smoke(), DrillContext(inventory=lab_inventory, report_root=root, quiet=True))
    assert journal.verdict == "pass", journal.failed_checks
    now = datetime.now(UTC)
    proven = {s.item.id: s for s in evaluate(checklist, root, now=now)}
    assert proven["api-smoke"].state == "proven"
    assert proven["api-smoke"].evidence_path == journal.report_dir

    stale = {s.item.id: s for s in evaluate(checklist, root, now=now + timedelta(days=2))}
    assert stale["api-smoke"].state == "stale" and stale["api-smoke"].blocking

    # a real failed run: the smoke test against a load balancer that is not there
    failed = execute(
        Smoke(), DrillContext(inventory=load_inventory(DEAD_TARGET), report_root=root, quiet=True)
    )
    assert failed.verdict == "fail"
    failing = {s.item.id: s for s in evaluate(checklist, root)}
    assert failing["api-smoke"].state == "failing" and "lb liveness" in failing["api-smoke"].reason
    statuses = list(failing.values())
    assert summary_line(statuses) == "0/3 proven, 1 failing, 0 stale, 2 unproven"
    assert "FAILING" in markdown(statuses) and "<table>" in html_page(statuses)
