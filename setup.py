"""Build hook: the wheel carries drillbook's playbooks, roles and lab as package data.

In the repository those files live at the top (``playbooks/``, ``roles/``, ...), where
Ansible, Molecule and ansible-lint expect them. A wheel copies them into
``drillbook/_assets/``, where :mod:`drillbook.core.paths` finds them through
``importlib.resources``. An editable install needs no copy: paths resolve to the
checkout itself.
"""

from __future__ import annotations

import shutil
from pathlib import Path

from setuptools import setup
from setuptools.command.build_py import build_py

ROOT = Path(__file__).resolve().parent
#: Copied into the wheel: what the drills, the lab and `drillbook init` read at run time.
ASSETS = (
    "ansible.cfg",
    "checklist.yml",
    "playbooks",
    "roles",
    "runbooks",
    "loadtests",
    "lab",
    "inventory/lab",
    "inventory/lab-ledger",
    "inventory/example-staging",
)
IGNORED = shutil.ignore_patterns("__pycache__", "*.pyc", ".pytest_cache", "molecule", ".lab*", "*.egg-info")


class BuildWithAssets(build_py):
    """``build_py`` plus a copy of the assets into ``drillbook/_assets``."""

    def run(self) -> None:
        super().run()
        if getattr(self, "editable_mode", False):
            return
        target = Path(self.build_lib) / "drillbook" / "_assets"
        for name in ASSETS:
            source, dest = ROOT / name, target / name
            dest.parent.mkdir(parents=True, exist_ok=True)
            if source.is_dir():
                shutil.copytree(source, dest, ignore=IGNORED, dirs_exist_ok=True)
            else:
                shutil.copy2(source, dest)


setup(cmdclass={"build_py": BuildWithAssets})
