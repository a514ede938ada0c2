"""No secret in any artefact: a set of real drills on the lab, then a grep for the lab's passwords.

The drills run as a user runs them (``inv ...`` in a subprocess, with
``--report-dir`` and ``--junit`` into a temp dir); then every file under the
report folder, every JUnit file, the HTML page and the Prometheus export, the
console output of every command and ``lab.status --json`` are searched for
every password the lab's inventory holds. Report folders must be 0700 and
their files 0600. A second test runs a real deploy with ansible-runner's raw
event files kept, to prove the roles' module arguments (pidfile_daemon's
``env``) carry no password even before drillbook's own redaction.
"""

from __future__ import annotations

import json
import os
import stat
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from drillbook.core import redact
from drillbook.core.ansible import run_playbook
from drillbook.core.inventory import Inventory
from drillbook.core.journal import Journal, make_report_dir, report_modes, summary_markdown, write_atomic
from drillbook.core.junit import write_junit
from drillbook.core.paths import REPO_ROOT

DRILLS = [
    ["smoke"],
    ["backup.run"],
    ["backup.restore-test"],
    ["migrate.rehearse"],
    ["chaos.kill-redis"],
]


def lab_passwords(inv: Inventory) -> list[str]:
    """Every secret-named variable of the lab's hosts, as Ansible templates it."""
    found: set[str] = set()
    for host in inv.hosts("all"):
        for name in inv._raw_vars(host):
            if redact.is_secret_key(name):
                value = inv.var(name, host=host)
                if isinstance(value, str) and len(value) >= redact.MIN_SECRET_LEN:
                    found.add(value)
    return sorted(found)


def _files(*roots: Path) -> Iterator[Path]:
    for root in roots:
        if root.is_file():
            yield root
        elif root.is_dir():
            yield from (p for p in root.rglob("*") if p.is_file())


def _leaks(passwords: list[str], texts: dict[str, bytes]) -> list[str]:
    return [
        f"{where}: {password[:3]}..."
        for where, text in texts.items()
        for password in passwords
        if password.encode() in text
    ]


def _inv(*args: str, env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "invoke", *args],
        cwd=REPO_ROOT,
        capture_output=True,
        text=True,
        timeout=900,
        env=env,
    )


# -- unit: the writers redact and the modes are private ------------------------------


def test_journal_summary_and_junit_are_redacted_and_private(tmp_path: Path) -> None:
    redact.remember("known-secret-value")
    report = make_report_dir(tmp_path / "20260101T000000Z-x")
    journal = Journal(drill="x", inventory="i", environment="lab", report_dir=str(report))
    journal.thresholds = {
        "dsn": "postgresql://app:pw-in-dsn@db:5432/app",
        "admin_password": "plain-pass",
        "note": "it said known-secret-value",
    }
    journal.error = "psql: host=db password=kv-secret user=app failed"
    (report / "extra.txt").write_text("written by a drill with write_text\n")
    journal.write(report / "journal.json")
    summary = summary_markdown(journal)
    junit = tmp_path / "junit.xml"
    write_junit(journal, junit)
    text = (report / "journal.json").read_text() + summary + junit.read_text()
    for secret in ("pw-in-dsn", "plain-pass", "known-secret-value", "kv-secret"):
        assert secret not in text, secret
    data = json.loads((report / "journal.json").read_text())
    assert data["thresholds"]["dsn"] == "postgresql://app@db:5432/app"
    assert data["thresholds"]["admin_password"] == redact.MASK
    assert stat.S_IMODE(report.stat().st_mode) == 0o700
    for path in (report / "journal.json", report / "extra.txt", junit):
        assert stat.S_IMODE(path.stat().st_mode) == 0o600, path


