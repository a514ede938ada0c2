"""load.*: Locust at the peak rate plus headroom, judged against the SLA (runbooks/load-test.md)."""

from __future__ import annotations

from pathlib import Path

from invoke.context import Context
from invoke.tasks import task
from rich.markdown import Markdown

from drillbook.core.console import out
from drillbook.core.journal import Journal
from drillbook.core.paths import default_report_root
from drillbook.tasks._cli import CommonOptions, cli_errors, drill_task, open_inventory, run_drill


@drill_task(
    help={
        "rps": "Expected peak rate R in requests/s (default: load_rps from the inventory).",
        "headroom": "Fraction above the peak to hold: target = R x (1 + headroom) (default: load_headroom).",
        "duration": "Whole run including the ramp, e.g. 60s, 2m, 1m30s (default: load_duration).",
        "ramp": "Linear ramp from 0 to the target at the start, e.g. 10s (default: load_ramp).",
        "processes": "Locust processes on this machine (Locust's --processes; default: load_processes).",
        "locustfile": "Your own locustfile (default: load_locustfile, loadtests/locustfile.py).",
        "local": "Run Locust only here even when the inventory has a loadgen group.",
    }
)
def run(
    c: Context,
    rps: float | None = None,
    headroom: float | None = None,
    duration: str | None = None,
    ramp: str | None = None,
    processes: int | None = None,
    locustfile: str | None = None,
    local: bool = False,
    *,
    opts: CommonOptions,
) -> None:
    """Hold peak x (1 + headroom) req/s with Locust; judge rate, p95/p99, errors (runbooks/load-test.md).

    The rate is an arrival rate (open model): requests are issued on schedule whether or
    not earlier ones finished. Reports: Locust's HTML and CSV, a PNG of rate and p95 over
    time, summary.md. With a `loadgen` inventory group, workers start there via Ansible.
    Exit 0 pass, 1 a threshold breached, 2 cannot run (target down, bad option,
    generator limit), 130 interrupted (a partial report is still written).
    """
    from drillbook.load import LoadRun, load_settings, make_plan

    with cli_errors(opts.debug):
        inv = open_inventory(opts.inventory)
        settings = load_settings(inv)
        plan = make_plan(
            inv,
            settings,
            rps=rps,
            headroom=headroom,
            duration=duration,
            ramp=ramp,
            processes=processes,
            locustfile=locustfile,
            local=local,
        )
        run_drill(LoadRun(settings, plan), inv, opts)


@task(
    help={
        "id": "Report directory, or a unique part of its name, e.g. 20261122T0215 (default: the latest run).",
        "report_dir": "Where reports are (default: $DRILLBOOK_REPORT_DIR, else reports/).",
        "debug": "Show tracebacks instead of one-line errors.",
    },
)
def report(c: Context, id: str | None = None, report_dir: str | None = None, debug: bool = False) -> None:
    """Print a finished load run's figures again: checks, witnesses, endpoints, generator, files."""
    from drillbook.load.report import find_run, reprint

    with cli_errors(debug):
        root = Path(report_dir) if report_dir else default_report_root()
        path = find_run(root, id)
        journal = Journal.read(path / "journal.json")
        out.print(Markdown(reprint(journal, path)), soft_wrap=False)
