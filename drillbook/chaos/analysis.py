"""Pure arithmetic over what the drill recorded: flips, recoveries, outage windows, transitions.

Kept apart from the drill so each rule is stated once and tested without a lab.
Times are monotonic seconds. A probe sample is *seen* when its answer arrived
(send time + latency): a readiness check that takes 400 ms to answer 503 flipped
for its caller 400 ms after the request went out, and that is what a load
balancer experiences too.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from drillbook.chaos.witness import Observation
from drillbook.core.haproxy import ServerTable
from drillbook.core.probes import Sample, percentile
from drillbook.core.traffic import Outcome

SampleJudge = Callable[[Sample], bool]


def seen_at(sample: Sample) -> float:
    """When the probe had its answer (monotonic)."""
    return sample.t + sample.latency_ms / 1000


def first_seen(samples: Iterable[Sample], after: float, pred: SampleJudge) -> Sample | None:
    """The first sample sent at or after ``after`` for which ``pred`` holds."""
    for s in list(samples):
        if s.t >= after and pred(s):
            return s
    return None


def status_is(code: int) -> SampleJudge:
    return lambda s: s.status == code


@dataclass(frozen=True)
class Flip:
    """One instance's reaction to the fault: how long after ``origin`` its probe saw ``pred``."""

    name: str
    seconds: float | None
    sample: Sample | None

    @property
    def seen(self) -> bool:
        return self.seconds is not None


def flips(
    samples_by_name: Mapping[str, Sequence[Sample]],
    origin: float,
    pred: SampleJudge,
    *,
    until: float | None = None,
) -> list[Flip]:
    """For each probe, the first sample at/after ``origin`` (and before ``until``) matching ``pred``."""
    out = []
    for name, samples in samples_by_name.items():
        hit = first_seen(samples, origin, pred)
        if hit is not None and until is not None and hit.t > until:
            hit = None
        out.append(Flip(name, round(seen_at(hit) - origin, 3) if hit else None, hit))
    return out


def slowest(items: Sequence[Flip]) -> float | None:
    """The slowest flip, or None when any instance never flipped (the limit is then broken)."""
    if not items or any(f.seconds is None for f in items):
        return None
    return max(f.seconds for f in items if f.seconds is not None)


def statuses_between(samples: Iterable[Sample], start: float, end: float) -> dict[str, int]:
    """How many answers of each kind a probe got in [start, end]: {"200": 12, "503": 30, "ReadTimeout": 1}.

    A TCP probe's answers are ``connected`` or the connect error.
    """
    counts: dict[str, int] = {}
    for s in samples:
        if start <= s.t <= end:
            counts[s.answer] = counts.get(s.answer, 0) + 1
    return dict(sorted(counts.items()))


def in_flight_or_sent(outcomes: Iterable[Outcome], start: float, end: float) -> list[Outcome]:
    """Requests the outage touched: still in flight at ``start`` or sent before ``end``."""
    return [o for o in outcomes if o.t + o.latency_ms / 1000 >= start and o.t <= end]


def sent_between(outcomes: Iterable[Outcome], start: float, end: float) -> list[Outcome]:
    return [o for o in outcomes if start <= o.t <= end]


@dataclass(frozen=True)
class OutageTraffic:
    requests: int
    failed: int
    error_pct: float
    p95_ms: float | None
    by_endpoint: dict[str, dict[str, float]]


def outage_traffic(outcomes: Sequence[Outcome], start: float, end: float) -> OutageTraffic:
    """Errors over every request the outage touched; latency over requests sent during it."""
    touched = in_flight_or_sent(outcomes, start, end)
    failed = sum(1 for o in touched if not o.ok)
    sent = sent_between(outcomes, start, end)
    by: dict[str, dict[str, float]] = {}
    for name in sorted({o.endpoint for o in touched}):
        rows = [o for o in touched if o.endpoint == name]
        bad = sum(1 for o in rows if not o.ok)
        by[name] = {"requests": len(rows), "failed": bad, "error_pct": round(100 * bad / len(rows), 3)}
    p95 = percentile([o.latency_ms for o in sent], 95)
    return OutageTraffic(
        requests=len(touched),
        failed=failed,
        error_pct=round(100 * failed / len(touched), 3) if touched else 0.0,
        p95_ms=round(p95, 2) if p95 is not None else None,
        by_endpoint=by,
    )


# -- transitions for the timeline artefact ----------------------------------------------


def _transitions(points: Iterable[tuple[float, float, str]], origin_wall: float) -> list[dict[str, Any]]:
    out: list[dict[str, Any]] = []
    last: str | None = None
    for _t, wall, state in points:
        if state != last:
            out.append({"at_s": round(wall - origin_wall, 3), "state": state})
            last = state
    return out


def witness_transitions(observations: Sequence[Observation], origin_wall: float) -> list[dict[str, Any]]:
    return _transitions(
        ((o.t, o.wall, f"{'up' if o.up else 'down'}: {o.detail}") for o in observations), origin_wall
    )


def probe_transitions(
    samples: Sequence[Sample], origin_wall: float, state: Callable[[Sample], str] | None = None
) -> list[dict[str, Any]]:
    """Readiness answers as they changed; ``state`` names one (the profile's: ``200 degraded``)."""
    name = state or (lambda s: s.answer)
    return _transitions(((s.t, s.wall, name(s)) for s in samples), origin_wall)


def lb_transitions(observations: Sequence[ServerTable], origin_wall: float) -> list[dict[str, Any]]:
    def state(o: ServerTable) -> str:
        return o.error or ", ".join(f"{k}={v}" for k, v in sorted(o.status.items()))

    return _transitions(((o.t, o.wall, state(o)) for o in observations), origin_wall)


def per_second(outcomes: Sequence[Outcome], origin_wall: float) -> list[dict[str, Any]]:
    """Requests and failures per second of the drill, for the timeline."""
    buckets: dict[int, list[Outcome]] = {}
    for o in outcomes:
        buckets.setdefault(int(o.wall - origin_wall) if o.wall >= origin_wall else -1, []).append(o)
    rows = []
    for second in sorted(buckets):
        rows_ = buckets[second]
        p95 = percentile([o.latency_ms for o in rows_], 95)
        rows.append(
            {
                "second": second,
                "requests": len(rows_),
                "failed": sum(1 for o in rows_ if not o.ok),
                "p95_ms": round(p95, 1) if p95 is not None else None,
            }
        )
    return rows
