"""What the three deploy drills share: settings from the inventory, fleet operations, an answering fleet."""

from __future__ import annotations

from typing import Any, TypeVar

from pydantic import BaseModel

from drillbook.canary.fleet import FleetOps
from drillbook.canary.settings import CanarySettings
from drillbook.core import identity
from drillbook.core import settings as core_settings
from drillbook.core.drill import Drill, DrillRun
from drillbook.core.errors import ConfigError, TargetUnreachable
from drillbook.core.inventory import Inventory
from drillbook.core.profile import load_profile
from drillbook.core.readiness import Readiness
from drillbook.core.settings import given

RUNBOOK = "runbooks/canary-rollback.md"

PlanT = TypeVar("PlanT")
ActedT = TypeVar("ActedT")
MeasuredT = TypeVar("MeasuredT", bound=BaseModel)


#: Declared witnesses name the profile's parts; :func:`name_witnesses` fills them in for the run.
IDENTITY = "the release each instance names (service_identity)"
READINESS = "readiness (service_health)"


def name_witnesses(run: DrillRun, texts: dict[str, str]) -> None:
    """The run's witness of each measurement, ``{identity}`` and ``{readiness}`` filled from the profile.

    A report then says how this service was asked (``X-Release header of GET /livez``,
    ``GET /readyz: ready = 200``), not how some other service would have been.
    Named during the run, these take precedence over the declared ones.
    """
    profile = load_profile(run.inventory)
    values = {
        "identity": identity.describe(profile.identity),
        "readiness": Readiness(profile.health).describe(),
    }
    for name, text in texts.items():
        run.journal.witnesses[name] = text.format(**values)


#: What the user typed for each overridable field: an error names the option, not the field.
OPTION_LABELS = {"window_s": "--window", "steps": "--steps", "traffic_rps": "--traffic"}


def load_settings(inv: Inventory, **overrides: Any) -> CanarySettings:
    """The inventory's ``canary_*`` settings with command-line overrides (None = keep), through
    core's one settings loader; ``steps`` may be given as typed ("5,25,50,100")."""
    changes = given(**overrides)
    if isinstance(changes.get("steps"), str):
        try:
            changes["steps"] = [float(x) for x in changes["steps"].split(",") if x.strip()]
        except ValueError:
            raise ConfigError(
                f"--steps: expected percentages like 5,25,50,100, got {overrides['steps']!r}"
            ) from None
    return core_settings.load_settings(inv, CanarySettings, "canary_", changes, labels=OPTION_LABELS)


class DeployDrill(Drill[PlanT, ActedT, MeasuredT]):
    """Base of deploy.canary, deploy.promote and deploy.rollback: the settings are the thresholds."""

    runbook = RUNBOOK

    def __init__(self, settings: CanarySettings, **options: Any) -> None:
        super().__init__(settings, **options)
        self.settings = settings

    def open_fleet(self, run: DrillRun) -> FleetOps:
        """Fleet operations for the run's inventory, HAProxy reachable and naming every instance."""
        ops = FleetOps(run.inventory, self.settings, run.note)
        ops.check_lb()
        return ops


def require_answering(ops: FleetOps) -> None:
    """Every app instance names its release by the profile's identity (else the drill cannot tell what
    runs); without an identity in the profile, every instance answers its readiness probe at all (the
    rollout record then says what runs)."""
    probes = ops.probe(ops.plan.everyone)
    silent = [
        f"{i.name} ({i.url}: {p.detail})"
        for i in ops.plan.everyone
        if ((p := probes[i.host]).identified and p.version is None) or (not p.identified and not p.answered)
    ]
    if silent:
        raise TargetUnreachable(f"app instance(s) not answering: {', '.join(silent)}; see inv deploy.status")
