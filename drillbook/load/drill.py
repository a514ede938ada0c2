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
    Figures of the steady phase (``judge.compute``) become a :class:`LoadMeasured`
    record, each figure with its witness, and ``load.png`` is drawn from them. A
    shortfall the generator caused (``judge.judge``) raises :class:`GeneratorLimit`
    (error, exit 2) after the figures and checks are journaled: the run measured
    the generator, not the service.
verify
    The declared :attr:`LoadRun.checks`, evaluated by core with numeric limits:
    achieved rate within ``load_rate_tolerance_pct`` of the target (two checks, one
    each side), p95/p99 at most the SLA, error share at most ``load_max_error_pct``.
report
    Locust's HTML and CSV files, the plugin's records and ``load.png`` sit next to the
    journal; summary.md embeds the plot and the side-by-side figures.
"""

from __future__ import annotations

import statistics
import time
from collections.abc import Callable
from dataclasses import dataclass

import httpx

from drillbook.core.ansible import run_playbook
from drillbook.core.checks import at_least, at_most
from drillbook.core.drill import Drill, DrillRun
from drillbook.core.errors import ConfigError, DrillbookError, DrillInterrupted, TargetUnreachable
from drillbook.core.haproxy import HAProxy
from drillbook.core.inventory import Inventory
from drillbook.core.metrics import scrape
from drillbook.core.profile import load_profile
from drillbook.load import runner
from drillbook.load.judge import GeneratorLimit, LoadFigures, compute, judge
from drillbook.load.measured import LoadLimits, LoadMeasured, limits_for, measured_from, witness_texts
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


@dataclass(frozen=True)
class Prepared:
    """What preflight settled: the first latency estimate and the witnesses that answered."""

    latency_ms: float
    witnesses: Witnesses


class LoadRun(Drill[Prepared, runner.LocustOutcome, LoadMeasured]):
    """Locust at an arrival rate of peak x (1 + headroom), judged against the inventory's SLA."""

    name = "load.run"
    runbook = "runbooks/load-test.md"
    measured = LoadMeasured
    checks = (
        at_least("achieved_rps", limit_from="rate_min_rps", detail_from="rate_detail"),
        at_most(
            "achieved_rps",
            name="achieved_rps_max",
            limit_from="rate_max_rps",
            detail_from="rate_detail",
        ),
        at_most("p95_ms", limit_from="sla_p95_ms", detail_from="p95_detail"),
        at_most("p99_ms", limit_from="sla_p99_ms", detail_from="p99_detail"),
        at_most("error_pct", limit_from="max_error_pct", detail_from="error_detail"),
    )

    def __init__(self, settings: LoadSettings, plan: LoadPlan) -> None:
        limits: LoadLimits = limits_for(settings, plan)
        super().__init__(
            thresholds=limits,
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

    # -- preflight ----------------------------------------------------------------
    def preflight(self, run: DrillRun) -> Prepared:
        """Probe the target and find which witnesses answer; the median latency sizes Locust's first pool."""
        run.note(self.plan.describe())
        latency_ms = probe_target(self.plan.url)
        run.note(f"target answers; median latency {latency_ms:.1f} ms over {PROBES} requests")
        return Prepared(latency_ms, self._witnesses(run))

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
            route_label=metrics.route_label if (metrics := load_profile(run.inventory).metrics) else "route",
            frontend=self.settings.haproxy_frontend,
        )

    # -- act ----------------------------------------------------------------------
    def act(self, run: DrillRun, plan: Prepared) -> runner.LocustOutcome:
        """Run Locust (and its remote workers, if distributed) until the plan ends and drains.

        An interrupted run still journals its partial figures before unwinding; the
        timeout is the plan's duration plus drain plus two minutes.
        """
        files = runner.LocustFiles(run.report_dir)
        workers = len(self.plan.loadgen_hosts) * self.settings.worker_processes
        cmd = runner.locust_command(
            self.plan, self.settings, files, latency_ms=plan.latency_ms, expect_workers=workers
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
                proc, files, timeout_s=timeout, tick=_ticker(run, plan.witnesses), interval_s=0.5
            )
        for path in files.existing():
            run.artefact(path)
        run.artefact(run.report_dir / "locust.cmd")
        if outcome.interrupted:
            # the partial figures are evidence too: journal them before unwinding
            run.record(self._measure(run, plan, outcome)[0])
            raise DrillInterrupted(outcome.interrupted_by or "interrupted")
        return outcome

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

    # -- observe ----------------------------------------------------------------------
    def observe(self, run: DrillRun, plan: Prepared, acted: runner.LocustOutcome) -> LoadMeasured:
        """Compute the figures from the plugin's records and judge them.

        An error, not a fail, when the plugin recorded nothing or when the generator
        could not keep the plan (:class:`GeneratorLimit`): either way the service was
        not what got measured.
        """
        measured, fig = self._measure(run, plan, acted)
        if fig.requests == 0 and (fig.locust_requests or 0) > 0:
            run.record(measured)
            raise DrillbookError(
                f"Locust counted {fig.locust_requests} requests but drillbook's plugin recorded none "
                "in the steady phase (see locust.log and drillbook_load.json)"
            )
        judgement = judge(fig, self.settings)
        for note in judgement.notes:
            run.note(f"note: {note}")
        if judgement.generator_limit:
            # an error, not the service's fail; the figures and checks stay in the journal as evidence
            run.record(measured)
            run.verify(self, measured)
            raise GeneratorLimit(judgement.generator_limit)
        return measured

    def _measure(
        self, run: DrillRun, plan: Prepared, outcome: runner.LocustOutcome
    ) -> tuple[LoadMeasured, LoadFigures]:
        """The steady phase's figures as the measurement record, their witnesses and the plot."""
        plan.witnesses.close()
        fig = compute(self.plan, outcome, plan.witnesses)
        run.journal.witnesses.update(witness_texts(fig))
        if fig.series:
            self._plot(run, plan.witnesses, outcome, fig)
        return measured_from(fig, self.plan), fig

    def _plot(
        self, run: DrillRun, witnesses: Witnesses, outcome: runner.LocustOutcome, fig: LoadFigures
    ) -> None:
        records = outcome.records or {}
        try:
            path = plot_run(
                fig,
                run.report_dir / PLOT,
                sla_p95_ms=self.settings.sla_p95_ms,
                tolerance_pct=self.settings.rate_tolerance_pct,
                ramp_s=self.plan.ramp_s,
                duration_s=self.plan.duration_s,
                t0=records.get("started_wall"),
                lb_series=witnesses.lb_series(),
                server_p95=witnesses.server_p95_series(),
                users=records.get("timeline"),
                title=f"load.run against {self.plan.url}",
            )
        except Exception as exc:  # a plot is a convenience: its failure must not hide the figures
            run.note(f"plot not drawn: {type(exc).__name__}: {exc}")
            return
        run.artefact(path)

    # -- report -----------------------------------------------------------------------
    def report(self, run: DrillRun, measured: LoadMeasured | None) -> str:
        """The load section of summary.md: figures, Locust's files, and the judge's notes."""
        for path in runner.LocustFiles(run.report_dir).existing():
            run.artefact(path)
        notes = [n.split(" ", 1)[-1] for n in run.journal.notes]
        judged = [n.removeprefix("note: ") for n in notes if n.startswith("note: ")]
        return section(run.journal.measurements, run.journal.artefacts, judged)


def _ticker(run: DrillRun, witnesses: Witnesses) -> Callable[[], None]:
    """Once a tick: sample the witnesses; every 5 s show HAProxy's view of the rate."""
    last = 0.0

    def tick() -> None:
        nonlocal last
        witnesses.sample()
        now = time.monotonic()
        lb = witnesses.lb
        if now - last >= 5 and len(lb) >= 5:
            last = now
            rate = witnesses.lb_figures(lb[-5][0], lb[-1][0])
            if rate is not None:
                run.progress(f"HAProxy frontend '{rate.frontend}': {rate.rps:.0f} req/s")

    return tick


def demo_run(inv: Inventory, duration: str = "20s", ramp: str = "5s") -> LoadRun:
    """``inv demo``'s load step: the inventory's peak x (1 + headroom) for a short run, Locust here."""
    from drillbook.load.plan import load_settings, make_plan

    settings = load_settings(inv)
    return LoadRun(settings, make_plan(inv, settings, duration=duration, ramp=ramp, local=True))
