"""The arrival schedule of a load run, and how many users it takes to keep it.

Open model, not closed
    Locust's users are a closed model: each user sends a request, waits for the
    answer, waits ``wait_time`` and goes again, so a slower service is sent fewer
    requests and a load test quietly stops testing the load it was asked for.
    Here the *arrivals* are scheduled: the plan says how many requests should have
    been issued by time t, whether or not earlier ones have finished, and users are
    only the hands that carry them out. One :class:`Pacer` per Locust process hands
    each idle user the next due arrival (through ``wait_time``); a user busy with a
    slow request simply does not claim one, and another idle user does.

Spread, not lockstep
    ``constant_throughput`` gives every user its own clock with the same period,
    so users that started together fire together: most 10 ms slots stay empty and
    tens of requests land at once, inflating the very latency being measured. The
    pacer draws each arrival from one shared schedule instead: ``jittered`` puts
    arrival k uniformly at random inside its own slot (exactly one arrival per
    slot, so the count over any window is the target within one request, with no
    clumping), ``poisson`` makes the gaps exponential (the textbook open arrival
    process; its count wanders by about the square root of the count, which at low
    rates is more than a 3 % tolerance, hence not the default).

Ramp
    The rate grows linearly from zero to the target over ``ramp_s``, then holds until
    ``duration_s``. The schedule is kept in "operational time": ``expected(t)`` is the
    number of arrivals due by t (the integral of the rate), and an arrival's time
    is ``time_of(s)``, its inverse. That makes a ramp exact without per-second steps.

Users (Little's law)
    Requests in flight = arrival rate x time in the system. :func:`pool_size` keeps
    enough users that about half are idle at any moment, from the rate and the
    latency observed so far (or measured before the run), and never fewer than
    the peak number in flight. When latency grows, so does the pool; an arrival
    that finds no idle user is *late* and counted, and the shape grows the pool
    faster when that happens.

Pure code, standard library only: the Locust side (``shape.py``) imports it, and
it can be copied to a load generator host beside the plugin.
"""

from __future__ import annotations

import math
import random
from dataclasses import dataclass, field

ARRIVALS = ("jittered", "poisson")


@dataclass(frozen=True)
class ArrivalPlan:
    """Rate ``rate`` (requests/s) after a linear ramp of ``ramp_s``; arrivals stop at ``duration_s``."""

    rate: float
    ramp_s: float
    duration_s: float

    def __post_init__(self) -> None:
        # Asked for at every arrival: computed once.
        object.__setattr__(self, "_ramp_total", self.rate * self.ramp_s / 2 if self.ramp_s > 0 else 0.0)
        object.__setattr__(self, "_total", self.expected(self.duration_s))

    def rate_at(self, t: float) -> float:
        """The plan's rate (requests/s) at ``t`` seconds: linear during the ramp, 0 outside the plan."""
        if t < 0 or t >= self.duration_s:
            return 0.0
        if t < self.ramp_s:
            return self.rate * t / self.ramp_s
        return self.rate

    def expected(self, t: float) -> float:
        """Arrivals due in ``[0, t]``: the integral of the rate."""
        t = min(max(t, 0.0), self.duration_s)
        if self.ramp_s <= 0:
            return self.rate * t
        if t <= self.ramp_s:
            return self.rate * t * t / (2 * self.ramp_s)
        return self.rate * self.ramp_s / 2 + self.rate * (t - self.ramp_s)

    @property
    def total(self) -> float:
        """Arrivals in the whole plan (fractional: the integral of the rate)."""
        return float(self.__dict__["_total"])

    def time_of(self, s: float) -> float | None:
        """When the arrival numbered ``s`` (operational time) is due; None once the plan is over."""
        if self.rate <= 0 or s >= self.__dict__["_total"]:
            return None
        if s < 0:
            s = 0.0
        ramp_total: float = self.__dict__["_ramp_total"]
        if s <= ramp_total and self.ramp_s > 0:
            return math.sqrt(2 * self.ramp_s * s / self.rate)
        return self.ramp_s + (s - ramp_total) / self.rate


@dataclass
class PacerStats:
    """What the pacer saw: arrivals handed out, how many were late, how late, how many dropped."""

    claims: int = 0
    late: int = 0
    late_ms_sum: float = 0.0
    late_ms_max: float = 0.0
    dropped: float = 0.0
    starts: int = 0
    start_late: int = 0
    start_late_ms_sum: float = 0.0
    start_late_ms_max: float = 0.0

    def merge(self, other: PacerStats) -> None:
        """Add another process's stats in place: counts and sums add, maxima take the larger."""
        for name in ("claims", "late", "late_ms_sum", "dropped", "starts", "start_late", "start_late_ms_sum"):
            setattr(self, name, getattr(self, name) + getattr(other, name))
        self.late_ms_max = max(self.late_ms_max, other.late_ms_max)
        self.start_late_ms_max = max(self.start_late_ms_max, other.start_late_ms_max)

    def to_dict(self) -> dict[str, float]:
        """JSON-safe form, floats rounded to 3 decimals."""
        return {k: (round(v, 3) if isinstance(v, float) else v) for k, v in self.__dict__.items()}

    @classmethod
    def from_dict(cls, data: dict[str, float]) -> PacerStats:
        """Rebuild from :meth:`to_dict`; missing fields stay zero, types follow the defaults."""
        out = cls()
        for name, value in out.__dict__.items():
            setattr(out, name, type(value)(data.get(name, value)))
        return out


