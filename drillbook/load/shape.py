# Over 500 lines on purpose: one Locust-side State and the event hooks that drive it, read together.
"""The Locust side of a load run: arrival-rate pacing, a user pool sized by Little's law, exact records.

Loaded *inside* Locust (through ``plugin.py``, passed with ``-f`` before the user's
locustfile), never by drillbook itself: importing locust monkey-patches the whole
process for gevent. Everything here uses Locust's own extension points:

- ``events.init_command_line_parser``: the plan arrives as real options
  (``--drillbook-rps``, ``--drillbook-ramp`` ...), so ``locust --help`` lists them,
  and the master hands them to every worker in its spawn messages.
- ``wait_time``: each user class of the locustfile gets :func:`paced_wait`, which
  asks the process's :class:`~drillbook.load.schedule.Pacer` for the next due
  arrival instead of sleeping a fixed time (see ``schedule.py`` for why: an open
  model with spread, not lockstep, arrivals). ``on_start`` is wrapped so that a
  user's *first* request is paced too (Locust runs a task as soon as a user
  starts; a pool grown in the steady phase would otherwise fire a burst).
- :class:`ArrivalRateShape`, a ``LoadTestShape``: once a second on the master (or
  the only process) it sizes the user pool from the target rate and the latency
  observed so far, grows it when arrivals find no idle user, and ends the test
  once the plan is over and nothing is in flight (no request cut off mid-way).
- ``events.request``: every request is filed by issue time into a
  :class:`~drillbook.load.latency.Recorder`; workers ship what they recorded with
  their regular report (``events.report_to_master``/``worker_report``) and a last
  ``drillbook_final`` message when their share of the plan is done.
- ``events.quitting``: the master writes everything to ``--drillbook-out`` (JSON,
  read by ``runner.py``) and, when SLA options are given, sets the exit code.

Each process paces ``rate / workers``: ``--processes N`` and remote workers split
the plan evenly (the master passes ``expect_workers`` to every worker).
"""

from __future__ import annotations

import functools
import json
import os
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import gevent  # type: ignore[import-untyped]
import psutil  # type: ignore[import-untyped]
from locust import events
from locust.runners import MasterRunner, WorkerRunner
from locust.shape import LoadTestShape

from drillbook.load.latency import Recorder
from drillbook.load.schedule import ArrivalPlan, Pacer, PacerStats, pool_size

#: How long a user whose share of the plan is over sleeps (it is stopped long before).
IDLE_S = 3600.0
#: Share of the pool meant to be busy at any moment (the rest wait for the next arrival).
UTILISATION = 0.5
#: Fallback latency before any request finished, when no estimate was passed in.
DEFAULT_LATENCY_MS = 20.0
#: Period of the event-loop lag probe (a timer whose lateness shows CPU starvation).
LAG_PROBE_S = 0.01
#: Mean event-loop lag (ms) over the last second above which the pool is not grown.
LAG_NO_GROWTH_MS = 5.0
#: A generating process's CPU (% of one core, over the last second) above which the pool is not grown.
CPU_NO_GROWTH_PCT = 90.0


def add_arguments(parser: Any) -> None:
    """The plan as command-line options (``locust --help`` shows them under 'drillbook')."""
    group = parser.add_argument_group("drillbook", "arrival-rate plan (drillbook.load)")
    group.add_argument("--drillbook-rps", type=float, default=0.0, help="Target arrival rate, requests/s")
    group.add_argument("--drillbook-ramp", type=float, default=0.0, help="Linear ramp to the rate, s")
    group.add_argument("--drillbook-duration", type=float, default=0.0, help="Whole run incl. ramp, s")
    group.add_argument("--drillbook-arrivals", default="jittered", choices=["jittered", "poisson"])
    group.add_argument("--drillbook-latency-ms", type=float, default=0.0, help="Latency estimate, ms")
    group.add_argument("--drillbook-max-users", type=int, default=5000, help="User pool cap (all)")
    group.add_argument("--drillbook-drain", type=float, default=10.0, help="Max wait for in-flight, s")
    group.add_argument("--drillbook-out", default="", help="Write the run's records (JSON) here")
    group.add_argument("--drillbook-sla-p95-ms", type=float, default=0.0, help="Exit 1 above this p95")
    group.add_argument("--drillbook-sla-p99-ms", type=float, default=0.0, help="Exit 1 above this p99")
    group.add_argument("--drillbook-max-error-pct", type=float, default=-1.0, help="Exit 1 above this")


