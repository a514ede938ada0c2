"""One-shot health checks of each piece of the service, from the control machine.

Used by ``lab.status``, by the steady-state checks of drills and by ``smoke``.
Each check has a short timeout and no retries, and returns a :class:`Health`
instead of raising: a status page must show every piece even when one is down.
Instances and the load balancer are asked for readiness the way the service
profile says (core/readiness.py): its path and ready statuses, or a TCP connect.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import asdict, dataclass
from typing import Any

from drillbook.core.haproxy import HAProxy
from drillbook.core.inventory import Inventory, Topology
from drillbook.core.probes import Sample, check_url
from drillbook.core.profile import Health as HealthProfile
from drillbook.core.readiness import Readiness


@dataclass(frozen=True)
class Health:
    """One piece's state for a status page; ``latency_ms`` is how long the check itself took."""

    piece: str
    ok: bool
    detail: str
    latency_ms: float
    endpoint: str

    def to_dict(self) -> dict[str, Any]:
        """Plain dict for ``--json`` output."""
        return asdict(self)


def _timed(piece: str, endpoint: str, fn: Callable[[], str]) -> Health:
    t0 = time.monotonic()
    try:
        detail = fn()
        ok = True
    except Exception as exc:
        detail, ok = (
            f"{type(exc).__name__}: {str(exc).strip().splitlines()[0] if str(exc).strip() else ''}",
            False,
        )
    return Health(piece, ok, detail, round((time.monotonic() - t0) * 1000, 2), endpoint)


def postgres(dsn: str, timeout_s: int = 2) -> Health:
    """Connect and ask the version; the endpoint shown has the password removed."""
    import psycopg

    def probe() -> str:
        with psycopg.connect(dsn, connect_timeout=timeout_s, autocommit=True) as conn:
            row = conn.execute("SHOW server_version").fetchone()
            return f"PostgreSQL {row[0] if row else '?'}"

    return _timed("postgres", _redact(dsn), probe)


def heartbeat(dsn: str, max_age_s: float = 5.0, timeout_s: int = 2) -> Health:
    """drillbook's own heartbeat in the service's database: the newest beat, and how old it is."""
    import psycopg

    from drillbook.core import heartbeat as hb

    def probe() -> str:
        with psycopg.connect(dsn, connect_timeout=timeout_s, autocommit=True) as conn:
            beat = hb.newest(conn)
            now = conn.execute("SELECT clock_timestamp()").fetchone()
        if beat is None:
            raise RuntimeError(f"no beat in {hb.TABLE}: is the heartbeat writer running?")
        age = beat.age_s(now[0] if now else None)
        detail = f"{beat.writer_id} seq {beat.seq}, {age:.1f}s old"
        if age > max_age_s:
            raise RuntimeError(f"stale: {detail} (limit {max_age_s:g}s)")
        return detail

    return _timed("heartbeat", _redact(dsn), probe)


def redis(url: str, timeout_s: float = 1.0) -> Health:
    """PING and ask the version, one attempt within ``timeout_s`` seconds."""
    import redis as redis_lib

    def probe() -> str:
        client = redis_lib.Redis.from_url(
            url, socket_timeout=timeout_s, socket_connect_timeout=timeout_s, retry_on_timeout=False
        )
        try:
            client.ping()
            return f"Redis {client.info('server').get('redis_version', '?')}"
        finally:
            client.close()

    return _timed("redis", _redact(url), probe)


def http(
    piece: str, url: str, timeout_s: float = 2.0, judge: Callable[[Sample], bool] | None = None
) -> Health:
    """One probe of ``url`` (``tcp://`` connects), good by ``judge`` (default: 2xx / connected)."""

    def probe() -> str:
        sample = check_url(url, timeout_s)
        what = "TCP" if sample.connected is not None else "HTTP"
        good = judge(sample) if judge else sample.ok
        if not good:
            raise RuntimeError(f"{what} {sample.answer}")
        return f"{what} {sample.answer}" + (f" {sample.body[:80]}" if sample.body else "")

    return _timed(piece, url, probe)


def ready(piece: str, base_url: str, readiness: Readiness) -> Health:
    """The readiness of one instance (or the load balancer), as the profile defines it."""
    return http(piece, readiness.url(base_url), readiness.health.timeout_s, readiness.ready)


def haproxy(address: str, backend: str) -> Health:
    """Ask the admin socket for ``backend``; ok as long as it has servers, the detail says how many are UP."""

    def probe() -> str:
        stats = HAProxy(address).stats(backend)
        up = sum(1 for s in stats if s.up)
        if not stats:
            raise RuntimeError(f"backend {backend} has no servers")
        return f"{up}/{len(stats)} servers UP in backend {backend}"

    return _timed("haproxy", address, probe)


def service(topo: Topology, readiness: Readiness | None = None) -> list[Health]:
    """Every piece of the service: database, cache, each instance's readiness, the load balancer.

    ``readiness`` is the profile's (:func:`of_inventory` passes it); without one, an
    instance is asked with a TCP connect, which is what a profile with no readiness
    path means too.
    """
    readiness = readiness or Readiness(HealthProfile())
    pieces = [postgres(topo.postgres_dsn)]
    if topo.redis_url:
        pieces.append(redis(topo.redis_url))
    pieces += [ready(inst.name, inst.url, readiness) for inst in topo.app_instances]
    if topo.haproxy_socket:
        pieces.append(haproxy(topo.haproxy_socket, topo.haproxy_backend))
    pieces.append(ready("lb", topo.lb_url, readiness))
    return pieces


def of_inventory(inv: Inventory) -> list[Health]:
    """:func:`service` with the inventory's own readiness (its service profile)."""
    return service(inv.topology, Readiness.of(inv))


def _redact(dsn: str) -> str:
    """Hide the password of a DSN in anything printed or journaled."""
    if "://" in dsn and "@" in dsn:
        scheme, rest = dsn.split("://", 1)
        creds, host = rest.rsplit("@", 1)
        user = creds.split(":", 1)[0]
        return f"{scheme}://{user}:***@{host}"
    return dsn


redact = _redact
