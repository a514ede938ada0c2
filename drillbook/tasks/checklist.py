"""checklist: the production-readiness checklist, each line proven by a drill, an audit or a sign-off."""

from __future__ import annotations

from pathlib import Path

from invoke.context import Context
from invoke.exceptions import Exit

from drillbook.core.console import out, plain
from drillbook.core.errors import ConfigError
from drillbook.core.paths import default_report_root
from drillbook.tasks._cli import CommonOptions, cli_errors, cli_task
from drillbook.tasks._registry import known_audits, known_drills

FILE_HELP = "The checklist file (default: checklist.yml at the repository root)."
REPORT_HELP = "Where drill journals are read from (default: $DRILLBOOK_REPORT_DIR, else reports/)."


@cli_task(
    default=True,
    common=("report_dir", "debug"),
    writes=False,
    help={
        "file": FILE_HELP,
        "report_dir": REPORT_HELP,
        "html": "Also write the checklist as one HTML page to this path.",
        "markdown": "Also write the checklist as Markdown to this path.",
    },
)
def checklist(
    c: Context,
    file: str | None = None,
    html: str | None = None,
    markdown_: str | None = None,
    *,
    opts: CommonOptions,
) -> None:
    """Each checklist item: proven, failing, could not run, stale or unproven; exit 1 unless required ok.

    Runbook: runbooks/release-readiness.md
    """
    from drillbook.checklist import evaluate, load_checklist
    from drillbook.checklist.model import validate_references
    from drillbook.checklist.render import html_page, markdown, table
    from drillbook.checklist.status import summary_line
    from drillbook.core.journal import write_atomic

    with cli_errors(opts.debug):
        items = load_checklist(Path(file) if file else None)
        validate_references(items, known_drills(), known_audits())
        statuses = evaluate(items, Path(opts.report_dir) if opts.report_dir else default_report_root())
        out.print(table(statuses))
        for path, text in ((html, html_page(statuses)), (markdown_, markdown(statuses))):
            if path:
                write_atomic(Path(path), text)
                out.print(f"wrote {plain(path)}")
        blocking = [s for s in statuses if s.blocking]
        if blocking:
            raise Exit(
                f"{summary_line(statuses)}: required items not proven: "
                + ", ".join(s.item.id for s in blocking),
                code=1,
            )


@cli_task(
    common=("report_dir", "debug"),
    writes=False,
    help={
        "item": "The checklist item id (see inv checklist).",
        "by": "Who signs (default: the current user).",
        "note": "What was checked, in a few words.",
        "file": FILE_HELP,
        "report_dir": REPORT_HELP,
    },
)
def sign(
    c: Context,
    item: str,
    by: str | None = None,
    note: str | None = None,
    file: str | None = None,
    *,
    opts: CommonOptions,
) -> None:
    """Record a person's dated sign-off for a manual checklist item.

    Writes under the report root, nothing on a fleet (so no production guard).
    """
    from drillbook.checklist import load_checklist
    from drillbook.checklist.signoff import record

    with cli_errors(opts.debug):
        checklist_ = load_checklist(Path(file) if file else None)
        target = checklist_.item(item)
        if not target.evidence.manual:
            raise ConfigError(f"item {item} is proven by {target.evidence.describe()}, not by a sign-off")
        root = Path(opts.report_dir) if opts.report_dir else default_report_root()
        entry = record(root, item, by=by, note=note or "")
        out.print(f"signed {plain(entry.item)} by {plain(entry.by)} at {plain(entry.at)}")