@dataclass
class WorkerView:
    """The master's latest knowledge of one worker."""

    cpu_pct: float = 0.0
    cpu_max_pct: float = 0.0
    in_flight: float = 0.0
    peak_in_flight: int = 0
    done: bool = False


@dataclass
class State:
    """One Locust process's share of the run (and, on the master, the merged whole)."""

    environment: Any
    role: str  # local | master | worker
    rate: float
    ramp_s: float
    duration_s: float
    arrivals: str
    latency_ms: float
    max_users: int
    drain_s: float
    out: str
    workers: int = 1
    pacer: Pacer | None = None
    recorder: Recorder | None = None
    pacer_total: PacerStats = field(default_factory=PacerStats)
    requests: int = 0
    tasks: int = 0
    started_mono: float | None = None
    started_wall: float | None = None
    stopped_at_s: float | None = None
    process: psutil.Process = field(default_factory=psutil.Process)
    cpu_max_pct: float = 0.0
    worker_views: dict[str, WorkerView] = field(default_factory=dict)
    timeline: list[dict[str, Any]] = field(default_factory=list)
    target_users: int = 0
    pool_capped: bool = False
    wake_late_ms_sum: float = 0.0
    wakes: int = 0
    wake_late_max_ms: float = 0.0
    lag_mark: tuple[int, float] = (0, 0.0)
    growth_held: int = 0
    peak_in_flight: int = 0
    final_sent: bool = False
    completed: bool = False

    # -- setup ------------------------------------------------------------------
    def start(self) -> None:
        """test_start: take the plan from the options; the master's clock starts now.

        A generating process starts its clock at the first arrival a user asks for,
        not here: the locustfile's own ``test_start`` work (seeding data, logging in)
        runs after this listener and would otherwise eat into the ramp.
        """
        opts = self.environment.parsed_options
        self.rate = float(opts.drillbook_rps)
        self.ramp_s = float(opts.drillbook_ramp)
        self.duration_s = float(opts.drillbook_duration)
        self.arrivals = str(opts.drillbook_arrivals)
        if self.role != "local":
            self.workers = max(1, int(getattr(opts, "expect_workers", 1) or 1))
        self.started_mono = self.started_wall = self.stopped_at_s = None
        self.final_sent = self.completed = False
        self.recorder = Recorder(self.ramp_s, self.duration_s)
        self.pacer_total = PacerStats()
        if self.role == "master":
            self._start_clock()
        else:
            share = ArrivalPlan(self.rate / self.workers, self.ramp_s, self.duration_s)
            self.pacer = Pacer(share, arrivals=self.arrivals)

    def _start_clock(self) -> None:
        self.started_mono, self.started_wall = time.monotonic(), time.time()
        assert self.recorder is not None
        self.recorder.start(self.started_wall)
        if self.pacer is not None:
            self.pacer.start(self.started_mono)
            gevent.spawn(self._watch_loop_lag)
        if self.role == "worker":
            gevent.spawn(self._watch_for_end)

    def elapsed(self) -> float:
        """Seconds since this process's clock started (monotonic); 0 before the first arrival."""
        return 0.0 if self.started_mono is None else time.monotonic() - self.started_mono

    # -- per request ------------------------------------------------------------
    def on_request(
        self,
        request_type: str,
        name: str,
        response_time: float,
        exception: BaseException | None,
        start_time: float | None,
    ) -> None:
        """Locust's ``request`` listener: file the request by when it was issued.

        Locust gives ``response_time`` in milliseconds and ``start_time`` as wall-clock
        seconds; without a start time it is derived from now minus the response time.
        Requests before the clock starts are ignored.
        """
        if self.recorder is None:
            return
        self.requests += 1
        began = start_time if start_time is not None else time.time() - response_time / 1000
        self.recorder.record(began, f"{request_type} {name}", float(response_time), exception is not None)

    def wait(self, user: Any) -> float:
        """``wait_time`` for a user that just became idle: how long until the next arrival.

        Locust sleeps that long itself (the user is WAITING, so a stop does not wait
        for it); this adds nothing to the hot path but a few arithmetic steps.
        """
        pacer = self.pacer
        if pacer is None:
            return 0.1
        if self.started_mono is None:
            self._start_clock()
        attrs = user.__dict__
        now = time.monotonic()
        if attrs.get("_drillbook_claimed"):
            pacer.finished(now, attrs.get("_drillbook_running", False))
            attrs["_drillbook_running"] = False
            self.tasks += 1
            if not self.tasks & 63:
                pacer.observe(self.requests, self.tasks)
        delay = pacer.claim(now)
        if delay is None:
            attrs["_drillbook_claimed"] = False
            return IDLE_S
        attrs["_drillbook_claimed"] = True
        attrs["_drillbook_due"] = now + delay
        return delay

    def task_started(self, user: Any) -> None:
        """A user's task begins: the arrival it claimed is now in flight."""
        attrs = user.__dict__
        if self.pacer is not None and attrs.get("_drillbook_claimed") and not attrs.get("_drillbook_running"):
            attrs["_drillbook_running"] = True
            self.pacer.started(time.monotonic(), attrs.get("_drillbook_due", 0.0))

    def _watch_loop_lag(self) -> None:
        """How late this process's event loop wakes a 10 ms timer: its own CPU starvation, measured."""
        while True:
            before = time.monotonic()
            gevent.sleep(LAG_PROBE_S)
            late_ms = max(0.0, (time.monotonic() - before - LAG_PROBE_S) * 1000)
            self.wakes += 1
            self.wake_late_ms_sum += late_ms
            if late_ms > self.wake_late_max_ms:
                self.wake_late_max_ms = late_ms

    # -- worker -> master -------------------------------------------------------
    def report(self, done: bool = False) -> dict[str, Any]:
        """What a worker sends the master: records and pacer counts since the last report."""
        assert self.recorder is not None
        data: dict[str, Any] = {"recorder": self.recorder.take().to_dict(), "done": done}
        if self.pacer is not None:
            data["pacer"] = self.pacer.stats.to_dict()
            self.pacer.stats = PacerStats()
            data["in_flight"], data["peak_in_flight"] = self.pacer.take_in_flight(time.monotonic())
            data["per_task"] = self.pacer.per_task
        data["cpu_pct"] = self.cpu()
        data["wake"] = [self.wakes, self.wake_late_ms_sum, self.wake_late_max_ms]
        self.wakes, self.wake_late_ms_sum, self.wake_late_max_ms = 0, 0.0, 0.0
        return data

    def absorb(self, worker: str, data: dict[str, Any]) -> None:
        """Master: merge one worker report."""
        if self.recorder is None:
            return
        self.recorder.merge(Recorder.from_dict(data.get("recorder") or {}))
        self.pacer_total.merge(PacerStats.from_dict(data.get("pacer") or {}))
        view = self.worker_views.setdefault(worker, WorkerView())
        view.cpu_pct = float(data.get("cpu_pct", 0.0))
        view.cpu_max_pct = max(view.cpu_max_pct, view.cpu_pct)
        view.in_flight = float(data.get("in_flight", 0.0))
        view.peak_in_flight = int(data.get("peak_in_flight", 0))
        view.done = view.done or bool(data.get("done"))
        wakes, late_sum, late_max = data.get("wake") or [0, 0.0, 0.0]
        self.wakes += int(wakes)
        self.wake_late_ms_sum += float(late_sum)
        self.wake_late_max_ms = max(self.wake_late_max_ms, float(late_max))

    def _watch_for_end(self) -> None:
        """Worker: once this share of the plan is over and nothing is in flight, report at once."""
        while not self.final_sent:
            gevent.sleep(0.25)
            pacer = self.pacer
            if pacer is None or self.elapsed() < self.duration_s:
                continue
            if pacer.outstanding == 0 or self.elapsed() > self.duration_s + self.drain_s:
                self.final_sent = True
                self.environment.runner.send_message("drillbook_final", self.report(done=True))

    def cpu(self) -> float:
        """This process's CPU since the last call (percent of one core); also tracks the maximum."""
        pct = float(self.process.cpu_percent(interval=None))
        self.cpu_max_pct = max(self.cpu_max_pct, pct)
        return pct

    # -- master / local: once a second ------------------------------------------
    def tick(self) -> tuple[int, float] | None:
        """The shape's answer once a second: (users, spawn rate), or None to end the run.

        Before the clock starts, the initial pool; after the plan's end, None once the
        in-flight tasks have drained. Each tick also appends a point to the timeline.
        """
        runner = self.environment.runner
        t = self.elapsed()
        if self.started_mono is None:
            users = self._initial_users()
            self.target_users = users
            return users, float(max(users, 1))
        if t >= self.duration_s and self._drained(t):
            self.stopped_at_s = t
            self.completed = True
            return None
        cpu = self._cpu_now()
        users = self._pool(t, max(cpu.values(), default=0.0))
        self.timeline.append(
            {
                "t": round(t, 3),
                "users": int(runner.user_count),
                "target_users": users,
                "rate": round(ArrivalPlan(self.rate, self.ramp_s, self.duration_s).rate_at(t), 3),
                "cpu_pct": cpu,
            }
        )
        # A constant spawn rate keeps the tick unchanged (Locust then does nothing) until the pool grows.
        return users, float(users)

    def _initial_users(self) -> int:
        latency = self.latency_ms if self.latency_ms > 0 else DEFAULT_LATENCY_MS
        users = pool_size(self.rate, latency / 1000, utilisation=UTILISATION, minimum=10 * self.workers)
        return min(self.max_users, users)

    def _pool(self, t: float, cpu_pct: float) -> int:
        """Little's law, and only ever growing (stopping users mid-run costs requests).

        Tasks in flight are counted directly (each paced task tells the pacer when it
        starts and ends) and averaged over time, which is Little's L itself; the pool
        keeps twice L plus a margin for random clumps, so about half of it is idle for
        the next arrival. The latency-based estimate (rate x mean latency) counts only
        while the pool is at least half busy: otherwise a generator short of CPU would read its
        own delays as service latency and feed them back into ever more users. For the
        same reason the pool does not grow while the event loop runs late (its 10 ms
        probe timer woke more than 5 ms late on average over the last second) or while a
        generating process used more than 90 % of a core over the last second (``cpu_pct``,
        the busiest one): with the CPU spent, users cannot be served sooner, and every one
        added costs memory and scheduling (unbounded, the pool grew to over a thousand users
        at a rate one process could not carry, and held less than with fifty).
        """
        assert self.recorder is not None
        if self.role == "master":
            in_flight = sum(v.in_flight for v in self.worker_views.values())
            peak = sum(v.peak_in_flight for v in self.worker_views.values())
        else:
            assert self.pacer is not None
            in_flight, peak = self.pacer.take_in_flight(time.monotonic())
        self.peak_in_flight = max(self.peak_in_flight, peak)
        wakes, lag_sum = self.wakes, self.wake_late_ms_sum
        dw, dl = wakes - self.lag_mark[0], lag_sum - self.lag_mark[1]
        self.lag_mark = (wakes, lag_sum)
        if (dw > 0 and dl / dw > LAG_NO_GROWTH_MS) or cpu_pct > CPU_NO_GROWTH_PCT:
            # The generator itself is short of CPU. More users would only cost more of it:
            # a starved loop also leaves finished responses unread, so even the exact count
            # of tasks in flight grows with its own delay, and growing the pool on it spawned
            # thousands of users for a target answering in a millisecond. The arrivals it
            # cannot carry are counted as late or dropped, and judged as a generator limit.
            self.growth_held += 1
            return self.target_users
        needed = pool_size(
            self.rate, 0.0, in_flight=in_flight, utilisation=UTILISATION, minimum=10 * self.workers
        )
        if in_flight >= UTILISATION * self.target_users:
            recent = [s for s in sorted(self.recorder.seconds) if s < int(t)][-3:]
            mean = self.recorder.window(recent).latency.mean_ms if recent else None
            if mean:
                needed = max(needed, pool_size(self.rate, mean / 1000, utilisation=UTILISATION))
        # At most double per second, so one bad second cannot spawn thousands of users.
        users = max(self.target_users, min(needed, 2 * self.target_users + 10))
        if users > self.max_users:
            users, self.pool_capped = self.max_users, True
        self.target_users = users
        return users

    def _drained(self, t: float) -> bool:
        if t > self.duration_s + self.drain_s:
            return True
        if self.role == "master":
            return len(self.worker_views) >= self.workers and all(v.done for v in self.worker_views.values())
        return self.pacer is not None and self.pacer.outstanding == 0

    def _cpu_now(self) -> dict[str, float]:
        if self.role == "master":
            return {w: round(v.cpu_pct, 1) for w, v in self.worker_views.items()}
        return {"local": round(self.cpu(), 1)}

    # -- the end ----------------------------------------------------------------
    def summary(self) -> dict[str, Any]:
        """Everything the control side needs, as JSON."""
        assert self.recorder is not None
        if self.role == "local" and self.pacer is not None:
            pacer = self.pacer.stats
            per_task = self.pacer.per_task
            cpu_max = {"local": round(self.cpu_max_pct, 1)}
        else:
            pacer = self.pacer_total
            per_task = 1.0
            cpu_max = {w: round(v.cpu_max_pct, 1) for w, v in self.worker_views.items()}
        runner = self.environment.runner
        return {
            "version": 1,
            "role": self.role,
            "plan": {
                "rate": self.rate,
                "ramp_s": self.ramp_s,
                "duration_s": self.duration_s,
                "arrivals": self.arrivals,
                "workers": self.workers,
                "latency_ms": self.latency_ms,
            },
            "started_wall": self.started_wall,
            "stopped_at_s": self.stopped_at_s if self.stopped_at_s is not None else self.elapsed(),
            "completed": self.completed,
            "recorder": self.recorder.to_dict(),
            "pacer": pacer.to_dict(),
            "per_task": per_task,
            "wake": {
                "wakes": self.wakes,
                "late_ms_mean": round(self.wake_late_ms_sum / self.wakes, 3) if self.wakes else 0.0,
                "late_ms_max": round(self.wake_late_max_ms, 3),
            },
            "timeline": self.timeline,
            "users_max": max((int(p["users"]) for p in self.timeline), default=int(runner.user_count)),
            "pool_capped": self.pool_capped,
            "pool_growth_held": self.growth_held,
            "peak_in_flight": self.peak_in_flight,
            "cpu_max_pct": cpu_max,
            "locust_cpu_warning": bool(
                getattr(runner, "cpu_warning_emitted", False)
                or getattr(runner, "worker_cpu_warning_emitted", False)
            ),
            "workers_seen": len(self.worker_views) if self.role == "master" else 1,
        }

    def write(self) -> None:
        """Write :meth:`summary` atomically to ``--drillbook-out`` (a no-op before test_start)."""
        if not self.out or self.recorder is None:
            return
        tmp = f"{self.out}.tmp"
        with open(tmp, "w", encoding="utf-8") as fh:
            json.dump(self.summary(), fh)
        os.replace(tmp, self.out)

    def sla_exit_code(self) -> int | None:
        """1 when SLA options were given and the steady phase broke one, 0 when it kept them."""
        opts = self.environment.parsed_options
        p95, p99, err = opts.drillbook_sla_p95_ms, opts.drillbook_sla_p99_ms, opts.drillbook_max_error_pct
        if self.recorder is None or (p95 <= 0 and p99 <= 0 and err < 0):
            return None
        steady = self.recorder.window(self.recorder.steady_seconds(self.stopped_at_s))
        q95, q99 = steady.latency.quantile(0.95), steady.latency.quantile(0.99)
        error_pct = 100 * steady.failures / steady.requests if steady.requests else 100.0
        broken = (
            (p95 > 0 and (q95 is None or q95 > p95))
            or (p99 > 0 and (q99 is None or q99 > p99))
            or (err >= 0 and error_pct > err)
        )
        return 1 if broken else 0


