"""runbook.*: list, show, check and walk the runbooks in runbooks/ (docs/runbooks.md)."""

from __future__ import annotations

import sys
from pathlib import Path

from invoke.context import Context
from invoke.exceptions import Exit
from rich.table import Table
from rich.text import Text

from drillbook.core.console import err, out, plain
from drillbook.core.errors import ConfigError
from drillbook.core.paths import default_report_root, runbooks_dir
from drillbook.tasks._cli import INVENTORY_HELP, CommonOptions, cli_errors, cli_task, open_inventory

DIR_HELP = "Runbook directory (default: runbooks/ of the project, else the bundled runbooks)."
REPORT_HELP = "Report root (default: $DRILLBOOK_REPORT_DIR, else reports/)."


def _dir(path: str | None) -> Path:
    return Path(path) if path else runbooks_dir()


@cli_task(name="list", writes=False, help={"dir": DIR_HELP})
def list_(c: Context, dir_: str | None = None, *, opts: CommonOptions) -> None:
    """List the runbooks: name, title, severity, the alerts they answer and the tasks they use."""
    from drillbook.runbooks.model import load_all

    table = Table(title="runbooks")
    for col in ("runbook", "title", "severity", "alerts", "tasks"):
        table.add_column(col, overflow="fold")
    for rb in load_all(_dir(dir_)):
        if rb.errors:
            table.add_row(Text(rb.name), Text(f"invalid: {rb.errors[0].message}", style="red"), "", "", "")
            continue
        table.add_row(
            *(
                Text(cell)
                for cell in (
                    rb.name,
                    rb.meta.title,
                    rb.meta.severity,
                    ", ".join(rb.meta.alerts),
                    ", ".join(rb.meta.tasks),
                )
            )
        )
    out.print(table)


@cli_task(
    common=("debug",), writes=False, help={"name": "Runbook name (redis-outage) or path.", "dir": DIR_HELP}
)
def show(c: Context, name: str, dir_: str | None = None, *, opts: CommonOptions) -> None:
    """Render a runbook in the terminal."""
    from rich.markdown import Markdown
    from rich.panel import Panel

    from drillbook.runbooks.model import load

    with cli_errors(opts.debug):
        rb = load(name, _dir(dir_))
        meta = rb.meta
        out.print(
            Panel(
                f"severity [bold]{plain(meta.severity)}[/bold]   owner {plain(meta.owner)}\n"
                f"alerts: {plain(', '.join(meta.alerts) or '-')}\ntasks: {plain(', '.join(meta.tasks))}",
                title=Text(meta.title, style="bold"),
                subtitle=Text(str(rb.path.name)),
            )
        )
        out.print(Markdown(rb.body), soft_wrap=False)


@cli_task(
    common=("inventory", "report_dir", "debug"),
    writes=False,
    help={
        "strict": "Also fail when a runbook's drill is stale (not passed within its freshness limit).",
        "inventory": INVENTORY_HELP + " Freshness limits come from it.",
        "report_dir": REPORT_HELP,
        "dir": DIR_HELP,
    },
)
def check(c: Context, strict: bool = False, dir_: str | None = None, *, opts: CommonOptions) -> None:
    """Check runbooks against tasks and options, drill tasks against runbooks, links, front matter."""
    from drillbook.report.scorecard import build_scorecard, load_settings
    from drillbook.runbooks.check import check as run_check
    from drillbook.tasks import namespace

    with cli_errors(opts.debug):
        inv = open_inventory(opts.inventory)
        settings = load_settings(inv)
        card = None
        if strict:
            card = build_scorecard(
                Path(opts.report_dir) if opts.report_dir else default_report_root(), settings
            )
        directory = _dir(dir_)
        result = run_check(
            directory,
            namespace,
            scorecard=card,
            freshness_drills=list(settings.freshness_days),
            inventory_name=f"{inv.name} (report_freshness_days)",
        )
        root = directory.resolve().parent
        for problem in result.problems:
            style = "red" if problem.level == "error" else "yellow"
            out.print(Text(problem.render(root), style=style))
        summary = (
            f"runbook.check: {result.runbooks} runbooks, {result.commands} commands, "
            f"{result.drill_tasks} drill tasks{' (strict)' if strict else ''}: "
            f"{len(result.errors)} errors, {len(result.warnings)} warnings"
        )
        if not result.ok:
            err.print(f"[red]{summary}[/red]")
            raise Exit(code=1)
        out.print(f"[green]{summary}[/green]")


@cli_task(writes=False, help={"dir": DIR_HELP})
def index(c: Context, dir_: str | None = None, *, opts: CommonOptions) -> None:
    """Regenerate the alert -> runbook index in runbooks/README.md from the runbooks' front matter.

    Writes a file of this repository, nothing on a fleet (so no production guard).
    """
    from drillbook.runbooks.index import write_index
    from drillbook.runbooks.model import INDEX_NAME, load_all

    directory = _dir(dir_)
    changed = write_index(directory / INDEX_NAME, load_all(directory))
    out.print(f"{plain(directory / INDEX_NAME)}: {'updated' if changed else 'already current'}")


@cli_task(
    common=("inventory", "report_dir", "debug"),
    help={
        "name": "Runbook name (redis-outage) or path.",
        "yes": "Run every task step without asking (rehearsal, CI); no terminal input needed.",
        "note": "A note for the incident log (repeatable), e.g. the alert or ticket that started it.",
        "inventory": INVENTORY_HELP + " Passed on to every task the runbook runs.",
        "report_dir": REPORT_HELP + " Drill reports and incidents/ go there.",
        "dir": DIR_HELP,
        "allow_production": "Run although the inventory is production; the consent is passed on to "
        "the tasks the runbook runs, for this fleet only.",
    },
    iterable=["note"],
    short={"yes": "y"},
)
def run(
    c: Context,
    name: str,
    yes: bool = False,
    note: list[str] | None = None,
    dir_: str | None = None,
    *,
    opts: CommonOptions,
) -> None:
    """Walk a runbook step by step: run / skip / quit each task step; log to reports/incidents/.

    Without --yes it asks at every step, so it needs a terminal on stdin: without one
    (a pipe, cron, CI) it stops at once with exit 2 rather than "answer" from a pipe.
    """
    from drillbook.runbooks.model import load
    from drillbook.runbooks.walk import walk

    with cli_errors(opts.debug):
        if not yes and not sys.stdin.isatty():
            raise ConfigError(
                "runbook.run asks at every step and stdin is not a terminal: "
                "run it in a terminal, or pass --yes to run every step without asking"
            )
        rb = load(name, _dir(dir_))
        # A wrong path fails here, not halfway through the runbook. --allow-production reaches
        # the steps (subprocesses) through the consent CliTask recorded (drillbook/core/guard.py).
        open_inventory(opts.inventory)
        result = walk(
            rb,
            report_root=Path(opts.report_dir) if opts.report_dir else default_report_root(),
            inventory=opts.inventory,
            yes=yes,
            notes=note or [],
        )
        if result.exit_code:
            raise Exit(code=result.exit_code)
