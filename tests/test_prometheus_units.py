"""PromQL templates of the service profile: filled, validated at preflight, one Prometheus URL.

The real Prometheus is tests/test_prometheus_lab.py's; these are the pure rules a
user meets when writing ``service_metrics`` (no server needed).
"""

from __future__ import annotations

from pathlib import Path

import pytest
from clirun import lab_copy

from drillbook.canary.sources import source_kind
from drillbook.core.errors import ConfigError
from drillbook.core.inventory import load_inventory
from drillbook.core.profile import Metrics, Queries, load_profile
from drillbook.core.promql import Sample, buckets, render, resolve_url


def test_default_templates_use_the_profiles_names_and_labels() -> None:
    ledger = Metrics(requests_total="ledger_requests_total", route_label="handler", status_label="code")
    q = render(ledger, "errors", ["127.0.0.1:45501", "127.0.0.1:45502"], 12, ["/health", "/metrics"])
    assert q == (
        'sum(increase(ledger_requests_total{instance=~"127\\\\.0\\\\.0\\\\.1:45501|127\\\\.0\\\\.0\\\\.1:45502",'
        'handler!~"/health.*|/metrics.*",code=~"5.."}[12s]))'
    )
    # Nothing excluded: a matcher that keeps every series (never an empty one).
    assert 'route=~".*"' in render(Metrics(), "requests", ["a:1"], 5)
    assert render(Metrics(), "latency_buckets", ["a:1"], 5).startswith(
        "sum by (le) (increase(http_request_duration_seconds_bucket{"
    )


def test_a_template_of_your_own_is_filled_the_same_way() -> None:
    m = Metrics(queries=Queries(requests="sum(job:requests:rate1s{${instances}}) * ${window}"))
    assert m.queries.requests != Queries().requests
    assert render(m, "requests", ["a:1"], 30) == 'sum(job:requests:rate1s{instance=~"a:1"}) * 30s'


def test_histogram_answer_becomes_cumulative_buckets() -> None:
    rows = [Sample({"le": "+Inf"}, 10), Sample({"le": "0.1"}, 7), Sample({"le": "0.5"}, 9)]
    assert buckets(rows) == ((0.1, 7.0), (0.5, 9.0), (float("inf"), 10.0))


def test_unknown_placeholder_is_one_line_at_preflight(tmp_path: Path) -> None:
    extra = "service_metrics:\n  queries:\n    errors: 'sum(increase(x{${instances}}[${interval}]))'\n"
    inv = load_inventory(lab_copy(tmp_path / "inventory", extra))
    with pytest.raises(ConfigError) as err:
        load_profile(inv)
    lines = str(err.value).splitlines()
    assert len(lines) == 1, lines
    assert "service_metrics.queries.errors" in lines[0] and "unknown placeholder ${interval}" in lines[0]


def test_one_prometheus_url_and_its_alias() -> None:
    assert resolve_url("http://p:9090/", None) == "http://p:9090"
    assert resolve_url(None, "http://p:9090") == "http://p:9090"  # canary_prometheus_url, the alias
    assert resolve_url("http://p:9090", "http://p:9090/") == "http://p:9090"
    with pytest.raises(ConfigError, match="differ"):
        resolve_url("http://p:9090", "http://q:9090")


def test_which_source_the_profile_calls_for() -> None:
    assert source_kind(None) == ("haproxy", None)
    assert source_kind(Metrics()) == ("scrape", None)
    assert source_kind(Metrics(prometheus_url="http://p:9090")) == ("prometheus", "http://p:9090")
    with pytest.raises(ConfigError, match="service_metrics is null"):
        source_kind(None, "http://p:9090")


def test_lab_profile_points_at_the_labs_prometheus_only_when_it_runs_one(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    inv = load_inventory(lab_copy(tmp_path / "inventory"))
    metrics = load_profile(inv).metrics
    assert metrics is not None and metrics.prometheus_url is None
    monkeypatch.setenv("DRILLBOOK_LAB_PROMETHEUS", "1")
    metrics = load_profile(load_inventory(lab_copy(tmp_path / "again"))).metrics
    assert metrics is not None and metrics.prometheus_url == inv.var("lab_prometheus_url")
