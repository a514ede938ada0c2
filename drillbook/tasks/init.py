"""init: scaffold a service's ops repository (``drillbook init ops --service-name shop``)."""

from __future__ import annotations

from pathlib import Path

from invoke.context import Context
from invoke.tasks import task

from drillbook.core.console import out
from drillbook.tasks._cli import cli_errors


@task(
    default=True,
    positional=["folder"],
    help={
        "folder": "Folder of the ops repository (default: the current folder); created if missing.",
        "service-name": "The service's name, a DNS label (default: the folder's name).",
    },
)
def init(c: Context, folder: str | None = None, service_name: str | None = None) -> None:
    """Scaffold an ops repo: inventory/staging, runbooks, checklist, tasks.py, CI example, README.

    Never overwrites a file that exists: run it again to add what is missing.
    """
    from rich.markup import escape

    from drillbook.project import init_project

    where = folder or "."
    with cli_errors():
        done = init_project(Path(where), service_name)
    for f in done:
        style = {"created": "green", "kept": "yellow", "unchanged": "dim"}[f.outcome]
        out.print(f"  [{style}]{f.outcome:9}[/{style}] {escape(f.path)}")
    created = sum(1 for f in done if f.outcome == "created")
    out.print(
        f"{created} files created, {len(done) - created} already there. Next: {escape(where)}/README.md"
    )
