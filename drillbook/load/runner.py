"""Run Locust headless as a child process and read back what it wrote.

Locust runs in its own process (its own session, so a Ctrl-C in the terminal
reaches drillbook, which then stops Locust on purpose), never inside drillbook:
importing locust monkey-patches the interpreter for gevent, which would break
threads, subprocesses and ansible-runner here. drillbook talks to it only through
its command line and the files it leaves in the report directory:

- ``locust.html``: Locust's own HTML report (``--html``);
- ``locust_stats.csv``, ``locust_stats_history.csv`` (``--csv-full-history``),
  ``locust_failures.csv``, ``locust_exceptions.csv``: its CSV statistics;
- ``locust.log``: its log (the CPU warning, worker messages);
- ``drillbook_load.json``: what the plugin recorded (``shape.py``): per-second
  records by issue time, the pacer's counts, the user pool, the CPU each process
  reported.

While Locust runs, :func:`supervise` calls a ``tick`` on a fixed clock (the drill
samples its witnesses there) and samples the CPU of every Locust process with
psutil, the generator's side of "who ran out of CPU". On Ctrl-C (``DrillInterrupted``)
it sends SIGINT to the Locust master, which stops its users, writes the HTML and
CSV reports and the plugin's JSON, and exits; what was recorded is then read
like a finished run and marked as interrupted (the drill re-raises afterwards).
"""

from __future__ import annotations

import contextlib
import csv
import json
import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, Any

import psutil  # type: ignore[import-untyped]

from drillbook.core import interrupts
from drillbook.core.errors import DrillbookError, DrillInterrupted
from drillbook.core.paths import REPO_ROOT
from drillbook.load.plan import LoadPlan, LoadSettings

PLUGIN = Path(__file__).with_name("plugin.py")
#: Files of this package a remote worker needs next to the locustfile (loadgen.yml copies them).
WORKER_FILES = ("__init__.py", "plugin.py", "shape.py", "schedule.py", "latency.py")


class LocustFailed(DrillbookError):
    """Locust exited without leaving its records (bad locustfile, port in use, crash)."""


@dataclass(frozen=True)
class LocustFiles:
    """Where one run's Locust output goes (all inside the report directory)."""

    directory: Path

    @property
    def csv_prefix(self) -> Path:
        """The ``--csv`` prefix; Locust appends ``_stats.csv``, ``_stats_history.csv`` and the rest."""
        return self.directory / "locust"

    @property
    def stats_csv(self) -> Path:
        """Locust's whole-run table (ramp included), written when Locust exits."""
        return self.directory / "locust_stats.csv"

    @property
    def history_csv(self) -> Path:
        """Locust's once-a-second rows (``--csv-full-history``), sliding-window percentiles."""
        return self.directory / "locust_stats_history.csv"

    @property
    def failures_csv(self) -> Path:
        """Failures grouped by (method, name, error), as Locust writes them."""
        return self.directory / "locust_failures.csv"

    @property
    def exceptions_csv(self) -> Path:
        """Exceptions raised inside the locustfile's tasks (not HTTP failures)."""
        return self.directory / "locust_exceptions.csv"

    @property
    def html(self) -> Path:
        """Locust's own HTML report, kept as an artefact next to the drill's report."""
        return self.directory / "locust.html"

    @property
    def log(self) -> Path:
        """Locust's stdout and stderr; its tail goes into error messages."""
        return self.directory / "locust.log"

    @property
    def records(self) -> Path:
        """The plugin's per-second request records, the source of every judged figure."""
        return self.directory / "drillbook_load.json"

    def existing(self) -> list[Path]:
        """The output files Locust actually left, to register as artefacts (a crashed run leaves fewer)."""
        paths = (
            self.html,
            self.stats_csv,
            self.history_csv,
            self.failures_csv,
            self.exceptions_csv,
            self.log,
            self.records,
        )
        return [p for p in paths if p.exists()]


