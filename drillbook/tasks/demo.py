"""demo: the lab up, every drill once, and the scorecard."""

from __future__ import annotations

from pathlib import Path

from invoke.context import Context
from invoke.exceptions import Exit

from drillbook.core.paths import default_report_root
from drillbook.tasks._cli import CommonOptions, cli_errors, drill_task, open_inventory


@drill_task(
    default=True,
    common=("inventory", "report_dir", "debug", "quiet"),
    help={"quiet": "Only print verdicts, not progress."},
)
def demo(c: Context, *, opts: CommonOptions) -> None:
    """Bring up the lab, run every drill once and print the scorecard with report paths."""
    from drillbook.app.demo import print_results, print_scorecard, run_demo

    with cli_errors(opts.debug):
        inv = open_inventory(opts.inventory)
        root = Path(opts.report_dir) if opts.report_dir else default_report_root()
        results = run_demo(inv, root, quiet=opts.quiet)
        print_results(results)
        print_scorecard(inv, root)
        if not all(r.as_expected for r in results):
            raise Exit(code=1)