@dataclass
class Pacer:
    """Hands idle users the next due arrival of one process's share of the plan.

    ``claim(now)`` returns how long the calling user should wait (0 when the arrival
    is already due or late), or None when the plan is over. ``late_after_s``: an
    arrival claimed later than this after its due time counts as late (timer
    jitter below it is not a missing user). ``max_lag_s``: when the schedule has
    fallen this far behind, the missed arrivals are dropped (and counted) instead
    of being fired in one burst.

    :meth:`started` is told when the task of an arrival actually begins (its
    lateness then is the generator's own: a starved event loop wakes users late)
    and :meth:`finished` when it is over, so ``running`` is the number of tasks in
    flight, exactly: Little's law observed rather than estimated.

    A task may issue more than one request; :meth:`observe` feeds the requests
    and task starts seen so far, and the schedule is kept in *requests*, so each
    claim advances it by the observed requests per task.
    """

    plan: ArrivalPlan
    arrivals: str = "jittered"
    late_after_s: float = 0.005
    max_lag_s: float = 1.0
    rng: random.Random = field(default_factory=random.Random)
    t0: float | None = None
    stats: PacerStats = field(default_factory=PacerStats)
    per_task: float = 1.0
    _s: float = 0.0
    #: Arrivals handed out whose task has not finished (waiting for their time, or running).
    outstanding: int = 0
    #: Tasks running now, the most seen at once, and their time-weighted sum, since the last take.
    running: int = 0
    peak_running: int = 0
    _area: float = 0.0
    _since: float | None = None
    _changed: float | None = None

    def __post_init__(self) -> None:
        if self.arrivals not in ARRIVALS:
            raise ValueError(f"arrivals must be one of {', '.join(ARRIVALS)}, got {self.arrivals!r}")

    def start(self, t0: float) -> None:
        """Start the schedule at ``t0`` (monotonic seconds, the clock :meth:`claim` is given)."""
        self.t0 = t0
        self._s = 0.0

    def observe(self, requests: int, tasks: int) -> None:
        """Requests per task so far (only once enough tasks ran to say)."""
        if tasks >= 20 and requests > 0:
            self.per_task = min(100.0, max(0.1, requests / tasks))

    def claim(self, now: float) -> float | None:
        """The wait until the next arrival (0 when due or late); None once the plan is over."""
        if self.t0 is None:
            return None
        step = self.per_task
        if self.arrivals == "poisson":
            self._s += step * self.rng.expovariate(1.0)
            target = self._s
        else:
            target = self._s + step * self.rng.random()
            self._s += step
        due_rel = self.plan.time_of(target)
        if due_rel is None:
            return None
        stats = self.stats
        stats.claims += 1
        self.outstanding += 1
        delay = self.t0 + due_rel - now
        if delay >= 0:
            return delay
        lag = -delay
        if lag > self.late_after_s:
            stats.late += 1
            stats.late_ms_sum += lag * 1000
            if lag * 1000 > stats.late_ms_max:
                stats.late_ms_max = lag * 1000
        if lag > self.max_lag_s:
            # Too far behind to catch up without a burst: skip to now, count what was skipped.
            caught_up = self.plan.expected(now - self.t0)
            if caught_up > self._s:
                stats.dropped += caught_up - self._s
                self._s = caught_up
        return 0.0

    def _account(self, now: float) -> None:
        if self._changed is not None:
            self._area += self.running * (now - self._changed)
        else:
            self._since = now
        self._changed = now

    def started(self, now: float, due: float) -> None:
        """The task of an arrival due at ``due`` begins now."""
        self._account(now)
        self.running += 1
        if self.running > self.peak_running:
            self.peak_running = self.running
        stats = self.stats
        stats.starts += 1
        late = now - due
        if late > self.late_after_s:
            stats.start_late += 1
            stats.start_late_ms_sum += late * 1000
            if late * 1000 > stats.start_late_ms_max:
                stats.start_late_ms_max = late * 1000

    def finished(self, now: float, was_running: bool) -> None:
        """The task of a claimed arrival is over (``was_running``: :meth:`started` was told)."""
        if self.outstanding > 0:
            self.outstanding -= 1
        if was_running and self.running > 0:
            self._account(now)
            self.running -= 1

    def take_in_flight(self, now: float) -> tuple[float, int]:
        """Tasks in flight since the last call: (time-weighted mean, peak); then restart from now.

        The mean is Little's L, what the pool is sized by; the peak is reported. A single
        stall of the generator (a GC pause, a preempted process) releases a clump of late
        arrivals at once: it makes a peak, but hardly moves the mean.
        """
        self._account(now)
        since = self._since if self._since is not None else now
        mean = self._area / (now - since) if now > since else float(self.running)
        peak = self.peak_running
        self._area, self._since, self.peak_running = 0.0, now, self.running
        return mean, peak


def pool_size(
    rate: float,
    latency_s: float,
    *,
    in_flight: float = 0.0,
    utilisation: float = 0.5,
    minimum: int = 10,
) -> int:
    """Users needed to issue ``rate`` requests/s when each takes ``latency_s`` (Little's law).

    ``L = rate x latency`` users are busy on average (or ``in_flight``, L as observed,
    when larger); dividing by ``utilisation`` keeps the rest idle and ready for the
    next arrival, and ``3 x sqrt(L)`` more covers the random clumps of an arrival
    process around its mean. Never fewer than ``minimum``.
    """
    if not 0 < utilisation <= 1:
        raise ValueError("utilisation must be in (0, 1]")
    busy = max(rate * max(latency_s, 0.0), float(in_flight))
    return max(minimum, math.ceil(busy / utilisation + 3 * math.sqrt(busy)))
