"""Run ``inv`` as a user does, in a subprocess, for the command-line tests."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

from drillbook.core.paths import LAB_INVENTORY, REPO_ROOT


@dataclass(frozen=True)
class Ran:
    argv: tuple[str, ...]
    rc: int
    stdout: str
    stderr: str
    seconds: float

    @property
    def err_lines(self) -> list[str]:
        return [line for line in self.stderr.splitlines() if line.strip()]

    def describe(self) -> str:
        return f"inv {' '.join(self.argv)} -> {self.rc} in {self.seconds:.1f}s\n{self.stdout}\n{self.stderr}"


def inv(*argv: str, env: dict[str, str] | None = None, cwd: Path = REPO_ROOT, timeout: float = 300) -> Ran:
    """``python -m invoke ARGV`` with no terminal on stdin; returns what a user would see."""
    full_env = {**os.environ, "COLUMNS": "200", **(env or {})}
    t0 = time.monotonic()
    proc = subprocess.run(
        [sys.executable, "-m", "invoke", *argv],
        cwd=cwd,
        env=full_env,
        stdin=subprocess.DEVNULL,
        capture_output=True,
        text=True,
        timeout=timeout,
    )
    return Ran(tuple(argv), proc.returncode, proc.stdout, proc.stderr, time.monotonic() - t0)


def lab_copy(dest: Path, extra: str = "") -> Path:
    """A copy of the lab inventory with ``extra`` YAML added to its group_vars/all."""
    import shutil

    shutil.copytree(LAB_INVENTORY, dest)
    if extra:
        (dest / "group_vars" / "all" / "zz-test.yml").write_text(extra)
    return dest
