"""The moves every deploy task shares: which hosts are canary, and how to shift, deploy and roll back.

:class:`FleetOps` is used by the canary drill, ``deploy.promote`` and
``deploy.rollback`` alike, so "roll back" means the same thing everywhere:
canary weight 0 first (users stop meeting the bad release within a
millisecond), then the previous release redeployed, then readiness verified on
the instances themselves, then the configured weights restored.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass

from drillbook.canary import releases
from drillbook.canary.settings import CanarySettings
from drillbook.canary.state import Probe, RolloutStore, probe_all
from drillbook.canary.weights import Weights
from drillbook.core.errors import CheckFailed, ConfigError, TargetUnreachable
from drillbook.core.haproxy import HAProxy
from drillbook.core.inventory import AppInstance, Inventory

Note = Callable[[str], None]


@dataclass(frozen=True)
class Plan:
    """Canary and baseline instances of the inventory."""

    canary: list[AppInstance]
    baseline: list[AppInstance]

    @property
    def canary_hosts(self) -> list[str]:
        return [i.host for i in self.canary]

    @property
    def baseline_hosts(self) -> list[str]:
        return [i.host for i in self.baseline]

    @property
    def everyone(self) -> list[AppInstance]:
        return [*self.canary, *self.baseline]


def plan(inv: Inventory) -> Plan:
    """The ``canary`` group's app hosts (else the first app host) against the other app hosts."""
    instances = list(inv.topology.app_instances)
    if not instances:
        raise ConfigError(f"inventory {inv.name} has no app hosts")
    wanted = inv.hosts("canary") if inv.has_group("canary") else [instances[0].host]
    canary = [i for i in instances if i.host in wanted]
    if not canary:
        raise ConfigError(f"the canary group ({', '.join(wanted)}) has no host of the app group")
    baseline = [i for i in instances if i.host not in wanted]
    if not baseline:
        raise ConfigError(
            "every app host is in the canary group: a canary needs a baseline to be compared with"
        )
    return Plan(canary, baseline)


