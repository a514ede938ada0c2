"""The canary's Prometheus path: a real Prometheus (Debian's package, roles/prometheus) scraping the lab.

One Prometheus for the module, scraping the three reference instances every
second. What a user would check: Prometheus' windows (the profile's PromQL
templates) say what the instances' own ``/metrics`` say, within a scrape
interval; a canary judged through Prometheus rolls a release with errors back
and lets a good one through; an unreachable Prometheus is one error line before
anything moves. Windows are short and the good release pauses before promotion
(one canary host deployed and rolled back, not the whole fleet): CI time.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from clirun import inv, lab_copy
from test_canary_lab import BASE, assert_fleet, back_to_base, build, quick, run

from drillbook.canary.drill import CanaryDrill
from drillbook.canary.sources import LoadBalancerSource, PrometheusSource, ScrapeSource
from drillbook.canary.status import fleet_status
from drillbook.core.ansible import run_playbook
from drillbook.core.haproxy import HAProxy
from drillbook.core.inventory import Inventory
from drillbook.core.profile import load_profile
from drillbook.core.traffic import Request, Traffic, constant

pytestmark = [pytest.mark.lab, pytest.mark.slow]

EXCLUDE = ["/health", "/metrics"]


@pytest.fixture(scope="module")
def prometheus(lab: dict[str, Any], lab_inventory: Inventory) -> Iterator[str]:
    """The lab's Prometheus (playbooks/prometheus.yml), up, every instance scraped; stopped after."""
    run_playbook(lab_inventory, "prometheus.yml")
    yield str(lab_inventory.var("lab_prometheus_url"))
    run_playbook(lab_inventory, "prometheus.yml", tags=["stop"], cancellable=False)


def compare_windows(
    inv: Inventory, url: str, path: str, seconds: float = 6.0
) -> list[tuple[Any, Any, float]]:
    """Prometheus' and the direct scrape's windows at several looks under steady traffic through the LB.

    Returns (prometheus look, scrape look, seconds since begin) per look.
    """
    metrics = load_profile(inv).metrics
    assert metrics is not None
    canary, *baseline = inv.topology.app_instances
    prom = PrometheusSource(url, [canary], baseline, metrics=metrics, exclude_routes=EXCLUDE)
    scrape = ScrapeSource([canary], baseline, exclude_routes=EXCLUDE, metrics=metrics)
    looks = []
    with Traffic(inv.topology.lb_url, 60, constant(Request("GET " + path, "GET", path))) as traffic:
        time.sleep(2)  # a steady rate before the window starts (increase() extrapolates at its edges)
        prom.begin()
        scrape.begin()
        t0 = time.monotonic()
        for _ in range(3):
            time.sleep(seconds / 3)
            looks.append((prom.look(), scrape.look(), time.monotonic() - t0))
    prom.close()
    scrape.close()
    assert traffic.outcomes, "no traffic was sent"
    return looks


def assert_close(prom: Any, direct: Any, elapsed: float, scrape_s: float = 1.0) -> None:
    """Equal within what one scrape interval (plus one look's lag) of traffic can hold."""
    for side in ("canary", "baseline"):
        p, d = getattr(prom, side), getattr(direct, side)
        slack = max(3.0, 2 * scrape_s * d.requests / elapsed)
        assert abs(p.requests - d.requests) <= slack, (side, p, d, slack)
        assert abs(p.errors - d.errors) <= slack, (side, p, d)
        assert abs(p.observations - d.observations) <= slack, (side, p, d)
        assert [le for le, _ in p.buckets] == [le for le, _ in d.buckets], (side, p.buckets, d.buckets)


def test_prometheus_windows_equal_the_instances_own_metrics(
    lab_inventory: Inventory, prometheus: str
) -> None:
    looks = compare_windows(lab_inventory, prometheus, "/items?limit=5")
    for prom, direct, elapsed in looks:
        assert_close(prom, direct, elapsed)
    prom, direct, _ = looks[-1]
    assert direct.canary.requests >= 20 and direct.baseline.requests >= 40, direct
    # The reference's fine buckets: p50 from Prometheus within one bucket of the direct one.
    assert prom.canary.quantile_ms(0.5) is not None and direct.canary.quantile_ms(0.5) is not None


