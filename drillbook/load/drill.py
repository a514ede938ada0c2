"""``load.run``: hold the target rate (peak x (1 + headroom)) with Locust and judge it against the SLA.

preflight
    The target must answer before anything ramps (a refused connection is exit 2
    with the URL); a few requests give the first latency estimate for the user
    pool; the witnesses (HAProxy's admin socket, each instance's /metrics) are
    tried once and left out, with a note, when they cannot be read.
act
    Locust runs headless (``runner.py``): one process, ``--processes N``, or a master
    here and workers on the ``loadgen`` hosts started through ``playbooks/loadgen.yml``.
    Once a second the witnesses are sampled. Ctrl-C stops Locust, which still
    writes its reports; the partial figures are recorded before unwinding.
observe
    Figures of the steady phase (``judge.compute``) become the journal's measurements,
    each with its witness.
verify
    ``judge.judge``: rate within tolerance, p95/p99 under the SLA, errors under the
    limit; a shortfall caused by the generator raises :class:`GeneratorLimit`.
report
    Locust's HTML and CSV files, the plugin's records and ``load.png`` sit next to the
    journal; summary.md embeds the plot and the side-by-side figures.
"""

from __future__ import annotations

import statistics
import time

import httpx

from drillbook.core.ansible import run_playbook
from drillbook.core.drill import DrillRun, LegacyDrill
from drillbook.core.errors import ConfigError, DrillbookError, DrillInterrupted, TargetUnreachable
from drillbook.core.haproxy import HAProxy
from drillbook.core.inventory import Inventory
from drillbook.core.metrics import scrape
from drillbook.load import runner
from drillbook.load.judge import GeneratorLimit, LoadFigures, compute, judge
from drillbook.load.plan import LoadPlan, LoadSettings
from drillbook.load.plot import plot_run
from drillbook.load.report import PLOT, section
from drillbook.load.witness import Witnesses

#: Requests sent before the run to check the target and estimate latency for the pool.
PROBES = 10


def probe_target(url: str, count: int = PROBES, timeout_s: float = 3.0) -> float:
    """Median latency (ms) of a few GETs; any HTTP answer counts, no answer is TargetUnreachable."""
    times = []
    transport = httpx.HTTPTransport(retries=0)
    with httpx.Client(transport=transport, timeout=timeout_s) as client:
        for _ in range(count):
            t0 = time.perf_counter()
            try:
                client.get(url + "/")
            except httpx.HTTPError as exc:
                raise TargetUnreachable(
                    f"load target {url} is not answering ({type(exc).__name__}: {exc}); nothing was sent"
                ) from exc
            times.append((time.perf_counter() - t0) * 1000)
    return statistics.median(times)


