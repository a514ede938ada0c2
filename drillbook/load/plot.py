"""One PNG per run: achieved rate and p95 over time, against the target and the SLA.

Two panels sharing the time axis (seconds since the plan started):

- top: requests issued per second (Locust, by issue time), the plan's target
  (ramp, then flat), the tolerance band around it, and what HAProxy's frontend
  counted in the same seconds (the outside witness);
- bottom: p95 per second as Locust saw it and as the instances' histograms saw
  it (server side, every two seconds), against the SLA's p95 line, with the user
  pool on a second axis.

The steady phase is shaded: that is where the figures in summary.md come from.
matplotlib's Agg backend: no display needed, no window ever opened.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt

from drillbook.load.judge import LoadFigures


def plot_run(
    fig_data: LoadFigures,
    path: Path,
    *,
    sla_p95_ms: float,
    tolerance_pct: float,
    ramp_s: float,
    duration_s: float,
    t0: float | None,
    lb_series: list[tuple[float, float]] | None = None,
    server_p95: list[tuple[float, float]] | None = None,
    users: list[dict[str, Any]] | None = None,
    title: str = "load.run",
) -> Path:
    """Draw the run into ``path`` (PNG) and return it."""
    series = fig_data.series
    t = [float(p["t"] or 0) + 0.5 for p in series]
    figure, (top, bottom) = plt.subplots(2, 1, figsize=(10, 6.5), sharex=True, constrained_layout=True)
    try:
        target_t = [0.0, ramp_s, duration_s]
        target_v = [0.0, fig_data.target_rps, fig_data.target_rps]
        top.plot(target_t, target_v, color="black", linestyle="--", linewidth=1, label="target")
        band = tolerance_pct / 100 * fig_data.target_rps
        top.fill_between(
            [ramp_s, duration_s],
            [fig_data.target_rps - band] * 2,
            [fig_data.target_rps + band] * 2,
            color="grey",
            alpha=0.2,
            label=f"±{tolerance_pct:g}%",
        )
        top.plot(t, [p["rps"] for p in series], color="tab:blue", linewidth=1.5, label="issued (Locust)")
        if lb_series and t0 is not None:
            top.plot(
                [w - t0 for w, _ in lb_series],
                [v for _, v in lb_series],
                color="tab:orange",
                linewidth=1,
                alpha=0.8,
                label="HAProxy frontend",
            )
        top.set_ylabel("requests/s")
        top.set_ylim(bottom=0)
        top.legend(loc="lower right", fontsize=8)
        achieved = f"{fig_data.achieved_rps:g}" if fig_data.achieved_rps is not None else "n/a"
        top.set_title(f"{title}: target {fig_data.target_rps:g} req/s, achieved {achieved} (steady phase)")

        p95 = [(x, p["p95_ms"]) for x, p in zip(t, series, strict=False) if p["p95_ms"] is not None]
        bottom.plot([x for x, _ in p95], [v for _, v in p95], color="tab:blue", label="p95 (Locust)")
        if server_p95 and t0 is not None:
            bottom.plot(
                [w - t0 for w, _ in server_p95],
                [v for _, v in server_p95],
                color="tab:green",
                marker=".",
                linewidth=1,
                label="p95 (server histograms)",
            )
        bottom.axhline(
            sla_p95_ms, color="tab:red", linestyle="--", linewidth=1, label=f"SLA p95 {sla_p95_ms:g} ms"
        )
        bottom.set_ylabel("ms")
        bottom.set_xlabel("seconds since start")
        bottom.set_ylim(bottom=0)
        if users:
            pool = bottom.twinx()
            pool.step(
                [float(u["t"]) for u in users],
                [int(u["users"]) for u in users],
                where="post",
                color="grey",
                alpha=0.5,
                linewidth=1,
            )
            pool.set_ylabel("users", color="grey")
            pool.set_ylim(bottom=0)
        bottom.legend(loc="upper left", fontsize=8)
        for ax in (top, bottom):
            ax.axvspan(ramp_s, duration_s, color="tab:blue", alpha=0.04)
            ax.grid(True, alpha=0.3)
        path.parent.mkdir(parents=True, exist_ok=True)
        figure.savefig(path, dpi=100)
    finally:
        plt.close(figure)
    return path
