"""chaos.*: kill a service for real, witness the fault, measure the reaction, always restore."""

from __future__ import annotations

from typing import TYPE_CHECKING

from invoke.context import Context

from drillbook.core.console import out
from drillbook.tasks._cli import (
    CommonOptions,
    allowed_on,
    cli_errors,
    drill_task,
    float_option,
    open_inventory,
    run_drill,
)

if TYPE_CHECKING:
    from drillbook.chaos.plan import Fault

FAULT_HELP = {
    "duration": "Seconds to hold the fault before restoring (default: chaos_duration_s from the inventory).",
    "traffic": "Background requests per second through the load balancer (default: chaos_traffic_rps).",
    "dry_run": "Print the plan (hosts, processes, probes, thresholds) and do nothing.",
}


def _fault(
    fault: Fault,
    *,
    duration: str | None,
    traffic: str | None,
    dry_run: bool,
    instance: str | None,
    opts: CommonOptions,
) -> None:
    from drillbook.chaos import DRILLS, build_plan, format_plan
    from drillbook.chaos.plan import load_settings

    with cli_errors(opts.debug):
        duration_s = float_option("duration", duration, minimum=0.1, maximum=86_400)
        traffic_rps = float_option("traffic", traffic, minimum=0, maximum=100_000)
        inv = open_inventory(opts.inventory)
        # The guard ran before this body (CliTask); the drill, which checks again, gets its answer.
        allow_production = allowed_on(inv, opts)
        if dry_run:
            settings = load_settings(inv)
            plan = build_plan(inv, fault, settings, instance=instance)
            out.print(
                format_plan(
                    plan,
                    duration_s=duration_s if duration_s is not None else settings.duration_s,
                    traffic_rps=traffic_rps if traffic_rps is not None else settings.traffic_rps,
                    allowed=allow_production,
                ),
                markup=False,
            )
            return
        drill = DRILLS[fault].for_inventory(
            inv,
            duration_s=duration_s,
            traffic_rps=traffic_rps,
            instance=instance,
            allow_production=allow_production,
        )
        run_drill(drill, inv, opts)


@drill_task(help=FAULT_HELP)
def kill_db(
    c: Context,
    duration: str | None = None,
    traffic: str | None = None,
    dry_run: bool = False,
    *,
    opts: CommonOptions,
) -> None:
    """SIGKILL PostgreSQL: readiness must flip to 503 within the limit, recover, lose nothing.

    Runbook: runbooks/db-outage.md. Measures readiness_flip_s from the witnessed kill,
    recovery_s from the start command, outage_p95_ms and data_intact (marker row in the DB).
    """
    _fault(
        "kill-db",
        duration=duration,
        traffic=traffic,
        dry_run=dry_run,
        instance=None,
        opts=opts,
    )


@drill_task(help=FAULT_HELP)
def kill_redis(
    c: Context,
    duration: str | None = None,
    traffic: str | None = None,
    dry_run: bool = False,
    *,
    opts: CommonOptions,
) -> None:
    """SIGKILL Redis: the service must degrade gracefully (ready, no errors) and get its cache back.

    Runbook: runbooks/redis-outage.md. Measures error_pct_during_outage, outage_p95_ms,
    degraded_flip_s and recovery_s (degraded=false everywhere after the restart).
    """
    _fault(
        "kill-redis",
        duration=duration,
        traffic=traffic,
        dry_run=dry_run,
        instance=None,
        opts=opts,
    )


@drill_task(
    help={"instance": "Which app instance to kill: 1-based index or name (default: 1).", **FAULT_HELP}
)
def kill_app(
    c: Context,
    instance: str | None = None,
    duration: str | None = None,
    traffic: str | None = None,
    dry_run: bool = False,
    *,
    opts: CommonOptions,
) -> None:
    """SIGKILL one app instance: HAProxy must route around it and take it back after the restart.

    Runbook: runbooks/app-outage.md. Measures lb_detect_s (HAProxy marks it DOWN),
    error_pct_during_outage and recovery_s (back in rotation).
    """
    _fault(
        "kill-app",
        duration=duration,
        traffic=traffic,
        dry_run=dry_run,
        instance=instance,
        opts=opts,
    )


@drill_task()
def recover(c: Context, *, opts: CommonOptions) -> None:
    """Start every service a chaos drill may have stopped (after a killed drill); idempotent.

    Runbook: runbooks/db-outage.md (and runbooks/redis-outage.md). Starts PostgreSQL,
    Redis and every app instance unless running, then waits until all is healthy.
    """
    from drillbook.chaos import Recover

    with cli_errors(opts.debug):
        inv = open_inventory(opts.inventory)
        run_drill(Recover.for_inventory(inv), inv, opts)
