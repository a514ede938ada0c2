"""The doctor asks the Prometheus a profile names: does it answer, do the canary's queries find anything.

The canary asks Prometheus through the profile's PromQL templates
(``service_metrics.queries``, :mod:`drillbook.core.promql`). A template that
Prometheus refuses, or whose requests query finds no series of an instance, would
end the canary ``error`` after its deploy; the doctor says so before, naming the
template, the instances and the query it sent. Probes and scrapes count here (no
route is excluded): an idle fleet still has series, a wrong name or label has none.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from urllib.parse import urlparse

from drillbook.core.errors import ConfigError, TargetUnreachable
from drillbook.core.inventory import Inventory
from drillbook.core.profile import ServiceProfile
from drillbook.core.promql import QUERY_NAMES, Prometheus, render, resolve_url

#: How far back the doctor looks for series (a fleet scraped every 15 s or more has some).
WINDOW_S = 300


@dataclass
class PrometheusFacts:
    """The answers of one Prometheus to the profile's templates."""

    url: str
    error: str | None = None  # unreachable, or the URL settings contradict each other
    refused: dict[str, str] = field(default_factory=dict)  # template -> Prometheus' error
    #: template -> instances whose series it does not find
    empty: dict[str, list[str]] = field(default_factory=dict)
    queries: dict[str, str] = field(default_factory=dict)  # template -> the query sent (all instances)


def gather_prometheus(inv: Inventory, profile: ServiceProfile) -> PrometheusFacts | None:
    """None when the profile names no Prometheus (the canary scrapes, or reads HAProxy)."""
    m = profile.metrics
    alias = str(inv.var("canary_prometheus_url", "") or "")
    try:
        url = resolve_url(m.prometheus_url if m else None, alias)
    except ConfigError as exc:
        return PrometheusFacts(url=alias, error=str(exc))
    if m is None or not url:
        return None
    facts = PrometheusFacts(url=url)
    instances = {
        i.name: str(inv.var("prometheus_instance", "", host=i.host) or "") or urlparse(i.url).netloc
        for i in inv.topology.app_instances
    }
    prometheus = Prometheus(url, timeout_s=3.0)
    try:
        prometheus.ready()
        for name in QUERY_NAMES:
            query = render(m, name, list(instances.values()), WINDOW_S)
            facts.queries[name] = query
            try:
                found = prometheus.query(query)
            except TargetUnreachable as exc:
                facts.refused[name] = str(exc)
                continue
            if name == "requests":  # per instance, to name the ones missing
                facts.empty[name] = [
                    inst
                    for inst, value in instances.items()
                    if not prometheus.query(render(m, name, [value], WINDOW_S))
                ]
            elif not found and name != "errors":  # no 5xx at all is an empty errors answer
                facts.empty[name] = list(instances)
    except TargetUnreachable as exc:
        facts.error = str(exc)
    finally:
        prometheus.close()
    return facts