def test_report_mode_can_be_loosened_on_request(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("DRILLBOOK_REPORT_MODE", "0750")
    assert report_modes() == (0o750, 0o640)
    report = make_report_dir(tmp_path / "r")
    write_atomic(report / "summary.md", "x")
    assert stat.S_IMODE(report.stat().st_mode) == 0o750
    assert stat.S_IMODE((report / "summary.md").stat().st_mode) == 0o640
    monkeypatch.setenv("DRILLBOOK_REPORT_MODE", "0077")  # the owner locked out: refused
    with pytest.raises(Exception, match="DRILLBOOK_REPORT_MODE"):
        report_modes()


def test_pidfile_daemon_keeps_env_secrets_out_of_its_result(tmp_path: Path) -> None:
    """The module itself, through ansible-runner, raw events read back (no drillbook redaction)."""
    import ansible_runner

    env = {
        "REFSVC_DATABASE_URL": "postgresql://app:url-secret-123@db/app",
        "API_TOKEN": "token-secret-456",
        "PYTHONDONTWRITEBYTECODE": "1",
    }
    (tmp_path / "runner").mkdir()
    args = {"name": "probe", "pidfile": str(tmp_path / "none.pid"), "state": "stopped", "env": env}
    runner = ansible_runner.run(
        private_data_dir=str(tmp_path / "runner"),
        host_pattern="localhost",
        inventory=f"localhost ansible_connection=local ansible_python_interpreter={sys.executable}",
        module="pidfile_daemon",
        module_args=json.dumps(args),
        envvars={"ANSIBLE_LIBRARY": str(REPO_ROOT / "roles" / "pidfile_daemon" / "library")},
        quiet=True,
    )
    assert runner.status == "successful"
    raw = json.dumps(list(runner.events))
    assert '"invocation"' in raw and "PYTHONDONTWRITEBYTECODE" in raw  # the args are there...
    assert "url-secret-123" not in raw and "token-secret-456" not in raw  # ...without the secrets
    assert '"pid": null' in raw  # short values such as "1" do not mask the rest of the result


# -- the lab: real drills, real files --------------------------------------------------


@pytest.mark.lab
@pytest.mark.slow
def test_no_lab_password_in_any_artefact_of_a_set_of_drills(
    lab: dict[str, Any], lab_inventory: Inventory, tmp_path: Path
) -> None:
    passwords = lab_passwords(lab_inventory)
    assert len(passwords) >= 2, passwords  # postgres_db_password, postgres_admin_password at least
    # the drills had the passwords in hand: the DSNs they connect with carry them
    assert any(p in lab_inventory.topology.postgres_dsn for p in passwords)

    reports, junit_dir = tmp_path / "reports", tmp_path / "junit"
    env = {**os.environ, "DRILLBOOK_REPORT_DIR": str(reports)}
    env.pop("DRILLBOOK_REPORT_MODE", None)
    console: dict[str, bytes] = {}
    verdicts: dict[str, int] = {}
    for drill in DRILLS:
        name = drill[0]
        proc = _inv(*drill, "--report-dir", str(reports), "--junit", str(junit_dir / f"{name}.xml"), env=env)
        console[f"console of {name}"] = (proc.stdout + proc.stderr).encode()
        verdicts[name] = proc.returncode
    stdout: dict[str, str] = {}
    for extra in (
        ["lab.status", "--json"],
        ["report.metrics", "--report-dir", str(reports), "--out", str(tmp_path / "drillbook.prom")],
        ["report.html", "--report-dir", str(reports), "--out", str(tmp_path / "scorecard.html")],
        ["report.scorecard", "--report-dir", str(reports)],
    ):
        proc = _inv(*extra, env=env)
        console[f"console of {extra[0]}"] = (proc.stdout + proc.stderr).encode()
        stdout[extra[0]] = proc.stdout
        assert proc.returncode in (0, 1), (extra, proc.stderr[-2000:])

    status = json.loads(stdout["lab.status"])
    assert status["postgres_dsn"].startswith("postgresql://app@"), status["postgres_dsn"]

    # every drill ran and wrote its journal, summary and JUnit file
    journals = sorted(reports.glob("*/journal.json"))
    assert len(journals) >= len(DRILLS), (verdicts, [j.parent.name for j in journals])
    assert all((junit_dir / f"{d[0]}.xml").exists() for d in DRILLS)
    assert (tmp_path / "drillbook.prom").exists() and (tmp_path / "scorecard.html").exists()

    files = {str(p.relative_to(tmp_path)): p.read_bytes() for p in _files(reports, junit_dir)}
    files[str(tmp_path / "drillbook.prom")] = (tmp_path / "drillbook.prom").read_bytes()
    files[str(tmp_path / "scorecard.html")] = (tmp_path / "scorecard.html").read_bytes()
    # the grep itself finds a password where there is one
    assert _leaks(passwords, {"control": f"x{passwords[0]}x".encode()})
    leaks = _leaks(passwords, {**files, **console})
    assert not leaks, leaks

    # report folders 0700, their files 0600
    dir_mode, file_mode = report_modes()
    loose = [
        f"{p.relative_to(reports)} {oct(stat.S_IMODE(p.stat().st_mode))}"
        for p in reports.rglob("*")
        if not p.is_symlink() and stat.S_IMODE(p.stat().st_mode) != (dir_mode if p.is_dir() else file_mode)
    ]
    assert not loose, loose
    assert all(stat.S_IMODE(p.stat().st_mode) == file_mode for p in junit_dir.iterdir())
    # every drill ended with a verdict (pass, fail or error), none crashed before its report
    assert set(verdicts.values()) <= {0, 1, 2}, verdicts


@pytest.mark.lab
@pytest.mark.slow
def test_raw_ansible_events_of_a_deploy_carry_no_password(
    lab: dict[str, Any], lab_inventory: Inventory, tmp_path: Path
) -> None:
    """deploy.yml restarts nothing here (same release) but runs every task, pidfile_daemon's env included."""
    passwords = lab_passwords(lab_inventory)
    host = lab_inventory.hosts("canary")[0]
    version = Path(os.readlink(Path(str(lab_inventory.var("app_base_dir"))) / "app-1" / "current")).name
    artifacts = tmp_path / "runner-artifacts"
    result = run_playbook(
        lab_inventory,
        "deploy.yml",
        limit=host,
        extravars={"deploy_version": version, "deploy_migrate": False},
        artifact_dir=artifacts,
    )
    assert any("Start refservice" in r.task for r in result.results)
    events = {str(p): p.read_bytes() for p in _files(artifacts) if p.is_file()}
    assert any(b"REFSVC_DATABASE_URL" in text for text in events.values())  # the env was there
    leaks = _leaks(passwords, events)
    assert not leaks, leaks
