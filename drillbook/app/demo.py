"""``inv demo``: bring up the lab, run every drill once, print the scorecard.

A newcomer's first command. Each capability contributes one or more steps; a
step that errors does not stop the others (a demo that shows a failing drill is
still a demo), but the exit code says whether everything passed.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from drillbook.core.console import Progress, err, out
from drillbook.core.drill import AnyDrill, DrillContext, execute
from drillbook.core.errors import DrillbookError
from drillbook.core.inventory import Inventory
from drillbook.core.journal import Journal


@dataclass(frozen=True)
class DemoStep:
    """One line of the demo: a label and how to build its drill (None when not applicable)."""

    label: str
    build: Callable[[Inventory], AnyDrill]
    expect: str = "pass"  # a deliberately bad canary is expected to fail


@dataclass
class DemoResult:
    """What one demo step gave: its journal, or the error that kept it from running."""

    step: DemoStep
    journal: Journal | None
    error: str | None = None

    @property
    def as_expected(self) -> bool:
        """Whether the verdict is the one the step expects (the bad canary is expected to fail)."""
        return self.journal is not None and self.journal.verdict == self.step.expect


def _smoke(inv: Inventory) -> AnyDrill:
    from drillbook.smoke import Smoke

    return Smoke()


def _audit_http(inv: Inventory) -> AnyDrill:
    from drillbook.audit.drill import HttpAudit

    return HttpAudit()


def _audit_hosts(inv: Inventory) -> AnyDrill:
    from drillbook.audit.drill import HostsAudit

    return HostsAudit()


def _backup_run(inv: Inventory) -> AnyDrill:
    from drillbook.backup import BackupRun, load_settings

    return BackupRun(load_settings(inv))


def _backup_restore_test(inv: Inventory) -> AnyDrill:
    from drillbook.backup import RestoreTest, load_settings

    return RestoreTest(load_settings(inv), boot_app=True)


def _migrate_rehearse(inv: Inventory) -> AnyDrill:
    from drillbook.migrate import Rehearse, load_settings

    # The lab is at head after lab.up: rehearse the whole chain from the first revision.
    return Rehearse(load_settings(inv), from_="0001")


def _kill_redis(inv: Inventory) -> AnyDrill:
    from drillbook.chaos import KillRedis

    return KillRedis.for_inventory(inv, duration_s=3)


def _kill_db(inv: Inventory) -> AnyDrill:
    from drillbook.chaos import KillDb

    return KillDb.for_inventory(inv, duration_s=3)


def _load_run(inv: Inventory) -> AnyDrill:
    from drillbook.load.drill import demo_run

    return demo_run(inv)  # a short run at the lab's target rate + 20 % headroom


def _good_canary(inv: Inventory) -> AnyDrill:
    from drillbook.app.canaries import good_canary

    return good_canary(inv)


def _bad_canary(inv: Inventory) -> AnyDrill:
    from drillbook.app.canaries import bad_canary

    return bad_canary(inv)


def demo_steps() -> list[DemoStep]:
    """The drills of every capability, in the order a release would meet them."""
    return [
        DemoStep("smoke", _smoke),
        DemoStep("audit.http", _audit_http),
        DemoStep("audit.hosts", _audit_hosts),
        DemoStep("backup.run", _backup_run),
        DemoStep("backup.restore-test", _backup_restore_test),
        DemoStep("migrate.rehearse", _migrate_rehearse),
        DemoStep("chaos.kill-redis", _kill_redis),
        DemoStep("chaos.kill-db", _kill_db),
        DemoStep("load.run", _load_run),
        # the bad canary first: the latest canary (the checklist's evidence) is then the good one
        DemoStep("deploy.canary (20% errors)", _bad_canary, expect="fail"),
        DemoStep("deploy.canary (good release)", _good_canary),
    ]


def run_demo(inv: Inventory, report_root: Path, quiet: bool = False) -> list[DemoResult]:
    """Bring the lab up, then run every step once; a step that errors is recorded and the next one runs."""
    from drillbook import labenv as lab

    progress = Progress("demo")
    t0 = time.monotonic()
    progress("bringing up the lab")
    lab.up(inv, progress=None if quiet else Progress("lab.up"))
    results: list[DemoResult] = []
    for step in demo_steps():
        progress(f"{step.label}")
        ctx = DrillContext(inventory=inv, report_root=report_root, quiet=quiet)
        try:
            journal = execute(step.build(inv), ctx)
            results.append(DemoResult(step, journal))
        except DrillbookError as exc:
            err.print(f"[red]{step.label}: {exc}[/red]")
            results.append(DemoResult(step, None, str(exc)))
    progress(f"demo finished in {time.monotonic() - t0:.0f}s")
    return results


def print_scorecard(inv: Inventory, report_root: Path) -> None:
    """The scorecard of every drill, the HTML page, and the checklist, as the demo's last word."""
    from drillbook.checklist import evaluate, load_checklist
    from drillbook.checklist.render import table
    from drillbook.report.html import write_html
    from drillbook.report.scorecard import render_terminal

    render_terminal(report_root, inv)
    page = write_html(report_root, None, inv)
    out.print(table(evaluate(load_checklist(), report_root)))
    out.print(f"scorecard page: {page}")


def print_results(results: list[DemoResult]) -> None:
    """The demo's table: each step's verdict beside the one expected, and its report folder."""
    from rich.table import Table

    table = Table(title="drillbook demo")
    for col in ("drill", "verdict", "expected", "report"):
        table.add_column(col)
    for r in results:
        verdict = r.journal.verdict if r.journal else "error"
        style = "green" if r.as_expected else "red"
        table.add_row(
            r.step.label,
            f"[{style}]{verdict}[/{style}]",
            r.step.expect,
            (r.journal.report_dir or "") if r.journal else (r.error or ""),
        )
    out.print(table)
