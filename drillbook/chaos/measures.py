"""What every chaos drill measures, whatever the fault: the record its checks read, and how it is filled.

:class:`ChaosMeasurements` is the part of each fault's record (kill_db.py,
kill_redis.py, kill_app.py subclass it) that the shared checks read: the fault
was witnessed, the service recovered within its limit, the outage traffic, the
marker row and the acknowledged writes still in the database. Fields marked
``detail`` explain a check's value in the journal's check entry and are not
measurements of their own (they stay out of ``measurements``).
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from pydantic import Field

from drillbook.chaos import analysis as an
from drillbook.chaos import workload
from drillbook.chaos.fault import Attempt, Kill, iso
from drillbook.chaos.observers import Observers
from drillbook.chaos.plan import ChaosPlan
from drillbook.chaos.witness import Observation
from drillbook.core.checks import Measurements, at_most, equals, is_true, witnessed
from drillbook.core.drill import DrillRun
from drillbook.core.haproxy import ServerTable
from drillbook.core.probes import Sample, percentile
from drillbook.core.traffic import Outcome


def detail(default: str = "") -> Any:
    """Text that explains a check's value: kept on the record for the check, not journaled as a figure."""
    return Field(default=default, exclude=True)


class ChaosMeasurements(Measurements):
    """The figures every fault shares (see docs/chaos.md for what each one means)."""

    fault_witnessed: bool = Field(default=False, exclude=True)
    fault_detail: str = detail()
    restore_playbook_started_at: str | None = None
    service_back_witnessed_at: str | None = witnessed("direct protocol probe of the target")
    outage_s: float | None = witnessed("direct probe, kill to accept")
    restart_s: float | None = witnessed("start command to accept")
    recovery_s: float | None = witnessed("readiness probes: start command to all instances ready")
    recovery_detail: str = detail()
    recovery_after_service_back_s: float | None = None
    requests_total: int = 0
    baseline_p95_ms: float | None = witnessed(
        "latency of the same traffic before the fault (how busy the machine is)"
    )
    requests_during_outage: int | None = witnessed("background traffic via the LB")
    failed_during_outage: int | None = None
    error_pct_during_outage: float | None = witnessed("background traffic via the LB")
    outage_p95_ms: float | None = witnessed("latency of requests sent during the outage")
    outage_by_endpoint: dict[str, dict[str, float]] = Field(default_factory=dict)
    data_intact: bool | None = witnessed("marker row read back in PostgreSQL itself")
    data_detail: str = detail()
    acknowledged_writes: int = 0
    acknowledged_writes_lost: int | None = witnessed("acknowledged (201) writes looked up in PostgreSQL")
    writes_detail: str = detail()


#: The checks every fault ends with (its own come first).
FAULT_WITNESSED = is_true("fault_witnessed", detail_from="fault_detail")
RECOVERED = at_most("recovery_s", limit_from="recovery_limit_s", detail_from="recovery_detail")
DATA = (
    is_true("data_intact", detail_from="data_detail"),
    equals("acknowledged_writes_lost", limit=0, detail_from="writes_detail"),
)


@dataclass(frozen=True)
class Seen:
    """Everything the observers saw, frozen when they stopped: what a fault's figures come from."""

    plan: ChaosPlan
    kill: Kill
    restore_cmd: float  # monotonic: the start command
    back: Observation | None  # first witness look accepting again
    recovered: float | None  # every instance recovered (monotonic)
    end: float
    samples: dict[str, list[Sample]]
    lb: list[ServerTable] | None  # None: no HAProxy to watch
    outcomes: list[Outcome]
    witness: list[Observation]

    @property
    def outage_end(self) -> float:
        """Until the witness saw the target accept again (else the start command)."""
        return self.back.t if self.back else self.restore_cmd


