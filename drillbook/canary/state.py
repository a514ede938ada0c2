"""What is deployed where, and where a rollout stands.

Two sources, kept apart on purpose:

* **The fleet as it is**, asked each time: every instance's ``/version`` and
  ``/health/ready`` (what is really serving), HAProxy's weights and server states
  (who gets traffic), and optionally the ``current`` release link on each host
  (what the next restart would run; read through the deploy playbook).
* **The rollout record**: the one fact the fleet cannot tell, *what ran before*
  the rollout and whether a person paused it for a go-ahead. It is a small JSON
  file on the control machine, keyed by the inventory's lock scope, written
  atomically at each transition (canary -> paused / promoting -> promoted /
  rolled_back), so ``deploy.promote`` and ``deploy.rollback`` in another process
  (or after a crash) know what to do.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Literal

import httpx

from drillbook.canary.weights import read_weight
from drillbook.core.errors import ConfigError, TargetUnreachable
from drillbook.core.haproxy import HAProxy
from drillbook.core.inventory import AppInstance, Inventory
from drillbook.core.journal import utc_now, write_atomic
from drillbook.core.paths import state_dir

Phase = Literal["canary", "paused", "promoting", "promoted", "rolling_back", "rolled_back", "failed"]
#: Phases after which the fleet is not in one consistent release.
UNFINISHED: tuple[str, ...] = ("canary", "paused", "promoting", "rolling_back", "failed")


@dataclass
class Rollout:
    """The record of the latest rollout against one inventory."""

    version: str
    previous: str
    canary_hosts: list[str]
    phase: Phase = "canary"
    started_at: str = field(default_factory=utc_now)
    updated_at: str = field(default_factory=utc_now)
    report_dir: str | None = None
    reason: str = ""
    history: list[dict[str, str]] = field(default_factory=list)

    @property
    def unfinished(self) -> bool:
        return self.phase in UNFINISHED

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> Rollout:
        known = set(cls.__dataclass_fields__)
        return cls(**{k: v for k, v in data.items() if k in known})


class RolloutStore:
    """Load and save the rollout record of one inventory."""

    def __init__(self, path: Path) -> None:
        self.path = path

    @classmethod
    def for_inventory(cls, inv: Inventory, configured: str = "") -> RolloutStore:
        if configured:
            return cls(Path(configured))
        digest = hashlib.sha1(inv.lock_scope.encode()).hexdigest()[:16]
        return cls(state_dir() / "canary" / f"{digest}.json")

    def load(self) -> Rollout | None:
        try:
            return Rollout.from_dict(json.loads(self.path.read_text()))
        except FileNotFoundError:
            return None
        except (OSError, ValueError, TypeError) as exc:
            raise ConfigError(
                f"rollout record {self.path} is unreadable ({exc}); delete it if stale"
            ) from exc

    def save(self, rollout: Rollout, phase: Phase | None = None, reason: str | None = None) -> Rollout:
        if phase is not None:
            rollout.phase = phase
        if reason is not None:
            rollout.reason = reason
        rollout.updated_at = utc_now()
        rollout.history.append({"at": rollout.updated_at, "phase": rollout.phase, "reason": rollout.reason})
        write_atomic(self.path, json.dumps(rollout.to_dict(), indent=2) + "\n")
        return rollout

    def clear(self) -> None:
        self.path.unlink(missing_ok=True)


# -- the fleet as it is ----------------------------------------------------------------


@dataclass(frozen=True)
class InstanceState:
    """One app host as seen from the control machine right now."""

    host: str
    instance: str
    url: str
    canary: bool
    version: str | None  # from /version; None when it does not answer
    ready: bool
    detail: str = ""
    weight: int | None = None
    initial_weight: int | None = None
    lb_status: str | None = None  # HAProxy's status: UP, DOWN, DRAIN, MAINT...
    linked: str | None = None  # the host's `current` link, when read
    previous: str | None = None  # the host's `previous` link, when read

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


@dataclass(frozen=True)
class Fleet:
    instances: list[InstanceState]
    rollout: Rollout | None = None
    lb_error: str | None = None

    @property
    def versions(self) -> set[str | None]:
        return {i.version for i in self.instances}

    @property
    def version(self) -> str | None:
        """The one version every instance runs, or None when they differ (or one does not answer)."""
        versions = self.versions
        return next(iter(versions)) if len(versions) == 1 else None

    @property
    def weights_drifted(self) -> list[InstanceState]:
        return [i for i in self.instances if i.weight is not None and i.weight != i.initial_weight]

    @property
    def steady(self) -> bool:
        """One version everywhere, all ready, weights as configured, every server UP in HAProxy."""
        return (
            self.version is not None
            and all(i.ready for i in self.instances)
            and not self.weights_drifted
            and self.lb_error is None
            and all((i.lb_status or "").startswith("UP") for i in self.instances)
        )

    def problems(self) -> list[str]:
        """Why the fleet is not steady, one phrase each."""
        out: list[str] = []
        if self.version is None:
            out.append("versions differ: " + ", ".join(f"{i.instance}={i.version}" for i in self.instances))
        out += [f"{i.instance} not ready ({i.detail})" for i in self.instances if not i.ready]
        out += [
            f"{i.instance} weight {i.weight} (configured {i.initial_weight})" for i in self.weights_drifted
        ]
        if self.lb_error:
            out.append(f"HAProxy: {self.lb_error}")
        out += [
            f"{i.instance} is {i.lb_status} in HAProxy"
            for i in self.instances
            if i.lb_status is not None and not i.lb_status.startswith("UP")
        ]
        return out

    def to_dict(self) -> dict[str, Any]:
        return {
            "version": self.version,
            "steady": self.steady,
            "problems": self.problems(),
            "instances": [i.to_dict() for i in self.instances],
            "rollout": self.rollout.to_dict() if self.rollout else None,
            "lb_error": self.lb_error,
        }


@dataclass(frozen=True)
class Probe:
    version: str | None
    ready: bool
    detail: str


def probe_instance(client: httpx.Client, url: str) -> Probe:
    """``/version`` and ``/health/ready`` of one instance; never raises."""
    try:
        version = client.get(f"{url}/version").json().get("version")
    except (httpx.HTTPError, ValueError, AttributeError) as exc:
        return Probe(None, False, f"/version: {type(exc).__name__}")
    try:
        ready = client.get(f"{url}/health/ready")
    except httpx.HTTPError as exc:
        return Probe(str(version), False, f"/health/ready: {type(exc).__name__}")
    return Probe(str(version), ready.status_code == 200, f"/health/ready {ready.status_code}")


def probe_all(instances: Sequence[AppInstance], timeout_s: float = 2.0) -> dict[str, Probe]:
    """Probe every instance at once (a fleet of 50 answers in one timeout, not 50)."""
    transport = httpx.HTTPTransport(retries=0)
    with (
        httpx.Client(timeout=timeout_s, transport=transport) as client,
        ThreadPoolExecutor(max_workers=min(32, max(1, len(instances)))) as pool,
    ):
        results = list(pool.map(lambda inst: probe_instance(client, inst.url), instances))
    return {inst.host: res for inst, res in zip(instances, results, strict=True)}


def read_fleet(
    inv: Inventory,
    *,
    canary_hosts: Sequence[str] = (),
    store: RolloutStore | None = None,
    links: dict[str, tuple[str | None, str | None]] | None = None,
) -> Fleet:
    """The fleet right now: versions, readiness, HAProxy weights and states, the rollout record."""
    topo = inv.topology
    probes = probe_all(topo.app_instances)
    lb: dict[str, tuple[int | None, int | None, str | None]] = {}
    lb_error = None
    try:
        haproxy = HAProxy(topo.haproxy_socket or "")
        stats = {s.server: s for s in haproxy.stats(topo.haproxy_backend)}
        for inst in topo.app_instances:
            if inst.name in stats:
                w = read_weight(haproxy, topo.haproxy_backend, inst.name)
                lb[inst.name] = (w.current, w.initial, stats[inst.name].status)
            else:
                lb_error = f"backend {topo.haproxy_backend} has no server {inst.name}"
    except (ConfigError, TargetUnreachable) as exc:
        lb_error = str(exc)
    instances = []
    for inst in topo.app_instances:
        probe = probes[inst.host]
        weight, initial, status = lb.get(inst.name, (None, None, None))
        instances.append(
            InstanceState(
                host=inst.host,
                instance=inst.name,
                url=inst.url,
                canary=inst.host in canary_hosts,
                version=probe.version,
                ready=probe.ready,
                detail=probe.detail,
                weight=weight,
                initial_weight=initial,
                lb_status=status,
                linked=(links or {}).get(inst.host, (None, None))[0],
                previous=(links or {}).get(inst.host, (None, None))[1],
            )
        )
    return Fleet(instances, store.load() if store else None, lb_error)
