"""Where things live: the repository's own files and the default output directories."""

from __future__ import annotations

import os
from pathlib import Path

#: The repository root (playbooks/, roles/, inventory/, runbooks/ live here).
REPO_ROOT = Path(__file__).resolve().parents[2]
PLAYBOOKS = REPO_ROOT / "playbooks"
ROLES = REPO_ROOT / "roles"
RUNBOOKS = REPO_ROOT / "runbooks"
LAB_INVENTORY = REPO_ROOT / "inventory" / "lab"
ANSIBLE_CFG = REPO_ROOT / "ansible.cfg"


def default_inventory() -> Path:
    """``$DRILLBOOK_INVENTORY`` if set, else the lab."""
    return Path(os.environ.get("DRILLBOOK_INVENTORY") or LAB_INVENTORY)


def default_report_root() -> Path:
    """``$DRILLBOOK_REPORT_DIR`` if set, else ``reports/`` under the repository root."""
    return Path(os.environ.get("DRILLBOOK_REPORT_DIR") or REPO_ROOT / "reports")


def state_dir() -> Path:
    """Per-user state (locks): ``$DRILLBOOK_STATE_DIR`` or ``~/.local/state/drillbook``."""
    base = os.environ.get("DRILLBOOK_STATE_DIR") or Path.home() / ".local" / "state" / "drillbook"
    path = Path(base)
    path.mkdir(parents=True, exist_ok=True)
    return path
