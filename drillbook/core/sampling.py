"""One background sampler for every loop that watches something on a clock.

A drill measures by sampling: readiness probes every 100 ms, a direct witness of
the killed service every 50 ms, HAProxy's server table, background traffic at a
fixed arrival rate, the locks a migration holds. Each of these was a hand-written
thread with its own stop flag, its own (or no) drift handling and its own idea of
what an exception means. :class:`Sampler` is that loop written once:

* **on a clock, without drift**: take k is due at a time the :class:`Clock` says
  (``Every(0.1)``: start + k x 0.1 s), not "0.1 s after the previous one ended";
  a slow take (a timeout) skips the slots it missed instead of bursting to catch up,
  because a burst of probes right after an outage would overstate how fast it was
  seen. An open-model clock (traffic arrivals) may catch up instead: the clock decides.
* **timestamped samples**: every sample carries its own monotonic ``t`` (when the
  look started) and ``wall`` time (:class:`Stamped`), so the questions drills ask
  ("first refused after t", "last up before t") are asked once, here.
* **resources that live in the sampling thread**: an HTTP client, a database
  connection, a worker pool are opened by ``session`` in the thread that uses them
  and closed when it ends, even when a take raised.
* **errors recorded, not swallowed**: a take that raises is a :class:`SampleError`
  with its time (the loop goes on: one bad look is an observation of the system);
  ``give_up_after`` consecutive errors, or a session that cannot open, end the loop
  and are kept in :attr:`Sampler.failure`, raised by :meth:`Sampler.raise_if_failed`
  and when a ``with`` block that ran the sampler ends. A sampler never kills the drill
  from its own thread: the drill decides, in its own thread, what a failure means.
* **stops cleanly**: :meth:`Sampler.stop` wakes the thread at once (no sleeping out
  the interval), optionally takes one last sample, joins, and returns the samples.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Iterator
from contextlib import AbstractContextManager, contextmanager
from dataclasses import dataclass
from typing import Generic, Protocol, Self, TypeVar

from drillbook.core.errors import DrillbookError


class Stamped(Protocol):
    """What every sample carries: when it was taken, on both clocks."""

    @property
    def t(self) -> float:
        """Monotonic seconds when the look started (for arithmetic between samples)."""
        ...

    @property
    def wall(self) -> float:
        """Wall-clock seconds (for people and for times reported by other hosts)."""
        ...


T = TypeVar("T", bound=Stamped)

#: The function that takes one sample; ``None`` means "nothing to keep this time".
Take = Callable[[], T | None]


class Clock(Protocol):
    """When takes are due, on the monotonic clock."""

    def first(self, start: float) -> float:
        """When the first take is due, given the moment the loop started."""
        ...

    def next(self, due: float, now: float) -> float:
        """When the take after the one due at ``due`` is due; ``now`` is when that one ended."""
        ...


@dataclass(frozen=True)
class Every:
    """A fixed interval: take k at start + k x ``interval_s``; missed slots are skipped, not burst."""

    interval_s: float

    def __post_init__(self) -> None:
        if self.interval_s <= 0:
            raise ValueError(f"a sampling interval must be > 0 s, got {self.interval_s}")

    def first(self, start: float) -> float:
        """The first take is due at once, when the loop starts."""
        return start

    def next(self, due: float, now: float) -> float:
        """The next slot on the fixed grid; after an overrun, the first slot still ahead (no burst)."""
        nxt = due + self.interval_s
        if nxt < now:  # a slow take: the next slot still ahead, not every slot it overran
            nxt += (int((now - nxt) / self.interval_s) + 1) * self.interval_s
        return nxt


@dataclass(frozen=True)
class SampleError:
    """A take that raised: when, and what."""

    t: float
    wall: float
    error: str
    exception: BaseException


class SamplerFailed(DrillbookError):
    """A sampler's loop ended on an error: its samples stop where the error began."""


