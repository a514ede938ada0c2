"""demo: the lab up, every drill once, and the scorecard."""

from __future__ import annotations

from pathlib import Path

from invoke.context import Context
from invoke.exceptions import Exit
from invoke.tasks import task

from drillbook.core.paths import default_report_root
from drillbook.demo import print_results, print_scorecard, run_demo
from drillbook.tasks._cli import INVENTORY_HELP, cli_errors, open_inventory


@task(
    default=True,
    help={
        "inventory": INVENTORY_HELP,
        "report_dir": "Where reports go (default: $DRILLBOOK_REPORT_DIR, else reports/).",
        "debug": "Show tracebacks instead of one-line errors.",
        "quiet": "Only print verdicts, not progress.",
    },
)
def demo(
    c: Context,
    inventory: str | None = None,
    report_dir: str | None = None,
    debug: bool = False,
    quiet: bool = False,
) -> None:
    """Bring up the lab, run every drill once and print the scorecard with report paths."""
    with cli_errors(debug):
        inv = open_inventory(inventory)
        root = Path(report_dir) if report_dir else default_report_root()
        results = run_demo(inv, root, quiet=quiet)
        print_results(results)
        print_scorecard(inv, root)
        if not all(r.as_expected for r in results):
            raise Exit(code=1)
