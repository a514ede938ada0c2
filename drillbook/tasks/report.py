"""report.*: recent drills, the scorecard, its HTML page and its Prometheus metrics (docs/report.md)."""

from __future__ import annotations

from pathlib import Path

from invoke.context import Context
from rich.table import Table
from rich.text import Text

from drillbook.core.console import VERDICT_MEANING, VERDICT_STYLE, out, plain
from drillbook.core.paths import default_report_root
from drillbook.tasks._cli import (
    INVENTORY_HELP,
    CommonOptions,
    cli_errors,
    cli_task,
    int_option,
    open_inventory,
)

REPORT_HELP = "Report root to read (default: $DRILLBOOK_REPORT_DIR, else reports/)."
COMMON_NAMES = ("inventory", "report_dir", "debug")
COMMON = {
    "inventory": INVENTORY_HELP + " Freshness limits come from it.",
    "report_dir": REPORT_HELP,
}


def _root(report_dir: str | None) -> Path:
    return Path(report_dir) if report_dir else default_report_root()


@cli_task(
    name="list",
    common=COMMON_NAMES,
    writes=False,
    help={"limit": "How many runs to show, newest first (default 20).", **COMMON},
)
def list_(c: Context, limit: str | None = None, *, opts: CommonOptions) -> None:
    """Recent drill runs: time, drill, verdict, key figure, report; unreadable journals are listed too."""
    from drillbook.core.store import display_path, load_entries
    from drillbook.report.figures import headline
    from drillbook.report.scorecard import load_settings

    with cli_errors(opts.debug):
        count = int_option("limit", limit, minimum=0, maximum=1_000_000)
        settings = load_settings(open_inventory(opts.inventory))
        root = _root(opts.report_dir)
        entries = load_entries(root)
        table = Table(title=Text(f"recent drills ({display_path(root)})"))
        for col in ("started (UTC)", "drill", "verdict", "key figure", "report"):
            table.add_column(col, overflow="fold")
        for entry in list(reversed(entries))[: 20 if count is None else count]:
            style = VERDICT_STYLE.get(entry.verdict, "yellow")
            figure = headline(entry.journal, settings.key_figures.get(entry.drill)) if entry.journal else ""
            meaning = VERDICT_MEANING.get(entry.verdict)
            table.add_row(
                entry.started.strftime("%Y-%m-%d %H:%M:%S"),
                Text(entry.drill),
                Text(
                    entry.verdict + (f" ({meaning})" if meaning and entry.verdict != "pass" else ""),
                    style=style,
                ),
                Text(figure or (entry.error or "")),
                Text(display_path(entry.summary)),
            )
        out.print(table)
        if not entries:
            out.print(f"no journals under {plain(display_path(root))}")


@cli_task(common=COMMON_NAMES, writes=False, help=COMMON)
def scorecard(c: Context, *, opts: CommonOptions) -> None:
    """The scorecard: latest verdict of every drill, its key figure, and whether it is stale."""
    from drillbook.report.scorecard import render_terminal

    with cli_errors(opts.debug):
        render_terminal(_root(opts.report_dir), open_inventory(opts.inventory))


@cli_task(
    common=COMMON_NAMES,
    writes=False,
    help={"out": "Where to write the page (default: <report root>/index.html).", **COMMON},
)
def html(c: Context, out_: str | None = None, *, opts: CommonOptions) -> None:
    """Write the scorecard as one static HTML page with trend plots and links to every journal."""
    from drillbook.core.store import display_path
    from drillbook.report.html import write_html

    with cli_errors(opts.debug):
        path = write_html(_root(opts.report_dir), out_, open_inventory(opts.inventory))
        out.print(f"scorecard page: {plain(display_path(path))}")


@cli_task(
    common=COMMON_NAMES,
    writes=False,
    help={
        "out": "Metrics file (default: <report root>/drillbook.prom); point node-exporter's textfile "
        "collector at its directory.",
        **COMMON,
    },
)
def metrics(c: Context, out_: str | None = None, *, opts: CommonOptions) -> None:
    """Write the latest drill results in Prometheus text format (verdict, last success, key figures)."""
    from drillbook.core.store import display_path
    from drillbook.report.prom import write_metrics

    with cli_errors(opts.debug):
        path = write_metrics(_root(opts.report_dir), out_, open_inventory(opts.inventory))
        out.print(f"metrics: {plain(display_path(path))}")
