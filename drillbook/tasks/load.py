"""load.*: Locust at the peak rate plus headroom, judged against the SLA (runbooks/load-test.md)."""

from __future__ import annotations

from pathlib import Path

from invoke.context import Context

from drillbook.core.console import out
from drillbook.core.errors import ConfigError
from drillbook.core.paths import default_report_root
from drillbook.tasks._cli import (
    CommonOptions,
    cli_errors,
    cli_task,
    drill_task,
    float_option,
    int_option,
    open_inventory,
    run_drill,
)

#: A week: a longer "load test" is a typo (or an outage).
MAX_DURATION_S = 7 * 86_400


def _duration(option: str, value: str | None) -> str | float | None:
    """A plain number of seconds goes through the number parser (nan, inf, -5 refused);
    ``1m30s`` is left to the load plan's duration parser."""
    if value is None or value == "":
        return None
    try:
        float(value)
    except ValueError:
        return value
    return float_option(option, value, minimum=0, maximum=MAX_DURATION_S)


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
    rps: str | None = None,
    headroom: str | None = None,
    duration: str | None = None,
    ramp: str | None = None,
    processes: str | None = None,
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
    with cli_errors(opts.debug):
        # Ranges (rps > 0, 0 <= headroom <= 10, processes >= 1, load_max_rps) are judged by
        # make_plan, whose messages say what the number means; here: a finite number at all.
        rps_ = float_option("rps", rps)
        headroom_ = float_option("headroom", headroom)
        processes_ = int_option("processes", processes, maximum=1024)
        duration_, ramp_ = _duration("duration", duration), _duration("ramp", ramp)
        from drillbook.load import LoadRun, load_settings, make_plan  # after the options: a typo is instant

        inv = open_inventory(opts.inventory)
        settings = load_settings(inv)
        plan = make_plan(
            inv,
            settings,
            rps=rps_,
            headroom=headroom_,
            duration=duration_,
            ramp=ramp_,
            processes=processes_,
            locustfile=locustfile,
            local=local,
        )
        run_drill(LoadRun(settings, plan), inv, opts)


@cli_task(
    common=("report_dir", "debug"),
    writes=False,
    help={
        "id": "Report directory, or a unique part of its name, e.g. 20261122T0215 (default: the latest run).",
        "report_dir": "Where reports are (default: $DRILLBOOK_REPORT_DIR, else reports/).",
    },
)
def report(c: Context, id_: str | None = None, *, opts: CommonOptions) -> None:
    """Print a finished load run's figures again: checks, witnesses, endpoints, generator, files."""
    from rich.markdown import Markdown

    from drillbook.core.journal import Journal
    from drillbook.load.report import find_run, reprint

    with cli_errors(opts.debug):
        root = Path(opts.report_dir) if opts.report_dir else default_report_root()
        path = find_run(root, id_)
        try:
            journal = Journal.read(path / "journal.json")
        except (ValueError, KeyError, TypeError, AttributeError) as exc:
            raise ConfigError(
                f"{path / 'journal.json'} is not a readable journal ({type(exc).__name__}: {exc})"
            ) from None
        out.print(Markdown(reprint(journal, path)), soft_wrap=False)
