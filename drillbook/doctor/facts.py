"""What the doctor asks the live service once, before judging any drill: read-only, short timeouts.

Every question is a GET (or a connect) that a drill itself would ask: readiness and
liveness of each instance and of the load balancer as the profile says, the
database and the cache, the identity path, the metrics page and the names in it,
the smoke flow's reads. Nothing is written, so the doctor runs on production.
Each answer is kept as a :class:`Answer` (status or error): the rules in
drills.py turn them into findings.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import httpx

from drillbook.core import health, identity
from drillbook.core.inventory import AppInstance, Inventory, Topology
from drillbook.core.metrics import parse
from drillbook.core.probes import Sample
from drillbook.core.profile import PLACEHOLDER, ServiceProfile, Step
from drillbook.core.readiness import Readiness
from drillbook.doctor.prometheus import PrometheusFacts, gather_prometheus

#: Statuses that say "no such path here" rather than "not now".
NO_SUCH_PATH = frozenset({404, 405, 410})


@dataclass(frozen=True)
class Answer:
    """One GET: its status, or the transport error; ``note`` says more (a header found, a metric)."""

    url: str
    status: int | None = None
    error: str | None = None
    note: str = ""

    @property
    def no_such_path(self) -> bool:
        """True for 404/405/410: the path is wrong, as opposed to the service not being ready."""
        return self.status in NO_SUCH_PATH

    @property
    def unreachable(self) -> bool:
        """True when no HTTP answer came back at all (see :attr:`error`)."""
        return self.status is None

    @property
    def text(self) -> str:
        """The status, or the transport error, for a finding's message."""
        return str(self.status) if self.status is not None else (self.error or "no answer")


@dataclass
class Facts:
    """Everything the doctor saw; a drill's rules read only this."""

    inv: Inventory
    topo: Topology
    profile: ServiceProfile
    readiness: Readiness
    postgres: health.Health
    redis: health.Health | None
    ready: dict[str, Sample] = field(default_factory=dict)
    live: dict[str, Answer] = field(default_factory=dict)
    lb_ready: Sample | None = None
    identity: dict[str, Answer] = field(default_factory=dict)
    metrics: dict[str, Answer] = field(default_factory=dict)
    #: metric or label -> instances whose metrics page lacks it
    metrics_missing: dict[str, list[str]] = field(default_factory=dict)
    smoke_reads: dict[str, Answer] = field(default_factory=dict)
    #: the Prometheus the profile names, asked the canary's queries (None: it names none)
    prometheus: PrometheusFacts | None = None
    audit_probe: Answer | None = None


def gather(inv: Inventory, profile: ServiceProfile) -> Facts:
    """Ask every question once (a few requests per instance, no retries)."""
    topo = inv.topology
    readiness = Readiness(profile.health)
    timeout = profile.health.timeout_s
    facts = Facts(
        inv=inv,
        topo=topo,
        profile=profile,
        readiness=readiness,
        postgres=health.postgres(topo.postgres_dsn),
        redis=health.redis(topo.redis_url) if topo.redis_url else None,
    )
    headers = {"User-Agent": "drillbook-doctor", **profile.auth.headers}
    transport = httpx.HTTPTransport(retries=0)
    with httpx.Client(transport=transport, headers=headers, timeout=timeout) as client:
        for inst in topo.app_instances:
            facts.ready[inst.name] = readiness.check(inst.url)
            if profile.health.live is not None:
                facts.live[inst.name] = _get(client, readiness.live_url(inst.url))
            if profile.identity is not None:
                facts.identity[inst.name] = _identity(client, inst, profile)
            if profile.metrics is not None:
                facts.metrics[inst.name] = _metrics(client, inst, profile, facts.metrics_missing)
        facts.lb_ready = readiness.check(topo.lb_url)
        for step in profile.smoke:
            if _plain_read(step) and not step.each_instance:
                facts.smoke_reads[step.name] = _get(client, topo.lb_url + step.path, step.query)
        if profile.audit.probe_path:
            facts.audit_probe = _get(client, topo.lb_url + profile.audit.probe_path)
    facts.prometheus = gather_prometheus(inv, profile)
    return facts


def _plain_read(step: Step) -> bool:
    """A GET whose path and query need no captured value: safe to send, and checkable."""
    text = step.path + "".join(step.query.values())
    return step.method == "GET" and not PLACEHOLDER.search(text)


def _get(client: httpx.Client, url: str, query: dict[str, str] | None = None) -> Answer:
    try:
        resp = client.get(url, params=query or None)
    except httpx.HTTPError as exc:
        return Answer(url, error=type(exc).__name__)
    return Answer(url, status=resp.status_code)


def _identity(client: httpx.Client, inst: AppInstance, profile: ServiceProfile) -> Answer:
    """The instance's release asked as the canary asks it (:func:`drillbook.core.identity.ask`)."""
    ident = profile.identity
    assert ident is not None
    if ident.command is not None:
        return Answer(f"command on {inst.host}", status=200, note="a command on the host: not run by doctor")
    got = identity.ask(client, inst.url, ident)
    if got.status is None:
        return Answer(got.where, error=got.error)
    if got.version is None and ident.header is not None:
        return Answer(got.where, status=got.status, note=f"no {ident.header} header")
    if got.version is None:
        return Answer(got.where, status=got.status, note=got.detail)
    return Answer(got.where, status=got.status, note=f"release {got.version}")


def _metrics(
    client: httpx.Client, inst: AppInstance, profile: ServiceProfile, missing: dict[str, list[str]]
) -> Answer:
    m = profile.metrics
    assert m is not None
    url = inst.url.rstrip("/") + m.path
    try:
        resp = client.get(url)
    except httpx.HTTPError as exc:
        return Answer(url, error=type(exc).__name__)
    if resp.status_code != 200:
        return Answer(url, status=resp.status_code)
    try:
        snap = parse(resp.text)
    except ValueError as exc:
        return Answer(url, status=resp.status_code, note=f"not Prometheus text: {exc}")
    names = {name for name, _labels in snap.samples}
    labels = {k for name, lbls in snap.samples if name == m.requests_total for k, _v in lbls}
    wanted = {
        f"service_metrics.requests_total={m.requests_total}": m.requests_total in names,
        f"service_metrics.duration_seconds={m.duration_seconds}": f"{m.duration_seconds}_bucket" in names,
    }
    if labels:  # labels can only be read from series that exist (none before the first request)
        wanted[f"service_metrics.route_label={m.route_label}"] = m.route_label in labels
        wanted[f"service_metrics.status_label={m.status_label}"] = m.status_label in labels
    for what, present in wanted.items():
        if not present:
            missing.setdefault(what, []).append(inst.name)
    return Answer(url, status=resp.status_code)
