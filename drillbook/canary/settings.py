"""The canary's knobs, read from the inventory (``canary_*`` in group_vars) and validated once.

Every default here is the lab's; ``inventory/lab/group_vars/all/canary.yml``
documents each one and a fleet inventory overrides what it needs (longer
windows, no generated traffic, a Prometheus URL).
"""

from __future__ import annotations

import itertools

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator


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
    #: False-rollback budget per step (family-wise over the step's looks, Bonferroni).
    alpha: float = Field(0.01, gt=0, lt=1)
    #: Fewest canary 5xx responses that can ever be a breach (one flaky request never is).
    min_errors: int = Field(3, ge=1)
    #: Smallest error-rate excess (canary minus baseline, 0..1) that counts as a breach.
    error_margin: float = Field(0.01, ge=0, le=1)
    #: Latency quantile compared (0..1).
    latency_quantile: float = Field(0.95, gt=0, lt=1)
    #: The canary's quantile must exceed baseline x ratio ...
    latency_ratio: float = Field(1.5, ge=1)
    #: ... and baseline + margin, to be a latency breach.
    latency_margin_ms: float = Field(100.0, ge=0)
    #: Latency is judged only at steps where a canary server takes at most this many times the
    #: requests of a baseline server: beyond, a p95 difference measures the load, not the release.
    latency_max_load_ratio: float = Field(1.0, gt=0)
    #: Canary and baseline observations needed before latency is judged at all.
    latency_min_samples: int = Field(20, ge=1)
    #: Route prefixes left out of the analysis (probes and scrapes are not user traffic).
    exclude_routes: list[str] = Field(default_factory=lambda: ["/health", "/metrics"])
    #: Consecutive failed readiness looks of a canary instance that make a breach.
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
    def alpha_per_look(self) -> float:
        """Bonferroni: each look tests at alpha / looks, so the step's false-rollback rate stays <= alpha."""
        return self.alpha / self.looks_per_step
