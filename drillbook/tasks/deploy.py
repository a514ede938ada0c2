"""deploy.*: canary rollouts judged on live metrics, promotion, rollback and status.

Runbook: runbooks/canary-rollback.md
"""

from __future__ import annotations

import json
from typing import TYPE_CHECKING

from invoke.context import Context
from invoke.exceptions import Exit
from rich.table import Table

from drillbook.core.console import err, out, plain
from drillbook.tasks._cli import (
    CommonOptions,
    cli_errors,
    cli_task,
    drill_task,
    float_option,
    open_inventory,
    run_drill,
)

if TYPE_CHECKING:
    from drillbook.canary.state import Fleet


@drill_task(
    help={
        "version": "Release to canary, e.g. 2.0.0 (its artifact must exist: inv lab.release --version V).",
        "traffic": "Background requests/s the drill sends through the load balancer "
        "(default canary_traffic_rps; 0 relies on real traffic).",
        "pause_before_promote": "Stop once the analysis passed; inv deploy.promote continues.",
        "window": "Seconds each step is analysed (default canary_window_s).",
        "steps": "Comma-separated canary shares in percent, e.g. 5,25,50,100 (default canary_steps).",
    }
)
def canary(
    c: Context,
    version: str,
    traffic: str | None = None,
    pause_before_promote: bool = False,
    window: str | None = None,
    steps: str | None = None,
    *,
    opts: CommonOptions,
) -> None:
    """Canary a release: shift traffic in steps, judge it, promote or roll back (runbooks/canary-rollback.md).

    Deploys V to the canary hosts, gives them 5% -> 25% -> 50% -> 100% of the traffic
    (canary_steps), and at each step compares their error rate and p95 latency with the
    baseline's over the same window. A breach rolls back at once (verdict fail, exit 1);
    a pass promotes to every host in rolling batches (or pauses with --pause-before-promote).
    """
    from drillbook.canary import drill as canary_drill

    with cli_errors(opts.debug):
        inv = open_inventory(opts.inventory)
        drill = canary_drill.CanaryDrill(
            canary_drill.load_settings(
                inv, window_s=float_option("window", window, above=0, maximum=86_400), steps=steps
            ),
            version,
            traffic_rps=float_option("traffic", traffic, minimum=0, maximum=100_000),
            pause_before_promote=pause_before_promote,
        )
        run_drill(drill, inv, opts)


@drill_task()
def promote(c: Context, *, opts: CommonOptions) -> None:
    """Promote the paused canary to every host in rolling batches (runbooks/canary-rollback.md).

    Only after inv deploy.canary --pause-before-promote passed its analysis; refuses otherwise.
    """
    from drillbook.canary import drill as canary_drill

    with cli_errors(opts.debug):
        inv = open_inventory(opts.inventory)
        run_drill(canary_drill.PromoteDrill(canary_drill.load_settings(inv)), inv, opts)


@drill_task(help={"to": "Release to go back to (default: the one before the last rollout)."})
def rollback(c: Context, to: str | None = None, *, opts: CommonOptions) -> None:
    """Incident fast path: canary weight 0, previous release everywhere (runbooks/canary-rollback.md).

    No analysis: canary weight 0 first, then the previous release on every instance that
    runs something else, readiness verified, weights restored. Budget: canary_rollback_budget_s.
    """
    from drillbook.canary import drill as canary_drill

    with cli_errors(opts.debug):
        inv = open_inventory(opts.inventory)
        run_drill(canary_drill.RollbackDrill(canary_drill.load_settings(inv), to_version=to), inv, opts)


@cli_task(
    common=("inventory", "debug"),
    writes=False,
    help={
        "json": "Print machine-readable JSON.",
        "links": "Also read each host's current/previous release links (runs a playbook: slower).",
    },
)
def status(c: Context, json_: bool = False, links: bool = False, *, opts: CommonOptions) -> None:
    """Show the release, readiness and HAProxy weight of each instance, and the rollout state.

    Exit 1 when the fleet is not steady (mixed releases, unready instance, weights not as
    configured, an unfinished rollout). Runbook: runbooks/canary-rollback.md.
    """
    from drillbook.canary.status import fleet_status

    with cli_errors(opts.debug):
        inv = open_inventory(opts.inventory)
        fleet = fleet_status(inv, links=links)
        if json_:
            print(json.dumps(fleet.to_dict(), indent=2))
        else:
            _print(fleet)
        if not fleet.steady or (fleet.rollout is not None and fleet.rollout.unfinished):
            raise Exit(code=1)


def _print(fleet: Fleet) -> None:
    table = Table(title="deploy.status")
    for col in ("instance", "role", "version", "ready", "lb", "weight", "links (current/previous)"):
        table.add_column(col)
    for i in fleet.instances:
        weight = (
            "-"
            if i.weight is None
            else f"{i.weight}" + ("" if i.weight == i.initial_weight else f" (cfg {i.initial_weight})")
        )
        table.add_row(
            plain(i.instance),
            "canary" if i.canary else "baseline",
            plain(i.version) if i.version else "[red]no answer[/red]",
            "[green]yes[/green]" if i.ready else f"[red]no[/red] {plain(i.detail)}",
            i.lb_status or "-",
            weight,
            "-" if i.linked is None else f"{i.linked}/{i.previous or '-'}",
        )
    (out if fleet.steady else err).print(table)
    for note in fleet.notes():
        out.print(plain(note))
    r = fleet.rollout
    if r is not None:
        out.print(
            f"last rollout: {r.previous} -> {r.version}: [bold]{r.phase}[/bold] since {r.updated_at}"
            + (f" ({r.reason})" if r.reason else "")
        )
    for problem in fleet.problems():
        err.print(f"[yellow]![/yellow] {plain(problem)}")
    if fleet.steady and (r is None or not r.unfinished):
        out.print(f"steady: every instance serves {fleet.version}")