class LoadRun(LegacyDrill):
    """Locust at an arrival rate of peak x (1 + headroom), judged against the inventory's SLA."""

    name = "load.run"
    runbook = "runbooks/load-test.md"

    def __init__(self, settings: LoadSettings, plan: LoadPlan) -> None:
        super().__init__(
            thresholds=settings,
            rps=plan.rps,
            headroom=plan.headroom,
            target_rps=plan.target_rps,
            duration_s=plan.duration_s,
            ramp_s=plan.ramp_s,
            processes=plan.processes,
            locustfile=str(plan.locustfile),
            arrivals=plan.arrivals,
            loadgen_hosts=list(plan.loadgen_hosts),
            url=plan.url,
        )
        self.settings = settings
        self.plan = plan
        self.latency_ms = 0.0
        self.witnesses: Witnesses | None = None
        self.outcome: runner.LocustOutcome | None = None
        self.figures: LoadFigures | None = None
        self.notes: list[str] = []
        self._last_progress = 0.0

    # -- preflight ----------------------------------------------------------------
    def preflight(self, run: DrillRun) -> None:
        run.note(self.plan.describe())
        self.latency_ms = probe_target(self.plan.url)
        run.note(f"target answers; median latency {self.latency_ms:.1f} ms over {PROBES} requests")
        self.witnesses = self._witnesses(run)

    def _witnesses(self, run: DrillRun) -> Witnesses:
        inv = run.inventory
        try:
            topo = inv.topology
            socket, instances = topo.haproxy_socket, list(topo.app_instances)
        except ConfigError:
            socket, instances = inv.var("haproxy_admin_socket"), []
        haproxy = None
        if socket:
            try:
                haproxy = HAProxy(str(socket))
                haproxy.frontend_totals()
            except DrillbookError as exc:
                haproxy = None
                run.note(f"HAProxy witness unavailable: {exc}")
        else:
            run.note("no HAProxy admin socket in the inventory: no load balancer witness")
        scraped = []
        for inst in instances:
            url = inst.url + self.settings.metrics_path
            try:
                scrape(url, timeout_s=2.0)
                scraped.append((inst.name, url))
            except DrillbookError as exc:
                run.note(f"metrics witness {inst.name} unavailable: {exc}")
        return Witnesses(
            haproxy=haproxy,
            instances=scraped,
            histogram=self.settings.latency_histogram,
            exclude_routes=tuple(self.settings.exclude_routes),
            frontend=self.settings.haproxy_frontend,
        )

    # -- act ----------------------------------------------------------------------
    def act(self, run: DrillRun) -> None:
        files = runner.LocustFiles(run.report_dir)
        workers = len(self.plan.loadgen_hosts) * self.settings.worker_processes
        cmd = runner.locust_command(
            self.plan, self.settings, files, latency_ms=self.latency_ms, expect_workers=workers
        )
        (run.report_dir / "locust.cmd").write_text(" ".join(cmd) + "\n")
        if self.plan.distributed:
            # Workers first: they keep trying to reach the master for minutes, while the
            # master gives up after --expect-workers-max-wait (a slow playbook is no failure).
            self._start_workers(run)
        proc = runner.start(cmd, files)
        run.on_restore("stop Locust", lambda: runner.stop(proc))
        timeout = self.plan.duration_s + self.plan.drain_s + 120
        with run.phase("locust"):
            outcome = runner.supervise(
                proc, files, timeout_s=timeout, tick=lambda: self._tick(run), interval_s=0.5
            )
        self.outcome = outcome
        for path in files.existing():
            run.artefact(path)
        run.artefact(run.report_dir / "locust.cmd")
        if outcome.interrupted:
            self._record(run)
            raise DrillInterrupted(outcome.interrupted_by or "interrupted")

    def _start_workers(self, run: DrillRun) -> None:
        """Locust workers on every loadgen host (they connect to the master once it is up)."""
        s = self.settings
        extravars = {
            "loadgen_action": "start",
            "load_worker_sources": [str(runner.PLUGIN.with_name(f)) for f in runner.WORKER_FILES],
            "load_worker_locustfile": str(self.plan.locustfile),
            # The validated settings, so the play and the master agree on every value.
            "load_master_host": s.master_host,
            "load_master_port": s.master_port,
            "load_worker_processes": s.worker_processes,
            "load_worker_dir": s.worker_dir,
            "load_worker_python": s.worker_python,
        }

        def stop_workers() -> None:
            run_playbook(
                run.inventory,
                "loadgen.yml",
                limit="loadgen",
                extravars={**extravars, "loadgen_action": "stop"},
                progress=run.progress,
                cancellable=False,
            )

        run.on_restore("stop Locust workers", stop_workers)
        with run.phase("start workers"):
            run_playbook(
                run.inventory, "loadgen.yml", limit="loadgen", extravars=extravars, progress=run.note
            )

    def _tick(self, run: DrillRun) -> None:
        if self.witnesses is None:
            return
        self.witnesses.sample()
        now = time.monotonic()
        lb = self.witnesses.lb
        if now - self._last_progress >= 5 and len(lb) >= 5:
            self._last_progress = now
            rate = self.witnesses.lb_figures(lb[-5][0], lb[-1][0])
            if rate is not None:
                run.progress(f"HAProxy frontend '{rate.frontend}': {rate.rps:.0f} req/s")

    # -- observe / verify ------------------------------------------------------------
    def observe(self, run: DrillRun) -> None:
        self._record(run)

    def _record(self, run: DrillRun) -> None:
        if self.witnesses is not None:
            self.witnesses.close()
        if self.outcome is None:
            return
        fig = compute(self.plan, self.outcome, self.witnesses)
        self.figures = fig
        lb, server, gen = fig.lb, fig.server, fig.generator
        lb_witness = (
            f"HAProxy frontend '{lb.frontend}' counted {lb.rps:.1f} req/s "
            f"(req_tot delta over {lb.window_s:.0f}s)"
            if lb
            else "no HAProxy witness"
        )
        server_witness = (
            f"service histograms ({server.instances} instances, /metrics deltas): "
            f"p50 {server.p50_ms} / p95 {server.p95_ms} / p99 {server.p99_ms} ms"
            if server
            else "no service histograms"
        )
        locust_witness = (
            f"Locust's own stats: {fig.locust_requests} requests over the whole run"
            if fig.locust_requests is not None
            else ""
        )
        run.measure("target_rps", fig.target_rps, witness="the plan: rps x (1 + headroom)")
        run.measure("achieved_rps", fig.achieved_rps, witness=lb_witness)
        run.measure("p50_ms", fig.p50_ms, witness=server_witness)
        run.measure("p95_ms", fig.p95_ms, witness=server_witness)
        run.measure("p99_ms", fig.p99_ms, witness=server_witness)
        run.measure("error_pct", fig.error_pct, witness=f"HAProxy 5xx: {lb.errors_5xx}" if lb else None)
        run.measure("requests", fig.requests, witness=locust_witness or None)
        run.measure("haproxy_rps", round(lb.rps, 2) if lb else None)
        run.measure("server_rps", round(server.rps, 2) if server else None)
        run.measure("server_p95_ms", server.p95_ms if server else None)
        run.measure("server_p99_ms", server.p99_ms if server else None)
        run.measure("generator_cpu_max_pct", max(gen.cpu_max_pct.values(), default=None))
        run.measure("rps", self.plan.rps)
        run.measure("headroom", self.plan.headroom)
        run.measure("steady_s", fig.steady_s)
        run.measure("failures", fig.failures)
        run.measure("haproxy_requests", lb.requests if lb else None)
        run.measure("haproxy_5xx", lb.errors_5xx if lb else None)
        run.measure("haproxy_window_s", round(lb.window_s, 2) if lb else None)
        run.measure("server_requests", server.requests if server else None)
        run.measure("server_window_s", round(server.window_s, 2) if server else None)
        run.measure("server_p50_ms", server.p50_ms if server else None)
        run.measure("users_max", gen.users_max)
        run.measure("peak_in_flight", gen.peak_in_flight)
        run.measure("generator_cpu_mean_pct", gen.cpu_mean_pct)
        run.measure("generator_cpu_max_pct_by_process", gen.cpu_max_pct)
        run.measure("system_cpu_mean_pct", gen.system_cpu_mean_pct)
        run.measure("pacer_late_pct", gen.late_pct)
        run.measure("pacer_dropped", gen.dropped)
        run.measure("start_late_pct", gen.start_late_pct)
        run.measure("start_late_ms_mean", gen.start_late_ms_mean)
        run.measure("wake_late_ms_mean", gen.wake_late_ms_mean)
        run.measure("arrivals_empty_slots_pct", gen.empty_slots_pct)
        run.measure("arrivals_max_per_10ms", gen.max_per_10ms)
        run.measure("locust_requests_total", fig.locust_requests)
        run.measure("locust_failures_total", fig.locust_failures)
        run.measure("completed", fig.completed)
        run.measure("endpoints", [row.to_dict() for row in fig.endpoints])
        run.measure("server_routes", server.routes if server else [])

    def verify(self, run: DrillRun) -> None:
        fig = self.figures
        if fig is None:
            raise DrillbookError("no figures to judge: Locust left no records")
        if fig.requests == 0 and (fig.locust_requests or 0) > 0:
            raise DrillbookError(
                f"Locust counted {fig.locust_requests} requests but drillbook's plugin recorded none "
                "in the steady phase (see locust.log and drillbook_load.json)"
            )
        judgement = judge(fig, self.settings)
        for check in judgement.checks:
            run.check(check.name, check.value, check.limit, check.ok, check.detail)
        for note in judgement.notes:
            self.notes.append(note)
            run.note(f"note: {note}")
        if judgement.generator_limit:
            raise GeneratorLimit(judgement.generator_limit)

    # -- report -----------------------------------------------------------------------
    def report(self, run: DrillRun) -> str:
        for path in runner.LocustFiles(run.report_dir).existing():
            run.artefact(path)
        if self.figures is not None and self.figures.series:
            records = (self.outcome.records if self.outcome else None) or {}
            path = plot_run(
                self.figures,
                run.report_dir / PLOT,
                sla_p95_ms=self.settings.sla_p95_ms,
                tolerance_pct=self.settings.rate_tolerance_pct,
                ramp_s=self.plan.ramp_s,
                duration_s=self.plan.duration_s,
                t0=records.get("started_wall"),
                lb_series=self.witnesses.lb_series() if self.witnesses else None,
                server_p95=self.witnesses.server_p95_series() if self.witnesses else None,
                users=records.get("timeline"),
                title=f"load.run against {self.plan.url}",
            )
            run.artefact(path)
        return section(run.journal.measurements, run.journal.artefacts, self.notes)


def demo_run(inv: Inventory, duration: str = "20s", ramp: str = "5s") -> LoadRun:
    """``inv demo``'s load step: the inventory's peak x (1 + headroom) for a short run, Locust here."""
    from drillbook.load.plan import load_settings, make_plan

    settings = load_settings(inv)
    return LoadRun(settings, make_plan(inv, settings, duration=duration, ramp=ramp, local=True))
