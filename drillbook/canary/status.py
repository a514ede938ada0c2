"""``deploy.status``: the fleet as it is plus the rollout record, in one read-only call."""

from __future__ import annotations

from drillbook.canary.fleet import plan
from drillbook.canary.releases import read_links
from drillbook.canary.settings import CanarySettings
from drillbook.canary.state import Fleet, RolloutStore, read_fleet
from drillbook.core.inventory import Inventory


def fleet_status(inv: Inventory, *, links: bool = False) -> Fleet:
    """Versions, readiness, weights, HAProxy states, the rollout record (``links``: the hosts' links too)."""
    settings = inv.settings(CanarySettings, prefix="canary_")
    p = plan(inv)
    hosts = [i.host for i in p.everyone]
    host_links = None
    if links:
        host_links = {h: (lk.current, lk.previous) for h, lk in read_links(inv, hosts).items()}
    return read_fleet(
        inv,
        canary_hosts=p.canary_hosts,
        store=RolloutStore.for_inventory(inv, settings.state_file),
        links=host_links,
    )
