"""lab.*: the embedded target: PostgreSQL, Redis, HAProxy and the service's instances (-i picks the lab)."""

from __future__ import annotations

import json
import time
from typing import TYPE_CHECKING

from invoke.context import Context
from invoke.exceptions import Exit
from rich.table import Table

from drillbook.core.console import Progress, err, out, plain
from drillbook.tasks._cli import CommonOptions, cli_errors, cli_task, float_option, int_option, open_inventory

if TYPE_CHECKING:
    from drillbook.labenv import LabStatus

COMMON = ("inventory", "debug")


@cli_task(common=COMMON)
def up(c: Context, *, opts: CommonOptions) -> None:
    """Provision and start the lab (idempotent): install packages, create cluster, deploy service."""
    _up(opts.inventory, opts.debug)


def _up(path: str | None, debug: bool) -> None:
    from drillbook import labenv as lab_

    with cli_errors(debug):
        inv = open_inventory(path)
        t0 = time.monotonic()
        result = lab_.up(inv, progress=Progress("lab.up"))
        status = lab_.status(inv)
        _print_status(status)
        out.print(
            f"lab up in {time.monotonic() - t0:.1f}s ({result.changed} changes); "
            f"service at [bold]{status.lb_url}[/bold]"
        )
        if not status.healthy:
            raise Exit("lab is up but not every piece is healthy (see above)", code=1)


@cli_task(
    common=COMMON,
    writes=False,
    help={"json": "Print machine-readable JSON (lb_url, postgres_dsn, redis_url, app_instances, ...)."},
)
def status(c: Context, json_: bool = False, *, opts: CommonOptions) -> None:
    """Show the health of every lab piece; exit 1 when any is unhealthy."""
    from drillbook import labenv as lab_

    with cli_errors(opts.debug):
        inv = open_inventory(opts.inventory)
        st = lab_.status(inv)
        if json_:
            print(json.dumps(st.to_dict(), indent=2))
        else:
            _print_status(st)
        if not st.healthy:
            raise Exit(code=1)


@cli_task(common=COMMON, help={"purge": "Also delete the lab's state (databases, backups, releases)."})
def down(c: Context, purge: bool = False, *, opts: CommonOptions) -> None:
    """Stop every lab service; --purge also deletes the lab state directory."""
    from drillbook import labenv as lab_

    with cli_errors(opts.debug):
        inv = open_inventory(opts.inventory)
        lab_.down(inv, purge=purge, progress=Progress("lab.down"))
        out.print("lab stopped" + (" and purged" if purge else ""))


@cli_task(
    common=COMMON,
    help={
        "version": "Release version to build, e.g. 2.0.0.",
        "error_rate": "Share of the lab service's data requests answered 500 (0..1, default 0).",
        "latency_ms": "Latency added to the lab service's data requests (default 0): a slow release.",
        "latency_share": "Share of those requests that get --latency-ms (0..1, default 1): a slow tail.",
        "misconfigure": "Break one thing on purpose (cors, headers, ratelimit, body-limit, "
        "ready-ignores-db); repeatable.",
    },
    iterable=["misconfigure"],
)
def release(
    c: Context,
    version: str,
    error_rate: str | None = None,
    latency_ms: str | None = None,
    misconfigure: list[str] | None = None,
    latency_share: str | None = None,
    *,
    opts: CommonOptions,
) -> None:
    """Build a release artifact of the reference service, optionally with fault knobs."""
    from drillbook import labenv as lab_

    with cli_errors(opts.debug):
        rate = float_option("error-rate", error_rate, minimum=0, maximum=1) or 0.0
        latency = int_option("latency-ms", latency_ms, minimum=0, maximum=600_000) or 0
        share = float_option("latency-share", latency_share, minimum=0, maximum=1)
        inv = open_inventory(opts.inventory)
        path = lab_.build_release(
            inv,
            version,
            error_rate=rate,
            latency_ms=latency,
            misconfigure=tuple(misconfigure or ()),
            latency_share=1.0 if share is None else share,
        )
        out.print(f"release {plain(version)} -> {plain(path)}")


def _print_status(st: LabStatus) -> None:
    table = Table(title=f"lab: {plain(st.inventory)}", show_lines=False)
    for col in ("piece", "ok", "endpoint", "detail", "ms"):
        table.add_column(col)
    for p in st.pieces:
        mark = "[green]up[/green]" if p.ok else "[red]DOWN[/red]"
        table.add_row(plain(p.piece), mark, plain(p.endpoint), plain(p.detail[:70]), f"{p.latency_ms:.0f}")
    (out if st.healthy else err).print(table)
