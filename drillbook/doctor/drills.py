"""Drill by drill, what each one needs from the profile and the live service, and what is missing.

A rule reads :class:`~drillbook.doctor.facts.Facts` and returns findings: a
*blocker* (the drill would end ``error``, or judge the service on something it
cannot see) or a *note* (the drill runs, but judges less: kill-redis without a
degraded signal, audit checks with no target). Every finding names what to fix:
the ``service_*`` variable, the path that answered 404, the metric that does not
exist, the inventory group that is empty.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from drillbook.doctor.facts import Answer, Facts


@dataclass(frozen=True)
class Finding:
    """One line of the doctor's output; ``blocks=False`` makes it a note that still lets the drill run.

    ``applies=False``: the drill does not apply to this service at all (kill-redis
    without Redis); the drill refuses to run, naming why, and the checklist cannot
    demand it of this service.
    """

    text: str
    blocks: bool = True
    applies: bool = True


@dataclass(frozen=True)
class DrillCheck:
    """One drill's verdict from the doctor: can it run, and what is missing."""

    drill: str
    findings: tuple[Finding, ...]

    @property
    def can_run(self) -> bool:
        """True when no finding blocks; notes alone never stop a drill."""
        return not any(f.blocks for f in self.findings)

    @property
    def applies(self) -> bool:
        """False when the drill does not apply to this service (a finding says why)."""
        return all(f.applies for f in self.findings)


def _names(names: list[str]) -> str:
    return ", ".join(names)


def _database(f: Facts) -> list[Finding]:
    if f.postgres.ok:
        return []
    return [Finding(f"database unreachable at {f.postgres.endpoint}: {f.postgres.detail}")]


def _readiness(f: Facts) -> list[Finding]:
    """The profile's readiness on every instance: a path that does not exist, an instance not ready now."""
    r, h = f.readiness, f.profile.health
    out: list[Finding] = []
    if not f.topo.app_instances:
        return [Finding("the inventory has no app hosts: nothing to probe")]
    missing = [n for n, s in f.ready.items() if s.status is not None and s.status in (404, 405, 410)]
    if missing:
        status = f.ready[missing[0]].status
        out.append(Finding(f"service_health.ready={h.ready} answers {status} on {_names(missing)}"))
    down = [n for n, s in f.ready.items() if n not in missing and not r.ready(s)]
    if down:
        answers = _names([f"{n} {r.state(f.ready[n])}" for n in down])
        out.append(Finding(f"not ready now ({r.describe()}): {answers}"))
    if h.ready is None:
        out.append(Finding("service_health.ready absent: readiness is a TCP connect", blocks=False))
    live = [n for n, a in f.live.items() if a.no_such_path]
    if live:
        out.append(Finding(f"service_health.live={h.live} answers {f.live[live[0]].text} on {_names(live)}"))
    return out


def _lb(f: Facts) -> list[Finding]:
    s = f.lb_ready
    if s is None or s.status is not None or s.connected:
        return []
    return [Finding(f"load balancer {f.topo.lb_url} unreachable ({s.answer})")]


def _profile(f: Facts, *needs: str) -> list[Finding]:
    return [Finding(f"{var} absent from the profile") for var in f.profile.missing(*needs)]


def _answers(what: str, answers: dict[str, Answer]) -> list[Finding]:
    bad = {n: a for n, a in answers.items() if a.no_such_path or a.unreachable}
    if not bad:
        return []
    first = next(iter(bad.values()))
    return [Finding(f"{what} {first.url} answers {first.text} on {_names(list(bad))}")]


def backup(f: Facts) -> list[Finding]:
    """``backup.run`` needs a reachable database and hosts in the ``db`` group."""
    return _database(f) + _hosts(f, "db")


def restore_test(f: Facts) -> list[Finding]:
    """``backup.restore-test`` needs the database; a readiness path answering 404 is a note."""
    out = _database(f)
    if any(s.status in (404, 405, 410) for s in f.ready.values()):
        h = f.profile.health
        text = f"--boot-app would wait for service_health.ready={h.ready}, which answers 404"
        out.append(Finding(text, blocks=False))
    return out


def migrate(f: Facts) -> list[Finding]:
    """``migrate.rehearse`` needs only a reachable database."""
    return _database(f)


def canary(f: Facts) -> list[Finding]:
    """``deploy.canary`` needs readiness and the load balancer; an identity tells versions apart.

    Without ``service_identity`` the canary still runs: the release each instance
    runs is then what its rollout record says drillbook deployed (a note). Metrics
    are optional when HAProxy's admin socket can supply counters; without either,
    nothing could judge the canary and that blocks.
    """
    out = _readiness(f) + _lb(f)
    ident = f.profile.identity
    if ident is None:
        out.append(
            Finding(
                "no service_identity: which release runs is taken from the rollout record "
                "(what drillbook deployed), not asked of the instances",
                blocks=False,
            )
        )
    else:
        out += _answers("service_identity", f.identity)
        out += [
            Finding(f"service_identity.header: {a.note} at {a.url} on {n}")
            for n, a in f.identity.items()
            if a.note.startswith("no ")
        ]
    if f.profile.metrics is None:
        if not f.topo.haproxy_socket:
            out.append(Finding("no service_metrics and no HAProxy admin socket: nothing judges a canary"))
        else:
            out.append(Finding("no service_metrics: judged from HAProxy's counters", blocks=False))
    else:
        out += _answers("service_metrics.path", f.metrics)
        out += [
            Finding(f"metric {what} does not exist at {f.profile.metrics.path} on {_names(names)}")
            for what, names in f.metrics_missing.items()
        ]
    return out + _prometheus(f)


