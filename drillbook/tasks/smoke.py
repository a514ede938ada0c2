"""smoke: the pre-production smoke test through the load balancer."""

from __future__ import annotations

from invoke.context import Context

from drillbook.tasks._cli import CommonOptions, cli_errors, drill_task, open_inventory, run_drill


@drill_task(default=True)
def smoke(c: Context, *, opts: CommonOptions) -> None:
    """Smoke-test the service: the profile's smoke flow (service_smoke), each step judged.

    Runbook: runbooks/release-readiness.md
    """
    from drillbook.smoke import Smoke

    with cli_errors(opts.debug):
        run_drill(Smoke(), open_inventory(opts.inventory), opts)
