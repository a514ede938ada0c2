"""Shared fixtures. Tests marked ``lab`` share one real lab per session.

The test lab is separate from a developer's own lab (``.lab-test`` under the
repository, ports from 25400), so running the tests never disturbs ``inv demo``.
Override with DRILLBOOK_LAB_DIR / DRILLBOOK_LAB_PORT_BASE; set
DRILLBOOK_KEEP_LAB=1 to leave the lab running after the session (faster reruns).
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from drillbook.core.paths import REPO_ROOT

os.environ.setdefault("DRILLBOOK_LAB_DIR", str(REPO_ROOT / ".lab-test"))
os.environ.setdefault("DRILLBOOK_LAB_PORT_BASE", "25400")


@pytest.fixture(scope="session")
def lab_inventory() -> Any:
    from drillbook.core.inventory import load_inventory
    from drillbook.core.paths import LAB_INVENTORY

    return load_inventory(LAB_INVENTORY)


@pytest.fixture(scope="session")
def lab(lab_inventory: Any, tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, Any]]:
    """The real lab (PostgreSQL, Redis, HAProxy, three uvicorn instances), up for the whole session."""
    from drillbook import labenv as lab_

    lab_.up(lab_inventory)
    status = lab_.status(lab_inventory)
    assert status.healthy, [p for p in status.pieces if not p.ok]
    # to_dict() is what lab.status --json prints (redacted); tests connect with the real DSNs
    yield {**status.to_dict(), "postgres_dsn": status.postgres_dsn, "redis_url": status.redis_url}
    if not os.environ.get("DRILLBOOK_KEEP_LAB"):
        lab_.down(lab_inventory)


@pytest.fixture(scope="session")
def ledger_lab() -> Iterator[Any]:
    """The second lab (the ledger, ``inventory/lab-ledger``), up once for the whole session.

    Brought up through the CLI as a user would; test_lab_second.py and
    test_ledger_drills.py share it (one ledger lab per CI run: it costs minutes).
    The last test of test_ledger_drills.py takes it down and checks that; this
    teardown only catches a session that stopped earlier.
    """
    import socket
    import subprocess
    import sys

    from drillbook.core.inventory import load_inventory

    path = REPO_ROOT / "inventory" / "lab-ledger"

    def inv(*args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [sys.executable, "-m", "invoke", *args, "-i", str(path)],
            cwd=REPO_ROOT,
            capture_output=True,
            text=True,
            timeout=900,
        )

    up = inv("lab.up")
    assert up.returncode == 0, up.stdout[-3000:] + up.stderr[-3000:]
    ledger = load_inventory(path)
    yield ledger
    host, port = ledger.topology.lb_url.removeprefix("http://").split(":")
    with socket.socket() as s:
        s.settimeout(0.5)
        running = s.connect_ex((host, int(port))) == 0  # else the last ledger test took it down
    if running and not os.environ.get("DRILLBOOK_KEEP_LAB"):
        inv("lab.down")


@pytest.fixture()
def report_root(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """Reports of drills run by a test go to its own temp dir."""
    root = tmp_path / "reports"
    monkeypatch.setenv("DRILLBOOK_REPORT_DIR", str(root))
    return root
