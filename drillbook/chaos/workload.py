"""What the service holds and serves during a chaos drill, and how the drill checks it afterwards.

Everything here comes from the inventory's service profile (docs/service-profile.md)
and goes through core/flow.py; no path or table of any service is named in code.

* The marker (``service_marker``): its ``write`` step runs through the load
  balancer before the fault, capturing what identifies the write; its ``verify``
  steps run after recovery (a read through the API and, where declared, a SQL
  check on the database itself: the database is the witness that nothing was lost,
  not the API that wrote it); its ``cleanup`` steps run at restore.
* Background traffic (``service_traffic.requests``): weighted steps, each answer
  judged like a flow step; every write the service acknowledged is kept with its
  captured values and looked up afterwards with ``service_traffic.verify_sql``.
  A profile with only ``service_traffic.locustfile`` gets the team's locustfile
  instead (drillbook.load runs it, request by request); then the marker alone
  witnesses that nothing was lost.
* The cache: after Redis comes back, reading the marker back through the load
  balancer must put it in Redis again, seen by asking Redis directly.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from drillbook.core.errors import ConfigError, TargetUnreachable
from drillbook.core.flow import Flow, StepResult
from drillbook.core.inventory import Inventory
from drillbook.core.profile import Marker as MarkerSpec
from drillbook.core.profile import ServiceProfile, load_profile
from drillbook.core.traffic import Acknowledged, Background, RequestSource, StepMix, Traffic, sql_verify_all


@dataclass
class Workload:
    """The profile's marker and traffic against one inventory's service (one flow, one run id)."""

    flow: Flow
    marker: MarkerSpec

    @classmethod
    def for_inventory(cls, inv: Inventory, profile: ServiceProfile | None = None) -> Workload:
        """The workload of ``inv``'s profile; one line naming the variable when it cannot be built."""
        profile = profile or load_profile(inv)
        if profile.marker is None:
            raise ConfigError(
                f"inventory {inv.name}: service_marker is not set: a chaos drill writes a marker before "
                "the fault and looks for it afterwards (docs/service-profile.md)"
            )
        traffic = profile.traffic
        if not traffic.requests and not traffic.locustfile:
            raise ConfigError(
                f"inventory {inv.name}: service_traffic has neither requests nor a locustfile: a chaos "
                "drill shows what users saw through its background traffic (docs/service-profile.md)"
            )
        if any(s.writes for s in traffic.requests) and traffic.verify_sql is None:
            raise ConfigError(
                f"inventory {inv.name}: service_traffic has write steps but no verify_sql: acknowledged "
                "writes could not be looked up after the fault"
            )
        return cls(Flow.for_inventory(inv, profile), profile.marker)

    def close(self) -> None:
        self.flow.close()


@dataclass(frozen=True)
class Marker:
    """The write made before the fault: its captured values, and how to verify and remove it."""

    values: dict[str, Any]
    work: Workload = field(compare=False, repr=False)

    @property
    def key(self) -> str:
        """What identifies the write: the first value the write step captured (or the run id)."""
        names = list(self.work.marker.write.capture)
        return str(self.values[names[0]] if names else self.values.get("run_id", ""))


def write_marker(work: Workload) -> Marker:
    """Run the marker's write step through the load balancer (a real write on the real path)."""
    result = work.flow.run([work.marker.write])[-1]
    if not result.ok:
        raise TargetUnreachable(f"could not write the marker ({result.name}): {result.detail}")
    return Marker(dict(work.flow.values), work)


def _verdict(results: list[StepResult]) -> tuple[bool, str]:
    bad = [r for r in results if not r.ok]
    text = "; ".join(f"{r.name}: {r.detail}" for r in (bad or results))
    return not bad, text


