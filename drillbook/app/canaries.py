"""The two canaries ``inv demo`` runs: a good release promoted, a bad one rolled back.

Both build their release on first use (``lab.release``: the good one as it is,
the bad one failing 20 % of its data requests) and canary it from whatever the
fleet runs, so the demo can run again and again: the good canary promotes
``demo-good`` (or, when that already runs, ``demo-good-2``), the bad one is
judged against it and rolled back. Windows are the inventory's.
"""

from __future__ import annotations

import time

from drillbook.canary.drill import CanaryDrill, load_settings
from drillbook.canary.status import fleet_status
from drillbook.core.drill import AnyDrill
from drillbook.core.errors import ConfigError
from drillbook.core.inventory import Inventory

GOOD = ("demo-good", "demo-good-2")
BAD = "demo-bad"


def _build(inv: Inventory, version: str, error_rate: float = 0.0) -> str:
    """Build ``version``; when the service's source changed since, a fresh name (releases are immutable)."""
    from drillbook import labenv as lab

    try:
        lab.build_release(inv, version, error_rate=error_rate)
        return version
    except ConfigError:
        fresh = f"{version}+{int(time.time())}"
        lab.build_release(inv, fresh, error_rate=error_rate)
        return fresh


def good_canary(inv: Inventory) -> AnyDrill:
    """A release as good as the running one: expect verdict pass, promoted everywhere."""
    running = fleet_status(inv).version or ""
    version = GOOD[1] if running.startswith(GOOD[0] + "+") or running == GOOD[0] else GOOD[0]
    return CanaryDrill(load_settings(inv), _build(inv, version))


def bad_canary(inv: Inventory) -> AnyDrill:
    """A release failing 20 % of its requests: expect verdict fail, rolled back within seconds."""
    return CanaryDrill(load_settings(inv), _build(inv, BAD, error_rate=0.2))
