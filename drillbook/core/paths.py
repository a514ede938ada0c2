"""Where things live: drillbook's own files, and the user's project folder.

Two roots, never mixed:

- **assets** are drillbook's own files: playbooks, roles, ``ansible.cfg``, the lab
  inventory, the reference service, the bundled runbooks, checklist and locustfile.
  In an installed wheel they are package data under ``drillbook/_assets`` (found
  through :mod:`importlib.resources`); in a checkout they are the repository's top
  folders. Nothing is ever written there.
- **the project** is the user's ops folder: reports, the lab's state, their
  inventories, runbooks and checklist. It is ``$DRILLBOOK_PROJECT_DIR``, else the
  nearest folder from the working directory up that holds a ``drillbook.toml``, else
  the working directory itself. Two ops repositories on one machine therefore never
  share reports or lab state. ``drillbook.toml`` may name where each thing is::

      [drillbook]
      inventory = "inventory/staging"   # the default --inventory (else the lab)
      reports = "reports"
      runbooks = "runbooks"
      checklist = "checklist.yml"

Locks are the exception: they protect a fleet, not a folder, so they live in the
user's state directory where every project on the machine sees them.
"""

from __future__ import annotations

import os
import tomllib
from importlib.resources import files
from pathlib import Path
from typing import Any

from drillbook.core.errors import ConfigError


def _assets_root() -> Path:
    packaged = Path(str(files("drillbook"))) / "_assets"
    return packaged if packaged.is_dir() else Path(__file__).resolve().parents[2]


#: drillbook's own files (package data in a wheel, the repository in a checkout).
ASSETS = _assets_root()
#: Kept for the checkout's tooling (tests, Molecule): the same folder as ASSETS there.
REPO_ROOT = ASSETS
PLAYBOOKS = ASSETS / "playbooks"
ROLES = ASSETS / "roles"
BUNDLED_RUNBOOKS = ASSETS / "runbooks"
RUNBOOKS = BUNDLED_RUNBOOKS
BUNDLED_CHECKLIST = ASSETS / "checklist.yml"
LAB_INVENTORY = ASSETS / "inventory" / "lab"
EXAMPLE_INVENTORY = ASSETS / "inventory" / "example-staging"
LAB_SERVICE = ASSETS / "lab"
LOADTESTS = ASSETS / "loadtests"
ANSIBLE_CFG = ASSETS / "ansible.cfg"

PROJECT_MARKER = "drillbook.toml"


def project_root() -> Path:
    """The user's ops folder: ``$DRILLBOOK_PROJECT_DIR``, a ``drillbook.toml`` above, or the cwd."""
    explicit = os.environ.get("DRILLBOOK_PROJECT_DIR")
    if explicit:
        return Path(explicit).resolve()
    here = Path.cwd().resolve()
    for folder in (here, *here.parents):
        if (folder / PROJECT_MARKER).is_file():
            return folder
    return here


def export_project_root() -> Path:
    """Put the project folder in the environment, so playbooks and inventories resolve the same one."""
    root = project_root()
    os.environ["DRILLBOOK_PROJECT_DIR"] = str(root)
    return root


def project_config() -> dict[str, Any]:
    """The ``[drillbook]`` table of the project's ``drillbook.toml`` (empty when there is none)."""
    path = project_root() / PROJECT_MARKER
    if not path.is_file():
        return {}
    try:
        table = tomllib.loads(path.read_text()).get("drillbook", {})
    except (OSError, tomllib.TOMLDecodeError) as exc:
        raise ConfigError(f"{path}: {exc}") from None
    return table if isinstance(table, dict) else {}


def _configured(key: str) -> Path | None:
    value = project_config().get(key)
    return project_root() / str(value) if value else None


def project_or_bundled(key: str, relative: str, bundled: Path) -> Path:
    """What drillbook.toml names, else the project's own copy when it has one, else the bundled one."""
    own = _configured(key) or project_root() / relative
    return own if own.exists() else bundled


def runbooks_dir() -> Path:
    """``runbooks/`` of the project, else the bundled runbooks."""
    return project_or_bundled("runbooks", "runbooks", BUNDLED_RUNBOOKS)


def checklist_file() -> Path:
    """``checklist.yml`` of the project, else the bundled checklist."""
    return project_or_bundled("checklist", "checklist.yml", BUNDLED_CHECKLIST)


def default_inventory() -> Path:
    """``$DRILLBOOK_INVENTORY``, else drillbook.toml's ``inventory``, else the lab."""
    return Path(os.environ.get("DRILLBOOK_INVENTORY") or _configured("inventory") or LAB_INVENTORY)


def default_report_root() -> Path:
    """``$DRILLBOOK_REPORT_DIR``, else drillbook.toml's ``reports``, else ``reports/`` in the project."""
    explicit = os.environ.get("DRILLBOOK_REPORT_DIR")
    return Path(explicit) if explicit else _configured("reports") or project_root() / "reports"


def state_dir() -> Path:
    """Per-user state (locks): ``$DRILLBOOK_STATE_DIR`` or ``~/.local/state/drillbook``."""
    base = os.environ.get("DRILLBOOK_STATE_DIR") or Path.home() / ".local" / "state" / "drillbook"
    path = Path(base)
    path.mkdir(parents=True, exist_ok=True)
    return path
