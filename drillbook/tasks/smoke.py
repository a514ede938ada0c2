"""smoke: the pre-production smoke test through the load balancer."""

from __future__ import annotations

from invoke.context import Context
from invoke.tasks import task

from drillbook.smoke import Smoke
from drillbook.tasks._cli import cli_errors, helps, open_inventory, run_drill


@task(default=True, help=helps())
def smoke(
    c: Context,
    inventory: str | None = None,
    report_dir: str | None = None,
    junit: str | None = None,
    debug: bool = False,
    quiet: bool = False,
) -> None:
    """Smoke-test the service: probes, a DB round trip and an items CRUD cycle.

    Runbook: runbooks/release-readiness.md
    """
    with cli_errors(debug):
        run_drill(
            Smoke(), open_inventory(inventory), report_dir=report_dir, junit=junit, debug=debug, quiet=quiet
        )
