"""``chaos.kill-redis``: SIGKILL Redis; the service must degrade gracefully and get its cache back."""

from __future__ import annotations

import time
from typing import Any

from pydantic import Field

from drillbook.chaos import analysis as an
from drillbook.chaos import workload
from drillbook.chaos.measures import DATA, FAULT_WITNESSED, RECOVERED, ChaosMeasurements, Seen, detail
from drillbook.chaos.observers import Observers
from drillbook.chaos.shape import ChaosDrill, Injected
from drillbook.core.checks import at_most, is_true, witnessed
from drillbook.core.probes import Sample


class KillRedisMeasurements(ChaosMeasurements):
    """What a cache outage shows: still ready, says it is degraded, answers right and fast, cache back."""

    recovery_s: float | None = witnessed(
        "readiness probes: start command to degraded=false on every instance"
    )
    degraded_flip_s: float | None = witnessed(
        "readiness probes: 200 with degraded=true, from the witnessed kill"
    )
    degraded_flip_detail: str = detail()
    degraded_flip_by_instance: dict[str, float | None] = Field(default_factory=dict)
    readiness_during_outage: dict[str, dict[str, int]] = Field(default_factory=dict)
    readiness_stayed_200: bool = False
    readiness_detail: str = detail()
    errors_detail: str = detail()
    cache_back: bool | None = witnessed("Redis itself: the marker item cached again after a read")
    cache_detail: str = detail()


class KillRedis(ChaosDrill[KillRedisMeasurements]):
    """SIGKILL Redis: the service must degrade gracefully (ready, correct, fast) and get its cache back."""

    name = "chaos.kill-redis"
    runbook = "runbooks/redis-outage.md"
    fault = "kill-redis"
    measured = KillRedisMeasurements
    checks = (
        FAULT_WITNESSED,
        is_true("readiness_stayed_200", detail_from="readiness_detail"),
        at_most("degraded_flip_s", limit_from="degraded_flip_limit_s", detail_from="degraded_flip_detail"),
        at_most("error_pct_during_outage", limit_from="redis_error_pct_limit", detail_from="errors_detail"),
        at_most("outage_p95_ms", limit_from="redis_latency_p95_limit_ms"),
        RECOVERED,
        is_true("cache_back", detail_from="cache_detail"),
        *DATA,
    )
    key_figures = (
        "error_pct_during_outage",
        "outage_p95_ms",
        "readiness_stayed_200",
        "degraded_flip_s",
        "recovery_s",
        "cache_back",
        "data_intact",
        "kill_witnessed_at",
        "kill_at_playbook",
    )

    def observe_for(self) -> float:
        return self.s.degraded_flip_limit_s + 0.2

    def observed_enough(self, obs: Observers, kill: float) -> bool:
        return all(f.seen for f in an.flips(obs.samples(), kill, an.ready_degraded))

    def recovered_sample(self, sample: Sample) -> bool:
        return an.ready_not_degraded(sample)

    def steady_sample(self, sample: Sample) -> bool:
        # Already degraded before the kill would make "degraded during the outage" meaningless.
        return an.ready_not_degraded(sample)

    def recovered_what(self) -> str:
        return "cache (degraded=false)"

    def measure(self, seen: Seen, common: dict[str, Any], acted: Injected) -> KillRedisMeasurements:
        kill, end = seen.kill.origin, seen.outage_end
        degraded = an.flips(seen.samples, kill, an.ready_degraded, until=end)
        during = {n: an.statuses_between(s, kill, end) for n, s in seen.samples.items()}
        not_ready = {n: c for n, c in during.items() if c and set(c) != {"200"}}
        never = [f.name for f in degraded if not f.seen]
        m = KillRedisMeasurements(
            **common,
            degraded_flip_s=an.slowest(degraded),
            degraded_flip_detail=f"never reported degraded: {', '.join(never)}" if never else "",
            degraded_flip_by_instance={f.name: f.seconds for f in degraded},
            readiness_during_outage=during,
            readiness_stayed_200=not not_ready,
            readiness_detail=f"answers during the outage: {during}" if not_ready else "",
        )
        if m.failed_during_outage:
            m.errors_detail = (
                f"{m.failed_during_outage} of {m.requests_during_outage} failed: {m.outage_by_endpoint}"
            )
        m.cache_back, m.cache_detail = self._cache_back(acted.marker)
        return m

    def _cache_back(self, marker: workload.Marker) -> tuple[bool, str]:
        """Read the marker through the load balancer until Redis itself holds its key (3 s at most)."""
        if not self.plan.redis_url:
            return False, "the inventory names no Redis URL"
        key = self.s.cache_key_template.format(id=marker.key)
        cached, text = False, ""
        deadline = time.monotonic() + 3.0
        while time.monotonic() < deadline:
            codes = workload.read_back(marker)
            cached, text = workload.cache_holds(self.plan.redis_url, key)
            text = f"{text} after reading the marker back -> {codes}"
            if cached:
                break
            time.sleep(0.2)
        return cached, text
