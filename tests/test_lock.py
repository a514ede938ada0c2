"""One drill at a time per fleet, whatever path or copy of the inventory names it.

The lock used to be keyed by the inventory's path: ``inventory/x``,
``inventory/x/hosts.yml`` and a copy ran two drills against one fleet at once.
"""

from __future__ import annotations

import shutil
import subprocess
import sys
import textwrap
from collections.abc import Iterator
from pathlib import Path

import pytest
import yaml
from clirun import inv

from drillbook.core.inventory import load_inventory

HOSTS = {
    "all": {
        "vars": {"ansible_connection": "local", "ansible_python_interpreter": sys.executable},
        "children": {
            "db": {"hosts": {"t-db": {"ansible_host": "10.9.0.10"}}},
            "app": {"hosts": {"t-app-1": {"ansible_host": "10.9.0.11", "app_port": 8001}}},
            "lb": {"hosts": {"t-lb": {"ansible_host": "127.0.0.1"}}},
        },
    }
}
VARS = {
    "drillbook_environment": "test",
    "lb_url": "http://127.0.0.1:9",
    "app_url": "http://{{ ansible_host }}:{{ app_port }}",
    "postgres_port": 5432,
    "postgres_dsn": "postgresql://app:secret@10.9.0.10:{{ postgres_port }}/app",
}


def _inventory(root: Path, **extra: object) -> Path:
    (root / "group_vars").mkdir(parents=True)
    (root / "hosts.yml").write_text(yaml.safe_dump(HOSTS))
    (root / "group_vars" / "all.yml").write_text(yaml.safe_dump({**VARS, **extra}))
    return root


@pytest.fixture()
def fleet(tmp_path: Path) -> Path:
    return _inventory(tmp_path / "x")


def test_every_path_to_one_fleet_has_one_id(fleet: Path, tmp_path: Path) -> None:
    copy = shutil.copytree(fleet, tmp_path / "elsewhere" / "copy")
    renamed_password = _inventory(
        tmp_path / "pw", postgres_dsn="postgresql://app:rotated@10.9.0.10:{{ postgres_port }}/app"
    )
    ids = {load_inventory(p).fleet_id for p in (fleet, fleet / "hosts.yml", copy, renamed_password)}
    assert len(ids) == 1, ids
    other_port = _inventory(tmp_path / "other", postgres_port=5433)
    assert load_inventory(other_port).fleet_id not in ids
    named = _inventory(tmp_path / "named", drillbook_fleet_id="staging-eu")
    assert load_inventory(named).fleet_id == "fleet:staging-eu"


@pytest.fixture()
def holder(fleet: Path, tmp_path: Path) -> Iterator[subprocess.Popen[str]]:
    """Another process holding the lock through ``inventory/x`` (as a running drill does)."""
    code = textwrap.dedent(
        f"""
        import sys
        from drillbook.core.inventory import load_inventory
        from drillbook.core.lock import inventory_lock
        inv = load_inventory({str(fleet)!r})
        with inventory_lock(inv.lock_scope, "chaos.kill-db", inv.name):
            print("held", flush=True)
            sys.stdin.read()
        """
    )
    proc = subprocess.Popen(
        [sys.executable, "-c", code], stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True
    )
    assert proc.stdout is not None and proc.stdout.readline().strip() == "held"
    yield proc
    assert proc.stdin is not None
    proc.stdin.close()
    proc.wait(timeout=30)


def test_two_paths_to_one_fleet_contend_for_one_lock(
    fleet: Path, tmp_path: Path, holder: subprocess.Popen[str]
) -> None:
    copy = shutil.copytree(fleet, tmp_path / "copy")
    other = _inventory(tmp_path / "other", postgres_port=5433)
    for path in (fleet / "hosts.yml", copy):
        reports = tmp_path / f"reports-{path.name}"
        ran = inv("smoke", "-i", str(path), "-r", str(reports))
        assert ran.rc == 2, ran.describe()
        assert "another drill is running against the fleet" in ran.stderr, ran.describe()
        assert "chaos.kill-db" in ran.stderr and f"via {fleet}" in ran.stderr, ran.describe()
        assert "Traceback" not in ran.stderr
    # Another fleet is not held up by this one: its smoke test runs (and fails: nothing answers).
    ran = inv("smoke", "-i", str(other), "-r", str(tmp_path / "reports-other"))
    assert "another drill" not in ran.stderr and ran.rc in (1, 2), ran.describe()
    assert list((tmp_path / "reports-other").glob("*-smoke/journal.json")), ran.describe()
