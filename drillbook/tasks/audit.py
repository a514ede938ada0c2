"""audit.*: prove the checklist's security, API and host lines from outside and on the hosts."""

from __future__ import annotations

from invoke.context import Context

from drillbook.tasks._cli import CommonOptions, cli_errors, drill_task, open_inventory, run_drill


@drill_task()
def http(c: Context, *, opts: CommonOptions) -> None:
    """Audit the service from outside: headers, CORS, rate limit, body limit, errors, pagination.

    Sends a bounded number of requests, only to the inventory's own URL; some write
    (the profile's pagination and rate-limit steps may create records): production needs
    --allow-production.
    Runbook: runbooks/release-readiness.md
    """
    from drillbook.audit.drill import HttpAudit

    with cli_errors(opts.debug):
        inv = open_inventory(opts.inventory)
        run_drill(HttpAudit(), inv, opts)


@drill_task(writes=False)
def hosts(c: Context, *, opts: CommonOptions) -> None:
    """Audit the hosts: non-root service, Redis persistence, PostgreSQL settings, backups, secrets.

    Reads only (files, settings and processes on the hosts), so it runs on production
    without --allow-production. Runbook: runbooks/release-readiness.md
    """
    from drillbook.audit.drill import HostsAudit

    with cli_errors(opts.debug):
        inv = open_inventory(opts.inventory)
        run_drill(HostsAudit(), inv, opts)
