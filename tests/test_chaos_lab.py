"""Chaos drills on the real lab: each passes, a broken readiness fails, signals and SIGKILL still restore.

Every test leaves the lab healthy (the ``healthy_after`` fixture checks, and
runs ``chaos.recover`` if a test left something down). Faults are held briefly
(--duration 1) to keep the file under a few minutes.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from drillbook import labenv as lab_
from drillbook.chaos import KillApp, KillDb, KillRedis, Recover
from drillbook.chaos.drill import ChaosDrill, witness_check
from drillbook.chaos.plan import build_plan, load_settings
from drillbook.core.ansible import run_playbook
from drillbook.core.drill import DrillContext, execute
from drillbook.core.inventory import Inventory
from drillbook.core.journal import Journal
from drillbook.core.paths import REPO_ROOT

pytestmark = pytest.mark.lab

BASE_VERSION = "1.0.0"


def _drill(cls: type[ChaosDrill], inv: Inventory, instance: int | None = None, **options: Any) -> ChaosDrill:
    """A drill with the lab's thresholds, except latency bounds: timing belongs to benchmarks/.

    The CI box runs many labs at once; a healthy request's p95 there can exceed the
    inventory's latency bounds with no fault at all. These tests check behaviour
    (flips, recovery, errors, data); benchmarks/chaos.py reports the timings.
    """
    settings = load_settings(inv).model_copy(
        update={"outage_p95_limit_ms": 5000.0, "redis_latency_p95_limit_ms": 5000.0, "traffic_timeout_s": 5.0}
    )
    return cls(build_plan(inv, cls.fault, settings, instance=instance), **options)


def _run(drill: Any, inv: Inventory, report_root: Path) -> Journal:
    return execute(drill, DrillContext(inventory=inv, report_root=report_root, quiet=True))


def _explain(journal: Journal) -> str:
    return json.dumps(
        {
            "error": journal.error,
            "failed": [c.__dict__ for c in journal.failed_checks],
            "m": journal.measurements,
        },
        default=str,
    )[:3000]


def _assert_numeric_limits(journal: Journal) -> None:
    """Every numeric check journals a number as its limit and the settings field it came from."""
    numeric = [c for c in journal.checks if c.op in ("<=", ">=")]
    assert numeric, journal.checks
    for c in numeric:
        assert isinstance(c.limit, int | float) and not isinstance(c.limit, bool), c
        assert c.limit_from and journal.thresholds[c.limit_from] == c.limit, c
    lost = next(c for c in journal.checks if c.name == "acknowledged_writes_lost")
    assert lost.op == "==" and lost.limit == 0


@pytest.fixture()
def healthy_after(lab: dict[str, Any], lab_inventory: Inventory, tmp_path: Path) -> Iterator[None]:
    """The lab is healthy before the test and is left healthy after it."""
    yield
    status = lab_.status(lab_inventory)
    if not status.healthy:
        _run(Recover.for_inventory(lab_inventory), lab_inventory, tmp_path / "recover")
        status = lab_.status(lab_inventory)
    assert status.healthy, [p for p in status.pieces if not p.ok]


def test_kill_db_passes(lab_inventory: Inventory, report_root: Path, healthy_after: None) -> None:
    journal = _run(_drill(KillDb, lab_inventory, duration_s=1, traffic_rps=30), lab_inventory, report_root)
    assert journal.verdict == "pass", _explain(journal)
    m = journal.measurements
    assert 0 < m["readiness_flip_s"] <= 5
    assert set(m["readiness_flip_by_instance"]) == {"app-1", "app-2", "app-3"}
    assert m["data_intact"] is True and m["acknowledged_writes_lost"] == 0
    # both clocks are journaled: the witnessed kill and the playbook's own
    assert m["kill_witnessed_at"] and m["kill_at_playbook"] and m["kill_playbook_started_at"]
    assert 0 <= m["kill_witness_lag_s"] < 0.5
    assert m["recovery_s"] is not None and m["outage_p95_ms"] is not None
    assert "witnessed kill" in journal.witnesses["readiness_flip_s"]
    assert "PostgreSQL" in journal.witnesses["data_intact"]
    assert m["lb_detect_s"] is not None  # HAProxy took every server out too
    names = [p.name for p in journal.phases]
    assert "act/inject" in names and "restore" in names
    assert (Path(journal.report_dir or "") / "timeline.json").exists()
    _assert_numeric_limits(journal)
    assert [c.name for c in journal.checks if c.limit_from] == [
        "readiness_flip_s",
        "recovery_s",
        "outage_p95_ms",
    ]


def test_kill_redis_degrades_gracefully(
    lab_inventory: Inventory, report_root: Path, healthy_after: None
) -> None:
    drill = _drill(KillRedis, lab_inventory, duration_s=1.5, traffic_rps=40)
    journal = _run(drill, lab_inventory, report_root)
    assert journal.verdict == "pass", _explain(journal)
    m = journal.measurements
    assert m["readiness_stayed_ready"] is True
    assert m["error_pct_during_outage"] == 0 and m["requests_during_outage"] > 0
    assert m["cache_back"] is True and m["recovery_s"] is not None
    assert m["degraded_flip_s"] is not None
    _assert_numeric_limits(journal)
    flip = next(c for c in journal.checks if c.name == "degraded_flip_s")
    assert flip.limit_from == "degraded_flip_limit_s"  # its own limit, not kill-db's


def test_kill_app_routes_around(lab_inventory: Inventory, report_root: Path, healthy_after: None) -> None:
    drill = _drill(KillApp, lab_inventory, instance=2, duration_s=2, traffic_rps=50)
    journal = _run(drill, lab_inventory, report_root)
    assert journal.verdict == "pass", _explain(journal)
    m = journal.measurements
    assert m["killed_instance"] == "app-2"
    assert m["lb_detect_s"] is not None and m["lb_detect_s"] <= 5
    assert m["error_pct_during_outage"] <= 1.0
    assert "HAProxy" in journal.witnesses["lb_detect_s"]
    _assert_numeric_limits(journal)
    assert {c.name for c in journal.checks if c.limit_from} == {
        "lb_detect_s",
        "error_pct_during_outage",
        "recovery_s",
    }


def _deploy(inv: Inventory, version: str, host: str) -> None:
    run_playbook(inv, "deploy.yml", limit=host, extravars={"deploy_version": version}, cancellable=False)


def test_readiness_that_ignores_the_db_fails_kill_db(
    lab_inventory: Inventory, report_root: Path, healthy_after: None
) -> None:
    version = f"{BASE_VERSION}-rid.{int(time.time())}"
    lab_.build_release(lab_inventory, version, misconfigure=("ready-ignores-db",))
    try:
        _deploy(lab_inventory, version, "lab-app-1")  # one bad instance is enough to fail
        journal = _run(
            _drill(KillDb, lab_inventory, duration_s=1, traffic_rps=10), lab_inventory, report_root
        )
    finally:
        _deploy(lab_inventory, BASE_VERSION, "lab-app-1")
    assert journal.verdict == "fail", _explain(journal)
    failed = {c.name: c for c in journal.failed_checks}
    assert "readiness_flip_s" in failed, _explain(journal)
    detail = failed["readiness_flip_s"].detail
    assert "app-1 never answered not ready" in detail and "readiness ignores the database" in detail
    assert "app-2" not in detail  # the healthy instances flipped
    assert journal.measurements["data_intact"] is True  # the database itself was fine
    assert any(p.name == "restore" and p.ok for p in journal.phases)


def _start_drill(args: list[str], report_dir: Path) -> subprocess.Popen[str]:
    env = {**os.environ, "PYTHONUNBUFFERED": "1"}
    return subprocess.Popen(
        [sys.executable, "-m", "invoke", *args, "--report-dir", str(report_dir)],
        cwd=REPO_ROOT,
        stderr=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
        env=env,
    )


def _wait_for_line(proc: subprocess.Popen[str], needle: str, timeout_s: float = 60) -> list[str]:
    assert proc.stderr is not None
    seen: list[str] = []
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        line = proc.stderr.readline()
        if not line:
            break
        seen.append(line)
        if needle in line:
            return seen
    proc.kill()
    raise AssertionError(f"never saw {needle!r}: {''.join(seen)[-2000:]}")


def test_sigint_mid_outage_still_restores(
    lab_inventory: Inventory, tmp_path: Path, healthy_after: None
) -> None:
    check = witness_check(build_plan(lab_inventory, "kill-db", load_settings(lab_inventory)))
    proc = _start_drill(["chaos.kill-db", "--duration", "60", "--traffic", "10"], tmp_path)
    _wait_for_line(proc, "fault witnessed")
    assert check()[0] is False, "PostgreSQL should be down mid-outage"
    proc.send_signal(signal.SIGINT)
    _out, err = proc.communicate(timeout=90)
    assert proc.returncode == 130, err[-2000:]
    assert check()[0] is True, "PostgreSQL was not restarted"
    (path,) = tmp_path.glob("*/journal.json")
    journal = Journal.read(path)
    assert journal.interrupted and "SIGINT" in (journal.error or "")
    restore = [p for p in journal.phases if p.name.startswith("restore")]
    assert restore and all(p.ok for p in restore), restore
    assert journal.measurements["restore_attempts"][-1]["ok"] is True


def test_recover_after_a_sigkilled_drill(
    lab_inventory: Inventory, tmp_path: Path, healthy_after: None
) -> None:
    check = witness_check(build_plan(lab_inventory, "kill-db", load_settings(lab_inventory)))
    proc = _start_drill(["chaos.kill-db", "--duration", "60", "--traffic", "10"], tmp_path)
    _wait_for_line(proc, "fault witnessed")
    proc.kill()  # SIGKILL: no restore phase can run
    proc.communicate(timeout=30)
    time.sleep(0.3)
    assert check()[0] is False, "the killed drill left PostgreSQL down"
    res = subprocess.run(
        [sys.executable, "-m", "invoke", "chaos.recover", "--report-dir", str(tmp_path / "recover")],
        cwd=REPO_ROOT,
        capture_output=True,
        text=True,
        timeout=180,
    )
    assert res.returncode == 0, res.stdout + res.stderr
    assert "chaos.recover: PASS" in res.stdout
    assert lab_.status(lab_inventory).healthy
    # idempotent: a second run finds everything running and changes nothing
    again = _run(Recover.for_inventory(lab_inventory), lab_inventory, tmp_path / "again")
    assert again.verdict == "pass", _explain(again)
    assert again.measurements["down_before"] == []
    assert sum(again.measurements["changed"].values()) == 0, again.measurements["changed"]
