"""audit.*: prove the checklist's security, API and host lines from outside and on the hosts."""

from __future__ import annotations

from invoke.context import Context
from invoke.tasks import task

from drillbook.audit.drill import HostsAudit, HttpAudit
from drillbook.tasks._cli import cli_errors, helps, open_inventory, run_drill


@task(help=helps())
def http(
    c: Context,
    inventory: str | None = None,
    report_dir: str | None = None,
    junit: str | None = None,
    debug: bool = False,
    quiet: bool = False,
) -> None:
    """Audit the service from outside: headers, CORS, rate limit, body limit, errors, pagination.

    Sends a bounded number of requests, only to the inventory's own URL.
    Runbook: runbooks/release-readiness.md
    """
    with cli_errors(debug):
        inv = open_inventory(inventory)
        run_drill(HttpAudit(), inv, report_dir=report_dir, junit=junit, debug=debug, quiet=quiet)


@task(help=helps())
def hosts(
    c: Context,
    inventory: str | None = None,
    report_dir: str | None = None,
    junit: str | None = None,
    debug: bool = False,
    quiet: bool = False,
) -> None:
    """Audit the hosts: non-root service, Redis persistence, PostgreSQL settings, backups, secrets.

    Runbook: runbooks/release-readiness.md
    """
    with cli_errors(debug):
        inv = open_inventory(inventory)
        run_drill(HostsAudit(), inv, report_dir=report_dir, junit=junit, debug=debug, quiet=quiet)
