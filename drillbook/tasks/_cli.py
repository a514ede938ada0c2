"""What every task shares: common options, inventory loading, errors to one line, exit codes."""

from __future__ import annotations

import sys
import traceback
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from invoke.exceptions import Exit

from drillbook.core.console import err
from drillbook.core.drill import Drill, DrillContext, execute, print_summary
from drillbook.core.errors import DrillbookError
from drillbook.core.inventory import Inventory, load_inventory
from drillbook.core.journal import Journal
from drillbook.core.paths import default_report_root

INVENTORY_HELP = "Inventory directory or file (default: $DRILLBOOK_INVENTORY, else inventory/lab)."
COMMON_HELP = {
    "inventory": INVENTORY_HELP,
    "report_dir": "Where reports go (default: $DRILLBOOK_REPORT_DIR, else reports/).",
    "junit": "Also write the verdict as JUnit XML to this file, for CI systems.",
    "debug": "Show tracebacks instead of one-line errors.",
    "quiet": "Only print the verdict, not progress.",
}


def helps(**specific: str) -> dict[str, str]:
    """Task-specific option help plus the options every drill task has."""
    return {**COMMON_HELP, **specific}


@contextmanager
def cli_errors(debug: bool = False) -> Iterator[None]:
    """Turn drillbook's errors into one red line and an exit code; a traceback only with --debug."""
    try:
        yield
    except DrillbookError as exc:
        if debug:
            traceback.print_exc()
        err.print(f"[red]error:[/red] {exc}", highlight=False)
        raise Exit(code=exc.exit_code) from None
    except KeyboardInterrupt:
        err.print("[yellow]interrupted[/yellow]")
        raise Exit(code=130) from None


def open_inventory(path: str | None) -> Inventory:
    return load_inventory(path)


def run_drill(
    drill: Drill,
    inv: Inventory,
    *,
    report_dir: str | None = None,
    junit: str | None = None,
    debug: bool = False,
    quiet: bool = False,
    exit_on_verdict: bool = True,
) -> Journal:
    """Execute a drill, print its summary, and exit 0 (pass), 1 (fail), 2 (error) or 130 (interrupted)."""
    ctx = DrillContext(
        inventory=inv,
        report_root=Path(report_dir) if report_dir else default_report_root(),
        junit=Path(junit) if junit else None,
        quiet=quiet,
        debug=debug,
    )
    journal = execute(drill, ctx)
    print_summary(journal, Path(journal.report_dir) if journal.report_dir else None)
    if exit_on_verdict and journal.exit_code:
        sys.stdout.flush()
        raise Exit(code=journal.exit_code)
    return journal
