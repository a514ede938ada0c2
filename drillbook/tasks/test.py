"""test.*: the project's own checks: unit and lab tests, lint and types, Molecule scenarios of the roles."""

from __future__ import annotations

import shlex
import subprocess
import sys
import time
from pathlib import Path

from invoke.context import Context
from invoke.exceptions import Exit

from drillbook.core.paths import REPO_ROOT, ROLES
from drillbook.tasks._cli import CommonOptions, cli_task

ROLE_SCENARIOS = ("pidfile_daemon", "postgres", "redis", "haproxy", "app")


# These tasks check this repository, they touch no fleet: writes=False.


@cli_task(
    default=True,
    writes=False,
    help={"k": "Only tests matching this -k expression.", "lab": "Only tests marked lab."},
    short={"k": "k"},
)
def pytest(c: Context, k: str | None = None, lab: bool = False, *, opts: CommonOptions) -> None:
    """Run the test suite (brings up a separate test lab on ports 25400+ for tests marked lab)."""
    passed, _summary = _pytest(c, k, lab)
    if not passed:
        raise Exit(code=1)


def _pytest(c: Context, k: str | None = None, lab: bool = False) -> tuple[bool, str]:
    """Run pytest; return (passed, its closing summary line)."""
    args = [sys.executable, "-m", "pytest"]
    if k:
        args += ["-k", shlex.quote(k)]
    if lab:
        args += ["-m", "lab"]
    with c.cd(str(REPO_ROOT)):
        result = c.run(" ".join(args), pty=False, warn=True)
    # A failed Result is falsy (Invoke), so test for None: its output is wanted most then.
    lines = [line for line in (result.stdout if result is not None else "").splitlines() if line.strip()]
    return (result is not None and not result.exited), (lines[-1] if lines else "")


@cli_task(writes=False)
def lint(c: Context, *, opts: CommonOptions) -> None:
    """ruff and mypy on the package, ansible-lint on playbooks and roles."""
    with c.cd(str(REPO_ROOT)):
        c.run("ruff check drillbook tests benchmarks loadtests lab")
        c.run("mypy drillbook")
        c.run("ansible-lint --offline -q playbooks roles")


def _molecule_all(log: Path | None = None) -> subprocess.Popen[bytes]:
    """Every role scenario in turn, in one background shell (each uses ports and state of its own)."""
    script = " && ".join(
        f"(cd {ROLES / name} && echo '== molecule {name}' && molecule test)" for name in ROLE_SCENARIOS
    )
    out = log.open("wb") if log else None
    return subprocess.Popen(["bash", "-c", script], stdout=out, stderr=subprocess.STDOUT if out else None)


@cli_task(
    writes=False, help={"role": "Only this role's scenario (pidfile_daemon, postgres, redis, haproxy, app)."}
)
def roles(c: Context, role: str | None = None, *, opts: CommonOptions) -> None:
    """Run each role's Molecule scenario (converge, idempotence, verify) on this machine."""
    for name in [role] if role else ROLE_SCENARIOS:
        with c.cd(str(ROLES / name)):
            c.run("molecule test", pty=False)


@cli_task(writes=False)
def all(c: Context, *, opts: CommonOptions) -> None:
    """Everything CI runs: lint, then the test suite and the role scenarios side by side.

    The scenarios mostly wait (package checks, daemons starting) and use ports and state of
    their own, so they run in the background while pytest runs; their log is printed after.
    """
    lint.body(c, opts=opts)
    log = REPO_ROOT / "reports" / "molecule.log"
    log.parent.mkdir(parents=True, exist_ok=True)
    t0 = time.monotonic()
    scenarios = _molecule_all(log)
    try:
        passed, summary = _pytest(c)
    finally:
        rc = scenarios.wait()
    print(f"== role scenarios ({', '.join(ROLE_SCENARIOS)}): exit {rc} after {time.monotonic() - t0:.0f}s")
    lines = log.read_text(errors="replace").splitlines()
    print(
        "\n".join(
            lines[-40:] if rc else [line for line in lines if line.startswith("==") or "PLAY RECAP" in line]
        )
    )
    print(f"== pytest: {summary}")
    print(summary)  # pytest's own closing line stays the last line
    if not passed or rc:
        raise Exit(code=1)