def locust_command(
    plan: LoadPlan,
    settings: LoadSettings,
    files: LocustFiles,
    *,
    latency_ms: float = 0.0,
    expect_workers: int = 0,
) -> list[str]:
    """The ``locust`` command line: headless, plugin first, plan as ``--drillbook-*`` options.

    ``expect_workers`` > 0 makes this process a master waiting for that many remote
    workers (distributed mode); otherwise ``plan.processes`` > 1 uses Locust's own
    ``--processes`` (a master forking local workers).
    """
    cmd = [
        sys.executable,
        "-m",
        "locust",
        "-f",
        f"{PLUGIN},{plan.locustfile}",
        "--headless",
        "--host",
        plan.url,
        "--csv",
        str(files.csv_prefix),
        "--csv-full-history",
        "--html",
        str(files.html),
        "--only-summary",
        "--exit-code-on-error",
        "0",
        "--stop-timeout",
        f"{min(plan.drain_s, settings.request_timeout_s + 1):g}",
        "--drillbook-rps",
        f"{plan.target_rps:g}",
        "--drillbook-ramp",
        f"{plan.ramp_s:g}",
        "--drillbook-duration",
        f"{plan.duration_s:g}",
        "--drillbook-arrivals",
        plan.arrivals,
        "--drillbook-latency-ms",
        f"{latency_ms:.3f}",
        "--drillbook-max-users",
        str(settings.max_users),
        "--drillbook-drain",
        f"{plan.drain_s:g}",
        "--drillbook-out",
        str(files.records),
        "--drillbook-sla-p95-ms",
        f"{settings.sla_p95_ms:g}",
        "--drillbook-sla-p99-ms",
        f"{settings.sla_p99_ms:g}",
        "--drillbook-max-error-pct",
        f"{settings.max_error_pct:g}",
    ]
    port = str(settings.master_port)
    if expect_workers > 0:
        cmd += [
            "--master",
            "--expect-workers",
            str(expect_workers),
            "--expect-workers-max-wait",
            "120",
            "--master-bind-host",
            settings.master_bind,
            "--master-bind-port",
            port,
        ]
    elif plan.processes > 1:
        # Locust forks the workers; they connect to --master-port on 127.0.0.1.
        cmd += ["--processes", str(plan.processes), "--master-bind-host", "127.0.0.1"]
        cmd += ["--master-bind-port", port, "--master-port", port]
    return cmd


@dataclass(frozen=True)
class CpuSample:
    """CPU of each Locust process (percent of one core) and of the whole machine, at ``wall``."""

    wall: float
    processes: dict[int, float]
    system_pct: float


class ProcessTreeCpu:
    """psutil's view of a Locust process and its children (the --processes workers)."""

    def __init__(self, pid: int) -> None:
        self.root = psutil.Process(pid)
        self.known: dict[int, psutil.Process] = {}
        self.samples: list[CpuSample] = []
        psutil.cpu_percent(interval=None)

    def sample(self) -> None:
        """Append one :class:`CpuSample`; call it periodically while Locust runs.

        A process seen for the first time only primes psutil's counter and appears from
        the next sample on; processes that vanish, or a root that is gone, are skipped.
        """
        try:
            procs = [self.root, *self.root.children(recursive=True)]
        except psutil.Error:
            return
        values: dict[int, float] = {}
        for proc in procs:
            try:
                if proc.pid not in self.known:
                    self.known[proc.pid] = proc
                    proc.cpu_percent(interval=None)  # first call primes the counter
                    continue
                values[proc.pid] = float(self.known[proc.pid].cpu_percent(interval=None))
            except psutil.Error:
                continue
        self.samples.append(CpuSample(time.time(), values, float(psutil.cpu_percent(interval=None))))


@dataclass(frozen=True)
class StatsRow:
    """One row of Locust's own ``_stats.csv`` (the whole run, ramp included)."""

    method: str
    name: str
    requests: int
    failures: int
    p50_ms: float | None
    p95_ms: float | None
    p99_ms: float | None
    rps: float


@dataclass(frozen=True)
class HistoryPoint:
    """One ``Aggregated`` row of ``_stats_history.csv``: Locust's own once-a-second view."""

    wall: float
    users: int
    rps: float
    p95_ms: float | None
    total_requests: int


@dataclass
class LocustOutcome:
    """Everything a finished (or interrupted) Locust run left behind."""

    files: LocustFiles
    returncode: int | None
    interrupted_by: str | None
    records: dict[str, Any] | None
    stats: list[StatsRow] = field(default_factory=list)
    history: list[HistoryPoint] = field(default_factory=list)
    cpu: list[CpuSample] = field(default_factory=list)
    root_pid: int | None = None
    log_tail: str = ""

    @property
    def interrupted(self) -> bool:
        """True when the operator (a signal) stopped the run, whatever Locust's exit code."""
        return self.interrupted_by is not None

    @property
    def total(self) -> StatsRow | None:
        """The ``Aggregated`` row of Locust's own stats; None if Locust wrote no stats."""
        return next((r for r in self.stats if r.name == "Aggregated"), None)


def start(cmd: list[str], files: LocustFiles) -> subprocess.Popen[bytes]:
    """Start Locust in its own session with its output in ``locust.log``."""
    files.directory.mkdir(parents=True, exist_ok=True)
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join(p for p in (str(REPO_ROOT), env.get("PYTHONPATH", "")) if p)
    env["PYTHONUNBUFFERED"] = "1"
    log: IO[bytes] = open(files.log, "ab")  # noqa: SIM115 - handed to the child, closed below
    try:
        return subprocess.Popen(
            cmd,
            stdin=subprocess.DEVNULL,
            stdout=log,
            stderr=subprocess.STDOUT,
            cwd=str(files.directory),
            env=env,
            start_new_session=True,
        )
    finally:
        log.close()


