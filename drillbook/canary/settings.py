"""The canary's knobs, read from the inventory (``canary_*`` in group_vars) and validated once.

Every default here is the lab's; ``inventory/lab/group_vars/all/canary.yml``
documents each one and a fleet inventory overrides what it needs (longer
windows, no generated traffic, a Prometheus URL).
"""

from __future__ import annotations

import itertools

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

from drillbook.canary.stats import level, pocock_z


class CanarySettings(BaseModel):
    """Steps, analysis window and the judge's thresholds."""

    model_config = ConfigDict(extra="forbid")

    #: Canary traffic share per step, in percent of the backend's total weight.
    steps: list[float] = Field(default_factory=lambda: [5.0, 25.0, 50.0, 100.0])
    #: How long each step is held and analysed.
    window_s: float = Field(10.0, gt=0)
    #: Time between two looks of the judge inside a window.
    interval_s: float = Field(0.5, gt=0)
    #: Seconds after each weight change before latency is judged (the canary's connection pools
    #: and caches warm up to its new share; errors are judged from the first second).
    settle_s: float = Field(2.0, ge=0)
    #: Extra time a step may wait for canary_min_samples after its window before failing closed.
    sample_wait_s: float = Field(10.0, ge=0)
    #: Requests the canary (and the baseline) must have served in a step before it can pass.
    min_samples: int = Field(30, ge=1)
    #: False-rollback budget of a whole rollout: half for the error test, half for latency
    #: (split over the steps), each spent over its looks with a Pocock boundary (stats.py).
    alpha: float = Field(0.01, gt=0, lt=1)
    #: Error-rate increase (canary minus baseline, 0..1) tolerated: a breach needs the lower
    #: confidence bound of the increase above it.
    error_margin: float = Field(0.0, ge=0, lt=1)
    #: Error-rate increase (0..1) the analysis must be able to see before it may promote: with
    #: less traffic the rollout ends "not enough evidence" (rolled back), not "pass".
    error_detectable: float = Field(0.01, gt=0, le=1)
    #: Chance the error test must have of seeing ``error_detectable`` before a step may pass
    #: (counts pooled over the steps so far): a step holds, up to ``sample_wait_s`` past its
    #: window, until it does. At every step, so the first one already sees a 1 % regression.
    error_power: float = Field(0.8, gt=0, lt=1)
    #: Answers per side the tail test needs before a step that judges latency may pass (a
    #: doubled p95 is seen in ~98 % of 150-answer samples; fewer: the step holds).
    latency_tail_min_samples: int = Field(150, ge=1)
    #: Status codes that mean "overloaded" (the service's pool timed out, a gateway gave up),
    #: not counted as the canary's errors at steps where it carries more than a baseline
    #: server's load (the drill's own answers say which server sent them): an instance
    #: carrying 2x a baseline server's share of a saturated machine sheds load whatever it runs.
    overload_statuses: list[int] = Field(default_factory=lambda: [503, 504])
    #: The slow tail: the canary's quantile ``latency_tail_quantile`` may exceed the baseline's
    #: by this many percent (and latency_effect_ms) before it is a breach (confidence bounds of
    #: both quantiles, distribution-free): 50 catches a doubled p95 that leaves the median alone.
    latency_tail_pct: float = Field(50.0, ge=0)
    latency_tail_quantile: float = Field(0.95, gt=0.5, lt=1)
    #: Latency shift tolerated, relative to the baseline's median (percent) ...
    latency_effect_pct: float = Field(20.0, ge=0)
    #: ... and absolute (ms): a breach needs the canary slower by more than both (lower
    #: confidence bound of the Hodges-Lehmann shift, Mann-Whitney U test).
    latency_effect_ms: float = Field(10.0, ge=0)
    #: 5xx responses the canary servers may send to users before the verdict (HAProxy's count).
    max_failed_requests: int | None = Field(30, ge=0)
    #: Latency is judged only at steps where a canary server takes at most this many times the
    #: requests of a baseline server: beyond, a p95 difference measures the load, not the release.
    latency_max_load_ratio: float = Field(1.0, gt=0)
    #: Judge latency against a control: one baseline server per canary server at the canary's
    #: weight (the others carry the rest), where the others can carry at least that much (the
    #: lab: the 5 % and 25 % steps). Canary and control then answer equally many requests per
    #: second, so a busy machine's queueing hits both alike (Kayenta's baseline of the canary's
    #: size). Off: the canary is compared with every baseline server, at its own load ratio.
    latency_control: bool = True
    #: Canary and baseline latencies needed in a step before latency is judged at all
    #: (fewer by the step's end: "not enough evidence").
    latency_min_samples: int = Field(20, ge=1)
    #: Response header naming the server that answered (HAProxy adds it): it sorts the
    #: drill's own requests into canary and baseline. Without it latency comes from the
    #: instances' histograms.
    server_header: str = "X-Served-By"
    #: Response header with the server's response time as the load balancer measured it
    #: (HAProxy's %Tr, haproxy_server_time_header): latency is judged on it when every answer
    #: carries it, so the drill's own client queueing (large on a busy machine, the same for
    #: canary and baseline) does not drown a shift. "" or absent: the client's latency.
    server_time_header: str = "X-Server-Time"
    #: Route prefixes left out of the analysis (probes and scrapes are not user traffic).
    exclude_routes: list[str] = Field(default_factory=lambda: ["/health", "/metrics"])
    #: Consecutive failed readiness looks of a canary instance that make a breach. A look counts
    #: only when the failure is the canary's own: no baseline server is down or unscrapable in
    #: the same look (a shared cause), and at steps where the canary carries more than a baseline
    #: server's load, only a hard failure (503, refused) counts, not a health-check timeout.
    ready_failures: int = Field(2, ge=1)
    #: Release the canary returns to on a breach: "previous" (what ran before) or a version.
    rollback_target: str = "previous"
    #: Background requests per second the drill sends itself (0: rely on real traffic).
    traffic_rps: float = Field(100.0, ge=0)
    #: deploy.rollback must have the previous release serving everywhere within this many seconds.
    rollback_budget_s: float = Field(30.0, gt=0)
    #: Hosts per promotion batch (Ansible serial): a number or a percentage such as "25%".
    promote_serial: str = "1"
    #: Hosts per batch when a rollback redeploys hosts that serve traffic (the canary hosts,
    #: back on the previous release first, carry the load meanwhile); "100%" is fastest.
    rollback_serial: str = "100%"
    #: Ansible max_fail_percentage for promotion batches (0: stop at the first failed host).
    promote_max_fail_percentage: int = Field(0, ge=0, le=100)
    #: Seconds a drained server keeps finishing in-flight requests before its restart.
    drain_wait_s: float = Field(0.5, ge=0)
    #: Seconds a deployed instance gets to become ready before the deploy fails.
    ready_timeout_s: float = Field(60.0, gt=0)
    #: Optional Prometheus base URL; when set, the judge asks PromQL instead of scraping.
    prometheus_url: str = ""
    #: Label that names the instance in Prometheus (its value is the inventory's app_instance).
    prometheus_instance_label: str = "instance"
    #: Where the rollout state (paused canary, previous release) is kept; empty = per-user state dir.
    state_file: str = ""

    @field_validator("steps")
    @classmethod
    def _steps(cls, steps: list[float]) -> list[float]:
        if not steps:
            raise ValueError("at least one step is needed")
        if any(not 0 < s <= 100 for s in steps):
            raise ValueError("each step is a share in percent, 0 < step <= 100")
        if steps[0] >= 100:
            raise ValueError("the first step must leave the baseline traffic (< 100): it is the reference")
        if any(b <= a for a, b in itertools.pairwise(steps)):
            raise ValueError("steps must increase")
        return steps

    @field_validator("promote_serial", "rollback_serial", "rollback_target", mode="before")
    @classmethod
    def _text(cls, value: object) -> str:
        return str(value).strip()

    @field_validator("promote_serial", "rollback_serial")
    @classmethod
    def _serial(cls, value: str) -> str:
        text = str(value).strip()
        number = text[:-1] if text.endswith("%") else text
        if not number.isdigit() or int(number) < 1 or (text.endswith("%") and int(number) > 100):
            raise ValueError("a host count >= 1 or a percentage such as 25%")
        return text

    @model_validator(mode="after")
    def _interval(self) -> CanarySettings:
        if self.interval_s > self.window_s:
            raise ValueError(f"interval_s ({self.interval_s}) must not exceed window_s ({self.window_s})")
        if self.settle_s >= self.window_s:
            raise ValueError(f"settle_s ({self.settle_s}) must be shorter than window_s ({self.window_s})")
        return self

    @property
    def looks_per_step(self) -> int:
        """Upper bound on the judge's looks in one step (window plus sample wait)."""
        return max(1, int((self.window_s + self.sample_wait_s) / self.interval_s) + 1)

    @property
    def error_z(self) -> float:
        """Pocock critical z of the error test: alpha / 2 over every look of the rollout."""
        return pocock_z(self.alpha / 2, self.looks_per_step * len(self.steps))

    @property
    def latency_z(self) -> float:
        """Pocock critical z of each latency test (shift and tail): alpha / 2 split over the two
        tests and the steps, over each step's looks."""
        return pocock_z(self.alpha / 4 / len(self.steps), self.looks_per_step)

    @property
    def error_margin_pct(self) -> float:
        return round(100 * self.error_margin, 6)

    @property
    def error_level_per_look(self) -> float:
        return level(self.error_z)

    @property
    def latency_level_per_look(self) -> float:
        return level(self.latency_z)
