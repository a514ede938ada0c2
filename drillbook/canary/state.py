"""What is deployed where, and where a rollout stands.

Two sources, kept apart on purpose:

* **The fleet as it is**, asked each time: every instance's release as the
  service profile's identity names it (:mod:`drillbook.core.identity`: a path, a
  header or a command) and its readiness as the profile defines it
  (:mod:`drillbook.core.readiness`), HAProxy's weights and server states (who gets
  traffic), and optionally the ``current`` release link on each host (what the
  next restart would run; read through the deploy playbook).
* **The rollout record**: the one fact the fleet cannot tell, *what ran before*
  the rollout and whether a person paused it for a go-ahead. When the profile
  has no identity it is also the only source of which release runs where (what
  drillbook itself deployed), and the fleet says so. It is a small JSON
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

from drillbook.canary.weights import read_weight
from drillbook.core import identity
from drillbook.core.errors import ConfigError, TargetUnreachable
from drillbook.core.haproxy import HAProxy
from drillbook.core.inventory import AppInstance, Inventory
from drillbook.core.journal import utc_now, write_atomic
from drillbook.core.paths import state_dir
from drillbook.core.profile import load_profile
from drillbook.core.readiness import Readiness

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


def recorded_version(rollout: Rollout | None, host: str) -> str | None:
    """What the rollout record says ``host`` runs (what drillbook deployed); None mid-move or unrecorded."""
    if rollout is None:
        return None
    if rollout.phase == "promoted":
        return rollout.version
    if rollout.phase == "rolled_back":
        return rollout.previous
    if rollout.phase in ("canary", "paused"):
        return rollout.version if host in rollout.canary_hosts else rollout.previous
    return None


# -- the fleet as it is ----------------------------------------------------------------


@dataclass(frozen=True)
class InstanceState:
    """One app host as seen from the control machine right now."""

    host: str
    instance: str
    url: str
    canary: bool
    version: str | None  # as the profile's identity names it (else the record); None when unknown
    ready: bool
    detail: str = ""
    weight: int | None = None
    initial_weight: int | None = None
    lb_status: str | None = None  # HAProxy's status: UP, DOWN, DRAIN, MAINT...
    linked: str | None = None  # the host's `current` link, when read
    previous: str | None = None  # the host's `previous` link, when read
    version_source: str = ""  # where ``version`` comes from (identity.describe)

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


@dataclass(frozen=True)
class Fleet:
    instances: list[InstanceState]
    rollout: Rollout | None = None
    lb_error: str | None = None
    #: How each instance's release is known: the profile's identity, or the rollout record.
    version_source: str = ""
    #: The instances name their release themselves (the profile has a service_identity).
    identified: bool = True

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
        if self.version is None and not self.identified:
            out.append(
                "no service_identity in the profile and no finished rollout on record: cannot tell which "
                "release runs (deploy.rollback --to VERSION records one)"
            )
        elif self.version is None:
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
            "version_source": self.version_source,
        }

    def notes(self) -> list[str]:
        """What a reader of the status must know beside the table (where versions come from)."""
        if self.identified:
            return []
        return [f"versions from {self.version_source}: what drillbook deployed, not asked of the instances"]


@dataclass(frozen=True)
class Probe:
    """One instance's release (per the profile's identity; None without one) and readiness."""

    version: str | None
    ready: bool
    detail: str
    #: False when the profile has no identity: ``version`` is unknown, not "no answer".
    identified: bool = True
    #: The readiness probe got an answer at all (any status, or a TCP connect).
    answered: bool = True


def probe_all(inv: Inventory, instances: Sequence[AppInstance], timeout_s: float = 2.0) -> dict[str, Probe]:
    """Release and readiness of every instance at once, as the service profile defines both; never raises."""
    profile = load_profile(inv)
    ready = Readiness(profile.health)
    releases = identity.ask_all(inv, instances, profile.identity, timeout_s)
    with ThreadPoolExecutor(max_workers=min(32, max(1, len(instances)))) as pool:
        samples = list(pool.map(lambda inst: ready.check(inst.url, timeout_s), instances))
    out = {}
    for inst, sample in zip(instances, samples, strict=True):
        release = releases[inst.host]
        ok = ready.ready(sample)
        where = profile.health.ready or "TCP connect"
        detail = f"{where} {sample.answer}"
        if profile.identity is not None and release.version is None:
            detail = f"{release.detail}; {detail}"
        answered = sample.status is not None or sample.connected is True
        out[inst.host] = Probe(
            release.version, ok, detail, identified=profile.identity is not None, answered=answered
        )
    return out


def read_fleet(
    inv: Inventory,
    *,
    canary_hosts: Sequence[str] = (),
    store: RolloutStore | None = None,
    links: dict[str, tuple[str | None, str | None]] | None = None,
) -> Fleet:
    """The fleet right now: versions, readiness, HAProxy weights and states, the rollout record."""
    topo = inv.topology
    probes = probe_all(inv, topo.app_instances)
    ident = load_profile(inv).identity
    identified = ident is not None
    if store is None and not identified:
        # The record is then the only source of which release runs where.
        store = RolloutStore.for_inventory(inv, str(inv.var("canary_state_file", "") or ""))
    record = store.load() if store else None
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
                version=probe.version
                if identified
                else recorded_version(record, inst.host) or (links or {}).get(inst.host, (None, None))[0],
                ready=probe.ready,
                detail=probe.detail,
                weight=weight,
                initial_weight=initial,
                lb_status=status,
                linked=(links or {}).get(inst.host, (None, None))[0],
                previous=(links or {}).get(inst.host, (None, None))[1],
                version_source=identity.describe(ident),
            )
        )
    return Fleet(instances, record, lb_error, version_source=identity.describe(ident), identified=identified)
