"""``chaos.kill-db``: SIGKILL PostgreSQL; readiness must flip to "not ready" fast, come back, lose nothing.

"Not ready" is the profile's: any status outside ``service_health.ready_status``, a
timeout or a refused connection (core/readiness.py). A service that answers 500, or
stops answering, without its database has admitted it as surely as one answering 503.
"""

from __future__ import annotations

from typing import Any

from pydantic import Field

from drillbook.chaos import analysis as an
from drillbook.chaos.fault import mono_from_wall
from drillbook.chaos.measures import DATA, FAULT_WITNESSED, RECOVERED, ChaosMeasurements, Seen, detail
from drillbook.chaos.observers import Observers
from drillbook.chaos.shape import ChaosDrill, Injected
from drillbook.core.checks import at_most, witnessed
from drillbook.core.haproxy import server_down, server_up


class KillDbMeasurements(ChaosMeasurements):
    """What a database outage shows: how fast every instance admits it is not ready, and HAProxy's view."""

    readiness_flip_s: float | None = witnessed(
        "readiness probes (every chaos_probe_interval_s), slowest instance, from the witnessed kill"
    )
    readiness_flip_detail: str = detail()
    readiness_flip_by_instance: dict[str, float | None] = Field(default_factory=dict)
    readiness_flip_from_playbook_start_s: float | None = None
    readiness_during_outage: dict[str, dict[str, int]] = Field(default_factory=dict)
    lb_detect_s: float | None = witnessed("HAProxy stats: every server DOWN")
    lb_back_s: float | None = witnessed("HAProxy stats: first server UP again, from the start command")
    outage_p95_detail: str = detail("requests during the outage must fail fast, not hang")


class KillDb(ChaosDrill[KillDbMeasurements]):
    """SIGKILL PostgreSQL: readiness must flip to not ready fast, come back after the restart, lose nothing.

    Not ready is the profile's (any non-ready status, a timeout, a refused connection).
    """

    name = "chaos.kill-db"
    runbook = "runbooks/db-outage.md"
    fault = "kill-db"
    measured = KillDbMeasurements
    checks = (
        FAULT_WITNESSED,
        at_most("readiness_flip_s", limit_from="readiness_flip_limit_s", detail_from="readiness_flip_detail"),
        RECOVERED,
        at_most("outage_p95_ms", limit_from="outage_p95_limit_ms", detail_from="outage_p95_detail"),
        *DATA,
    )
    key_figures = (
        "readiness_flip_s",
        "recovery_s",
        "data_intact",
        "outage_p95_ms",
        "error_pct_during_outage",
        "lb_detect_s",
        "kill_witnessed_at",
        "kill_at_playbook",
    )

    def profile_needs(self) -> list[str]:
        if self.plan.readiness.tcp:
            return ["service_health.ready (a TCP connect cannot see the database go away)"]
        return []

    def observe_for(self) -> float:
        return self.s.readiness_flip_limit_s + 0.2

    def observed_enough(self, obs: Observers, kill: float) -> bool:
        return all(f.seen for f in an.flips(obs.samples(), kill, self.plan.readiness.not_ready))

    def flips_table(self, measured: KillDbMeasurements) -> dict[str, float | None]:
        return measured.readiness_flip_by_instance

    def measure(self, seen: Seen, common: dict[str, Any], acted: Injected) -> KillDbMeasurements:
        kill = seen.kill.origin
        flips = an.flips(seen.samples, kill, self.plan.readiness.not_ready, until=seen.restore_cmd)
        during = {n: an.statuses_between(s, kill, seen.restore_cmd) for n, s in seen.samples.items()}
        m = KillDbMeasurements(
            **common,
            readiness_flip_s=an.slowest(flips),
            readiness_flip_by_instance={f.name: f.seconds for f in flips},
            readiness_during_outage=during,
        )
        never = [f.name for f in flips if not f.seen]
        if never:
            m.readiness_flip_detail = "; ".join(
                f"{n} never answered not ready (answers during the outage: {during.get(n)})" for n in never
            )
            if all(during.get(n) for n in never):  # answered all along, and every answer was "ready"
                m.readiness_flip_detail += " - readiness ignores the database"
        answers = [an.seen_at(f.sample) for f in flips if f.sample]
        if flips and len(answers) == len(flips):
            started = mono_from_wall(seen.kill.playbook.started_at)
            m.readiness_flip_from_playbook_start_s = round(max(answers) - started, 3)
        if seen.lb is not None:
            names = [i.name for i in self.plan.instances]
            all_down = next(
                (
                    o
                    for o in seen.lb
                    if o.t >= kill and names and all(server_down(o.status.get(n, "")) for n in names)
                ),
                None,
            )
            m.lb_detect_s = round(all_down.t - kill, 3) if all_down else None
            any_up = next(
                (
                    o
                    for o in seen.lb
                    if o.t >= seen.restore_cmd and any(server_up(o.status.get(n, "")) for n in names)
                ),
                None,
            )
            m.lb_back_s = round(any_up.t - seen.restore_cmd, 3) if any_up else None
        return m
