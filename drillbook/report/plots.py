"""Trend plots of key figures over time, one PNG per drill (matplotlib, no display needed).

A drill with two or more finished runs gets one plot with a panel per figure:
the known key figures it measures (restore_s, readiness_flip_s, detection_s,
achieved_rps, p95_ms, or the drill's ``report_key_figures``), each point coloured
by the run's verdict, and the limit its check used drawn as a dashed line. A
drill that records none of those falls back to its numeric measurements, and one
with no numbers at all to its run duration, so every drill with history has a plot.
"""

from __future__ import annotations

import io
from dataclasses import dataclass, field
from datetime import datetime

from drillbook.report.figures import as_number, figure, figure_names
from drillbook.report.scorecard import DrillStatus

VERDICT_COLOURS = {"pass": "#2e7d32", "fail": "#c62828", "error": "#ef6c00"}
MAX_PANELS = 4
DURATION = "duration_s"


@dataclass
class Series:
    """One measurement over time for a trend chart, with the limit line when a check judged it."""

    name: str
    points: list[tuple[datetime, float, str]] = field(default_factory=list)  # (when, value, verdict)
    limit: float | None = None
    op: str | None = None


def series_for(status: DrillStatus) -> list[Series]:
    """The figures worth plotting for one drill, oldest point first."""
    runs = [e for e in status.finished if e.journal is not None]
    names: list[str] = []
    for entry in runs:
        assert entry.journal is not None
        names.extend(figure_names(entry.journal, status.figures))
    names = list(dict.fromkeys(names))
    if not names:
        counts: dict[str, int] = {}
        for entry in runs:
            assert entry.journal is not None
            for key, value in entry.journal.measurements.items():
                if as_number(value) is not None:
                    counts[key] = counts.get(key, 0) + 1
        names = [k for k, n in counts.items() if n >= 2]
    result: list[Series] = []
    for name in names[:MAX_PANELS]:
        series = Series(name)
        for entry in runs:
            assert entry.journal is not None
            fig = figure(entry.journal, name)
            if fig is None:
                continue
            series.points.append((entry.started, fig.value, entry.verdict))
            if fig.limit is not None:
                series.limit, series.op = fig.limit, fig.op
        if series.points:
            result.append(series)
    if not result:
        series = Series(DURATION)
        for entry in runs:
            if entry.finished is not None:
                seconds = (entry.finished - entry.started).total_seconds()
                series.points.append((entry.started, seconds, entry.verdict))
        result.append(series)
    return result


def plot_png(drill: str, series: list[Series]) -> bytes:
    """One PNG with a panel per series."""
    from matplotlib.dates import AutoDateLocator, ConciseDateFormatter
    from matplotlib.figure import Figure

    height = 2.3 * len(series) + 0.8
    fig = Figure(figsize=(7.5, height), dpi=90)
    # fixed margins: a layout engine would draw the figure twice
    fig.subplots_adjust(left=0.11, right=0.97, top=1 - 0.45 / height, bottom=0.45 / height, hspace=0.3)
    axes = fig.subplots(len(series), 1, squeeze=False, sharex=True)
    for ax, s in zip(axes[:, 0], series, strict=True):
        xs = [p[0] for p in s.points]
        ys = [p[1] for p in s.points]
        ax.plot(xs, ys, color="#607d8b", linewidth=1, zorder=1)
        ax.scatter(xs, ys, c=[VERDICT_COLOURS.get(p[2], "#9e9e9e") for p in s.points], s=30, zorder=2)
        if s.limit is not None:
            ax.axhline(
                s.limit,
                color="#c62828",
                linestyle="--",
                linewidth=1,
                label=f"limit {s.op or ''} {s.limit:g}".replace("  ", " "),
            )
            ax.legend(loc="best", fontsize="small")
        ax.set_ylabel(s.name)
        ax.grid(True, alpha=0.3)
        locator = AutoDateLocator()  # type: ignore[no-untyped-call]
        ax.xaxis.set_major_locator(locator)
        ax.xaxis.set_major_formatter(ConciseDateFormatter(locator))  # type: ignore[no-untyped-call]
    fig.suptitle(f"{drill}: key figures per run (green pass, red fail, orange error)", fontsize="medium")
    buf = io.BytesIO()
    fig.savefig(buf, format="png")
    return buf.getvalue()
