"""``report.metrics``: the latest drill results in Prometheus text exposition format.

Written for node-exporter's textfile collector (``--collector.textfile.directory``),
atomically, so an alert can fire when a drill has not passed for N days::

    time() - drillbook_drill_last_success_timestamp_seconds > 7 * 86400
    drillbook_drill_stale == 1

Metrics (label ``drill`` is the task name, e.g. ``backup.restore-test``):

- ``drillbook_drill_verdict``: the latest finished run: **1 pass, 0 fail, -1 error**
  (absent for a drill that never finished a run);
- ``drillbook_drill_failing`` and ``drillbook_drill_could_not_run``: 1 when the latest
  finished run is ``fail`` (the service broke a threshold) or ``error`` (drillbook
  could not measure: an unreachable host, a steady state not met), else 0, so an
  alert can page for the first and open a ticket for the second instead of
  reading ``verdict < 1`` as "the service is failing";
- ``drillbook_drill_last_run_timestamp_seconds``: when the latest finished run ended;
- ``drillbook_drill_last_success_timestamp_seconds``: when the latest passing run
  ended, **0 when it never passed**, so the "not passed for N days" alert fires;
- ``drillbook_drill_stale``: 1 when older than the freshness limit (or never passed);
- ``drillbook_drill_freshness_limit_seconds``: that limit, per drill;
- ``drillbook_drill_runs``: finished runs found under the report root;
- ``drillbook_drill_measurement{drill, name}``: every numeric measurement of the
  latest finished run (the key figures: restore_s, readiness_flip_s, detection_s,
  achieved_rps, p95_ms, ...);
- ``drillbook_drill_key_figure_limit{drill, name}``: the limit a check judged a key figure by;
- ``drillbook_journals_unreadable``: journal files that did not parse.
"""

from __future__ import annotations

from pathlib import Path

from prometheus_client import CollectorRegistry, Gauge, generate_latest, write_to_textfile

from drillbook.core.inventory import Inventory
from drillbook.report.figures import as_number, figure, figure_names
from drillbook.report.scorecard import ReportSettings, Scorecard, build_scorecard, load_settings

VERDICT_VALUE = {"pass": 1.0, "fail": 0.0, "error": -1.0}
DEFAULT_NAME = "drillbook.prom"


def build_registry(card: Scorecard) -> CollectorRegistry:
    """A fresh registry of the scorecard's gauges (see the module docstring for each metric)."""
    registry = CollectorRegistry(auto_describe=True)

    def gauge(name: str, doc: str, labels: tuple[str, ...] = ("drill",)) -> Gauge:
        return Gauge(name, doc, labels, registry=registry)

    verdict = gauge("drillbook_drill_verdict", "Latest finished run: 1 pass, 0 fail, -1 error.")
    failing = gauge("drillbook_drill_failing", "1 when the latest finished run failed a threshold (fail).")
    could_not_run = gauge(
        "drillbook_drill_could_not_run",
        "1 when the latest finished run could not measure (error: unreachable host, steady state not met).",
    )
    last_run = gauge(
        "drillbook_drill_last_run_timestamp_seconds", "End of the latest finished run (Unix time)."
    )
    last_ok = gauge(
        "drillbook_drill_last_success_timestamp_seconds",
        "End of the latest passing run (Unix time); 0 when the drill never passed.",
    )
    stale = gauge("drillbook_drill_stale", "1 when the last pass is older than the freshness limit.")
    limit = gauge("drillbook_drill_freshness_limit_seconds", "Freshness limit of the drill.")
    runs = gauge("drillbook_drill_runs", "Finished runs of the drill under the report root.")
    measurement = gauge(
        "drillbook_drill_measurement", "Numeric measurement of the latest finished run.", ("drill", "name")
    )
    figure_limit = gauge(
        "drillbook_drill_key_figure_limit",
        "Limit the latest run's check judged a key figure by.",
        ("drill", "name"),
    )
    unreadable = Gauge(
        "drillbook_journals_unreadable",
        "Journal files under the report root that do not parse.",
        registry=registry,
    )

    for d in card.drills:
        latest, passed = d.latest, d.last_pass
        runs.labels(d.drill).set(len(d.finished))
        last_ok.labels(d.drill).set(passed.ended.timestamp() if passed else 0)
        if d.limit_days is not None:
            stale.labels(d.drill).set(1 if d.stale else 0)
            limit.labels(d.drill).set(d.limit_days * 86400)
        if latest is None or latest.journal is None:
            continue
        verdict.labels(d.drill).set(VERDICT_VALUE.get(latest.verdict, -1.0))
        failing.labels(d.drill).set(1 if latest.verdict == "fail" else 0)
        could_not_run.labels(d.drill).set(1 if latest.verdict not in ("pass", "fail") else 0)
        last_run.labels(d.drill).set(latest.ended.timestamp())
        for name, value in latest.journal.measurements.items():
            number = as_number(value)
            if number is not None:
                measurement.labels(d.drill, name).set(number)
        for name in figure_names(latest.journal, d.figures):
            fig = figure(latest.journal, name)
            if fig is not None and fig.limit is not None:
                figure_limit.labels(d.drill, name).set(fig.limit)
    unreadable.set(len(card.unreadable))
    return registry


def render_metrics(card: Scorecard) -> str:
    """The text exposition format, for node-exporter's textfile collector."""
    return generate_latest(build_registry(card)).decode("utf-8")


def write_metrics(
    report_root: Path | str,
    out_path: Path | str | None = None,
    inventory: Inventory | str | Path | None = None,
    *,
    settings: ReportSettings | None = None,
) -> Path:
    """Write the metrics file (default ``<report_root>/drillbook.prom``) atomically; return its path."""
    root = Path(report_root)
    out = Path(out_path) if out_path else root / DEFAULT_NAME
    out.parent.mkdir(parents=True, exist_ok=True)
    card = build_scorecard(root, settings or load_settings(inventory))
    write_to_textfile(str(out), build_registry(card))
    return out
