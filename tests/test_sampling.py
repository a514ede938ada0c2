"""core/sampling.py: the clock, timestamps, errors, clean stops and the context manager."""

from __future__ import annotations

import itertools
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass

import pytest

from drillbook.core.sampling import Every, Sampler, SamplerFailed, Take


@dataclass(frozen=True)
class Tick:
    t: float
    wall: float
    n: int


class Counter:
    """A take function that counts its calls and can be told to raise or to be slow."""

    def __init__(self) -> None:
        self.n = 0
        self.fail: Exception | None = None
        self.slow_s = 0.0

    def __call__(self) -> Tick:
        self.n += 1
        if self.slow_s:
            time.sleep(self.slow_s)
        if self.fail is not None:
            raise self.fail
        return Tick(time.monotonic(), time.time(), self.n)


def test_every_keeps_the_grid_and_skips_missed_slots() -> None:
    clock = Every(0.1)
    assert clock.first(10.0) == 10.0
    assert clock.next(10.0, now=10.02) == pytest.approx(10.1)  # on time: the next slot
    # a take that overran three slots: the next slot still ahead, on the same grid (no burst)
    assert clock.next(10.0, now=10.35) == pytest.approx(10.4)
    with pytest.raises(ValueError, match="> 0"):
        Every(0)


def test_samples_are_timestamped_on_the_clock_without_drift() -> None:
    take = Counter()
    before = time.monotonic()
    with Sampler("count", take, clock=0.02) as sampler:
        time.sleep(0.5)
    elapsed = time.monotonic() - before
    samples = sampler.samples
    # 0.5 s / 20 ms = 25 slots; a loaded machine loses some, never gains
    assert 10 <= len(samples) <= elapsed / 0.02 + 1, len(samples)
    assert [s.n for s in samples] == list(range(1, len(samples) + 1))
    # never ahead of the grid: take k starts no earlier than its slot (no burst to catch up)
    assert all(s.t >= before + k * 0.02 - 1e-6 for k, s in enumerate(samples))
    assert all(abs(s.wall - time.time()) < 5 for s in samples)


def test_stop_is_prompt_and_idempotent() -> None:
    take = Counter()
    sampler = Sampler("slow-clock", take, clock=30.0).start(wait_s=2)
    assert take.n == 1  # the first take is at once; the next would be 30 s later
    t0 = time.monotonic()
    first = sampler.stop()
    assert time.monotonic() - t0 < 1.0, "stop must not sleep out the interval"
    assert len(first) == 1 and not sampler.running and not sampler.hung
    assert sampler.stop() == first
    with pytest.raises(RuntimeError, match="started already"):
        sampler.start()


def test_a_take_that_raises_is_recorded_with_its_time_and_the_loop_goes_on() -> None:
    take = Counter()
    take.fail = ConnectionError("socket gone")
    sampler = Sampler("flaky", take, clock=0.02).start()
    time.sleep(0.15)
    take.fail = None
    time.sleep(0.15)
    samples = sampler.stop()
    assert sampler.errors and sampler.error_count == len(sampler.errors)
    assert sampler.errors[0].error == "ConnectionError: socket gone"
    assert samples, "the loop must go on after errors"
    assert sampler.errors[-1].t < samples[0].t
    assert sampler.failure is None
    sampler.raise_if_failed()  # errors alone are observations, not a failure


def test_give_up_after_consecutive_errors_is_a_failure_raised_by_the_with_block() -> None:
    take = Counter()
    take.fail = RuntimeError("broken")
    with pytest.raises(SamplerFailed, match="sampler gives-up stopped: RuntimeError: broken"):  # noqa: SIM117
        with Sampler("gives-up", take, clock=0.01, give_up_after=3) as sampler:
            deadline = time.monotonic() + 5
            while sampler.failure is None and time.monotonic() < deadline:
                time.sleep(0.01)
    assert take.n == 3 and isinstance(sampler.failure, RuntimeError)


def test_a_with_block_that_raises_keeps_its_own_exception() -> None:
    take = Counter()
    take.fail = RuntimeError("broken")
    with pytest.raises(KeyError):  # noqa: SIM117
        with Sampler("both", take, clock=0.01, give_up_after=1):
            time.sleep(0.1)
            raise KeyError("the drill's own error wins")


def test_session_opens_and_closes_in_the_sampling_thread_and_final_take() -> None:
    events: list[tuple[str, str]] = []
    take = Counter()

    @contextmanager
    def session() -> Iterator[Take[Tick]]:
        events.append(("open", threading.current_thread().name))
        try:
            yield take
        finally:
            events.append(("close", threading.current_thread().name))

    sampler = Sampler("with-session", session=session, clock=30.0, final_take=True).start(wait_s=2)
    samples = sampler.stop()
    assert events == [("open", "with-session"), ("close", "with-session")]
    assert [s.n for s in samples] == [1, 2]  # the first take and the final one at stop


def test_a_session_that_cannot_open_is_the_failure() -> None:
    @contextmanager
    def session() -> Iterator[Take[Tick]]:
        raise OSError("database refused")
        yield Counter()  # pragma: no cover

    sampler = Sampler("no-db", session=session).start(wait_s=2)
    assert isinstance(sampler.failure, OSError)
    sampler.stop()
    with pytest.raises(SamplerFailed, match="database refused"):
        sampler.raise_if_failed()


def test_queries_and_records_from_other_threads() -> None:
    sampler: Sampler[Tick] = Sampler("manual", lambda: None, clock=30.0)
    for i, t in enumerate((1.0, 2.0, 3.0, 4.0)):
        sampler.record(Tick(t, 1000 + t, i))
    assert sampler.first(after=2.0) == Tick(2.0, 1002.0, 1)
    assert sampler.first(after=2.5, where=lambda s: s.n % 2 == 1) == Tick(4.0, 1004.0, 3)
    assert sampler.last(before=3.0) == Tick(2.0, 1002.0, 1)
    assert sampler.last(before=1.0) is None
    assert [s.n for s in sampler.between(2.0, 3.0)] == [1, 2]
    assert sampler.latest() == Tick(4.0, 1004.0, 3)
    with pytest.raises(TypeError, match="exactly one"):
        Sampler("neither")


def test_a_slow_take_skips_slots_instead_of_bursting() -> None:
    """A take that overran three slots is followed by the next free slot, not by three takes at once."""
    take = Counter()
    take.slow_s = 0.35
    sampler = Sampler("slow", take, clock=0.1).start(wait_s=5)
    take.slow_s = 0.0
    time.sleep(0.5)
    samples = sampler.stop()
    gaps = [b.t - a.t for a, b in itertools.pairwise(samples)]
    assert len(gaps) >= 2, samples
    # catching up would start the missed slots back to back (gaps near 0)
    assert min(gaps) > 0.03, gaps
    # the slow take, then one per slot over 0.5 s (6 or 7); catching up would add the 3 missed ones
    assert len(samples) <= 7, samples