def marker_in_db(dsn: str, marker: Marker, settle_s: float = 10.0) -> tuple[bool, str]:
    """(intact, detail): the marker's verify steps after the fault (their SQL checks on ``dsn``).

    Read again for up to ``settle_s`` while the load balancer has no server for it yet.
    """
    verify = marker.work.marker.verify
    if not verify:
        return False, "service_marker.verify declares no check: the marker cannot be verified"
    flow = marker.work.flow
    flow.dsn = dsn
    flow.values.update(marker.values)
    deadline = time.monotonic() + settle_s
    results = flow.run(verify)
    while _not_serving_yet(results) and time.monotonic() < deadline:
        time.sleep(0.5)
        results = flow.run(verify)
    return _verdict(results)


def _not_serving_yet(results: list[StepResult]) -> bool:
    """A failed read the load balancer answered for the service (no server up yet: 502-504, or no answer).

    Readiness is asked of each instance directly; the load balancer's own health checks
    let them back in a few checks later. The marker's question is whether the data
    survived, so its read waits for the service to be served again rather than
    blaming the data for the load balancer's lag.
    """
    return any(not r.ok and (r.status is None or r.status in (502, 503, 504)) for r in results)


def read_back(marker: Marker, times: int = 2) -> list[int | None]:
    """Run the marker's verify steps ``times`` over (a read through the load balancer fills a cache)."""
    statuses: list[int | None] = []
    marker.work.flow.values.update(marker.values)
    for _ in range(times):
        statuses += [r.status for r in marker.work.flow.run(marker.work.marker.verify)]
    return statuses


def cleanup_marker(marker: Marker) -> None:
    """The marker's cleanup steps (restore): the drill leaves no row of its own behind."""
    if marker.work.marker.cleanup:
        marker.work.flow.values.update(marker.values)
        marker.work.flow.run(marker.work.marker.cleanup)


@dataclass
class WriteLedger:
    """Writes the background traffic saw acknowledged (filled by :func:`traffic_source`'s mix)."""

    mix: StepMix | None = None

    def snapshot(self) -> list[Acknowledged]:
        return self.mix.acknowledged() if self.mix is not None else []


def background(
    work: Workload, ledger: WriteLedger, lb_url: str, rps: float, timeout_s: float, directory: Path
) -> Background:
    """The drill's traffic through the load balancer: the profile's requests, else its locustfile."""
    traffic = work.flow.profile.traffic
    if traffic.requests:
        return Traffic(lb_url, rps, traffic_source(work, ledger), timeout_s=timeout_s)
    from drillbook.load import background_traffic  # Locust's side only when the profile asks for it

    locust: Background = background_traffic(traffic.locustfile, lb_url, rps, directory)
    return locust


def traffic_source(work: Workload, ledger: WriteLedger) -> RequestSource:
    """The profile's weighted traffic steps, with auth; acknowledged writes go to ``ledger``."""
    traffic = work.flow.profile.traffic
    mix = StepMix(
        traffic.requests,
        auth=work.flow.auth_headers(),
        values={"run_id": work.flow.values["run_id"]},
        verify=traffic.verify_sql,
    )
    ledger.mix = mix
    return mix


def writes_in_db(dsn: str, acknowledged: list[Acknowledged]) -> tuple[int | None, str]:
    """How many acknowledged writes are missing from the database (None: could not tell)."""
    return sql_verify_all(dsn, acknowledged)


def cache_holds(redis_url: str, key: str, timeout_s: float = 0.5) -> tuple[bool, str]:
    """Ask Redis itself whether ``key`` is cached (no retries: an answer or an error, at once)."""
    import redis as redis_lib
    from redis.backoff import NoBackoff
    from redis.retry import Retry

    client = redis_lib.Redis.from_url(
        redis_url,
        socket_timeout=timeout_s,
        socket_connect_timeout=timeout_s,
        retry=Retry(NoBackoff(), 0),
        retry_on_timeout=False,
    )
    try:
        return bool(client.exists(key)), f"EXISTS {key}"
    except redis_lib.RedisError as exc:
        return False, f"Redis: {exc}"
    finally:
        client.close()
