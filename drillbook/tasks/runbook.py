"""runbook.*: list, show, check and walk the runbooks in runbooks/ (docs/runbooks.md)."""

from __future__ import annotations

from pathlib import Path

from invoke.context import Context
from invoke.exceptions import Exit
from invoke.tasks import task
from rich.markdown import Markdown
from rich.panel import Panel
from rich.table import Table

from drillbook.core.console import err, out
from drillbook.core.paths import default_report_root, runbooks_dir
from drillbook.tasks._cli import INVENTORY_HELP, cli_errors, open_inventory

DIR_HELP = "Runbook directory (default: runbooks/ of the project, else the bundled runbooks)."
REPORT_HELP = "Report root (default: $DRILLBOOK_REPORT_DIR, else reports/)."


def _dir(path: str | None) -> Path:
    return Path(path) if path else runbooks_dir()


@task(name="list", help={"dir": DIR_HELP})
def list_(c: Context, dir_: str | None = None) -> None:
    """List the runbooks: name, title, severity, the alerts they answer and the tasks they use."""
    from drillbook.runbooks.model import load_all

    table = Table(title="runbooks")
    for col in ("runbook", "title", "severity", "alerts", "tasks"):
        table.add_column(col, overflow="fold")
    for rb in load_all(_dir(dir_)):
        if rb.errors:
            table.add_row(rb.name, f"[red]invalid: {rb.errors[0].message}[/red]", "", "", "")
            continue
        table.add_row(
            rb.name, rb.meta.title, rb.meta.severity, ", ".join(rb.meta.alerts), ", ".join(rb.meta.tasks)
        )
    out.print(table)


@task(help={"name": "Runbook name (redis-outage) or path.", "dir": DIR_HELP, "debug": "Show tracebacks."})
def show(c: Context, name: str, dir_: str | None = None, debug: bool = False) -> None:
    """Render a runbook in the terminal."""
    from drillbook.runbooks.model import load

    with cli_errors(debug):
        rb = load(name, _dir(dir_))
        meta = rb.meta
        out.print(
            Panel(
                f"severity [bold]{meta.severity}[/bold]   owner {meta.owner}\n"
                f"alerts: {', '.join(meta.alerts) or '-'}\ntasks: {', '.join(meta.tasks)}",
                title=f"[bold]{meta.title}[/bold]",
                subtitle=str(rb.path.name),
            )
        )
        out.print(Markdown(rb.body), soft_wrap=False)


@task(
    help={
        "strict": "Also fail when a runbook's drill is stale (not passed within its freshness limit).",
        "inventory": INVENTORY_HELP + " Freshness limits come from it.",
        "report_dir": REPORT_HELP,
        "dir": DIR_HELP,
        "debug": "Show tracebacks.",
    }
)
def check(
    c: Context,
    strict: bool = False,
    inventory: str | None = None,
    report_dir: str | None = None,
    dir_: str | None = None,
    debug: bool = False,
) -> None:
    """Check runbooks against tasks and options, drill tasks against runbooks, links, front matter."""
    from drillbook.report.scorecard import build_scorecard, load_settings
    from drillbook.runbooks.check import check as run_check
    from drillbook.tasks import namespace

    with cli_errors(debug):
        inv = open_inventory(inventory)
        settings = load_settings(inv)
        card = None
        if strict:
            card = build_scorecard(Path(report_dir) if report_dir else default_report_root(), settings)
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
            out.print(f"[{style}]{problem.render(root)}[/{style}]", highlight=False)
        summary = (
            f"runbook.check: {result.runbooks} runbooks, {result.commands} commands, "
            f"{result.drill_tasks} drill tasks{' (strict)' if strict else ''}: "
            f"{len(result.errors)} errors, {len(result.warnings)} warnings"
        )
        if not result.ok:
            err.print(f"[red]{summary}[/red]")
            raise Exit(code=1)
        out.print(f"[green]{summary}[/green]")


@task(help={"dir": DIR_HELP})
def index(c: Context, dir_: str | None = None) -> None:
    """Regenerate the alert -> runbook index in runbooks/README.md from the runbooks' front matter."""
    from drillbook.runbooks.index import write_index
    from drillbook.runbooks.model import INDEX_NAME, load_all

    directory = _dir(dir_)
    changed = write_index(directory / INDEX_NAME, load_all(directory))
    out.print(f"{directory / INDEX_NAME}: {'updated' if changed else 'already current'}")


@task(
    help={
        "name": "Runbook name (redis-outage) or path.",
        "yes": "Run every task step without asking (rehearsal, CI); no terminal input needed.",
        "note": "A note for the incident log (repeatable), e.g. the alert or ticket that started it.",
        "inventory": INVENTORY_HELP + " Passed on to every task the runbook runs.",
        "report_dir": REPORT_HELP + " Drill reports and incidents/ go there.",
        "dir": DIR_HELP,
        "debug": "Show tracebacks.",
    },
    iterable=["note"],
)
def run(
    c: Context,
    name: str,
    yes: bool = False,
    note: list[str] | None = None,
    inventory: str | None = None,
    report_dir: str | None = None,
    dir_: str | None = None,
    debug: bool = False,
) -> None:
    """Walk a runbook step by step: run / skip / quit each task step; log to reports/incidents/."""
    from drillbook.runbooks.model import load
    from drillbook.runbooks.walk import walk

    with cli_errors(debug):
        rb = load(name, _dir(dir_))
        if inventory:
            open_inventory(inventory)  # a wrong path fails here, not halfway through the runbook
        result = walk(
            rb,
            report_root=Path(report_dir) if report_dir else default_report_root(),
            inventory=inventory,
            yes=yes,
            notes=note or [],
        )
        if result.exit_code:
            raise Exit(code=result.exit_code)
