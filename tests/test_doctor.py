"""``inv doctor`` against the real lab: what a new user sees before running any drill.

The lab is the reference service; a copy of its inventory with one variable
overridden plays the user who got a path wrong.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from clirun import inv, lab_copy

pytestmark = pytest.mark.lab

WRONG_READY = """\
service_health:
  live: /health/live
  ready: /healthz/ready
  degraded: {json_pointer: /degraded, equals: true}
"""


def test_doctor_on_the_lab_says_every_drill_can_run(lab: dict[str, Any]) -> None:
    ran = inv("doctor")
    assert ran.rc == 0, ran.describe()
    for drill in (
        "backup.run",
        "backup.restore-test",
        "migrate.rehearse",
        "deploy.canary",
        "chaos.kill-db",
        "chaos.kill-redis",
        "chaos.kill-app",
        "load.run",
        "smoke",
        "audit.http",
    ):
        line = next((x for x in ran.stdout.splitlines() if x.startswith(drill + " ")), "")
        assert "can run" in line and "CANNOT" not in line, ran.describe()
    assert "every drill the checklist requires can" in ran.stdout


def test_a_wrong_readiness_path_is_named_with_the_drills_it_blocks(
    lab: dict[str, Any], tmp_path: Path
) -> None:
    copy = lab_copy(tmp_path / "inventory", WRONG_READY)
    ran = inv("doctor", "-i", str(copy))
    assert ran.rc == 1, ran.describe()
    lines = ran.stdout.splitlines()
    blocked = {x.split()[0] for x in lines if "CANNOT RUN" in x}
    assert blocked == {"deploy.canary", "chaos.kill-db", "chaos.kill-redis", "chaos.kill-app"}, ran.describe()
    assert "service_health.ready=/healthz/ready answers 404 on app-1, app-2, app-3" in ran.stdout
    assert (
        "cannot run: deploy.canary, chaos.kill-db, chaos.kill-redis" in ran.stdout
    )  # kill-app: not required
    assert "backup.run           can run" in ran.stdout


def test_a_metric_the_service_does_not_expose_blocks_the_canary(lab: dict[str, Any], tmp_path: Path) -> None:
    copy = lab_copy(tmp_path / "inventory", "service_metrics: {requests_total: app_requests_total}\n")
    ran = inv("doctor", "-i", str(copy))
    assert ran.rc == 1, ran.describe()
    assert "metric service_metrics.requests_total=app_requests_total does not exist at /metrics" in ran.stdout


def test_kill_redis_is_refused_in_one_line_when_the_service_uses_no_redis(
    lab: dict[str, Any], tmp_path: Path
) -> None:
    copy = lab_copy(tmp_path / "inventory", "service_uses_redis: false\n")
    ran = inv("chaos.kill-redis", "-i", str(copy))
    assert ran.rc == 2, ran.describe()
    assert [x for x in ran.err_lines if x.startswith("error:")] == [
        f"error: inventory {copy}: service_uses_redis is false, the service has no Redis to lose"
    ]
    doctor = inv("doctor", "-i", str(copy))
    line = next(x for x in doctor.stdout.splitlines() if x.startswith("chaos.kill-redis "))
    assert "not applicable" in line, doctor.describe()
    # a drill that does not apply to the service is not one the checklist can demand of it
    assert "service_uses_redis is false" in doctor.stdout and doctor.rc == 0, doctor.describe()


def test_doctor_reads_only_and_refuses_a_bad_checklist_path(tmp_path: Path) -> None:
    ran = inv("doctor", "--checklist", str(tmp_path / "nope.yml"))
    assert ran.rc == 2 and ran.err_lines[0].startswith("error: checklist"), ran.describe()
