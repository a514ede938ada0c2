"""checklist: the production-readiness checklist, each line proven by a drill, an audit or a sign-off."""

from __future__ import annotations

from pathlib import Path

from invoke.context import Context
from invoke.exceptions import Exit
from invoke.tasks import task

from drillbook.checklist import evaluate, load_checklist
from drillbook.checklist.model import validate_references
from drillbook.checklist.render import html_page, markdown, table
from drillbook.checklist.signoff import record
from drillbook.checklist.status import summary_line
from drillbook.core.console import out
from drillbook.core.journal import write_atomic
from drillbook.core.paths import default_report_root
from drillbook.tasks._cli import cli_errors
from drillbook.tasks._registry import known_audits, known_drills

FILE_HELP = "The checklist file (default: checklist.yml at the repository root)."
REPORT_HELP = "Where drill journals are read from (default: $DRILLBOOK_REPORT_DIR, else reports/)."


@task(
    default=True,
    help={
        "file": FILE_HELP,
        "report_dir": REPORT_HELP,
        "html": "Also write the checklist as one HTML page to this path.",
        "markdown": "Also write the checklist as Markdown to this path.",
        "debug": "Show tracebacks.",
    },
)
def checklist(
    c: Context,
    file: str | None = None,
    report_dir: str | None = None,
    html: str | None = None,
    markdown_: str | None = None,
    debug: bool = False,
) -> None:
    """Show every checklist item as proven, failing, stale or unproven; exit 1 if a required one is not.

    Runbook: runbooks/release-readiness.md
    """
    with cli_errors(debug):
        items = load_checklist(Path(file) if file else None)
        validate_references(items, known_drills(), known_audits())
        statuses = evaluate(items, Path(report_dir) if report_dir else default_report_root())
        out.print(table(statuses))
        for path, text in ((html, html_page(statuses)), (markdown_, markdown(statuses))):
            if path:
                write_atomic(Path(path), text)
                out.print(f"wrote {path}")
        blocking = [s for s in statuses if s.blocking]
        if blocking:
            raise Exit(
                f"{summary_line(statuses)}: required items not proven: "
                + ", ".join(s.item.id for s in blocking),
                code=1,
            )


@task(
    help={
        "item": "The checklist item id (see inv checklist).",
        "by": "Who signs (default: the current user).",
        "note": "What was checked, in a few words.",
        "file": FILE_HELP,
        "report_dir": REPORT_HELP,
        "debug": "Show tracebacks.",
    }
)
def sign(
    c: Context,
    item: str,
    by: str | None = None,
    note: str = "",
    file: str | None = None,
    report_dir: str | None = None,
    debug: bool = False,
) -> None:
    """Record a person's dated sign-off for a manual checklist item."""
    with cli_errors(debug):
        from drillbook.core.errors import ConfigError

        checklist_ = load_checklist(Path(file) if file else None)
        target = checklist_.item(item)
        if not target.evidence.manual:
            raise ConfigError(f"item {item} is proven by {target.evidence.describe()}, not by a sign-off")
        entry = record(Path(report_dir) if report_dir else default_report_root(), item, by=by, note=note)
        out.print(f"signed {entry.item} by {entry.by} at {entry.at}")
