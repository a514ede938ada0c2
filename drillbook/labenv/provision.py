"""The lab: bring a service up on this machine, report its health, take it down.

``up`` runs ``playbooks/lab.yml`` (Ansible: everything on the hosts) for any lab
inventory: the reference service's (``inventory/lab``) or the ledger's
(``inventory/lab-ledger``). When the inventory deploys the reference service's
tarball, ``up`` builds it first (Python: it is a file on the control machine); a
release of any other kind is the inventory's business. ``status`` asks every
piece directly, each instance on the readiness path of the service profile.
``down`` runs ``playbooks/lab-down.yml``.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

from drillbook.core import health
from drillbook.core.ansible import PlaybookResult, ProgressFn, run_playbook
from drillbook.core.errors import ConfigError
from drillbook.core.inventory import Inventory
from drillbook.core.redact import redact, remember_inventory


@dataclass
class LabStatus:
    """What ``inv lab.status`` shows: each piece's health, and where a drill or a person reaches the lab."""

    inventory: str
    pieces: list[health.Health]
    lb_url: str
    postgres_dsn: str
    redis_url: str | None
    app_instances: list[str]
    haproxy_socket: str | None
    haproxy_stats_url: str | None

    @property
    def healthy(self) -> bool:
        return all(p.ok for p in self.pieces)

    def to_dict(self) -> dict[str, Any]:
        """Machine-readable status, redacted: DSNs keep user, host, port and database, never a password."""
        data: dict[str, Any] = redact(
            {
                "inventory": self.inventory,
                "healthy": self.healthy,
                "lb_url": self.lb_url,
                "postgres_dsn": self.postgres_dsn,
                "redis_url": self.redis_url,
                "app_instances": self.app_instances,
                "haproxy_socket": self.haproxy_socket,
                "haproxy_stats_url": self.haproxy_stats_url,
                "pieces": [p.to_dict() for p in self.pieces],
            }
        )
        return data


def artifact_path(inv: Inventory, version: str | None = None) -> Path:
    """Where the release artifact of ``version`` (default ``app_version``) is, or will be, built."""
    artifact_dir = Path(str(inv.require("app_artifact_dir")))
    return artifact_dir / f"refservice-{version or inv.require('app_version')}.tar.gz"


def build_release(
    inv: Inventory,
    version: str,
    *,
    error_rate: float = 0.0,
    latency_ms: int = 0,
    misconfigure: tuple[str, ...] = (),
    latency_share: float = 1.0,
) -> Path:
    """Build the reference service's artifact for ``version`` into the inventory's artifact dir."""
    from drillbook.labenv.release import build_release as build

    if not deploys_reference_tarball(inv):
        raise ConfigError(
            f"inventory {inv.name} does not deploy the reference service's tarball "
            f"(app_release_kind {inv.var('app_release_kind', 'tarball')}): "
            "its releases are built by the service's own tooling"
        )

    if not 0.0 <= error_rate <= 1.0:
        raise ConfigError(f"--error-rate must be between 0 and 1, got {error_rate}")
    if latency_ms < 0:
        raise ConfigError(f"--latency-ms must be >= 0, got {latency_ms}")
    try:
        return build(
            version,
            artifact_path(inv, version).parent,
            error_rate=error_rate,
            latency_ms=latency_ms,
            misconfigure=misconfigure,
            latency_share=latency_share,
        )
    except ValueError as exc:
        raise ConfigError(str(exc)) from exc


def deploys_reference_tarball(inv: Inventory) -> bool:
    """The inventory's release is the reference service's tarball, which the lab builds itself."""
    if inv.var("app_release_kind", "tarball") != "tarball" or not inv.var("app_artifact_dir"):
        return False
    return str(inv.var("app_release_source", "")) == str(artifact_path(inv))


def up(inv: Inventory, progress: ProgressFn | None = None) -> PlaybookResult:
    """Provision and start every piece; idempotent (a second run changes nothing)."""
    if deploys_reference_tarball(inv) and not artifact_path(inv).exists():
        build_release(inv, str(inv.require("app_version")))
    return run_playbook(inv, "lab.yml", progress=progress)


def down(inv: Inventory, *, purge: bool = False, progress: ProgressFn | None = None) -> PlaybookResult:
    """Stop everything; ``purge`` also deletes the lab's state directory."""
    return run_playbook(
        inv, "lab-down.yml", extravars={"lab_purge": purge}, progress=progress, cancellable=False
    )


def status(inv: Inventory) -> LabStatus:
    remember_inventory(inv)
    topo = inv.topology
    pieces = health.of_inventory(inv)
    heartbeat_dsn = str(inv.var("heartbeat_dsn", "") or "")
    if heartbeat_dsn:  # drillbook's own witness, not the service's: a lab piece, never a steady state
        max_age = float(inv.var("heartbeat_max_age_s", 5.0))
        pieces.insert(1, health.heartbeat(heartbeat_dsn, max_age))
    return LabStatus(
        inventory=inv.name,
        pieces=pieces,
        lb_url=topo.lb_url,
        postgres_dsn=topo.postgres_dsn,
        redis_url=topo.redis_url,
        app_instances=[i.url for i in topo.app_instances],
        haproxy_socket=topo.haproxy_socket,
        haproxy_stats_url=topo.haproxy_stats_url,
    )
