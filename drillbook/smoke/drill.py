"""``inv smoke``: the pre-production smoke test, journaled like any drill.

The flow is the profile's ``service_smoke`` steps (docs/service-profile.md), run
through core/flow.py: each request judged on its status, its JSON, the values it
captures for later steps, and where declared a SQL check that the write landed in
the database itself. Each step is a named check carrying its HTTP status and
latency, so a failing smoke test says which request broke; a step whose input an
earlier failure never produced reads ``skipped: needs ${x}``. Steps marked
``each_instance`` go to every instance directly, past the load balancer.
:func:`smoke_checks` is the flow itself, callable without a drill (the tests do).
"""

from __future__ import annotations

from typing import ClassVar

from pydantic import BaseModel, Field

from drillbook.core.checks import CheckSpec, Measurements, Outcome, each_ok, witnessed
from drillbook.core.drill import Drill, DrillRun
from drillbook.core.errors import ConfigError
from drillbook.core.flow import Flow, StepResult
from drillbook.core.inventory import Inventory
from drillbook.core.profile import ServiceProfile, load_profile


def smoke_profile(inv: Inventory) -> ServiceProfile:
    """The inventory's profile, refused in one line when it declares no smoke flow."""
    profile = load_profile(inv)
    if not profile.smoke:
        raise ConfigError(
            f"inventory {inv.name}: service_smoke is not set: the smoke test has no steps to run "
            "(docs/service-profile.md)"
        )
    return profile


def smoke_checks(inv: Inventory, profile: ServiceProfile | None = None) -> list[StepResult]:
    """Run every smoke step against the inventory's service, in order (never raises on HTTP errors)."""
    profile = profile or smoke_profile(inv)
    with Flow.for_inventory(inv, profile) as flow:
        return flow.run(profile.smoke)


class SmokeMeasured(Measurements):
    """What one smoke run saw: every step judged, and the counts a scorecard shows."""

    steps: list[Outcome] = Field(default_factory=list)
    step_count: int = 0
    steps_failed: int = 0
    steps_skipped: int = 0
    total_ms: float | None = witnessed("each step's HTTP status (and SQL check, where declared)")


class Smoke(Drill[ServiceProfile, None, SmokeMeasured]):
    """The profile's smoke flow through the load balancer (and every instance where a step says so).

    The steps are the checks (one per step, named after it), so a failing smoke
    test says which request broke; nothing is changed, so there is no act.
    """

    name: ClassVar[str] = "smoke"
    runbook: ClassVar[str | None] = "runbooks/release-readiness.md"
    measured: ClassVar[type[BaseModel] | None] = SmokeMeasured
    checks: ClassVar[tuple[CheckSpec, ...]] = (each_ok("steps"),)

    def preflight(self, run: DrillRun) -> ServiceProfile:
        """The service profile, with a smoke flow to run (else the drill ends error, naming the variable)."""
        return smoke_profile(run.inventory)

    def observe(self, run: DrillRun, plan: ServiceProfile, acted: None) -> SmokeMeasured:
        """Run every step against the inventory's service; an HTTP failure is a failed step, not an error."""
        run.note(
            f"smoke test of {plan.name} through {run.inventory.topology.lb_url}: {len(plan.smoke)} steps"
        )
        steps = smoke_checks(run.inventory, plan)
        return SmokeMeasured(
            steps=[step.outcome() for step in steps],
            step_count=len(steps),
            steps_failed=sum(1 for s in steps if not s.ok),
            steps_skipped=sum(1 for s in steps if s.skipped),
            total_ms=round(sum(s.latency_ms for s in steps), 1),
        )
