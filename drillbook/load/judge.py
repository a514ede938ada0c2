"""From what a load run recorded to figures, and from figures to a verdict.

Figures are taken over the *steady phase* only (the whole seconds after the ramp
and before the end of the plan), from the plugin's records (requests filed by the
second they were issued): the achieved rate is a count divided by a number of
seconds, the percentiles come from latency histograms of that phase alone.

The verdict has four named checks, each against the inventory's limits:

- ``achieved_rps``: within ``load_rate_tolerance_pct`` (3 %) of the target, either side;
- ``p95_ms`` and ``p99_ms``: at most ``load_sla_p95_ms`` / ``load_sla_p99_ms``;
- ``error_pct``: at most ``load_max_error_pct``.

A fail lists every breached one. A generator that could not do its part is not
the service's failure: when the rate fell short (or Locust's latencies broke the
SLA while the service's own histograms kept it) *and* the generator ran out of
something (its CPU, the user pool cap, a machine so busy its timers woke late), the
run ends in :class:`GeneratorLimit`, an error that names what ran out and says how
to get more (``--processes``, loadgen hosts). The service's own histograms break
the tie: when they show the SLA broken too, the verdict is the service's fail.
"""

from __future__ import annotations

import statistics
from dataclasses import dataclass, field
from typing import Any

from drillbook.core.errors import DrillbookError
from drillbook.load.latency import Recorder
from drillbook.load.plan import LoadPlan, LoadSettings
from drillbook.load.runner import LocustOutcome
from drillbook.load.schedule import ArrivalPlan
from drillbook.load.witness import LbFigures, ServerFigures, Witnesses

#: Mean timer lateness (ms) above which a Locust process was starved of CPU by others.
STARVED_WAKE_MS = 10.0
#: Machine-wide CPU (%) above which the generator and the target fought over it.
MACHINE_BUSY_PCT = 90.0


class GeneratorLimit(DrillbookError):
    """The load generator, not the service, could not keep the plan: the run measured the generator."""


@dataclass(frozen=True)
class EndpointRow:
    """One endpoint over the steady phase only: rate in requests/s, error_pct in percent, latencies in ms."""

    name: str
    requests: int
    rps: float
    failures: int
    error_pct: float
    p50_ms: float | None
    p95_ms: float | None
    p99_ms: float | None

    def to_dict(self) -> dict[str, Any]:
        """Plain dict for the journal and the JSON report."""
        return dict(self.__dict__)


@dataclass
class GeneratorFigures:
    """How the generator fared: CPU per process, the pool, the schedule, the spread of arrivals."""

    cpu_mean_pct: dict[str, float] = field(default_factory=dict)
    cpu_max_pct: dict[str, float] = field(default_factory=dict)
    system_cpu_mean_pct: float | None = None
    users_max: int = 0
    peak_in_flight: int = 0
    pool_capped: bool = False
    cpu_warning: bool = False
    late_pct: float = 0.0
    dropped: float = 0.0
    start_late_pct: float = 0.0
    start_late_ms_mean: float = 0.0
    wake_late_ms_mean: float = 0.0
    empty_slots_pct: float | None = None
    max_per_10ms: int | None = None
    requests_per_task: float = 1.0


@dataclass
class LoadFigures:
    """Everything measured over the steady phase, with the witnesses alongside."""

    target_rps: float
    achieved_rps: float | None
    requests: int
    failures: int
    error_pct: float | None
    p50_ms: float | None
    p95_ms: float | None
    p99_ms: float | None
    steady_s: int
    window: tuple[float, float] | None
    completed: bool
    endpoints: list[EndpointRow] = field(default_factory=list)
    lb: LbFigures | None = None
    server: ServerFigures | None = None
    generator: GeneratorFigures = field(default_factory=GeneratorFigures)
    locust_requests: int | None = None
    locust_failures: int | None = None
    series: list[dict[str, float | None]] = field(default_factory=list)


def _r(value: float | None, nd: int = 2) -> float | None:
    return None if value is None else round(value, nd)


