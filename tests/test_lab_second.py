"""The second lab: the ledger service (lab/ledger) brought up by the same roles from its own inventory.

``inv lab.up -i inventory/lab-ledger`` runs beside the reference lab (its ports are
DRILLBOOK_LAB_PORT_BASE + 100, its state $DRILLBOOK_LAB_DIR-ledger). The tests check
what a user would: each instance ready on the profile's path, login and a write that
lands in PostgreSQL, the release named by a header, readiness 500 without the
database, releases as a directory and as a wheel each in their own virtualenv
under the service's own account. The drills against the same lab, and lab.down
stopping everything, are in test_ledger_drills.py.
"""

from __future__ import annotations

import contextlib
import os
import pwd
import socket
import subprocess
import sys
import time
import uuid
from pathlib import Path

import httpx
import psycopg
import pytest

from drillbook.backup import boot
from drillbook.core.ansible import run_playbook
from drillbook.core.inventory import Inventory, load_inventory
from drillbook.core.paths import REPO_ROOT
from drillbook.core.profile import load_profile

pytestmark = pytest.mark.lab

LEDGER = REPO_ROOT / "inventory" / "lab-ledger"


def _inv(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "invoke", *args], cwd=REPO_ROOT, capture_output=True, text=True, timeout=900
    )


def _listening(url: str) -> bool:
    host, port = url.removeprefix("http://").split(":")
    with socket.socket() as s:
        s.settimeout(0.5)
        return s.connect_ex((host, int(port))) == 0


def _process(pidfile: Path) -> tuple[list[str], str]:
    """The command line and the user of the process a pid file names."""
    pid = pidfile.read_text().strip()
    cmdline = Path(f"/proc/{pid}/cmdline").read_bytes().decode().split("\0")
    uid = next(
        line.split()[1]
        for line in Path(f"/proc/{pid}/status").read_text().splitlines()
        if line.startswith("Uid:")
    )
    return cmdline, pwd.getpwuid(int(uid)).pw_name


@pytest.fixture()
def ledger(ledger_lab: Inventory) -> Inventory:
    """The ledger lab (conftest's ``ledger_lab``: one per session, shared with test_ledger_drills.py,
    whose last test takes it down and checks that)."""
    return ledger_lab


def _token(inv: Inventory) -> str:
    response = httpx.post(
        f"{inv.topology.lb_url}/api/v1/auth/login",
        json={"username": "drill", "password": inv.var("ledger_password")},
        timeout=5,
    )
    assert response.status_code == 200, response.text
    return str(response.json()["access_token"])


def test_ports_and_state_of_its_own(ledger: Inventory) -> None:
    reference = load_inventory(REPO_ROOT / "inventory" / "lab")
    base = int(os.environ["DRILLBOOK_LAB_PORT_BASE"])
    assert ledger.topology.lb_url == f"http://127.0.0.1:{base + 180}"
    assert [i.url for i in ledger.topology.app_instances] == [
        f"http://127.0.0.1:{base + 101}",
        f"http://127.0.0.1:{base + 102}",
    ]
    assert ledger.var("lab_dir") == str(reference.var("lab_dir")) + "-ledger"
    assert ledger.topology.redis_url is None and not load_profile(ledger).uses_redis
    assert ledger.fleet_id != reference.fleet_id


def test_every_instance_is_ready_on_the_profile_path(ledger: Inventory) -> None:
    health = load_profile(ledger).health
    assert health.ready == "/readyz"
    for inst in ledger.topology.app_instances:
        response = httpx.get(f"{inst.url}{health.ready}", timeout=5)
        assert response.status_code == 200, (inst.name, response.text)
        assert response.headers["X-Release"] == "1.0.0"  # identity by header: no /version
        assert httpx.get(f"{inst.url}/version", timeout=5).status_code == 404
    proc = _inv("lab.status", "-i", str(LEDGER), "--json")
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert '"healthy": true' in proc.stdout and "/readyz" in proc.stdout


