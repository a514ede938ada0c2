"""test.*: the project's own checks: unit and lab tests, lint and types, Molecule scenarios of the roles."""

from __future__ import annotations

import os
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


def _pytest(
    c: Context, k: str | None = None, lab: bool = False, durations: int = 0, ignore: tuple[str, ...] = ()
) -> tuple[bool, str]:
    """Run pytest; return (passed, its closing summary line)."""
    args = [sys.executable, "-m", "pytest"]
    if durations:
        args += [f"--durations={durations}"]
    args += [f"--ignore={path}" for path in ignore]
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


#: Lab tests on the second service's lab only (its own ports and state): they run in the
#: background run, after the tests not marked lab, while the reference lab's tests go on.
SECOND_LAB_TESTS = ("tests/test_lab_second.py", "tests/test_ledger_drills.py")


def _background_tests(log: Path) -> subprocess.Popen[bytes]:
    """The tests not marked lab, then the second lab's tests, in a background run of their own.

    Neither needs the reference lab, so they run beside its tests; their own port base and
    lab dir keep anything keyed by the fleet (the lock, reports, the ledger lab's ports) apart
    from the lab the other tests use. The exit status is the worse of the two runs.
    """
    env = {
        **os.environ,
        "DRILLBOOK_LAB_PORT_BASE": str(int(os.environ.get("DRILLBOOK_LAB_PORT_BASE", "25400")) + 1000),
        "DRILLBOOK_LAB_DIR": str(REPO_ROOT / ".lab-test-unit"),
    }
    pytest = f"{shlex.quote(sys.executable)} -m pytest -p no:cacheprovider --durations=10"
    script = (
        f"{pytest} -m 'not lab'; a=$?; "
        f"{pytest} -m lab {' '.join(SECOND_LAB_TESTS)}; b=$?; "
        "exit $(( a > b ? a : b ))"
    )
    return subprocess.Popen(
        ["bash", "-c", script], cwd=REPO_ROOT, env=env, stdout=log.open("wb"), stderr=subprocess.STDOUT
    )


def _tail(log: Path, failed: bool) -> str:
    """A background run's log: the last 40 lines when it failed, else its summary lines."""
    lines = log.read_text(errors="replace").splitlines()
    if failed:
        return "\n".join(lines[-40:])
    return "\n".join(line for line in lines if line.startswith("==") or "PLAY RECAP" in line)


@cli_task(writes=False)
def all(c: Context, *, opts: CommonOptions) -> None:
    """Everything CI runs: lint, then side by side the lab tests, the other tests and the role scenarios.

    The scenarios mostly wait (package checks, daemons starting) and use ports and state of
    their own; the tests not marked lab need no lab and the second lab's tests only theirs,
    so they run in the background while the reference lab's tests run; their logs are
    printed after (reports/molecule.log, reports/pytest-unit.log).
    """
    lint.body(c, opts=opts)
    logs = REPO_ROOT / "reports"
    logs.mkdir(parents=True, exist_ok=True)
    t0 = time.monotonic()
    scenarios = _molecule_all(logs / "molecule.log")
    unit = _background_tests(logs / "pytest-unit.log")
    try:
        passed, summary = _pytest(c, lab=True, durations=25, ignore=SECOND_LAB_TESTS)
    finally:
        unit_rc = unit.wait()
        rc = scenarios.wait()
    print(
        f"== tests not marked lab, then the second lab's: exit {unit_rc} after {time.monotonic() - t0:.0f}s"
    )
    print(_tail(logs / "pytest-unit.log", bool(unit_rc)))
    unit_summary = [
        line
        for line in (logs / "pytest-unit.log").read_text(errors="replace").splitlines()
        if " in " in line
        and line.startswith("=")
        and ("passed" in line or "failed" in line or "error" in line)
    ]
    print(f"== role scenarios ({', '.join(ROLE_SCENARIOS)}): exit {rc} after {time.monotonic() - t0:.0f}s")
    print(_tail(logs / "molecule.log", bool(rc)))
    print(f"== pytest (not lab; second lab): {' / '.join(unit_summary) or 'no output'}")
    print(f"== pytest (lab): {summary}")
    print(summary)  # pytest's own closing line stays the last line
    if not passed or rc or unit_rc:
        raise Exit(code=1)