def compute(plan: LoadPlan, outcome: LocustOutcome, witnesses: Witnesses | None) -> LoadFigures:
    """Figures of the steady phase from the plugin's records, Locust's CSV and the witnesses."""
    records = outcome.records or {}
    recorder = Recorder.from_dict(records.get("recorder") or {})
    t0 = records.get("started_wall")
    completed = bool(records.get("completed"))
    stopped = None if completed else records.get("stopped_at_s")
    seconds = recorder.steady_seconds(float(stopped) if stopped is not None else None)
    steady = recorder.window(seconds)
    window = (t0 + seconds[0], t0 + seconds[-1] + 1) if (seconds and t0 is not None) else None
    n = steady.requests
    fig = LoadFigures(
        target_rps=plan.target_rps,
        achieved_rps=_r(n / len(seconds)) if seconds else None,
        requests=n,
        failures=steady.failures,
        error_pct=_r(100 * steady.failures / n, 3) if n else None,
        p50_ms=_r(steady.latency.quantile(0.50)),
        p95_ms=_r(steady.latency.quantile(0.95)),
        p99_ms=_r(steady.latency.quantile(0.99)),
        steady_s=len(seconds),
        window=window,
        completed=completed,
    )
    for name, tally in sorted(recorder.endpoints.get("steady", {}).items()):
        fig.endpoints.append(
            EndpointRow(
                name=name,
                requests=tally.requests,
                rps=round(tally.requests / len(seconds), 2) if seconds else 0.0,
                failures=tally.failures,
                error_pct=round(100 * tally.failures / tally.requests, 3) if tally.requests else 0.0,
                p50_ms=_r(tally.latency.quantile(0.50)),
                p95_ms=_r(tally.latency.quantile(0.95)),
                p99_ms=_r(tally.latency.quantile(0.99)),
            )
        )
    total = outcome.total
    if total is not None:
        fig.locust_requests, fig.locust_failures = total.requests, total.failures
    if witnesses is not None and window is not None:
        fig.lb = witnesses.lb_figures(*window)
        fig.server = witnesses.server_figures(*window)
    fig.generator = _generator(plan, outcome, records, window)
    fig.series = _series(plan, recorder)
    return fig


def _generator(
    plan: LoadPlan, outcome: LocustOutcome, records: dict[str, Any], window: tuple[float, float] | None
) -> GeneratorFigures:
    gen = GeneratorFigures()
    pacer = records.get("pacer") or {}
    claims = float(pacer.get("claims", 0) or 0)
    gen.late_pct = round(100 * float(pacer.get("late", 0)) / claims, 3) if claims else 0.0
    gen.dropped = round(float(pacer.get("dropped", 0.0)), 1)
    starts, start_late = float(pacer.get("starts", 0) or 0), float(pacer.get("start_late", 0) or 0)
    if starts:
        gen.start_late_pct = round(100 * start_late / starts, 3)
    if start_late:
        gen.start_late_ms_mean = round(float(pacer.get("start_late_ms_sum", 0.0)) / start_late, 2)
    gen.wake_late_ms_mean = float((records.get("wake") or {}).get("late_ms_mean", 0.0))
    gen.users_max = int(records.get("users_max", 0) or 0)
    gen.peak_in_flight = int(records.get("peak_in_flight", 0) or 0)
    gen.pool_capped = bool(records.get("pool_capped"))
    gen.cpu_warning = bool(records.get("locust_cpu_warning"))
    gen.requests_per_task = float(records.get("per_task", 1.0) or 1.0)
    slots = Recorder.from_dict(records.get("recorder") or {}).slots
    total_slots = sum(slots.values())
    if total_slots:
        gen.empty_slots_pct = round(100 * slots.get(0, 0) / total_slots, 1)
        gen.max_per_10ms = max(slots)
    if window is not None and outcome.cpu:
        inside = [s for s in outcome.cpu if window[0] <= s.wall <= window[1]] or outcome.cpu
        root = outcome.root_pid
        per: dict[str, list[float]] = {}
        for sample in inside:
            for pid, pct in sample.processes.items():
                if plan.processes > 1 and not plan.distributed and pid == root:
                    continue  # the --processes master only coordinates
                per.setdefault(f"pid {pid}", []).append(pct)
        if not plan.distributed:
            gen.cpu_mean_pct = {k: round(statistics.fmean(v), 1) for k, v in per.items() if v}
            gen.cpu_max_pct = {k: round(max(v), 1) for k, v in per.items() if v}
        gen.system_cpu_mean_pct = round(statistics.fmean(s.system_pct for s in inside), 1)
    if plan.distributed or not gen.cpu_mean_pct:
        # Remote workers report their own CPU to the master once every few seconds.
        per_worker: dict[str, list[float]] = {}
        for point in records.get("timeline") or []:
            if plan.ramp_s <= float(point.get("t", 0)) <= plan.duration_s:
                for worker, pct in (point.get("cpu_pct") or {}).items():
                    per_worker.setdefault(str(worker), []).append(float(pct))
        gen.cpu_mean_pct = {k: round(statistics.fmean(v), 1) for k, v in per_worker.items() if v}
        gen.cpu_max_pct = {str(k): float(v) for k, v in (records.get("cpu_max_pct") or {}).items()}
    return gen


def _series(plan: LoadPlan, recorder: Recorder) -> list[dict[str, float | None]]:
    """Per second since the start: target, achieved rate, p95 (for the plot and the journal)."""
    schedule = ArrivalPlan(plan.target_rps, plan.ramp_s, plan.duration_s)
    out: list[dict[str, float | None]] = []
    for second in sorted(recorder.seconds):
        cell = recorder.seconds[second]
        target = schedule.expected(second + 1) - schedule.expected(second)
        out.append(
            {
                "t": float(second),
                "target_rps": round(target, 2),
                "rps": float(cell.requests),
                "p95_ms": _r(cell.latency.quantile(0.95)),
                "error_pct": round(100 * cell.failures / cell.requests, 2) if cell.requests else 0.0,
            }
        )
    return out


