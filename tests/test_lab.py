"""The lab against the real services: up, status (also as JSON through inv), idempotence, down, bad input."""

from __future__ import annotations

import json
import os
import shutil
import socket
import subprocess
import sys
from pathlib import Path
from typing import Any

import httpx
import psutil
import psycopg
import pytest
import redis

from drillbook import labenv as lab_
from drillbook.core.haproxy import HAProxy
from drillbook.core.inventory import load_inventory
from drillbook.core.paths import LAB_INVENTORY, REPO_ROOT

pytestmark = pytest.mark.lab


def _inv(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "invoke", *args], cwd=REPO_ROOT, capture_output=True, text=True, timeout=300
    )


def test_status_json_names_every_piece(lab: dict[str, Any]) -> None:
    proc = _inv("lab.status", "--json")
    assert proc.returncode == 0, proc.stderr
    data = json.loads(proc.stdout)
    for key in ("lb_url", "postgres_dsn", "redis_url", "app_instances", "haproxy_socket"):
        assert data[key], key
    assert len(data["app_instances"]) == 3 and data["healthy"] is True
    # no password in the JSON; with the inventory's password the DSN reaches the database
    assert "lab-password" not in proc.stdout and ":app-lab-password@" not in proc.stdout
    assert "@" in data["postgres_dsn"]
    # every piece answers for real, outside drillbook's own health code
    with psycopg.connect(data["postgres_dsn"], password="app-lab-password") as conn:
        assert conn.execute("select 1").fetchone() == (1,)
    assert redis.Redis.from_url(data["redis_url"]).ping()
    for url in data["app_instances"]:
        assert httpx.get(f"{url}/health/ready").status_code == 200
    assert httpx.get(f"{data['lb_url']}/health/live").status_code == 200
    stats = HAProxy(data["haproxy_socket"]).stats("app")
    assert sorted(s.server for s in stats) == ["app-1", "app-2", "app-3"] and all(s.up for s in stats)


def test_second_up_changes_nothing(lab: dict[str, Any], lab_inventory: Any) -> None:
    result = lab_.up(lab_inventory)
    assert result.changed == 0, [r.task for r in result.results if r.status == "changed"]


def test_port_taken_is_one_clear_error(lab: dict[str, Any]) -> None:
    """A second lab on the same ports fails before starting anything, with the port named."""
    # not under pytest's tmp_path: that is private to root and the postgres user must reach the cluster
    other = REPO_ROOT / ".lab-test-clash"
    env = {**os.environ, "DRILLBOOK_LAB_DIR": str(other)}
    try:
        proc = subprocess.run(
            [sys.executable, "-m", "invoke", "lab.up"],
            cwd=REPO_ROOT,
            capture_output=True,
            text=True,
            env=env,
            timeout=600,
        )
    finally:
        shutil.rmtree(other, ignore_errors=True)
    assert proc.returncode == 2, proc.stdout + proc.stderr
    assert "already in use" in proc.stderr and "Traceback" not in proc.stderr
    assert len([line for line in proc.stderr.splitlines() if line.startswith("error:")]) == 1


def test_down_stops_everything_and_up_brings_it_back(lab: dict[str, Any], lab_inventory: Any) -> None:
    heartbeat_pid = int((Path(lab_inventory.var("heartbeat_dir")) / "heartbeat.pid").read_text().split()[0])
    lab_.down(lab_inventory)
    status = lab_.status(lab_inventory)
    assert not any(p.ok for p in status.pieces)
    assert "heartbeat" in {p.piece for p in status.pieces}
    assert not _running(heartbeat_pid), "the heartbeat writer still runs after lab.down"
    port = int(lab["lb_url"].rsplit(":", 1)[1])
    with socket.socket() as sock:
        assert sock.connect_ex(("127.0.0.1", port)) != 0, "HAProxy still listening after lab.down"
    lab_.up(lab_inventory)
    assert lab_.status(lab_inventory).healthy


def _running(pid: int) -> bool:
    """The process runs: a zombie (exited, not yet reaped by an init that does not reap) has stopped."""
    try:
        return psutil.Process(pid).status() != psutil.STATUS_ZOMBIE
    except psutil.NoSuchProcess:
        return False


def test_bad_inventory_is_exit_2_one_line(tmp_path: Path) -> None:
    (tmp_path / "hosts.yml").write_text("all:\n  hosts: [\n")
    proc = _inv("lab.status", "--inventory", str(tmp_path))
    assert proc.returncode == 2
    assert proc.stderr.strip().startswith("error: inventory") and "Traceback" not in proc.stderr


def test_lab_inventory_reads_without_lab() -> None:
    inv = load_inventory(LAB_INVENTORY)
    assert inv.topology.lb_url.startswith("http://127.0.0.1:")
