"""The drill lifecycle: phases, verdicts, journal files, the lock, and restore after SIGINT/SIGTERM."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import textwrap
import time
import xml.etree.ElementTree as ET
from pathlib import Path

import pytest
from pydantic import BaseModel

from drillbook.core.checks import Measurements, at_most, witnessed
from drillbook.core.drill import Drill, DrillContext, DrillRun, execute
from drillbook.core.errors import LockHeld
from drillbook.core.inventory import load_inventory
from drillbook.core.lock import inventory_lock

INVENTORY = Path(__file__).parent / "data" / "inventory"


@pytest.fixture()
def ctx(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> DrillContext:
    monkeypatch.setenv("DRILLBOOK_STATE_DIR", str(tmp_path / "state"))
    return DrillContext(inventory=load_inventory(INVENTORY), report_root=tmp_path / "reports", quiet=True)


class Limits(BaseModel):
    figure_limit_s: float


class Figures(Measurements):
    figure_s: float | None = witnessed("the test itself")


class Recorder(Drill[None, None, Figures]):
    """A drill in the declared-checks shape: a typed record, one check limited by a setting."""

    name = "test.recorder"
    runbook = "runbooks/README.md"
    measured = Figures
    checks = (at_most("figure_s", limit_from="figure_limit_s"),)

    def __init__(self, value: float | None, limit: float, fail_in: str | None = None) -> None:
        super().__init__(Limits(figure_limit_s=limit), value=value)
        self.value, self.fail_in = value, fail_in
        self.restored: list[str] = []

    def preflight(self, run: DrillRun) -> None:
        if self.fail_in == "preflight":
            run.require("steady_state", False, True, False, "not healthy")

    def act(self, run: DrillRun, plan: None) -> None:
        run.on_restore("undo-first", lambda: self.restored.append("first"))
        run.on_restore("undo-second", lambda: self.restored.append("second"))
        with run.phase("step"):
            if self.fail_in == "act":
                raise RuntimeError("boom")

    def observe(self, run: DrillRun, plan: None, acted: None) -> Figures:
        return Figures(figure_s=self.value)

    def restore(self, run: DrillRun) -> None:
        self.restored.append("final")


def _journal(ctx: DrillContext) -> dict:
    (path,) = ctx.report_root.glob("*/journal.json")
    return json.loads(path.read_text())


def test_pass_writes_journal_with_every_field(ctx: DrillContext) -> None:
    drill = Recorder(value=1.0, limit=2.0)
    journal = execute(drill, ctx)
    assert journal.verdict == "pass" and journal.exit_code == 0
    data = _journal(ctx)
    for key in (
        "drill",
        "verdict",
        "started_at",
        "finished_at",
        "inventory",
        "environment",
        "thresholds",
        "measurements",
        "checks",
        "phases",
        "artefacts",
    ):
        assert key in data, key
    assert data["measurements"]["figure_s"] == 1.0
    assert data["witnesses"]["figure_s"] == "the test itself"
    assert data["checks"] == [
        {
            "name": "figure_s",
            "value": 1.0,
            "limit": 2.0,
            "ok": True,
            "detail": "",
            "op": "<=",
            "limit_from": "figure_limit_s",
        }
    ]
    names = [p["name"] for p in data["phases"]]
    assert names[:5] == ["preflight", "act", "act/step", "observe", "verify"]
    assert "restore" in names and names[-1] == "report"
    assert data["finished_at"].endswith("Z") and data["environment"] == "test"
    summary = (Path(journal.report_dir or "") / "summary.md").read_text()
    assert "PASS" in summary and "figure_s" in summary


def test_failed_check_gives_fail_and_undo_runs_lifo(ctx: DrillContext) -> None:
    drill = Recorder(value=3.0, limit=2.0)
    journal = execute(drill, ctx)
    assert journal.verdict == "fail" and journal.exit_code == 1
    assert drill.restored == ["second", "first", "final"]
    assert [c.name for c in journal.failed_checks] == ["figure_s"]


def test_exception_gives_error_and_still_restores(ctx: DrillContext) -> None:
    drill = Recorder(value=1.0, limit=2.0, fail_in="act")
    journal = execute(drill, ctx)
    assert journal.verdict == "error" and journal.exit_code == 2
    assert "RuntimeError: boom" in (journal.error or "")
    assert drill.restored == ["second", "first", "final"]
    phases = {p.name: p for p in journal.phases}
    assert phases["act/step"].ok is False and phases["act"].ok is False
    assert (Path(journal.report_dir or "") / "traceback.txt").exists()


def test_failed_steady_state_is_an_error_and_stops_before_acting(ctx: DrillContext) -> None:
    """A service that was not healthy before the drill is not blamed: could not run, exit 2."""
    drill = Recorder(value=1.0, limit=2.0, fail_in="preflight")
    journal = execute(drill, ctx)
    assert journal.verdict == "error" and journal.exit_code == 2
    assert "precondition not met" in (journal.error or "")
    assert "act" not in [p.name for p in journal.phases]
    assert drill.restored == ["final"]


def test_unmeasured_value_fails_its_check_naming_why(ctx: DrillContext) -> None:
    journal = execute(Recorder(value=None, limit=2.0), ctx)
    assert journal.verdict == "fail"
    (check,) = journal.failed_checks
    assert check.value is None and check.limit == 2.0 and "not measured" in check.detail


def test_a_check_on_an_undeclared_measurement_is_refused_at_definition() -> None:
    with pytest.raises(TypeError, match="figure_ms"):

        class Wrong(Drill[None, None, Figures]):
            measured = Figures
            checks = (at_most("figure_ms", limit=1.0),)


def test_report_folder_is_private(ctx: DrillContext) -> None:
    journal = execute(Recorder(value=1.0, limit=2.0), ctx)
    assert Path(journal.report_dir or "").stat().st_mode & 0o777 == 0o700


def test_junit_lists_each_check(ctx: DrillContext, tmp_path: Path) -> None:
    ctx.junit = tmp_path / "junit.xml"
    execute(Recorder(value=3.0, limit=2.0), ctx)
    suite = ET.parse(ctx.junit).getroot().find("testsuite")
    assert suite is not None and suite.get("failures") == "1"
    case = suite.find("testcase")
    assert case is not None and case.get("name") == "figure_s" and case.find("failure") is not None


def test_second_drill_on_same_inventory_is_refused(ctx: DrillContext) -> None:
    inv = ctx.inventory
    with (
        inventory_lock(inv.lock_scope, "other.drill", inv.name),
        pytest.raises(LockHeld, match=r"other\.drill"),
    ):
        execute(Recorder(value=1.0, limit=2.0), ctx)
    assert not list(ctx.report_root.glob("*/journal.json")), "a refused drill must leave no report"


SLOW_DRILL = textwrap.dedent(
    """
    import sys, time
    from pathlib import Path
    from drillbook.core.drill import Drill, DrillContext, execute
    from drillbook.core.inventory import load_inventory

    marker = Path(sys.argv[2])

    class Slow(Drill):
        name = "test.slow"
        def act(self, run, plan):
            run.on_restore("put-back", lambda: (time.sleep(0.5), marker.write_text("restored")))
            run.note("acting")
            print("ACTING", flush=True)
            time.sleep(30)

    ctx = DrillContext(inventory=load_inventory(sys.argv[1]), report_root=Path(sys.argv[3]), quiet=True)
    j = execute(Slow(), ctx)
    sys.exit(j.exit_code)
    """
)


@pytest.mark.parametrize("sig", [signal.SIGINT, signal.SIGTERM])
def test_restore_runs_after_signal(tmp_path: Path, sig: signal.Signals) -> None:
    script = tmp_path / "slow.py"
    script.write_text(SLOW_DRILL)
    marker, reports = tmp_path / "marker", tmp_path / "reports"
    env = {**os.environ, "DRILLBOOK_STATE_DIR": str(tmp_path / "state")}
    proc = subprocess.Popen(
        [sys.executable, str(script), str(INVENTORY), str(marker), str(reports)],
        stdout=subprocess.PIPE,
        text=True,
        env=env,
    )
    assert proc.stdout is not None
    assert proc.stdout.readline().strip() == "ACTING"
    time.sleep(0.2)
    proc.send_signal(sig)
    assert proc.wait(timeout=20) == 130
    assert marker.read_text() == "restored"
    (journal_path,) = reports.glob("*/journal.json")
    journal = json.loads(journal_path.read_text())
    assert journal["verdict"] == "error" and journal["interrupted"] is True
    assert sig.name in journal["error"]
    restore = [p for p in journal["phases"] if p["name"].startswith("restore")]
    assert restore and all(p["ok"] for p in restore)