class FleetOps:
    """Weights, deploys and readiness for one inventory."""

    def __init__(self, inv: Inventory, settings: CanarySettings, note: Note) -> None:
        self.inv = inv
        self.settings = settings
        self.note = note
        self.plan = plan(inv)
        topo = inv.topology
        if not topo.haproxy_socket:
            raise ConfigError(
                "no HAProxy admin socket in the inventory (haproxy_admin_socket on the lb host): "
                "a canary shifts traffic through HAProxy's runtime API"
            )
        self.haproxy = HAProxy(topo.haproxy_socket)
        self.backend = topo.haproxy_backend
        self.weights = Weights(
            self.haproxy,
            self.backend,
            [i.name for i in self.plan.canary],
            [i.name for i in self.plan.baseline],
        )
        self.store = RolloutStore.for_inventory(inv, settings.state_file)

    def check_lb(self) -> None:
        """Fail early and clearly when the admin socket is missing or the servers are unknown."""
        try:
            known = {s.server for s in self.haproxy.stats(self.backend)}
        except TargetUnreachable as exc:
            raise TargetUnreachable(
                f"{exc}; is HAProxy running (inv lab.status) and haproxy_admin_socket right?"
            ) from exc
        missing = [i.name for i in self.plan.everyone if i.name not in known]
        if missing:
            raise ConfigError(
                f"HAProxy backend {self.backend} has no server(s) {', '.join(missing)} "
                f"(servers: {', '.join(sorted(known)) or 'none'}); app_instance names must match"
            )
        _ = self.weights.initial

    # -- deploys ----------------------------------------------------------------
    def deploy(
        self,
        instances: Sequence[AppInstance],
        version: str,
        *,
        serial: str = "100%",
        migrate: bool = False,
        drain: bool = True,
        cancellable: bool = True,
    ) -> None:
        """Run the deploy playbook; only the canary deploy migrates (promotion and rollback do not).

        ``drain=False`` for hosts already at weight 0: nothing to drain, three tasks fewer.
        """
        hosts = [i.host for i in instances]
        if not hosts:
            return
        self.note(f"deploying {version} to {', '.join(i.name for i in instances)} (batches of {serial})")
        releases.deploy(
            self.inv,
            hosts,
            version,
            self.settings,
            serial=serial,
            migrate=migrate,
            drain=drain,
            progress=self.note,
            cancellable=cancellable,
        )

    def probe(self, instances: Sequence[AppInstance]) -> dict[str, Probe]:
        return probe_all(self.inv, instances)

    def wait_serving(self, instances: Sequence[AppInstance], version: str, timeout_s: float = 15.0) -> float:
        """Wait until every instance names ``version`` (profile identity) and is ready; the seconds it took.

        Without an identity in the profile only readiness is waited for: the deploy
        playbook has already restarted the instances on ``version``.
        """
        t0 = time.monotonic()
        while True:
            probes = probe_all(self.inv, instances)
            wrong = [
                f"{i.name}: {p.version or 'no answer'} ({p.detail})"
                for i in instances
                if ((p := probes[i.host]).identified and p.version != version) or not p.ready
            ]
            if not wrong:
                return time.monotonic() - t0
            if time.monotonic() - t0 > timeout_s:
                raise CheckFailed(f"not serving {version} after {timeout_s:.0f}s: {'; '.join(wrong)}")
            time.sleep(0.1)

    def wait_lb_up(self, instances: Sequence[AppInstance], timeout_s: float = 10.0) -> None:
        """Wait until HAProxy holds ``instances`` UP (its checks need ``rise`` passes after a restart)."""
        t0 = time.monotonic()
        names = {i.name for i in instances}
        while True:
            down = [
                f"{s.server} {s.status}"
                for s in self.haproxy.stats(self.backend)
                if s.server in names and not s.up
            ]
            if not down:
                return
            if time.monotonic() - t0 > timeout_s:
                raise CheckFailed(f"HAProxy does not hold {', '.join(down)} UP after {timeout_s:.0f}s")
            time.sleep(0.1)

    def off_target(self, version: str) -> list[AppInstance]:
        """Instances not serving ``version`` (or not answering at all; all of them when the
        profile has no identity: none can say what it runs, so each is redeployed)."""
        probes = probe_all(self.inv, self.plan.everyone)
        return [
            i
            for i in self.plan.everyone
            if not (p := probes[i.host]).identified or p.version != version or not p.ready
        ]

    # -- the rollback every path shares -------------------------------------------
    def rollback(self, version: str, instances: Sequence[AppInstance] | None = None) -> dict[str, float]:
        """Canary weight 0, ``version`` back on the instances that need it, verified, weights restored.

        Returns timings (seconds from the call): ``canary_off_s``, ``serving_s``, ``restored_s``.
        Not cancellable: a rollback that stops halfway is worse than one that finishes.
        """
        t0 = time.monotonic()
        self.weights.canary_off()
        out = {"canary_off_s": time.monotonic() - t0}
        self.note(f"canary weight 0 ({1000 * out['canary_off_s']:.2f} ms); rolling back to {version}")
        todo = list(instances) if instances is not None else self.off_target(version)
        if todo:
            canary_names = {i.name for i in self.plan.canary}
            # Hosts at weight 0 take no traffic: deploy them all at once; the rest in batches.
            idle = [i for i in todo if i.name in canary_names]
            busy = [i for i in todo if i.name not in canary_names]
            self.deploy(idle, version, drain=False, cancellable=False)
            if idle and busy:
                # The canary hosts run the target again: let them serve while the rest rolls.
                self.wait_serving(idle, version)
                self.restore_canary()
            self.deploy(busy, version, serial=self.settings.rollback_serial, cancellable=False)
            self.wait_serving(todo, version)
        out["serving_s"] = time.monotonic() - t0
        # A deploy cut short may have left a server drained; and HAProxy needs `rise`
        # passed checks after a restart before it routes there again.
        self.restore_states(todo)
        if todo:
            self.wait_lb_up(todo)
        self.weights.restore()
        out["restored_s"] = time.monotonic() - t0
        self.note(f"{version} serving everywhere, weights restored ({out['restored_s']:.1f}s)")
        return out

    def restore_canary(self) -> None:
        """The canary servers back at their configured weights (the baseline left as it is)."""
        init = self.weights.initial
        for inst in self.plan.canary:
            self.haproxy.set_weight(self.backend, inst.name, init[inst.name])

    def restore_states(self, redeployed: Sequence[AppInstance] = ()) -> None:
        """Servers back to admin state ``ready``: those just redeployed, and any left DRAIN.

        A deploy cut short between drain and re-enable leaves its server drained (and
        while it is also DOWN, HAProxy shows only DOWN). A server someone else put in
        MAINT and that this rollout did not touch is left alone.
        """
        names = {i.name for i in redeployed}
        stats = {s.server: s for s in self.haproxy.stats(self.backend)}
        for inst in self.plan.everyone:
            stat = stats.get(inst.name)
            if inst.name in names or (stat is not None and stat.status.startswith("DRAIN")):
                self.haproxy.set_state(self.backend, inst.name, "ready")
