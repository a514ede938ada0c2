"""The production guard, tried as an operator would: every writing task on a production inventory.

Each guarded task must refuse in one line with exit 2 before anything runs: no
report folder, no lock file, no Ansible (the inventory's hosts are unreachable
over SSH, so a task that got as far as Ansible would say so instead).
Read-only tasks stay allowed, ``--allow-production`` gets past the guard, and the
consent ``runbook.run`` hands its steps covers one fleet only.
"""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml
from clirun import inv, lab_copy
from test_cli_grammar import TASKS

from drillbook.core.inventory import load_inventory

#: Values for required positional arguments (the guard must run before they are judged).
POSITIONAL = {"version": "9.9.9", "name": "db-outage", "item": "sec-dependency-review"}
GUARDED = sorted(name for name, task in TASKS.items() if task.writes)


@pytest.fixture(scope="module")
def production(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The lab inventory marked production, with every host behind a closed SSH port."""
    dest = lab_copy(tmp_path_factory.mktemp("prod") / "inventory", "drillbook_environment: production\n")
    hosts = yaml.safe_load((dest / "hosts.yml").read_text())
    hosts["all"]["vars"].update({"ansible_connection": "ssh", "ansible_host": "127.0.0.1", "ansible_port": 9})
    (dest / "hosts.yml").write_text(yaml.safe_dump(hosts))
    return dest


def _positionals(name: str) -> list[str]:
    task = TASKS[name]
    return [POSITIONAL[p] for p in task.positional]


def test_the_guarded_list_covers_what_the_issue_names() -> None:
    named = [
        "lab.down", "lab.up", "demo", "load.run", "smoke", "audit.http", "backup.restore-test",
        "backup.restore", "backup.prune", "backup.run", "chaos.recover", "chaos.kill-db",
        "chaos.kill-redis", "chaos.kill-app", "migrate.up", "migrate.rollback", "migrate.rehearse",
        "deploy.canary", "deploy.promote", "deploy.rollback", "runbook.run", "lab.release",
    ]  # fmt: skip
    assert sorted(named) == GUARDED


@pytest.mark.parametrize("name", GUARDED)
def test_a_writing_task_refuses_production_before_anything_runs(
    name: str, production: Path, tmp_path: Path
) -> None:
    reports, state = tmp_path / "reports", tmp_path / "state"
    ran = inv(
        name,
        *_positionals(name),
        "-i",
        str(production),
        env={"DRILLBOOK_REPORT_DIR": str(reports), "DRILLBOOK_STATE_DIR": str(state)},
    )
    assert ran.rc == 2, ran.describe()
    assert ran.err_lines == [
        f"error: {name} refused: inventory {production} is production "
        "(drillbook_environment: production); add --allow-production to run it anyway"
    ], ran.describe()
    assert "Traceback" not in ran.stdout + ran.stderr
    assert not reports.exists(), "a report folder was made"
    assert not (state / "locks").exists() or not any((state / "locks").iterdir()), "a lock was taken"
    assert ran.seconds < 120, ran.describe()  # 1.2-1.6 s on a quiet machine; ~30 s at load 22 on 2 cores


def test_read_only_tasks_stay_allowed_on_production(production: Path, tmp_path: Path) -> None:
    for argv in (
        ("report.list", "-r", str(tmp_path)),
        ("report.scorecard", "-r", str(tmp_path)),
        ("runbook.list",),
        ("chaos.kill-db", "--dry-run"),  # --dry-run changes nothing: the plan says it would be refused
    ):
        ran = inv(*argv, "-i", str(production)) if argv[0] != "runbook.list" else inv(*argv)
        assert ran.rc == 0 and "refused:" not in ran.stderr, ran.describe()
    assert "refused: this inventory is production" in ran.stdout


def test_allow_production_gets_past_the_guard_only_when_given(production: Path) -> None:
    """Past the guard, the next check speaks: lab.release judges its --error-rate."""
    ran = inv("lab.release", "9.9.9", "--error-rate", "7", "-i", str(production), "--allow-production")
    assert ran.rc == 2 and ran.err_lines == ["error: --error-rate must be <= 1, got 7"], ran.describe()


def test_runbook_consent_covers_its_own_fleet_only(production: Path) -> None:
    fleet = load_inventory(production).fleet_id
    argv = ("lab.release", "9.9.9", "--error-rate", "7", "-i", str(production))
    ran = inv(*argv, env={"DRILLBOOK_ALLOW_PRODUCTION": "1"})
    assert ran.rc == 2 and "refused" in ran.stderr, ran.describe()
    ran = inv(*argv, env={"DRILLBOOK_ALLOW_PRODUCTION": fleet})
    assert ran.rc == 2 and ran.err_lines == ["error: --error-rate must be <= 1, got 7"], ran.describe()


RUNBOOK = """\
---
title: Stage a release
severity: SEV3
alerts: []
tasks: [lab.release]
owner: test
---
# Stage a release

1. Build it:

   ```shell
   inv lab.release 9.9.9 --error-rate 7
   ```
"""


def test_runbook_run_passes_its_consent_to_its_steps(production: Path, tmp_path: Path) -> None:
    """On-call at 3 a.m. on production: --allow-production on the walk reaches each step's own guard."""
    (tmp_path / "runbooks").mkdir()
    (tmp_path / "runbooks" / "stage.md").write_text(RUNBOOK)
    argv = ("runbook.run", "stage", "--yes", "--dir", str(tmp_path / "runbooks"), "-i", str(production))
    ran = inv(*argv, "-r", str(tmp_path / "refused"))
    assert ran.rc == 2 and ran.err_lines[0].startswith("error: runbook.run refused"), ran.describe()
    ran = inv(*argv, "-r", str(tmp_path / "allowed"), "--allow-production")
    # The step got past its own guard: the next check speaks.
    assert "error: --error-rate must be <= 1, got 7" in ran.stderr, ran.describe()
    assert "refused" not in ran.stderr, ran.describe()
