"""demo: the lab up, every drill once, and the scorecard."""

from __future__ import annotations

from pathlib import Path

from invoke.context import Context
from invoke.exceptions import Exit
from invoke.tasks import task

from drillbook.core.paths import default_report_root
from drillbook.demo import print_results, run_demo
from drillbook.tasks._cli import cli_errors, helps, open_inventory


@task(default=True, help=helps())
def demo(
    c: Context,
    inventory: str | None = None,
    report_dir: str | None = None,
    junit: str | None = None,
    debug: bool = False,
    quiet: bool = False,
) -> None:
    """Bring up the lab, run every drill once and print the scorecard with report paths."""
    with cli_errors(debug):
        inv = open_inventory(inventory)
        results = run_demo(inv, Path(report_dir) if report_dir else default_report_root(), quiet=quiet)
        print_results(results)
        if not all(r.as_expected for r in results):
            raise Exit(code=1)
