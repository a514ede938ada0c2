"""test.*: the project's own checks: unit and lab tests, lint and types, Molecule scenarios of the roles."""

from __future__ import annotations

import sys

from invoke.context import Context
from invoke.tasks import task

from drillbook.core.paths import REPO_ROOT, ROLES

ROLE_SCENARIOS = ("postgres", "redis", "haproxy", "app")


@task(default=True, help={"k": "Only tests matching this -k expression.", "lab": "Only tests marked lab."})
def pytest(c: Context, k: str | None = None, lab: bool = False) -> None:
    """Run the test suite (brings up a separate test lab on ports 25400+ for tests marked lab)."""
    args = [sys.executable, "-m", "pytest"]
    if k:
        args += ["-k", k]
    if lab:
        args += ["-m", "lab"]
    with c.cd(str(REPO_ROOT)):
        c.run(" ".join(args), pty=False)


@task
def lint(c: Context) -> None:
    """ruff and mypy on the package, ansible-lint on playbooks and roles."""
    with c.cd(str(REPO_ROOT)):
        c.run("ruff check drillbook tests benchmarks loadtests lab")
        c.run("mypy drillbook")
        c.run("ansible-lint --offline -q playbooks roles")


@task(help={"role": "Only this role's scenario (postgres, redis, haproxy, app)."})
def roles(c: Context, role: str | None = None) -> None:
    """Run each role's Molecule scenario (converge, idempotence, verify) on this machine."""
    for name in [role] if role else ROLE_SCENARIOS:
        with c.cd(str(ROLES / name)):
            c.run("molecule test", pty=False)


@task(pre=[lint, pytest, roles])
def all(c: Context) -> None:
    """Everything CI runs: lint, the test suite, the role scenarios."""
