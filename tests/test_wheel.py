"""drillbook as an installed tool: the wheel carries everything, and the user's folder is the project.

The wheel is built from this checkout and installed, without its dependencies (they are
this interpreter's: the venv sees the system site-packages), into a fresh venv. From a
folder made by ``drillbook init`` outside the checkout, the console script provisions
and drills the test lab; its reports land in that folder and nothing is written inside
the venv.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pytest

from drillbook.core.paths import REPO_ROOT

pytestmark = [pytest.mark.lab, pytest.mark.slow, pytest.mark.timeout(1200)]


def _files(root: Path) -> set[str]:
    """Every file under ``root`` except bytecode caches (Python's own, not drillbook's writing)."""
    return {str(p.relative_to(root)) for p in root.rglob("*") if p.is_file() and "__pycache__" not in p.parts}


@pytest.fixture(scope="module")
def installed(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A venv holding the wheel built from this checkout; returns its bin/ folder."""
    work = tmp_path_factory.mktemp("wheel")
    subprocess.run(
        [
            sys.executable,
            "-m",
            "pip",
            "wheel",
            "-q",
            "--no-deps",
            "-w",
            str(work),
            ".",
        ],
        cwd=REPO_ROOT,
        check=True,
        capture_output=True,
        timeout=300,
    )
    (wheel,) = work.glob("drillbook-*.whl")
    venv = work / "venv"
    subprocess.run(
        [sys.executable, "-m", "venv", "--system-site-packages", str(venv)], check=True, timeout=120
    )
    subprocess.run(
        [str(venv / "bin" / "pip"), "install", "-q", "--no-deps", str(wheel)],
        check=True,
        capture_output=True,
        timeout=300,
    )
    return venv / "bin"


def _drillbook(bin_dir: Path, cwd: Path, *args: str) -> subprocess.CompletedProcess[str]:
    skip = ("DRILLBOOK_REPORT_DIR", "DRILLBOOK_PROJECT_DIR", "PYTHONPATH")
    env = {k: v for k, v in os.environ.items() if k not in skip}
    env["PATH"] = f"{bin_dir}{os.pathsep}{env['PATH']}"
    t0 = time.monotonic()
    res = subprocess.run(
        [str(bin_dir / "drillbook"), *args], cwd=cwd, env=env, capture_output=True, text=True, timeout=600
    )
    print(f"drillbook {' '.join(args)}: exit {res.returncode} in {time.monotonic() - t0:.1f}s")
    return res


def test_the_installed_tool_drills_the_lab_from_the_users_folder(
    installed: Path, lab: dict[str, Any], tmp_path: Path
) -> None:
    venv = installed.parent
    site = subprocess.run(
        [
            str(installed / "python"),
            "-c",
            "import drillbook, pathlib; print(pathlib.Path(drillbook.__file__).parent)",
        ],
        capture_output=True,
        text=True,
        check=True,
        cwd=tmp_path,
    ).stdout.strip()
    assert site.startswith(str(venv)), f"drillbook imported from {site}, not the wheel"
    before = _files(venv)

    res = _drillbook(installed, tmp_path, "init", "ops", "--service-name", "shop")
    assert res.returncode == 0, res.stderr
    ops = tmp_path / "ops"
    assert (ops / "inventory" / "staging" / "hosts.yml").is_file() and (ops / "runbooks").is_dir()
    again = _drillbook(installed, tmp_path, "init", "ops", "--service-name", "shop")
    assert again.returncode == 0 and "0 files created" in again.stdout

    version = _drillbook(installed, ops, "--version")
    assert version.returncode == 0 and "drillbook" in version.stdout.lower()
    listing = _drillbook(installed, ops, "--list")
    assert listing.returncode == 0 and "backup.restore-test" in listing.stdout
    runbooks = _drillbook(installed, ops, "runbook.list")
    assert runbooks.returncode == 0 and "redis-outage" in runbooks.stdout
    for args in (
        ["runbook.check"],
        ["checklist"],
        ["lab.up"],
        ["smoke"],
        ["backup.run"],
        ["backup.restore-test"],
    ):
        res = _drillbook(installed, ops, *args)
        assert res.returncode == 0, f"drillbook {' '.join(args)}: {res.stdout[-2000:]}{res.stderr[-2000:]}"

    journals = sorted((ops / "reports").glob("*/journal.json"))
    drills = {json.loads(p.read_text())["drill"] for p in journals}
    assert {"smoke", "backup.run", "backup.restore-test"} <= drills
    assert _files(venv) == before, "the installed tool wrote inside its own venv"