def test_login_gives_a_token_whose_writes_land_in_postgres(ledger: Inventory) -> None:
    lb = ledger.topology.lb_url
    refused = httpx.post(f"{lb}/api/v1/entries", json={"account": "a", "amount_cents": 1}, timeout=5)
    assert refused.status_code == 401 and refused.json() == {"detail": "not authenticated"}
    wrong = httpx.post(f"{lb}/api/v1/auth/login", json={"username": "drill", "password": "nope"}, timeout=5)
    assert wrong.status_code == 401 and "detail" in wrong.json()

    auth = {"Authorization": f"Bearer {_token(ledger)}"}
    created = httpx.post(
        f"{lb}/api/v1/entries",
        json={"account": "test", "amount_cents": 4200, "memo": "m"},
        headers=auth,
        timeout=5,
    )
    assert created.status_code == 201, created.text
    entry_id = uuid.UUID(created.json()["id"])  # UUID ids
    with psycopg.connect(ledger.topology.postgres_dsn) as conn:
        row = conn.execute("SELECT amount_cents FROM entries WHERE id = %s", (entry_id,)).fetchone()
    assert row == (4200,)
    assert httpx.get(f"{lb}/api/v1/entries/{entry_id}", headers=auth, timeout=5).json()["memo"] == "m"
    assert httpx.delete(f"{lb}/api/v1/entries/{entry_id}", headers=auth, timeout=5).status_code == 204
    gone = httpx.get(f"{lb}/api/v1/entries/{entry_id}", headers=auth, timeout=5)
    assert gone.status_code == 404 and gone.json() == {"detail": "entry not found"}
    metrics = httpx.get(f"{ledger.topology.app_instances[0].url}/metrics", timeout=5).text
    assert 'ledger_requests_total{code="201",handler="/api/v1/entries",method="POST"}' in metrics
    assert 'le="0.5"' in metrics and 'le="0.25"' not in metrics  # coarse buckets


def test_boot_uses_the_inventory_start_command_and_readiness_is_500_without_db(
    ledger: Inventory, tmp_path: Path
) -> None:
    """backup --boot-app's instance: the inventory's command, its own port; no database -> 500."""
    dead = "postgresql://ledger:x@127.0.0.1:1/ledger"
    app = boot.start_app(ledger, dead, tmp_path / "boot.log")
    try:
        assert app.ready_url.endswith("/readyz")
        statuses = set()
        for _ in range(100):
            with contextlib.suppress(httpx.TransportError):
                statuses.add(httpx.get(app.ready_url, timeout=2).status_code)
            if statuses:
                break
            time.sleep(0.2)
        assert statuses == {500}, (tmp_path / "boot.log").read_text()[-2000:]
        assert boot.wait_ready(app, 2) is None
    finally:
        app.stop()
    good = boot.start_app(ledger, ledger.topology.postgres_dsn, tmp_path / "boot2.log")
    try:
        assert boot.wait_ready(good, 60) is not None, (tmp_path / "boot2.log").read_text()[-2000:]
    finally:
        good.stop()