def stop(proc: subprocess.Popen[bytes], grace_s: float = 20.0) -> None:
    """SIGINT (Locust then writes its reports), then SIGKILL to the whole session if it hangs."""
    if proc.poll() is not None:
        return
    with contextlib.suppress(ProcessLookupError):
        proc.send_signal(signal.SIGINT)
    try:
        proc.wait(timeout=grace_s)
    except subprocess.TimeoutExpired:
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(proc.pid, signal.SIGKILL)
        proc.wait(timeout=10)


def supervise(
    proc: subprocess.Popen[bytes],
    files: LocustFiles,
    *,
    timeout_s: float,
    tick: Callable[[], None] | None = None,
    interval_s: float = 1.0,
) -> LocustOutcome:
    """Wait for Locust, calling ``tick`` every ``interval_s``; on Ctrl-C stop it and keep what it wrote.

    An interrupted run comes back with ``interrupted_by`` set (the signal's message);
    the caller records the partial figures and then raises ``DrillInterrupted`` itself.
    """
    cpu = ProcessTreeCpu(proc.pid)
    interrupted_by: str | None = None
    deadline = time.monotonic() + timeout_s
    try:
        due = time.monotonic()
        while proc.poll() is None:
            if time.monotonic() > deadline:
                stop(proc)
                raise LocustFailed(
                    f"Locust did not finish within {timeout_s:.0f}s, stopped it (see locust.log)"
                )
            cpu.sample()
            if tick is not None:
                tick()
            due += interval_s
            pause = due - time.monotonic()
            if pause > 0:
                with contextlib.suppress(subprocess.TimeoutExpired):
                    proc.wait(timeout=pause)
            else:
                due = time.monotonic()
    except DrillInterrupted as exc:
        interrupted_by = str(exc)
    with interrupts.shielded():
        if interrupted_by is not None:
            stop(proc)
        outcome = collect(files, proc.returncode, interrupted_by)
    outcome.cpu, outcome.root_pid = cpu.samples, proc.pid
    return outcome


def collect(files: LocustFiles, returncode: int | None, interrupted_by: str | None = None) -> LocustOutcome:
    """Read Locust's files; a run that left no records at all is :class:`LocustFailed`."""
    records = None
    if files.records.exists():
        with contextlib.suppress(ValueError, OSError):
            records = json.loads(files.records.read_text())
    outcome = LocustOutcome(
        files=files,
        returncode=returncode,
        interrupted_by=interrupted_by,
        records=records,
        stats=parse_stats(files.stats_csv),
        history=parse_history(files.history_csv),
        log_tail=_tail(files.log),
    )
    if records is None and interrupted_by is None:
        raise LocustFailed(
            f"Locust exited with code {returncode} and left no records: {outcome.log_tail or 'no output'}"
        )
    return outcome


def _tail(path: Path, lines: int = 8) -> str:
    if not path.exists():
        return ""
    text = path.read_text(errors="replace").strip().splitlines()
    useful = [line for line in text if "ERROR" in line or "Error" in line or "Traceback" in line]
    return " | ".join((useful or text)[-lines:])[-1500:]


def _float(value: str | None) -> float | None:
    if value in (None, "", "N/A"):
        return None
    try:
        return float(value)
    except ValueError:
        return None


def parse_stats(path: Path) -> list[StatsRow]:
    """Locust's ``_stats.csv``: one row per (method, name), plus ``Aggregated``."""
    if not path.exists():
        return []
    rows = []
    with path.open(newline="") as fh:
        for row in csv.DictReader(fh):
            rows.append(
                StatsRow(
                    method=row.get("Type", ""),
                    name=row.get("Name", ""),
                    requests=int(_float(row.get("Request Count")) or 0),
                    failures=int(_float(row.get("Failure Count")) or 0),
                    p50_ms=_float(row.get("50%")),
                    p95_ms=_float(row.get("95%")),
                    p99_ms=_float(row.get("99%")),
                    rps=_float(row.get("Requests/s")) or 0.0,
                )
            )
    return rows


def parse_history(path: Path) -> list[HistoryPoint]:
    """The ``Aggregated`` rows of Locust's ``_stats_history.csv`` (one a second)."""
    if not path.exists():
        return []
    points = []
    with path.open(newline="") as fh:
        for row in csv.DictReader(fh):
            if row.get("Name") != "Aggregated":
                continue
            points.append(
                HistoryPoint(
                    wall=_float(row.get("Timestamp")) or 0.0,
                    users=int(_float(row.get("User Count")) or 0),
                    rps=_float(row.get("Requests/s")) or 0.0,
                    p95_ms=_float(row.get("95%")),
                    total_requests=int(_float(row.get("Total Request Count")) or 0),
                )
            )
    return points