_state: State | None = None


def current() -> State | None:
    """The process's state (None outside Locust or before ``init``)."""
    return _state


def paced_wait(user: Any) -> float:
    """``wait_time`` of every user class: wait for the next arrival of the plan."""
    return _state.wait(user) if _state is not None else 0.1


def _paced_on_start(original: Callable[[Any], None]) -> Callable[[Any], None]:
    def on_start(user: Any) -> None:
        original(user)
        user.wait()  # Locust's own wait: the user is WAITING, a stop does not wait for it

    on_start.__doc__ = "Run the locustfile's on_start, then wait for the first arrival."
    return on_start


def _paced_task(task: Callable[..., Any]) -> Callable[..., Any]:
    @functools.wraps(task)  # keeps Locust's attributes (tags) on the wrapper
    def run(user: Any, *args: Any, **kwargs: Any) -> Any:
        if _state is not None:
            _state.task_started(user)
        return task(user, *args, **kwargs)

    return run


def pace_user_classes(user_classes: list[type[Any]]) -> None:
    """Give every user class the paced ``wait_time``, a paced first request, and tasks that
    say when they start (a nested TaskSet is left alone: its tasks only count as in flight
    approximately, through the arrivals claimed)."""
    for cls in user_classes:
        if getattr(cls, "_drillbook_paced", False):
            continue
        cls.wait_time = paced_wait
        cls.on_start = _paced_on_start(cls.on_start)
        cls.tasks = [t if isinstance(t, type) else _paced_task(t) for t in cls.tasks]
        cls._drillbook_paced = True


