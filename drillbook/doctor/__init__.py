"""``inv doctor``: can each drill run against this inventory and its live service, and if not, why.

A new user's first question after writing a service profile is not "does my
service survive a database outage" but "can drillbook even ask". The doctor
answers it before any drill runs, and without changing anything: it validates
the profile (one line per mistake, exit 2), asks the live service the questions
the drills would ask (facts.py), and prints, drill by drill, whether it can run
and what is missing (drills.py): the readiness path that answers 404, the
profile field that is absent, the metric that does not exist.

Which drills must be able to run is the checklist's business: the task layer
passes the drills it requires, and the doctor says which of them are blocked.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

from drillbook.core.inventory import Inventory
from drillbook.core.profile import load_profile
from drillbook.doctor.drills import RULES, DrillCheck, Finding, judge
from drillbook.doctor.facts import Facts, gather

__all__ = ["RULES", "Diagnosis", "DrillCheck", "Finding", "diagnose", "render"]


@dataclass(frozen=True)
class Diagnosis:
    """The doctor's answer for one inventory: each drill's findings, and the drills the checklist requires."""

    inventory: str
    environment: str
    service: str
    checks: tuple[DrillCheck, ...]
    required: frozenset[str]

    @property
    def blocked_required(self) -> list[DrillCheck]:
        """Drills the checklist requires that cannot run: the doctor's exit 1 (one that does not
        apply to this service, kill-redis without Redis, is not blocked but not applicable)."""
        return [c for c in self.checks if not c.can_run and c.applies and c.drill in self.required]


def diagnose(inv: Inventory, required: Iterable[str] = ()) -> Diagnosis:
    """Validate the profile (ConfigError, one line), ask the live service, judge every drill."""
    profile = load_profile(inv)
    facts: Facts = gather(inv, profile)
    return Diagnosis(
        inventory=inv.name,
        environment=inv.environment,
        service=profile.name,
        checks=tuple(judge(facts)),
        required=frozenset(required),
    )


def render(d: Diagnosis) -> list[str]:
    """The doctor's printout: one line per drill, then one indented line per finding."""
    width = max(len(c.drill) for c in d.checks)
    lines = [f"doctor: inventory {d.inventory} ({d.environment}), service {d.service}", ""]
    for c in d.checks:
        need = " (required by the checklist)" if c.drill in d.required and c.applies else ""
        state = "can run" if c.can_run else ("CANNOT RUN" if c.applies else "not applicable")
        lines.append(f"{c.drill:<{width}}  {state}{need if not c.can_run else ''}")
        for f in c.findings:
            lines.append(f"{'':<{width}}    {'-' if f.blocks else 'note:'} {f.text}")
    blocked = d.blocked_required
    lines.append("")
    if blocked:
        names = ", ".join(c.drill for c in blocked)
        lines.append(f"{len(blocked)} drill(s) the checklist requires cannot run: {names}")
    else:
        runnable = sum(1 for c in d.checks if c.can_run)
        applicable = sum(1 for c in d.checks if c.applies)
        lines.append(f"{runnable}/{applicable} drills can run; every drill the checklist requires can")
    return lines
