"""What a chaos drill will do, read from the inventory: targets, processes, probes, thresholds.

The plan is built before anything happens, so the same object drives the drill,
prints ``--dry-run`` and refuses a production inventory. Everything comes from
the inventory: which host pattern holds the database, cache or app instances
(``chaos_*_target``), how each service's main process is found (the roles'
``service_manager``: a pid file or a systemd unit), where the witnesses and
probes look (the topology's DSN and URLs), how readiness is asked and what
"not ready" and "degraded" mean (the service profile's ``service_health``,
core/readiness.py), and the thresholds the drill is judged against
(``chaos_*`` in ``group_vars``, validated by :class:`ChaosSettings`).

kill-redis is refused, in one line, where it cannot mean anything: the profile
says ``service_uses_redis: false``, or the inventory has no cache group.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Literal

import yaml
from pydantic import BaseModel, Field

from drillbook.chaos.witness import host_port, pg_address
from drillbook.core.errors import ConfigError
from drillbook.core.guard import refuse_production
from drillbook.core.health import redact
from drillbook.core.inventory import AppInstance, Inventory
from drillbook.core.paths import ROLES
from drillbook.core.profile import load_profile
from drillbook.core.readiness import Readiness

Fault = Literal["kill-db", "kill-redis", "kill-app"]
WitnessKind = Literal["postgres", "redis", "tcp"]


class ChaosSettings(BaseModel):
    """Thresholds and knobs of the chaos drills (``chaos_<field>`` in the inventory)."""

    # Judged limits.
    readiness_flip_limit_s: float = Field(5.0, gt=0)
    #: None: not judged (also what kill-redis uses when the profile has no degraded signal).
    degraded_flip_limit_s: float | None = Field(5.0, gt=0)
    recovery_limit_s: float = Field(60.0, gt=0)
    outage_p95_limit_ms: float = Field(1000.0, gt=0)
    redis_latency_p95_limit_ms: float = Field(250.0, gt=0)
    redis_error_pct_limit: float = Field(0.0, ge=0, le=100)
    app_error_pct_limit: float = Field(1.0, ge=0, le=100)
    #: None: not judged (also what kill-app uses when the inventory names no HAProxy admin socket).
    lb_detect_limit_s: float | None = Field(5.0, gt=0)
    # How the drill runs.
    duration_s: float = Field(5.0, gt=0, le=3600)
    baseline_s: float = Field(1.0, ge=0.2, le=60)
    traffic_rps: float = Field(50.0, ge=0, le=5000)
    traffic_timeout_s: float = Field(2.0, gt=0, le=30)
    probe_interval_s: float = Field(0.1, ge=0.01, le=5)
    probe_timeout_s: float = Field(1.0, gt=0, le=10)
    witness_interval_s: float = Field(0.05, ge=0.01, le=5)
    witness_timeout_s: float = Field(0.25, gt=0, le=5)
    witness_kill_timeout_s: float = Field(10.0, gt=0, le=120)
    # Where the faults land (Ansible host patterns) and what the cache holds.
    db_target: str = "db"
    cache_target: str = "cache"
    app_target: str = "app"
    #: The Redis key of the marker once read through the service (``{id}``: its captured id);
    #: None: ``cache_back`` is not judged (the cache is the service's business).
    cache_key_template: str | None = None


@dataclass(frozen=True)
class Target:
    """The service a drill kills: hosts, role, how its main process is found, where to witness it."""

    service: str  # postgres | redis | app
    role: str
    pattern: str  # Ansible --limit
    hosts: tuple[str, ...]
    process: str
    witness: WitnessKind
    address: str  # host:port the witness talks to
    host: str
    port: int
    pg_user: str = ""
    pg_database: str = ""


@dataclass(frozen=True)
class ChaosPlan:
    fault: Fault
    drill: str
    inventory: str
    environment: str
    target: Target
    instances: tuple[AppInstance, ...]
    lb_url: str
    postgres: str  # redacted DSN, where the marker row is checked
    redis_url: str | None
    haproxy_socket: str | None
    haproxy_backend: str
    settings: ChaosSettings
    readiness: Readiness
    killed_instance: AppInstance | None = None

    @property
    def readiness_urls(self) -> list[tuple[str, str]]:
        """(instance, readiness URL or ``tcp://host:port``) from the profile."""
        return [(i.name, self.readiness.url(i.url)) for i in self.instances]


SERVICES: dict[Fault, tuple[str, str]] = {
    "kill-db": ("postgres", "postgres"),
    "kill-redis": ("redis", "redis"),
    "kill-app": ("app", "app"),
}


def load_settings(inv: Inventory) -> ChaosSettings:
    return inv.settings(ChaosSettings, prefix="chaos_")


def guard_production(inv: Inventory, allow_production: bool) -> None:
    """A production inventory refuses chaos unless the operator said so (drillbook's one guard)."""
    refuse_production(inv, allow_production, "chaos drills are")


def _role_value(role: str, name: str) -> str | None:
    """A role's own default (defaults/ or vars/ main.yml), unrendered."""
    for sub in ("vars", "defaults"):
        path = ROLES / role / sub / "main.yml"
        try:
            data = yaml.safe_load(path.read_text()) or {}
        except (OSError, yaml.YAMLError):
            continue
        if isinstance(data, dict) and name in data:
            return str(data[name])
    return None


def _render(inv: Inventory, role: str, text: str, host: str, depth: int = 0) -> str:
    """Fill ``{{ name }}`` from the inventory, else from the role's defaults (for a printout only)."""
    if depth > 5:
        return text

    def one(match: re.Match[str]) -> str:
        name = match.group(1)
        value = inv.var(name, host=host)
        if value is None:
            raw = _role_value(role, name)
            return match.group(0) if raw is None else _render(inv, role, raw, host, depth + 1)
        return str(value)

    return _SIMPLE_VAR.sub(one, text)


_SIMPLE_VAR = re.compile(r"\{\{\s*(\w+)\s*\}\}")


def describe_process(inv: Inventory, role: str, host: str) -> str:
    """How the role finds the main process it SIGKILLs: pid file or systemd unit."""
    manager = inv.var(f"{role}_service_manager", host=host) or inv.var(
        "service_manager", "pidfile", host=host
    )
    if manager == "systemd":
        unit = inv.var(f"{role}_service_name", host=host) or _role_value(role, f"{role}_service_name")
        return f"MainPID of systemd unit {_render(inv, role, unit, host)}" if unit else f"{role} systemd unit"
    pidfile = inv.var(f"{role}_pidfile", host=host) or _role_value(role, f"{role}_pidfile")
    return f"pid in {_render(inv, role, str(pidfile), host)}" if pidfile else f"pid file of the {role} role"


def build_plan(
    inv: Inventory,
    fault: Fault,
    settings: ChaosSettings,
    *,
    instance: str | int | None = None,
) -> ChaosPlan:
    """Resolve targets, processes, witnesses and probes for ``fault`` against ``inv``."""
    topo = inv.topology
    service, role = SERVICES[fault]
    profile = load_profile(inv)
    if not topo.app_instances:
        raise ConfigError(f"inventory {inv.name} has no app hosts: nothing to probe")
    killed: AppInstance | None = None
    pg_user = pg_db = ""
    if fault == "kill-db":
        pattern = settings.db_target
        addr = pg_address(topo.postgres_dsn)
        host, port, kind = addr.host, addr.port, "postgres"
        pg_user, pg_db = addr.user, addr.database
    elif fault == "kill-redis":
        if not profile.uses_redis:
            raise ConfigError(
                f"inventory {inv.name}: service_uses_redis is false, the service has no Redis to lose"
            )
        if not topo.redis_url:
            raise ConfigError(f"inventory {inv.name} has no cache group: no Redis to kill")
        pattern = settings.cache_target
        host, port = host_port(topo.redis_url, 6379)
        kind = "redis"
    else:
        killed = topo.instance(instance if instance is not None else 1)
        if len(topo.app_instances) < 2:
            raise ConfigError("kill-app needs at least two app instances (the others take the traffic)")
        pattern = killed.host
        host, port = host_port(killed.url, 80)
        kind = "tcp"
    hosts = tuple(inv.hosts(pattern))
    if not hosts:
        raise ConfigError(f"inventory {inv.name}: pattern {pattern!r} matches no host")
    target = Target(
        service=service,
        role=role,
        pattern=pattern,
        hosts=hosts,
        process=describe_process(inv, role, hosts[0]),
        witness=kind,  # type: ignore[arg-type]
        address=f"{host}:{port}",
        host=host,
        port=port,
        pg_user=pg_user,
        pg_database=pg_db,
    )
    return ChaosPlan(
        fault=fault,
        drill=f"chaos.{fault}",
        inventory=inv.name,
        environment=inv.environment,
        target=target,
        instances=topo.app_instances,
        lb_url=topo.lb_url,
        postgres=redact(topo.postgres_dsn),
        redis_url=topo.redis_url,
        haproxy_socket=topo.haproxy_socket,
        haproxy_backend=topo.haproxy_backend,
        settings=settings,
        readiness=Readiness(profile.health),
        killed_instance=killed,
    )


WHAT_IS_VERIFIED: dict[Fault, list[str]] = {
    "kill-db": [
        "every instance's readiness answers not ready (any non-ready status, a timeout or a refused "
        "connection) within {readiness_flip_limit_s} s of the witnessed kill "
        "(readiness_flip_s, slowest instance)",
        "every instance ready again within {recovery_limit_s} s of the start command (recovery_s)",
        "requests during the outage fail fast: p95 <= {outage_p95_limit_ms} ms (outage_p95_ms)",
        "the marker row written before the kill is still in the database (data_intact)",
    ],
    "kill-redis": [
        "every instance stays ready and says it is degraded (the profile's degraded signal) "
        "within {degraded_flip_limit_s} s of the witnessed kill (degraded_flip_s; "
        "not judged when the profile has no degraded signal)",
        "the service keeps answering correctly: error_pct_during_outage <= {redis_error_pct_limit} %",
        "latency during the outage: p95 <= {redis_latency_p95_limit_ms} ms (outage_p95_ms)",
        "back after restart: ready and not degraded everywhere within {recovery_limit_s} s "
        "(recovery_s); with chaos_cache_key_template, the marker cached in Redis again (cache_back)",
        "the marker row is intact in the database (data_intact)",
    ],
    "kill-app": [
        "HAProxy marks the killed instance DOWN within {lb_detect_limit_s} s (lb_detect_s)",
        "the load balancer routes around it: error_pct_during_outage <= {app_error_pct_limit} %",
        "the other instances stay in rotation (HAProxy never marks them DOWN)",
        "the instance is back in rotation (HAProxy UP) within {recovery_limit_s} s of the start command",
        "the marker row is intact in the database (data_intact)",
    ],
}


def format_plan(plan: ChaosPlan, *, duration_s: float, traffic_rps: float, allowed: bool = True) -> str:
    """The ``--dry-run`` printout: what would be killed, watched, judged and restored."""
    s = plan.settings
    t = plan.target
    lines = [
        f"{plan.drill} against {plan.inventory} ({plan.environment}) - dry run, nothing is done",
        "",
        "fault:",
        f"  SIGKILL the main process of {t.service} on {', '.join(t.hosts)} (pattern {t.pattern!r})",
        f"  process: {t.process}",
        f"  via: playbooks/chaos.yml (role {t.role}, tasks_from kill)",
        f"  hold: {duration_s:g} s, then restore: playbooks/chaos.yml (role {t.role}, tasks_from start)",
        "",
        "witnesses (measure from the fault, not from the playbook):",
        f"  {t.service} at {t.address}: {_witness_text(t.witness)} every {s.witness_interval_s * 1000:g} ms, "
        f"timeout {s.witness_timeout_s * 1000:g} ms, no retries",
    ]
    if plan.haproxy_socket:
        lines.append(
            f"  HAProxy {plan.haproxy_socket} backend {plan.haproxy_backend}: server status "
            f"every {s.probe_interval_s * 1000:g} ms"
        )
    lines += ["", f"probes ({plan.readiness.describe()}):"]
    for name, url in plan.readiness_urls:
        verb = "connect" if plan.readiness.tcp else "GET"
        lines.append(
            f"  {name}: {verb} {url} every {s.probe_interval_s * 1000:g} ms, timeout {s.probe_timeout_s:g} s"
        )
    lines += [
        "",
        f"traffic: {traffic_rps:g} requests/s to {plan.lb_url} (the profile's service_traffic), "
        f"timeout {s.traffic_timeout_s:g} s",
        "marker: the profile's service_marker written before the kill, "
        f"checked afterwards in {plan.postgres}",
        "",
        "steady state first: every piece healthy (PostgreSQL, Redis, each instance's readiness, HAProxy, "
        "load balancer); otherwise no fault is injected",
        "",
        "verified:",
    ]
    limits = {k: ("(not judged)" if v is None else v) for k, v in s.model_dump().items()}
    lines += [f"  - {text.format(**limits)}" for text in WHAT_IS_VERIFIED[plan.fault]]
    if not allowed:
        lines += ["", "refused: this inventory is production; add --allow-production to run it"]
    return "\n".join(lines)


def _witness_text(kind: WitnessKind) -> str:
    return {
        "postgres": "PostgreSQL startup packet (authentication request = accepting)",
        "redis": "Redis PING (+PONG = accepting)",
        "tcp": "TCP connect",
    }[kind]