class ArrivalRateShape(LoadTestShape):
    """Users sized by Little's law for the target rate; the run ends when the plan is done and drained."""

    def tick(self) -> tuple[int, float] | None:
        """Delegate to the process's :class:`State`; None (stop) when the plugin was not initialised."""
        if _state is None:
            return None
        return _state.tick()


def _on_init(environment: Any, runner: Any = None, **_kw: Any) -> None:
    global _state
    opts = environment.parsed_options
    if opts is None:
        return
    role = "master" if isinstance(runner, MasterRunner) else "worker"
    if not isinstance(runner, (MasterRunner, WorkerRunner)):
        role = "local"
    _state = state = State(
        environment=environment,
        role=role,
        rate=float(opts.drillbook_rps),
        ramp_s=float(opts.drillbook_ramp),
        duration_s=float(opts.drillbook_duration),
        arrivals=str(opts.drillbook_arrivals),
        latency_ms=float(opts.drillbook_latency_ms),
        max_users=int(opts.drillbook_max_users),
        drain_s=float(opts.drillbook_drain),
        out=str(opts.drillbook_out or ""),
    )
    state.cpu()  # prime psutil's counter
    if role == "master":
        runner.register_message(
            "drillbook_final", lambda environment, msg, **_kw: state.absorb(msg.node_id, msg.data)
        )
    else:
        pace_user_classes(list(environment.user_classes))


