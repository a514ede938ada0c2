"""``chaos.kill-redis``: SIGKILL Redis; the service must degrade gracefully and get its cache back.

Graceful is what the profile lets drillbook see. With a degraded signal
(``service_health.degraded``: a JSON field, a header or a status), every instance must
stay serving and raise it within ``chaos_degraded_flip_limit_s``, and lower it again
after the restart. Without one, the drill judges on errors and latency alone (and the
recovery on readiness): it does not ask the service for a word it never promised.
``cache_back`` (Redis itself holds the marker's key again) is judged only when
``chaos_cache_key_template`` says what that key is.
"""

from __future__ import annotations

import time
from typing import Any

from pydantic import Field

from drillbook.chaos import analysis as an
from drillbook.chaos import workload
from drillbook.chaos.measures import DATA, FAULT_WITNESSED, RECOVERED, ChaosMeasurements, Seen, detail
from drillbook.chaos.observers import Observers
from drillbook.chaos.plan import ChaosPlan, ChaosSettings
from drillbook.chaos.shape import ChaosDrill, Injected
from drillbook.core.checks import CheckSpec, at_most, is_true, witnessed
from drillbook.core.probes import Sample


class KillRedisMeasurements(ChaosMeasurements):
    """What a cache outage shows: still ready, says it is degraded, answers right and fast, cache back."""

    recovery_s: float | None = witnessed(
        "readiness probes: start command to ready and not degraded on every instance"
    )
    degraded_flip_s: float | None = witnessed(
        "readiness probes: the profile's degraded signal while serving, from the witnessed kill"
    )
    degraded_flip_detail: str = detail()
    degraded_flip_by_instance: dict[str, float | None] = Field(default_factory=dict)
    readiness_during_outage: dict[str, dict[str, int]] = Field(default_factory=dict)
    readiness_stayed_ready: bool = False
    readiness_detail: str = detail()
    errors_detail: str = detail()
    cache_back: bool | None = witnessed("Redis itself: the marker's key cached again after a read")
    cache_detail: str = detail()


class KillRedis(ChaosDrill[KillRedisMeasurements]):
    """SIGKILL Redis: the service must degrade gracefully (ready, correct, fast) and get its cache back."""

    name = "chaos.kill-redis"
    runbook = "runbooks/redis-outage.md"
    fault = "kill-redis"
    measured = KillRedisMeasurements
    checks = (
        FAULT_WITNESSED,
        is_true("readiness_stayed_ready", detail_from="readiness_detail"),
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
        "readiness_stayed_ready",
        "degraded_flip_s",
        "recovery_s",
        "cache_back",
        "data_intact",
        "kill_witnessed_at",
        "kill_at_playbook",
    )

    def __init__(self, plan: ChaosPlan, **options: Any) -> None:
        super().__init__(plan, **options)
        # Checks on what the profile (or the inventory) does not give are not declared at all.
        self.checks = self.judged_checks(plan)  # type: ignore[misc,assignment]

    @classmethod
    def judged_checks(cls, plan: ChaosPlan) -> tuple[CheckSpec, ...]:
        """Without a degraded signal: errors, latency, recovery and data (no readiness verdicts);
        without ``chaos_cache_key_template``: no ``cache_back``."""
        skip = set()
        if not plan.readiness.has_degraded:
            skip |= {"readiness_stayed_ready", "degraded_flip_s"}
        if plan.settings.cache_key_template is None:
            skip.add("cache_back")
        return tuple(c for c in cls.checks if c.measurement not in skip)

    def judged_settings(self, plan: ChaosPlan) -> ChaosSettings:
        if plan.readiness.has_degraded:
            return plan.settings
        return plan.settings.model_copy(update={"degraded_flip_limit_s": None})

    def observe_for(self) -> float:
        if not self.plan.readiness.has_degraded or self.s.degraded_flip_limit_s is None:
            return 0.0
        return self.s.degraded_flip_limit_s + 0.2

    def observed_enough(self, obs: Observers, kill: float) -> bool:
        if not self.plan.readiness.has_degraded:
            return True
        return all(f.seen for f in an.flips(obs.samples(), kill, self.plan.readiness.degraded_serving))

    def recovered_sample(self, sample: Sample) -> bool:
        return self.plan.readiness.fully_ready(sample)

    def steady_sample(self, sample: Sample) -> bool:
        # Already degraded before the kill would make "degraded during the outage" meaningless.
        return self.plan.readiness.fully_ready(sample)

    def recovered_what(self) -> str:
        return "readiness (not degraded)" if self.plan.readiness.has_degraded else "readiness"

    def measure(self, seen: Seen, common: dict[str, Any], acted: Injected) -> KillRedisMeasurements:
        kill, end = seen.kill.origin, seen.outage_end
        r = self.plan.readiness
        during = {n: an.statuses_between(s, kill, end) for n, s in seen.samples.items()}
        not_serving = {
            n: c for n, c in during.items() if any(not r.serving(x) for x in s_between(seen, n, kill, end))
        }
        m = KillRedisMeasurements(
            **common,
            readiness_during_outage=during,
            readiness_stayed_ready=not not_serving,
            readiness_detail=f"answers during the outage: {not_serving}" if not_serving else "",
        )
        if r.has_degraded:
            degraded = an.flips(seen.samples, kill, r.degraded_serving, until=end)
            never = [f.name for f in degraded if not f.seen]
            m.degraded_flip_s = an.slowest(degraded)
            m.degraded_flip_detail = f"never reported degraded: {', '.join(never)}" if never else ""
            m.degraded_flip_by_instance = {f.name: f.seconds for f in degraded}
        if m.failed_during_outage:
            m.errors_detail = (
                f"{m.failed_during_outage} of {m.requests_during_outage} failed: {m.outage_by_endpoint}"
            )
        if self.s.cache_key_template is not None:
            m.cache_back, m.cache_detail = self._cache_back(acted.marker, self.s.cache_key_template)
        return m

    def _cache_back(self, marker: workload.Marker, template: str) -> tuple[bool, str]:
        """Read the marker through the load balancer until Redis itself holds its key (3 s at most)."""
        if not self.plan.redis_url:
            return False, "the inventory names no Redis URL"
        key = template.format(id=marker.key)
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


def s_between(seen: Seen, name: str, start: float, end: float) -> list[Sample]:
    """``name``'s readiness samples sent in [start, end]."""
    return [x for x in seen.samples.get(name, []) if start <= x.t <= end]