def test_directory_then_wheel_release_each_in_its_own_virtualenv(ledger: Inventory, tmp_path: Path) -> None:
    home = Path(str(ledger.var("lab_dir"))) / "app" / "ledger-2"
    first = home / "releases" / "1.0.0"
    # the lab deployed the source directory: code in the release, a virtualenv beside it
    venvs = home / "venvs"
    assert (first / "ledger" / "app.py").is_file() and (venvs / "1.0.0" / ".drillbook-complete").is_file()
    cmdline, user = _process(home / "ledger.pid")
    assert cmdline[0] == f"{venvs}/1.0.0/bin/python" and user == "ledger"

    wheel_dir = tmp_path / "dist"
    built = subprocess.run(
        [
            sys.executable,
            "-m",
            "pip",
            "wheel",
            "--quiet",
            "--no-deps",
            "-w",
            str(wheel_dir),
            str(REPO_ROOT / "lab" / "ledger"),
        ],
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert built.returncode == 0, built.stderr[-2000:]
    wheel = next(wheel_dir.glob("ledger-*.whl"))
    result = run_playbook(
        ledger,
        "deploy.yml",
        limit="ledger-app-2",
        extravars={
            "deploy_version": "2.0.0-wheel",
            "app_release_kind": "wheel",
            "app_release_source": str(wheel),
            "app_requirements": str(REPO_ROOT / "lab" / "ledger" / "requirements.txt"),
        },
    )
    assert result.changed > 0  # run_playbook raises when the deploy fails
    second = home / "releases" / "2.0.0-wheel"
    assert (home / "current").resolve() == second and (home / "previous").resolve() == first
    # the package lives in the new release's own virtualenv; the old release is untouched
    assert not (second / "ledger").exists()
    assert list((venvs / "2.0.0-wheel").glob("lib/python3*/site-packages/ledger/app.py"))
    assert not list((venvs / "1.0.0").glob("lib/python3*/site-packages/ledger"))
    assert (venvs / "1.0.0" / ".drillbook-complete").is_file()
    cmdline, user = _process(home / "ledger.pid")
    assert cmdline[0] == f"{venvs}/2.0.0-wheel/bin/python" and user == "ledger"
    url = ledger.topology.instance("ledger-2").url
    response = httpx.get(f"{url}/readyz", timeout=5)
    assert response.status_code == 200 and response.headers["X-Release"] == "2.0.0-wheel"
    assert httpx.get(f"{url}/livez", timeout=5).headers["X-Release"] == "2.0.0-wheel"


def test_git_ref_release_with_its_requirements_file(ledger: Inventory, tmp_path: Path) -> None:
    """A tag of a git repository, checked out beside the other releases, its requirements.txt installed."""
    repo = tmp_path / "ledger.git"
    subprocess.run(["cp", "-r", str(REPO_ROOT / "lab" / "ledger"), str(repo)], check=True)
    git = ["git", "-C", str(repo), "-c", "user.name=t", "-c", "user.email=t@example.com"]
    for args in (["init", "-q"], ["add", "."], ["commit", "-qm", "ledger"], ["tag", "v3"]):
        subprocess.run([*git, *args], check=True, capture_output=True)
    run_playbook(
        ledger,
        "deploy.yml",
        limit="ledger-app-1",
        extravars={
            "deploy_version": "3.0.0-git",
            "app_release_kind": "git",
            "app_release_source": f"file://{repo}",
            "app_git_ref": "v3",
        },
    )
    home = Path(str(ledger.var("lab_dir"))) / "app" / "ledger-1"
    assert (home / "current").resolve() == home / "releases" / "3.0.0-git"
    assert (home / "releases" / "3.0.0-git" / "ledger" / "app.py").is_file()
    cmdline, _ = _process(home / "ledger.pid")
    assert cmdline[0] == f"{home}/venvs/3.0.0-git/bin/python"
    url = ledger.topology.instance("ledger-1").url
    assert httpx.get(f"{url}/readyz", timeout=5).headers["X-Release"] == "3.0.0-git"


def test_chaos_kill_and_restart_use_the_inventory_command(ledger: Inventory) -> None:
    """chaos.kill-app's hands (playbooks/chaos.yml): SIGKILL, then the role's start (inventory command)."""
    home = Path(str(ledger.var("lab_dir"))) / "app" / "ledger-1"
    url = ledger.topology.instance("ledger-1").url
    before = (home / "ledger.pid").read_text().strip()
    common = {"chaos_target": "ledger-app-1", "chaos_role": "app"}
    run_playbook(ledger, "chaos.yml", extravars={**common, "chaos_action": "kill"})
    assert (
        not Path(f"/proc/{before}").exists()
        or "ledger.app" not in Path(f"/proc/{before}/cmdline").read_text()
    )
    assert not _listening(url)
    run_playbook(ledger, "chaos.yml", extravars={**common, "chaos_action": "start"})
    cmdline, user = _process(home / "ledger.pid")
    assert cmdline[1:5] == ["-m", "uvicorn", "ledger.app:app", "--host"] and user == "ledger"
    assert httpx.get(f"{url}/readyz", timeout=5).status_code == 200