def _prometheus(f: Facts) -> list[Finding]:
    """The Prometheus the profile names: unreachable, a template it refuses, one that finds nothing."""
    p = f.prometheus
    if p is None:
        return []
    if p.error is not None:
        return [Finding(p.error)]
    out = [Finding(f"service_metrics.queries.{name}: {why}") for name, why in p.refused.items()]
    for name, names in p.empty.items():
        if not names:
            continue
        text = (
            f"service_metrics.queries.{name} finds nothing in Prometheus {p.url} for {_names(names)} "
            f"(probes included, last 5 min): {p.queries[name]}"
        )
        # The histogram is only latency's fallback (the drill's own traffic comes first).
        out.append(Finding(text, blocks=name == "requests"))
    return out


def kill_db(f: Facts) -> list[Finding]:
    """``chaos.kill-db`` needs the database, a target host, readiness, the LB and the marker endpoint."""
    out = _database(f) + _hosts(f, "db", "chaos_db_target") + _readiness(f) + _lb(f) + _marker(f)
    if f.profile.health.ready is None:
        out.append(Finding("service_health.ready absent: a TCP connect cannot see the database go away"))
    return out


def kill_redis(f: Facts) -> list[Finding]:
    """``chaos.kill-redis`` needs a service using Redis, and Redis reachable; no degraded signal is a note."""
    out: list[Finding] = []
    if not f.profile.uses_redis:
        return [Finding("service_uses_redis is false: the service has no Redis to lose", applies=False)]
    if f.redis is None:
        return [Finding("the inventory has no cache group: no Redis to kill", applies=False)]
    if not f.redis.ok:
        out.append(Finding(f"Redis unreachable at {f.redis.endpoint}: {f.redis.detail}"))
    out += _hosts(f, "cache", "chaos_cache_target") + _readiness(f) + _lb(f) + _marker(f)
    if f.profile.health.degraded is None:
        out.append(
            Finding("service_health.degraded absent: judged on errors and latency alone", blocks=False)
        )
    return out


def kill_app(f: Facts) -> list[Finding]:
    """``chaos.kill-app`` needs at least two app instances, so the survivors can take the traffic."""
    out = _readiness(f) + _lb(f) + _marker(f)
    if len(f.topo.app_instances) < 2:
        out.append(Finding("kill-app needs at least two app instances (the others take the traffic)"))
    return out


def load(f: Facts) -> list[Finding]:
    """``load.run`` needs the LB and something to send: declared requests or a locustfile."""
    out = _lb(f)
    t = f.profile.traffic
    if not t.requests and not t.locustfile and f.inv.var("load_locustfile") is None:
        out.append(Finding("no service_traffic (requests or locustfile) and no load_locustfile"))
    return out


def smoke(f: Facts) -> list[Finding]:
    """``smoke`` needs the profile's smoke steps, and each step's read path must exist at the LB."""
    out = _lb(f) + _profile(f, "smoke")
    for name, a in f.smoke_reads.items():
        if a.no_such_path or a.unreachable:
            out.append(Finding(f"service_smoke step {name!r}: {a.url} answers {a.text}"))
    return out


def audit_http(f: Facts) -> list[Finding]:
    """``audit.http`` needs the LB; absent audit targets are notes (those checks become not applicable)."""
    out = _lb(f)
    a = f.profile.audit
    if f.audit_probe is not None and (f.audit_probe.no_such_path or f.audit_probe.unreachable):
        out.append(Finding(f"service_audit.probe_path={a.probe_path} answers {f.audit_probe.text} at the LB"))
    absent = [
        name
        for name, value in (
            ("probe_path", a.probe_path),
            ("body_limit_path", a.body_limit_path),
            ("pagination", a.pagination),
            ("rate_limit", a.rate_limit),
        )
        if not value
    ]
    if absent:
        names = ", ".join(f"service_audit.{n}" for n in absent)
        out.append(Finding(f"{names} absent: their checks are not applicable", blocks=False))
    return out


def _hosts(f: Facts, default: str, variable: str | None = None) -> list[Finding]:
    pattern = str(f.inv.var(variable, default) if variable else default)
    if f.inv.hosts(pattern):
        return []
    where = f" ({variable})" if variable else ""
    return [Finding(f"inventory pattern {pattern!r} matches no host{where}")]


def _marker(f: Facts) -> list[Finding]:
    """What every chaos drill writes and sends: the marker, and traffic (requests or a locustfile)."""
    out = _profile(f, "marker")
    t = f.profile.traffic
    if not t.requests and not t.locustfile:
        out.append(
            Finding(
                "service_traffic has neither requests nor a locustfile: no traffic to show what users saw"
            )
        )
    return out


RULES: dict[str, Callable[[Facts], list[Finding]]] = {
    "backup.run": backup,
    "backup.restore-test": restore_test,
    "migrate.rehearse": migrate,
    "deploy.canary": canary,
    "chaos.kill-db": kill_db,
    "chaos.kill-redis": kill_redis,
    "chaos.kill-app": kill_app,
    "load.run": load,
    "smoke": smoke,
    "audit.http": audit_http,
}


def judge(facts: Facts) -> list[DrillCheck]:
    """Every drill's findings, in the order of :data:`RULES`."""
    return [DrillCheck(name, tuple(rule(facts))) for name, rule in RULES.items()]