def test_haproxy_windows_count_what_the_load_balancer_forwarded(lab_inventory: Inventory) -> None:
    """The source of a service without metrics: per-server responses and 5xx from HAProxy's counters."""
    inv = lab_inventory
    canary, *baseline = inv.topology.app_instances
    assert inv.topology.haproxy_socket
    source = LoadBalancerSource(HAProxy(inv.topology.haproxy_socket), "app", [canary], baseline)
    source.begin()
    with Traffic(
        inv.topology.lb_url, 60, constant(Request("GET /items", "GET", "/items?limit=5"))
    ) as traffic:
        time.sleep(3)
    time.sleep(0.3)
    look = source.look()
    sent = len(traffic.outcomes)
    # Every request went to one of the servers (HAProxy's probes are not counted, checks excluded).
    assert abs(look.canary.requests + look.baseline.requests - sent) <= 3, (look, sent)
    assert look.canary.requests > 0 and look.canary.errors == 0 and look.canary.buckets == ()


def test_unreachable_prometheus_is_one_error_line_before_anything_moves(
    lab_inventory: Inventory, prometheus: str, canary_env: dict[str, Any]
) -> None:
    inv, reports = lab_inventory, canary_env["reports"]
    drill = CanaryDrill(quick(inv, prometheus_url="http://127.0.0.1:9"), canary_env["bad"], traffic_rps=0)
    journal = run(drill, inv, reports)
    assert journal.verdict == "error" and journal.exit_code == 2, journal.error
    assert "Prometheus http://127.0.0.1:9 unreachable" in (journal.error or "")
    assert "\n" not in (journal.error or "")
    assert_fleet(fleet_status(inv), BASE)


@pytest.fixture(scope="module")
def canary_env(
    lab: dict[str, Any], lab_inventory: Inventory, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[dict[str, Any]]:
    """A bad release, a private rollout record, the lab at 1.0.0 before and after."""
    state = tmp_path_factory.mktemp("prom-canary-state")
    reports = tmp_path_factory.mktemp("prom-canary-reports")
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("DRILLBOOK_STATE_DIR", str(state))
        env = {
            "bad": build(lab_inventory, "2.0.1-bad", error_rate=0.2),
            "reports": reports,
        }
        back_to_base(lab_inventory, reports)
        yield env
        back_to_base(lab_inventory, reports)


def test_canary_judged_through_prometheus(
    lab_inventory: Inventory, prometheus: str, canary_env: dict[str, Any]
) -> None:
    """A release failing 20 % is rolled back, judged on PromQL.

    That a good release is not flagged through this source rests on its windows equalling the
    instances' own counters (above) and on the judge's own tests; a second full rollout here
    would cost CI minutes and prove nothing new about the source.
    """
    inv, reports = lab_inventory, canary_env["reports"]
    settings = dict(prometheus_url=prometheus, steps=[25, 100], window_s=4, settle_s=1)
    bad = run(CanaryDrill(quick(inv, **settings), canary_env["bad"], traffic_rps=100), inv, reports)
    assert bad.verdict == "fail" and bad.exit_code == 1, bad.error
    m = bad.measurements
    failed = {c.name: c for c in bad.failed_checks}
    assert "error-rate increase, lower confidence bound (%)" in failed, list(failed)
    assert m["analysis"] == "breach" and m["rollout_phase"] == "rolled_back"
    assert 0 < m["detection_s"] < 30 and m["steps"][-1]["canary_errors"] > 0
    assert_fleet(fleet_status(inv), BASE)


def test_doctor_names_a_query_prometheus_finds_nothing_for(
    lab: dict[str, Any], prometheus: str, tmp_path: Path
) -> None:
    """A template over a metric Prometheus does not hold: named, with its instances, under deploy.canary."""
    wrong = "sum(increase(app_requests_total{${instances}}[${window}]))"
    copy = lab_copy(
        tmp_path / "inventory",
        f"service_metrics:\n  prometheus_url: {prometheus}\n  queries:\n    requests: '{wrong}'\n",
    )
    ran = inv("doctor", "-i", str(copy))
    assert ran.rc == 1, ran.describe()
    canary = next(x for x in ran.stdout.splitlines() if x.startswith("deploy.canary "))
    assert "CANNOT RUN" in canary, ran.describe()
    assert (
        f"service_metrics.queries.requests finds nothing in Prometheus {prometheus} for app-1, app-2, app-3"
        in ran.stdout
    ), ran.describe()
    assert "app_requests_total" in ran.stdout and "cannot run: deploy.canary" in ran.stdout
