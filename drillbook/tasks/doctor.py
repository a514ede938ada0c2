"""doctor: which drills can run against this inventory and its live service, and what is missing."""

from __future__ import annotations

from pathlib import Path

from invoke.context import Context
from invoke.exceptions import Exit

from drillbook.tasks._cli import CommonOptions, cli_errors, cli_task, open_inventory


@cli_task(
    default=True,
    common=("inventory", "debug"),
    writes=False,
    help={"checklist": "The checklist whose required drills must be able to run (default: checklist.yml)."},
)
def doctor(c: Context, checklist: str | None = None, *, opts: CommonOptions) -> None:
    """Drill by drill: can it run here, and what is missing; exit 1 if a required drill cannot.

    Validates the service profile (one line per mistake, exit 2), then asks the live
    service what the drills would ask (readiness and liveness paths, identity, metrics,
    the smoke flow's reads, database and cache). Only reads, so it runs on production.
    Runbook: docs/service-profile.md
    """
    from drillbook.checklist import load_checklist
    from drillbook.core.console import out, plain
    from drillbook.doctor import diagnose, render

    with cli_errors(opts.debug):
        items = load_checklist(Path(checklist) if checklist else None)
        required = {
            it.evidence.drill if it.evidence.kind == "drill" else it.evidence.audit_drill
            for it in items.items
            if it.evidence.kind != "manual" and items.required(it)
        }
        diagnosis = diagnose(open_inventory(opts.inventory), {r for r in required if r})
        for line in render(diagnosis):
            out.print(plain(line), highlight=False, soft_wrap=True)
        if diagnosis.blocked_required:
            raise Exit(code=1)