@dataclass(frozen=True)
class Verdict:
    """One load check: the figure, the limit as shown to people, and whether it held."""

    name: str
    value: float | None
    limit: str
    ok: bool
    detail: str = ""


@dataclass
class Judgement:
    """The load checks and, when the rate fell short because of the generator, why.

    A set ``generator_limit`` makes the drill an error, not a fail: it measured
    the generator, not the service.
    """

    checks: list[Verdict]
    generator_limit: str | None = None
    notes: list[str] = field(default_factory=list)

    @property
    def breached(self) -> list[str]:
        """Names of the checks that did not hold."""
        return [c.name for c in self.checks if not c.ok]


def judge(fig: LoadFigures, settings: LoadSettings) -> Judgement:
    """The four checks, and whether a shortfall was the generator's."""
    tol = settings.rate_tolerance_pct / 100
    lo, hi = fig.target_rps * (1 - tol), fig.target_rps * (1 + tol)
    rate_ok = fig.achieved_rps is not None and lo <= fig.achieved_rps <= hi
    rate_detail = f"HAProxy counted {fig.lb.rps:.1f} req/s" if fig.lb else ""
    checks = [
        Verdict(
            "achieved_rps",
            fig.achieved_rps,
            f"{fig.target_rps:g} ± {settings.rate_tolerance_pct:g}% ({lo:.1f}..{hi:.1f})",
            rate_ok,
            rate_detail,
        ),
        _at_most("p95_ms", fig.p95_ms, settings.sla_p95_ms, _server(fig, "p95")),
        _at_most("p99_ms", fig.p99_ms, settings.sla_p99_ms, _server(fig, "p99")),
        _at_most("error_pct", fig.error_pct, settings.max_error_pct, f"{fig.failures} of {fig.requests}"),
    ]
    judgement = Judgement(checks)
    limits = _generator_reasons(fig.generator, settings)
    latency_breached = any(not c.ok for c in checks[1:3])
    server = fig.server
    # The service's own histograms are the tie-breaker: when they show the SLA broken,
    # the service failed, whatever state the generator was in.
    service_broke_sla = server is not None and (
        (server.p95_ms or 0) > settings.sla_p95_ms or (server.p99_ms or 0) > settings.sla_p99_ms
    )
    server_kept_sla = server is not None and not service_broke_sla
    if limits and not service_broke_sla and (not rate_ok or (latency_breached and server_kept_sla)):
        what = (
            "the rate fell short"
            if not rate_ok
            else "Locust's latencies broke the SLA while the service's own did not"
        )
        judgement.generator_limit = (
            f"generator limit, not a service failure: {what} because {'; '.join(limits)}. "
            "Give Locust more CPU: --processes N (on a machine apart from the target) or loadgen hosts"
        )
    elif limits:
        strain = "; ".join(limits)
        judgement.notes.append(f"generator under strain ({strain}): client-side latencies may be inflated")
    if fig.lb is not None and fig.achieved_rps:
        gap = abs(fig.lb.rps - fig.achieved_rps) / fig.achieved_rps
        if gap > 0.05:
            judgement.notes.append(
                f"HAProxy counted {fig.lb.rps:.1f} req/s against Locust's {fig.achieved_rps:.1f}: "
                "other traffic on the frontend, or requests Locust never sent"
            )
    return judgement


def _generator_reasons(gen: GeneratorFigures, settings: LoadSettings) -> list[str]:
    reasons = []
    busy = {k: v for k, v in gen.cpu_mean_pct.items() if v >= settings.generator_cpu_pct}
    if busy:
        shown = ", ".join(f"{k} {v:.0f}%" for k, v in busy.items())
        reasons.append(f"Locust's CPU was saturated ({shown}; limit {settings.generator_cpu_pct:g}%)")
    elif gen.cpu_warning:
        reasons.append("Locust warned that its CPU went above 90%")
    if gen.pool_capped:
        reasons.append(f"the user pool hit load_max_users ({settings.max_users})")
    machine = gen.system_cpu_mean_pct
    if gen.wake_late_ms_mean > STARVED_WAKE_MS and machine is not None and machine >= MACHINE_BUSY_PCT:
        reasons.append(
            f"the machine's CPU was {machine:.0f}% busy and Locust's timers woke "
            f"{gen.wake_late_ms_mean:.0f} ms late on average (it shares the CPU with the target or others)"
        )
    return reasons


def _at_most(name: str, value: float | None, limit: float, detail: str) -> Verdict:
    return Verdict(name, value, f"<= {limit:g}", value is not None and value <= limit, detail)


def _server(fig: LoadFigures, which: str) -> str:
    if fig.server is None:
        return ""
    value = fig.server.p95_ms if which == "p95" else fig.server.p99_ms
    return f"server-side {which} {value:g} ms" if value is not None else ""
