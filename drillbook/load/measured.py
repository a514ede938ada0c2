"""What a load run measured, as the record its declared checks read, and the limits they compare with.

The rate check needs limits no setting holds as such: the target is the plan's
(``rps x (1 + headroom)``), the tolerance the inventory's. :class:`LoadLimits` is
the settings plus those two bounds, computed once when the drill is built, so the
journal's ``thresholds`` carry them and each rate check names its bound
(``limit_from: rate_min_rps``) as a number, like every other limit.
"""

from __future__ import annotations

from typing import Any

from pydantic import Field

from drillbook.core.checks import Measurements
from drillbook.load.judge import LoadFigures
from drillbook.load.plan import LoadPlan, LoadSettings


class LoadLimits(LoadSettings):
    """The inventory's ``load_*`` settings plus the rate band of this run's plan."""

    rate_min_rps: float = Field(description="target x (1 - load_rate_tolerance_pct / 100)")
    rate_max_rps: float = Field(description="target x (1 + load_rate_tolerance_pct / 100)")


def limits_for(settings: LoadSettings, plan: LoadPlan) -> LoadLimits:
    """The settings with the band ``target ± tolerance`` the achieved rate must fall in."""
    tol = settings.rate_tolerance_pct / 100
    return LoadLimits.model_validate(
        {
            **settings.model_dump(),
            "rate_min_rps": round(plan.target_rps * (1 - tol), 3),
            "rate_max_rps": round(plan.target_rps * (1 + tol), 3),
        }
    )


class LoadMeasured(Measurements):
    """The steady phase's figures, side by side with what HAProxy and the service saw.

    The headline figures' witnesses name what the witness counted (HAProxy's rate,
    the service's percentiles) and are set per run (:func:`witness_texts`); the
    ``*_detail`` fields explain a check's value in the summary.
    """

    target_rps: float | None = None
    achieved_rps: float | None = None
    p50_ms: float | None = None
    p95_ms: float | None = None
    p99_ms: float | None = None
    error_pct: float | None = None
    requests: int | None = None
    haproxy_rps: float | None = None
    server_rps: float | None = None
    server_p95_ms: float | None = None
    server_p99_ms: float | None = None
    generator_cpu_max_pct: float | None = None
    rps: float | None = None
    headroom: float | None = None
    steady_s: int | None = None
    failures: int | None = None
    haproxy_requests: int | None = None
    haproxy_5xx: int | None = None
    haproxy_window_s: float | None = None
    server_requests: int | None = None
    server_window_s: float | None = None
    server_p50_ms: float | None = None
    users_max: int | None = None
    peak_in_flight: int | None = None
    generator_cpu_mean_pct: dict[str, float] = Field(default_factory=dict)
    generator_cpu_max_pct_by_process: dict[str, float] = Field(default_factory=dict)
    system_cpu_mean_pct: float | None = None
    pacer_late_pct: float | None = None
    pacer_dropped: float | None = None
    start_late_pct: float | None = None
    start_late_ms_mean: float | None = None
    wake_late_ms_mean: float | None = None
    arrivals_empty_slots_pct: float | None = None
    arrivals_max_per_10ms: int | None = None
    locust_requests_total: int | None = None
    locust_failures_total: int | None = None
    completed: bool | None = None
    endpoints: list[dict[str, Any]] = Field(default_factory=list)
    server_routes: list[dict[str, Any]] = Field(default_factory=list)
    rate_detail: str = ""
    p95_detail: str = ""
    p99_detail: str = ""
    error_detail: str = ""


def measured_from(fig: LoadFigures, plan: LoadPlan) -> LoadMeasured:
    """The record of one run's figures (the same names the journal always carried)."""
    lb, server, gen = fig.lb, fig.server, fig.generator
    return LoadMeasured(
        target_rps=fig.target_rps,
        achieved_rps=fig.achieved_rps,
        p50_ms=fig.p50_ms,
        p95_ms=fig.p95_ms,
        p99_ms=fig.p99_ms,
        error_pct=fig.error_pct,
        requests=fig.requests,
        haproxy_rps=round(lb.rps, 2) if lb else None,
        server_rps=round(server.rps, 2) if server else None,
        server_p95_ms=server.p95_ms if server else None,
        server_p99_ms=server.p99_ms if server else None,
        generator_cpu_max_pct=max(gen.cpu_max_pct.values(), default=None),
        rps=plan.rps,
        headroom=plan.headroom,
        steady_s=fig.steady_s,
        failures=fig.failures,
        haproxy_requests=lb.requests if lb else None,
        haproxy_5xx=lb.errors_5xx if lb else None,
        haproxy_window_s=round(lb.window_s, 2) if lb else None,
        server_requests=server.requests if server else None,
        server_window_s=round(server.window_s, 2) if server else None,
        server_p50_ms=server.p50_ms if server else None,
        users_max=gen.users_max,
        peak_in_flight=gen.peak_in_flight,
        generator_cpu_mean_pct=gen.cpu_mean_pct,
        generator_cpu_max_pct_by_process=gen.cpu_max_pct,
        system_cpu_mean_pct=gen.system_cpu_mean_pct,
        pacer_late_pct=gen.late_pct,
        pacer_dropped=gen.dropped,
        start_late_pct=gen.start_late_pct,
        start_late_ms_mean=gen.start_late_ms_mean,
        wake_late_ms_mean=gen.wake_late_ms_mean,
        arrivals_empty_slots_pct=gen.empty_slots_pct,
        arrivals_max_per_10ms=gen.max_per_10ms,
        locust_requests_total=fig.locust_requests,
        locust_failures_total=fig.locust_failures,
        completed=fig.completed,
        endpoints=[row.to_dict() for row in fig.endpoints],
        server_routes=server.routes if server else [],
        rate_detail=f"target {fig.target_rps:g}" + (f"; HAProxy counted {lb.rps:.1f} req/s" if lb else ""),
        p95_detail=_server(server.p95_ms if server else None, "p95"),
        p99_detail=_server(server.p99_ms if server else None, "p99"),
        error_detail=f"{fig.failures} of {fig.requests}",
    )


def witness_texts(fig: LoadFigures) -> dict[str, str]:
    """Who else saw each headline figure, in this run's own numbers."""
    lb, server = fig.lb, fig.server
    texts: dict[str, str] = {"target_rps": "the plan: rps x (1 + headroom)"}
    texts["achieved_rps"] = (
        f"HAProxy frontend '{lb.frontend}' counted {lb.rps:.1f} req/s (req_tot delta over {lb.window_s:.0f}s)"
        if lb
        else "no HAProxy witness"
    )
    by_server = (
        f"service histograms ({server.instances} instances, /metrics deltas): "
        f"p50 {server.p50_ms} / p95 {server.p95_ms} / p99 {server.p99_ms} ms"
        if server
        else "no service histograms"
    )
    texts.update(p50_ms=by_server, p95_ms=by_server, p99_ms=by_server)
    if lb:
        texts["error_pct"] = f"HAProxy 5xx: {lb.errors_5xx}"
    if fig.locust_requests is not None:
        texts["requests"] = f"Locust's own stats: {fig.locust_requests} requests over the whole run"
    return texts


def _server(value: float | None, which: str) -> str:
    return f"server-side {which} {value:g} ms" if value is not None else ""