class Sampler(Generic[T]):
    """A background thread that takes samples on a clock until stopped.

    Either pass ``take`` (a function that returns one sample, or ``None``), or
    ``session``: a context manager factory that opens what the takes need in the
    sampling thread and yields the take function bound to it::

        @contextmanager
        def probing() -> Iterator[Take[Sample]]:
            with httpx.Client() as client:
                yield lambda: sample_once(client, probe)

        with Sampler("probe-app-1", session=probing, clock=Every(0.1)) as loop:
            ...
        loop.samples

    Samples produced elsewhere on the sampler's behalf (by a worker pool the session
    owns) are added with :meth:`record`; ``into`` keeps them in a list the caller
    already publishes. Reads are safe while the loop runs:
    :meth:`snapshot` copies under the lock, the query helpers read a snapshot.
    """

    def __init__(
        self,
        name: str,
        take: Take[T] | None = None,
        *,
        clock: Clock | float = 0.1,
        session: Callable[[], AbstractContextManager[Take[T]]] | None = None,
        final_take: bool = False,
        give_up_after: int | None = None,
        join_timeout_s: float = 5.0,
        max_errors_kept: int = 100,
        into: list[T] | None = None,
    ) -> None:
        if (take is None) == (session is None):
            raise TypeError("a Sampler needs exactly one of take= or session=")
        self.name = name
        self.clock: Clock = Every(clock) if isinstance(clock, int | float) else clock
        self._open: Callable[[], AbstractContextManager[Take[T]]] = session or _fixed(take)
        self.final_take = final_take
        self.give_up_after = give_up_after
        self.join_timeout_s = join_timeout_s
        self.max_errors_kept = max_errors_kept
        self.samples: list[T] = into if into is not None else []
        self.errors: list[SampleError] = []
        self.error_count = 0
        self.failure: BaseException | None = None
        self._consecutive = 0
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._ready = threading.Event()
        self._thread: threading.Thread | None = None

    # -- lifecycle -------------------------------------------------------------------
    def start(self, wait_s: float | None = None) -> Self:
        """Start the thread; with ``wait_s``, return once the first take ended (or the loop did)."""
        if self._thread is not None:
            raise RuntimeError(f"sampler {self.name} was started already")
        self._thread = threading.Thread(target=self._run, name=self.name, daemon=True)
        self._thread.start()
        if wait_s is not None:
            self._ready.wait(wait_s)
        return self

    def stop(self) -> list[T]:
        """Stop at once (the wait for the next slot is cut short), join, and return the samples.

        Idempotent. A thread still inside a take after ``join_timeout_s`` is left
        behind (it is a daemon) and :attr:`hung` says so; its late sample is still kept.
        """
        self._stop.set()
        if self._thread is not None and self._thread is not threading.current_thread():
            self._thread.join(timeout=self.join_timeout_s)
        return self.snapshot()

    def __enter__(self) -> Self:
        return self.start()

    def __exit__(self, exc_type: type[BaseException] | None, *_: object) -> None:
        self.stop()
        if exc_type is None:
            self.raise_if_failed()

    @property
    def running(self) -> bool:
        """True while the thread is alive and no stop was asked for."""
        return self._thread is not None and self._thread.is_alive() and not self._stop.is_set()

    @property
    def hung(self) -> bool:
        """Stopped, but the thread did not end within ``join_timeout_s``."""
        return self._stop.is_set() and self._thread is not None and self._thread.is_alive()

    def raise_if_failed(self) -> None:
        """Raise :class:`SamplerFailed` when the loop ended on an error."""
        if self.failure is not None:
            raise SamplerFailed(f"sampler {self.name} stopped: {_describe(self.failure)}") from self.failure

    # -- samples ---------------------------------------------------------------------
    def record(self, sample: T) -> None:
        """Keep one sample (thread-safe; for samples produced by workers the session owns)."""
        with self._lock:
            self.samples.append(sample)

    def snapshot(self) -> list[T]:
        """A copy of the samples so far, safe to iterate while the thread keeps adding."""
        with self._lock:
            return list(self.samples)

    def latest(self) -> T | None:
        """The most recent sample, None before the first take."""
        with self._lock:
            return self.samples[-1] if self.samples else None

    def first(self, *, after: float, where: Callable[[T], bool] | None = None) -> T | None:
        """The first sample taken at or after ``after`` (monotonic) for which ``where`` holds."""
        for s in self.snapshot():
            if s.t >= after and (where is None or where(s)):
                return s
        return None

    def last(self, *, before: float, where: Callable[[T], bool] | None = None) -> T | None:
        """The last sample taken strictly before ``before`` for which ``where`` holds."""
        for s in reversed(self.snapshot()):
            if s.t < before and (where is None or where(s)):
                return s
        return None

    def between(self, start: float, end: float) -> list[T]:
        """Samples taken in ``[start, end]`` (monotonic seconds, both ends included)."""
        return [s for s in self.snapshot() if start <= s.t <= end]

    # -- the loop --------------------------------------------------------------------
    def _run(self) -> None:
        try:
            with self._open() as take:
                self._loop(take)
                if self.final_take:
                    self._take_once(take)
        except Exception as exc:  # the session could not open (or close): the loop's failure
            self.failure = self.failure or exc
        finally:
            self._ready.set()

    def _loop(self, take: Take[T]) -> None:
        due = self.clock.first(time.monotonic())
        while not self._stop.is_set():
            wait = due - time.monotonic()
            if wait > 0 and self._stop.wait(wait):
                return
            consecutive = self._take_once(take)
            self._ready.set()
            if self.give_up_after is not None and consecutive >= self.give_up_after:
                self.failure = self.errors[-1].exception if self.errors else None
                return
            due = self.clock.next(due, time.monotonic())

    def _take_once(self, take: Take[T]) -> int:
        """One take; returns the number of consecutive errors so far (0 after a success)."""
        wall, t = time.time(), time.monotonic()
        try:
            sample = take()
        except Exception as exc:
            self.error_count += 1
            self._consecutive += 1
            with self._lock:
                if len(self.errors) >= self.max_errors_kept:
                    del self.errors[1]  # keep the first error and the latest ones
                self.errors.append(SampleError(t, wall, _describe(exc), exc))
            return self._consecutive
        self._consecutive = 0
        if sample is not None:
            self.record(sample)
        return 0


def _fixed(take: Take[T] | None) -> Callable[[], AbstractContextManager[Take[T]]]:
    @contextmanager
    def session() -> Iterator[Take[T]]:
        if take is None:  # excluded by Sampler.__init__; here for the type checker
            raise TypeError("no take function")
        yield take

    return session


def _describe(exc: BaseException) -> str:
    return str(exc) if isinstance(exc, DrillbookError) else f"{type(exc).__name__}: {exc}"
