"""lab.*: the embedded target: PostgreSQL, Redis, HAProxy and three instances of the reference service."""

from __future__ import annotations

import json
import time

from invoke.context import Context
from invoke.exceptions import Exit
from invoke.tasks import task
from rich.table import Table

from drillbook import labenv as lab_
from drillbook.core.console import Progress, err, out
from drillbook.tasks._cli import INVENTORY_HELP, cli_errors, open_inventory


@task(help={"inventory": INVENTORY_HELP, "debug": "Show tracebacks."})
def up(c: Context, inventory: str | None = None, debug: bool = False) -> None:
    """Provision and start the lab (idempotent): install packages, create cluster, deploy service."""
    _up(inventory, debug)


def _up(path: str | None, debug: bool) -> None:
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


@task(
    help={
        "inventory": INVENTORY_HELP,
        "json": "Print machine-readable JSON (lb_url, postgres_dsn, redis_url, app_instances, ...).",
        "debug": "Show tracebacks.",
    }
)
def status(c: Context, inventory: str | None = None, json_: bool = False, debug: bool = False) -> None:
    """Show the health of every lab piece; exit 1 when any is unhealthy."""
    with cli_errors(debug):
        inv = open_inventory(inventory)
        st = lab_.status(inv)
        if json_:
            print(json.dumps(st.to_dict(), indent=2))
        else:
            _print_status(st)
        if not st.healthy:
            raise Exit(code=1)


@task(
    help={
        "inventory": INVENTORY_HELP,
        "purge": "Also delete the lab's state (databases, backups, releases).",
        "debug": "Show tracebacks.",
    }
)
def down(c: Context, inventory: str | None = None, purge: bool = False, debug: bool = False) -> None:
    """Stop every lab service; --purge also deletes the lab state directory."""
    with cli_errors(debug):
        inv = open_inventory(inventory)
        lab_.down(inv, purge=purge, progress=Progress("lab.down"))
        out.print("lab stopped" + (" and purged" if purge else ""))


@task(
    help={
        "version": "Release version to build, e.g. 2.0.0.",
        "error_rate": "Share of /items requests answered 500 (0..1), to stage a bad release.",
        "latency_ms": "Latency added to /items requests, to stage a slow release.",
        "misconfigure": "Break one thing on purpose (cors, headers, ratelimit, body-limit, "
        "ready-ignores-db); repeatable.",
        "inventory": INVENTORY_HELP,
        "debug": "Show tracebacks.",
    },
    iterable=["misconfigure"],
)
def release(
    c: Context,
    version: str,
    error_rate: float = 0.0,
    latency_ms: int = 0,
    misconfigure: list[str] | None = None,
    inventory: str | None = None,
    debug: bool = False,
) -> None:
    """Build a release artifact of the reference service, optionally with fault knobs."""
    with cli_errors(debug):
        inv = open_inventory(inventory)
        path = lab_.build_release(
            inv, version, error_rate=error_rate, latency_ms=latency_ms, misconfigure=tuple(misconfigure or ())
        )
        out.print(f"release {version} -> {path}")


def _print_status(st: lab_.LabStatus) -> None:
    table = Table(title=f"lab: {st.inventory}", show_lines=False)
    for col in ("piece", "ok", "endpoint", "detail", "ms"):
        table.add_column(col)
    for p in st.pieces:
        mark = "[green]up[/green]" if p.ok else "[red]DOWN[/red]"
        table.add_row(p.piece, mark, p.endpoint, p.detail[:70], f"{p.latency_ms:.0f}")
    (out if st.healthy else err).print(table)