def _on_test_start(environment: Any, **_kw: Any) -> None:
    if _state is not None:
        _state.start()


def _on_request(
    request_type: str,
    name: str,
    response_time: float,
    response_length: int,
    exception: BaseException | None = None,
    start_time: float | None = None,
    **_kw: Any,
) -> None:
    if _state is not None:
        _state.on_request(request_type, name, response_time, exception, start_time)


def _on_report_to_master(client_id: str, data: dict[str, Any], **_kw: Any) -> None:
    if _state is not None and _state.recorder is not None:
        data["drillbook"] = _state.report()


def _on_worker_report(client_id: str, data: dict[str, Any], **_kw: Any) -> None:
    if _state is not None and "drillbook" in data:
        _state.absorb(client_id, data["drillbook"])


def _on_test_stopping(environment: Any, **_kw: Any) -> None:
    if _state is not None and _state.stopped_at_s is None and _state.started_mono is not None:
        _state.stopped_at_s = _state.elapsed()


def _on_quitting(environment: Any, **_kw: Any) -> None:
    if _state is None or _state.role == "worker":
        return
    _state.write()
    code = _state.sla_exit_code()
    if code is not None:
        environment.process_exit_code = code


def install() -> None:
    """Register the listeners (called once by ``plugin.py`` when Locust imports it)."""
    hooks: list[tuple[Any, Callable[..., None]]] = [
        (events.init_command_line_parser, add_arguments),
        (events.init, _on_init),
        (events.test_start, _on_test_start),
        (events.request, _on_request),
        (events.report_to_master, _on_report_to_master),
        (events.worker_report, _on_worker_report),
        (events.test_stopping, _on_test_stopping),
        (events.quitting, _on_quitting),
    ]
    for hook, listener in hooks:
        hook.add_listener(listener)
