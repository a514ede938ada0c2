"""``chaos.recover``: put back everything a chaos drill may have stopped.

A drill's restore phase runs on pass, fail, error, Ctrl-C and SIGTERM, but not
when the control machine itself dies (SIGKILL, a lost laptop, a CI runner that
timed out). Then PostgreSQL, Redis or an app instance stays down. This drill
starts every service a chaos drill can kill, in dependency order (database,
cache, app instances), each through the same role task files the drills use
(``start`` then ``wait_ready``), and then waits until every piece is healthy.
Starting a running service changes nothing, so it is safe to run any time.

A host Ansible reports unreachable cannot be started from here: the drill still
starts the services on the other hosts, then ends ``error`` (exit 2) naming the
host, instead of waiting ``chaos_recovery_limit_s`` for a service that nothing
started and blaming it with failed health checks.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar

from pydantic import Field

from drillbook.chaos.plan import ChaosSettings, load_settings
from drillbook.chaos.witness import Check, host_port, pg_address, postgres_check, redis_check, tcp_check
from drillbook.core import health
from drillbook.core.ansible import run_playbook
from drillbook.core.checks import Measurements, Outcome, each_ok, witnessed
from drillbook.core.drill import Drill, DrillRun
from drillbook.core.errors import DrillbookError, TargetUnreachable
from drillbook.core.inventory import Inventory
from drillbook.core.probes import wait_until
from drillbook.core.readiness import Readiness

PLAYBOOK = "chaos.yml"


@dataclass(frozen=True)
class Service:
    name: str
    role: str
    pattern: str
    witnesses: tuple[tuple[str, Check], ...]


def services(inv: Inventory, s: ChaosSettings) -> list[Service]:
    """The services chaos drills kill, in the order they must come back."""
    topo = inv.topology
    out = []
    pg = pg_address(topo.postgres_dsn)
    out.append(
        Service(
            "postgres",
            "postgres",
            s.db_target,
            ((f"{pg.host}:{pg.port}", postgres_check(pg.host, pg.port, pg.user, pg.database)),),
        )
    )
    if topo.redis_url and inv.hosts(s.cache_target):
        host, port = host_port(topo.redis_url, 6379)
        out.append(Service("redis", "redis", s.cache_target, ((f"{host}:{port}", redis_check(host, port)),)))
    apps = []
    for inst in topo.app_instances:
        host, port = host_port(inst.url, 80)
        apps.append((inst.name, tcp_check(host, port)))
    out.append(Service("app", "app", s.app_target, tuple(apps)))
    return out


class Recovered(Measurements):
    """How long until every piece was healthy, and each piece's last health (one check per piece)."""

    healthy_after_s: float | None = witnessed("health checks of every piece every 0.25 s")
    pieces: list[Outcome] = Field(default_factory=list, exclude=True)  # checks healthy:<piece>


class Recover(Drill[list[Service], None, Recovered]):
    """Start PostgreSQL, Redis and every app instance unless running; wait until all is healthy."""

    name: ClassVar[str] = "chaos.recover"
    runbook: ClassVar[str | None] = "runbooks/db-outage.md"
    measured = Recovered
    checks = (each_ok("pieces"),)

    def __init__(self, settings: ChaosSettings) -> None:
        super().__init__(thresholds=settings)
        self.s = settings

    @classmethod
    def for_inventory(cls, inv: Inventory) -> Recover:
        return cls(load_settings(inv))

    def preflight(self, run: DrillRun) -> list[Service]:
        to_start = services(run.inventory, self.s)
        down = []
        for svc in to_start:
            for where, check in svc.witnesses:
                up, detail = check()
                if not up:
                    down.append(f"{svc.name} {where}: {detail}")
        run.measure("down_before", down, witness="direct protocol probes")
        run.note("down: " + "; ".join(down) if down else "every service accepts connections already")
        return to_start

    def act(self, run: DrillRun, plan: list[Service]) -> None:
        started: dict[str, int] = {}
        failed: list[str] = []
        unreachable: list[str] = []
        for svc in plan:
            with run.phase(f"start-{svc.name}") as record:
                try:
                    pb = run_playbook(
                        run.inventory,
                        PLAYBOOK,
                        limit=svc.pattern,
                        extravars={
                            "chaos_target": svc.pattern,
                            "chaos_role": svc.role,
                            "chaos_action": "start",
                        },
                        progress=run.note,
                        cancellable=False,
                    )
                except DrillbookError as exc:  # go on with the others, report at the end
                    record.ok = False
                    record.detail = str(exc)
                    failed.append(f"{svc.name}: {exc}")
                    if isinstance(exc, TargetUnreachable):
                        unreachable.append(f"{svc.name} ({exc})")
                    continue
                started[svc.name] = pb.changed
                record.detail = f"{pb.changed} changed"
        run.measure("changed", started, witness="ansible-runner stats")
        run.measure("start_failures", failed)
        if unreachable:
            raise TargetUnreachable(
                "could not recover " + "; ".join(unreachable) + ": not waiting for what could not be started"
            )

    def observe(self, run: DrillRun, plan: list[Service], acted: None) -> Recovered:
        topo = run.inventory.topology
        readiness = Readiness.of(run.inventory)
        last: list[health.Health] = []

        def all_healthy() -> bool:
            nonlocal last
            last = health.service(topo, readiness)
            return all(p.ok for p in last)

        waited = wait_until(all_healthy, self.s.recovery_limit_s, 0.25)
        return Recovered(
            healthy_after_s=round(waited, 3) if waited is not None else None,
            pieces=[
                Outcome(
                    name=f"healthy:{p.piece}",
                    ok=p.ok,
                    value=p.ok,
                    expected=True,
                    detail="" if p.ok else p.detail,
                )
                for p in last
            ],
        )


def _healthy(piece: health.Health) -> Outcome:
    """One piece's last health as the check ``healthy:<piece>``."""
    return Outcome(
        name=f"healthy:{piece.piece}",
        ok=piece.ok,
        value=piece.ok,
        expected=True,
        detail="" if piece.ok else piece.detail,
    )