def common_figures(
    seen: Seen,
    *,
    not_recovered: str,
    marker: workload.Marker,
    ledger: workload.WriteLedger,
    dsn: str,
) -> dict[str, Any]:
    """The shared fields of the record, as keyword arguments for the fault's record class."""
    kill, back, restore_cmd, recovered = seen.kill, seen.back, seen.restore_cmd, seen.recovered
    figures: dict[str, Any] = {
        "fault_witnessed": kill.witnessed is not None,
        "fault_detail": kill.detail,
        "restore_playbook_started_at": iso(time.time() - (time.monotonic() - restore_cmd)),
        "recovery_s": round(recovered - restore_cmd, 3) if recovered else None,
        "recovery_detail": "" if recovered else not_recovered,
        "requests_total": len(seen.outcomes),
    }
    if back:
        figures["service_back_witnessed_at"] = iso(back.wall)
        figures["restart_s"] = round(back.t - restore_cmd, 3)
        if kill.witnessed:
            figures["outage_s"] = round(back.t - kill.witnessed.t, 3)
        if recovered:
            figures["recovery_after_service_back_s"] = round(recovered - back.t, 3)
    p95 = percentile([o.latency_ms for o in seen.outcomes if o.t < kill.command_at], 95)
    figures["baseline_p95_ms"] = round(p95, 2) if p95 is not None else None
    outage = an.outage_traffic(seen.outcomes, kill.origin, recovered or seen.end)
    figures |= {
        "requests_during_outage": outage.requests,
        "failed_during_outage": outage.failed,
        "error_pct_during_outage": outage.error_pct,
        "outage_p95_ms": outage.p95_ms,
        "outage_by_endpoint": outage.by_endpoint,
    }
    intact, data_detail = workload.marker_in_db(dsn, marker)
    acknowledged = ledger.snapshot()
    lost, writes_detail = workload.writes_in_db(dsn, acknowledged)
    if ledger.mix is None:
        writes_detail = (
            "not tracked: the background traffic is service_traffic.locustfile (the marker is the witness)"
        )
    figures |= {
        "data_intact": intact,
        "data_detail": data_detail,
        "acknowledged_writes": len(acknowledged),
        "acknowledged_writes_lost": lost,
        "writes_detail": writes_detail,
    }
    return figures


def not_recovered_detail(
    what: str,
    plan: ChaosPlan,
    observers: Observers,
    recovered: Callable[[Sample], bool],
    attempts: list[Attempt],
) -> str:
    """Why ``recovery_s`` has no value: which piece, its last answer, and every restore attempt."""
    t, s = plan.target, plan.settings
    look = observers.witness.look()
    parts = [f"{what} not back within {s.recovery_limit_s:g} s of the start command"]
    parts.append(f"{t.service} at {t.address}: {look.detail}")
    for name, samples in observers.samples().items():
        last = samples[-1] if samples else None
        if last is not None and not recovered(last):
            parts.append(f"{name} last answered {plan.readiness.state(last)}")
    tried = "; ".join(f"{a.action} -> {'ok' if a.ok else a.detail}" for a in attempts) or "nothing"
    parts.append(f"tried: {tried}")
    return "; ".join(parts)


def write_timeline(run: DrillRun, seen: Seen, origin_wall: float) -> None:
    """``timeline.json``: state transitions of every observer and traffic per second."""
    kill = seen.kill.witnessed
    data = {
        "origin": iso(origin_wall),
        "kill_witnessed_at_s": round(kill.wall - origin_wall, 3) if kill else None,
        "witness": an.witness_transitions(seen.witness, origin_wall),
        "probes": {
            n: an.probe_transitions(s, origin_wall, seen.plan.readiness.state)
            for n, s in seen.samples.items()
        },
        "haproxy": an.lb_transitions(seen.lb, origin_wall) if seen.lb is not None else [],
        "traffic_per_second": an.per_second(seen.outcomes, origin_wall),
    }
    path = run.report_dir / "timeline.json"
    path.write_text(json.dumps(data, indent=2) + "\n")
    run.artefact(path)
