"""report.*: recent drills, the scorecard, its HTML page and its Prometheus metrics (docs/report.md)."""

from __future__ import annotations

from pathlib import Path

from invoke.context import Context
from invoke.tasks import task
from rich.table import Table

from drillbook.core.console import VERDICT_STYLE, out
from drillbook.core.paths import default_report_root
from drillbook.tasks._cli import INVENTORY_HELP, cli_errors, open_inventory

REPORT_HELP = "Report root to read (default: $DRILLBOOK_REPORT_DIR, else reports/)."
COMMON = {
    "inventory": INVENTORY_HELP + " Freshness limits come from it.",
    "report_dir": REPORT_HELP,
    "debug": "Show tracebacks.",
}


def _root(report_dir: str | None) -> Path:
    return Path(report_dir) if report_dir else default_report_root()


@task(name="list", help={"limit": "How many runs to show (newest first).", **COMMON})
def list_(
    c: Context,
    limit: int = 20,
    inventory: str | None = None,
    report_dir: str | None = None,
    debug: bool = False,
) -> None:
    """Recent drill runs: time, drill, verdict, key figure, report; unreadable journals are listed too."""
    from drillbook.core.store import display_path, load_entries
    from drillbook.report.figures import headline
    from drillbook.report.scorecard import load_settings

    with cli_errors(debug):
        settings = load_settings(open_inventory(inventory))
        root = _root(report_dir)
        entries = load_entries(root)
        table = Table(title=f"recent drills ({display_path(root)})")
        for col in ("started (UTC)", "drill", "verdict", "key figure", "report"):
            table.add_column(col, overflow="fold")
        for entry in list(reversed(entries))[: max(0, limit)]:
            style = VERDICT_STYLE.get(entry.verdict, "yellow")
            figure = headline(entry.journal, settings.key_figures.get(entry.drill)) if entry.journal else ""
            table.add_row(
                entry.started.strftime("%Y-%m-%d %H:%M:%S"),
                entry.drill,
                f"[{style}]{entry.verdict}[/{style}]",
                figure or (entry.error or ""),
                display_path(entry.summary),
            )
        out.print(table)
        if not entries:
            out.print(f"no journals under {display_path(root)}")


@task(help=COMMON)
def scorecard(
    c: Context, inventory: str | None = None, report_dir: str | None = None, debug: bool = False
) -> None:
    """The scorecard: latest verdict of every drill, its key figure, and whether it is stale."""
    from drillbook.report.scorecard import render_terminal

    with cli_errors(debug):
        render_terminal(_root(report_dir), open_inventory(inventory))


@task(help={"out": "Where to write the page (default: <report root>/index.html).", **COMMON})
def html(
    c: Context,
    out_: str | None = None,
    inventory: str | None = None,
    report_dir: str | None = None,
    debug: bool = False,
) -> None:
    """Write the scorecard as one static HTML page with trend plots and links to every journal."""
    from drillbook.core.store import display_path
    from drillbook.report.html import write_html

    with cli_errors(debug):
        path = write_html(_root(report_dir), out_, open_inventory(inventory))
        out.print(f"scorecard page: {display_path(path)}")


@task(
    help={
        "out": "Metrics file (default: <report root>/drillbook.prom); point node-exporter's textfile "
        "collector at its directory.",
        **COMMON,
    }
)
def metrics(
    c: Context,
    out_: str | None = None,
    inventory: str | None = None,
    report_dir: str | None = None,
    debug: bool = False,
) -> None:
    """Write the latest drill results in Prometheus text format (verdict, last success, key figures)."""
    from drillbook.core.store import display_path
    from drillbook.report.prom import write_metrics

    with cli_errors(debug):
        path = write_metrics(_root(report_dir), out_, open_inventory(inventory))
        out.print(f"metrics: {display_path(path)}")
