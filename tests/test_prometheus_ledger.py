"""The Prometheus path on the second service: its metric name, a ``handler`` label, ``code``, coarse buckets.

The ledger lab (inventory/lab-ledger) with its own Prometheus (roles/prometheus,
its ports: DRILLBOOK_LAB_PORT_BASE + 190) scraping both instances every second.
The profile's templates are filled with the ledger's names; Prometheus' windows
must say what the instances' own /metrics say, within a scrape interval.
"""

from __future__ import annotations

import os
from collections.abc import Iterator

import pytest
from test_prometheus_lab import assert_close, compare_windows

from drillbook import labenv as lab_
from drillbook.core.ansible import run_playbook
from drillbook.core.inventory import Inventory, load_inventory
from drillbook.core.paths import REPO_ROOT
from drillbook.core.profile import load_profile

pytestmark = [pytest.mark.lab, pytest.mark.slow]


@pytest.fixture(scope="module")
def ledger() -> Iterator[tuple[Inventory, str]]:
    """The ledger lab and its Prometheus; both stopped after (unless DRILLBOOK_KEEP_LAB)."""
    inv = load_inventory(REPO_ROOT / "inventory" / "lab-ledger")
    lab_.up(inv)
    run_playbook(inv, "prometheus.yml")
    yield inv, str(inv.var("lab_prometheus_url"))
    run_playbook(inv, "prometheus.yml", tags=["stop"], cancellable=False)
    if not os.environ.get("DRILLBOOK_KEEP_LAB"):
        lab_.down(inv)


def test_prometheus_windows_equal_the_ledgers_own_metrics(ledger: tuple[Inventory, str]) -> None:
    inv, url = ledger
    metrics = load_profile(inv).metrics
    assert metrics is not None and (metrics.route_label, metrics.status_label) == ("handler", "code")
    # /livez answers 200 without a token; every request is counted by handler and code.
    looks = compare_windows(inv, url, "/livez")
    for prom, direct, elapsed in looks:
        assert_close(prom, direct, elapsed)
    prom, direct, _ = looks[-1]
    assert direct.canary.requests >= 20 and direct.baseline.requests >= 20, direct
    # The ledger's coarse buckets, read from Prometheus as from the instances.
    assert [le for le, _ in prom.canary.buckets] == [0.1, 0.5, 1.0, 5.0, float("inf")]
