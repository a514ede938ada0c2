"""The service profile: everything a drill may know about the service under test, from the inventory.

drillbook drills the user's service, not its own. What a drill needs from that
service (where its health answers and what "not ready" means, how to ask an
instance which release it runs, how to authenticate, the smoke flow, a write it
can verify after a fault, background traffic, metric names, audit targets) is
declared here, as ``service_*`` inventory variables, and nowhere in drill code.
The lab's reference service is one profile (``inventory/lab/group_vars/all/service.yml``);
docs/service-profile.md documents every field.

Requests are data, in the manner of Hurl and Tavern: a :class:`Step` is a method,
a path, a body, the statuses that count as success, values captured from the
JSON response by JSON pointer (RFC 6901), and an optional SQL check that the write
landed. Later steps use captured values as ``${name}``; ``${run_id}`` (unique per
run) and ``${uuid}`` (unique per use) are always there. ``${...}`` and not
``{{ ... }}``: the inventory is templated by Ansible, which would try to resolve
the latter itself. SQL checks take captured values as bound parameters
(``%(item_id)s``), never spliced into the text. What data cannot say, a Python
hook (``module:function``) does.

Validation happens when a drill loads the profile (preflight): a wrong field is one
line naming the inventory variable, and a drill whose part of the profile is
missing ends ``error`` naming what it lacks (see :meth:`ServiceProfile.missing`).
"""

from __future__ import annotations

import re
from typing import TYPE_CHECKING, Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

if TYPE_CHECKING:
    from drillbook.core.inventory import Inventory

#: ``${name}`` in a step's path, headers, body or expectations.
PLACEHOLDER = re.compile(r"\$\{([A-Za-z_][A-Za-z0-9_]*)\}")
#: Placeholders every step may use without capturing them first.
BUILTINS = frozenset({"run_id", "uuid"})

HttpMethod = Literal["GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS"]
JsonPointer = Annotated[str, Field(pattern=r"^(/([^~/]|~[01])*)*$")]
Hook = Annotated[str, Field(pattern=r"^[A-Za-z_][\w.]*:[A-Za-z_]\w*$")]
#: A status, or a class of them (``"2xx"``).
Status = Annotated[int, Field(ge=100, le=599)] | Literal["1xx", "2xx", "3xx", "4xx", "5xx"]


def _any_2xx() -> list[Status]:
    return ["2xx"]


def status_matches(statuses: list[Status], status: int | None) -> bool:
    """``status`` is one of ``statuses`` (``"2xx"`` matches 200-299); ``None`` (no answer) never is."""
    if status is None:
        return False
    return any(s == status or (isinstance(s, str) and s[0] == str(status)[0]) for s in statuses)


class _Strict(BaseModel):
    """Profile models refuse unknown keys: a typo must be an error, not a silently ignored field."""

    model_config = ConfigDict(extra="forbid", frozen=True)


def _absolute(path: str) -> str:
    if not path.startswith("/"):
        raise ValueError("a path starts with '/'")
    return path


# --- Health ------------------------------------------------------------------------------------


class Degraded(_Strict):
    """How the service says "serving, without a dependency" (its cache down); exactly one way.

    ``json_pointer`` + ``equals`` on the readiness body, a ``header`` that is present
    (or equals ``equals``), or a ``status`` readiness answers with while degraded.
    """

    json_pointer: JsonPointer | None = None
    header: str | None = None
    status: int | None = Field(default=None, ge=100, le=599)
    equals: Any = True

    @model_validator(mode="after")
    def _one_way(self) -> Degraded:
        ways = [w for w in (self.json_pointer, self.header, self.status) if w is not None]
        if len(ways) != 1:
            raise ValueError("degraded: give exactly one of json_pointer, header, status")
        return self


class Health(_Strict):
    """Liveness and readiness of one instance.

    ``ready`` is a path, or ``None`` for a service without one: readiness is then
    a TCP connect to the instance's port (``tcp``). Ready means a status in
    ``ready_status`` within ``timeout_s``; anything else (another status, a
    timeout, a refused connection) is "not ready", which is what chaos drills
    wait for after a fault.
    """

    live: str | None = None
    ready: str | None = None
    ready_status: list[Status] = Field(default_factory=_any_2xx, min_length=1)
    timeout_s: float = Field(default=2.0, gt=0, le=60)
    degraded: Degraded | None = None

    @field_validator("live", "ready")
    @classmethod
    def _paths(cls, value: str | None) -> str | None:
        return None if value is None else _absolute(value)

    @property
    def tcp(self) -> bool:
        """Readiness is a TCP connect (the service has no readiness path)."""
        return self.ready is None


class Identity(_Strict):
    """How to ask an instance which release it runs; exactly one way.

    ``path`` (+ ``json_pointer`` into its JSON body, else the whole body as text),
    a response ``header`` on any request to ``header_path``, or a ``command`` run on the
    instance's host (its first line of output).
    """

    path: str | None = None
    json_pointer: JsonPointer | None = None
    header: str | None = None
    header_path: str = "/"
    command: str | None = None

    @model_validator(mode="after")
    def _one_way(self) -> Identity:
        ways = [w for w in (self.path, self.header, self.command) if w is not None]
        if len(ways) != 1:
            raise ValueError("identity: give exactly one of path, header, command")
        if self.path is not None:
            _absolute(self.path)
        return self


# --- Requests as data --------------------------------------------------------------------------


class SqlCheck(_Strict):
    """A query on the service's database whose single value must equal ``expect``.

    Captured values are bound parameters: ``SELECT count(*) FROM t WHERE id = %(item_id)s``.
    """

    query: str = Field(min_length=1)
    expect: Any = 1


class Step(_Strict):
    """One HTTP request of a flow, and what must hold of its response.

    ``json`` / ``form`` / ``content`` is the body (at most one). ``expect_status``
    lists the statuses that pass. ``expect_json`` maps a JSON pointer to the value
    the response must hold there. ``capture`` maps a name to a JSON pointer whose
    value later steps use as ``${name}`` (``header:X-Name`` captures a header).
    ``sql`` proves the write landed in the database itself. ``hook`` is a
    ``module:function`` called with the response and the captured values, for what
    data cannot say; it returns an error text or ``None``.
    """

    name: str = Field(min_length=1)
    method: HttpMethod = "GET"
    path: str
    headers: dict[str, str] = Field(default_factory=dict)
    query: dict[str, str] = Field(default_factory=dict)
    json_body: Any = Field(default=None, alias="json")
    form: dict[str, str] | None = None
    content: str | None = None
    expect_status: list[Status] = Field(default_factory=_any_2xx, min_length=1)
    expect_json: dict[JsonPointer, Any] = Field(default_factory=dict)
    capture: dict[str, str] = Field(default_factory=dict)
    sql: SqlCheck | None = None
    hook: Hook | None = None
    timeout_s: float = Field(default=5.0, gt=0, le=300)
    #: Send to every instance directly (not only through the load balancer).
    each_instance: bool = False

    model_config = ConfigDict(extra="forbid", frozen=True, populate_by_name=True)

    @field_validator("path")
    @classmethod
    def _path(cls, value: str) -> str:
        return _absolute(value)

    @model_validator(mode="after")
    def _one_body(self) -> Step:
        bodies = [b for b in (self.json_body, self.form, self.content) if b is not None]
        if len(bodies) > 1:
            raise ValueError(f"step {self.name!r}: give at most one of json, form, content")
        for name, where in self.capture.items():
            if not re.fullmatch(r"[A-Za-z_]\w*", name):
                raise ValueError(f"step {self.name!r}: capture name {name!r} is not an identifier")
            if not (where.startswith("header:") or where == "" or where.startswith("/")):
                raise ValueError(f"step {self.name!r}: capture {name}: a JSON pointer or header:<Name>")
        return self

    @property
    def writes(self) -> bool:
        return self.method in ("POST", "PUT", "PATCH", "DELETE")


class Login(_Strict):
    """A login request whose response gives a token, sent into ``header`` as ``format``."""

    step: Step
    token: str = Field(default="/access_token", description="JSON pointer or header:<Name> of the token")
    header: str = "Authorization"
    format: str = "Bearer ${token}"


class Auth(_Strict):
    """Headers every request carries (their values from the environment or vault through
    the inventory's templating), and/or a login flow that yields a token."""

    headers: dict[str, str] = Field(default_factory=dict)
    login: Login | None = None


class Marker(_Strict):
    """The chaos drills' write-and-verify: ``write`` before the fault (capturing what
    identifies the write), ``verify`` after it (a read through the API, and/or a
    ``sql`` check on the database), ``cleanup`` at restore."""

    write: Step
    verify: list[Step] = Field(default_factory=list)
    cleanup: list[Step] = Field(default_factory=list)


class WeightedStep(Step):
    """A background request and its share of the traffic."""

    weight: int = Field(default=1, ge=1)


class Traffic(_Strict):
    """Background traffic during drills: weighted steps, or the user's own locustfile.

    A write step whose status passes is an *acknowledged* write; with ``verify_sql``
    (a query taking the captured values) every acknowledged write is looked up in
    the database after the fault. A step using a captured value reads back one of
    those acknowledged writes. ``locustfile`` is what ``load.run`` runs when the
    inventory sets no ``load_locustfile``, and the chaos drills' background traffic
    when there are no ``requests`` (then acknowledged writes are not tracked; a
    profile with write steps and no ``verify_sql`` is refused).
    """

    requests: list[WeightedStep] = Field(default_factory=list)
    locustfile: str | None = None
    verify_sql: SqlCheck | None = None


# --- Metrics, audits, hooks --------------------------------------------------------------------


#: What a PromQL template (``service_metrics.queries``) may use; see :mod:`drillbook.core.promql`.
PROMQL_PLACEHOLDERS = frozenset(
    {
        "instances",  # label matcher selecting one group's instances: instance=~"10\\.0\\.0\\.1:8000|..."
        "exclude",  # label matcher leaving out canary_exclude_routes: route!~"/health.*|/metrics.*"
        "window",  # the analysis window as a PromQL duration: 12s
        "requests_total",
        "duration_seconds",
        "route_label",
        "status_label",
        "instance_label",
    }
)


class Queries(_Strict):
    """PromQL templates the canary asks Prometheus, in the manner of Flagger's MetricTemplates.

    Each answers one number per group of instances over the window (every series of
    the answer is summed), except ``latency_buckets``, which answers one series per
    ``le`` (a cumulative histogram). ``${...}`` placeholders (:data:`PROMQL_PLACEHOLDERS`)
    are filled per query; absent templates are built from the names and labels above.
    """

    requests: str = "sum(increase(${requests_total}{${instances},${exclude}}[${window}]))"
    errors: str = (
        'sum(increase(${requests_total}{${instances},${exclude},${status_label}=~"5.."}[${window}]))'
    )
    latency_buckets: str = (
        "sum by (le) (increase(${duration_seconds}_bucket{${instances},${exclude}}[${window}]))"
    )

    @field_validator("requests", "errors", "latency_buckets")
    @classmethod
    def _known_placeholders(cls, template: str) -> str:
        unknown = sorted(set(PLACEHOLDER.findall(template)) - PROMQL_PLACEHOLDERS)
        if unknown:
            known = ", ".join("${" + n + "}" for n in sorted(PROMQL_PLACEHOLDERS))
            raise ValueError(f"unknown placeholder ${{{unknown[0]}}} (a template may use {known})")
        if "${instances}" not in template:
            raise ValueError("a template must select the group's instances with ${instances}")
        return template


class Metrics(_Strict):
    """The service's Prometheus metrics, if it has any (the canary judges from HAProxy's
    counters and drillbook's own traffic otherwise).

    Names and labels say how the instances' own ``/metrics`` read; with
    ``prometheus_url`` the canary asks that Prometheus instead, through ``queries``
    (``instance_label``: the label naming the scraped instance there).
    """

    path: str = "/metrics"
    requests_total: str = "http_requests_total"
    duration_seconds: str = "http_request_duration_seconds"
    route_label: str = "route"
    status_label: str = "status"
    prometheus_url: str | None = None
    instance_label: str = "instance"
    queries: Queries = Field(default_factory=Queries)

    @field_validator("path")
    @classmethod
    def _path(cls, path: str) -> str:
        return _absolute(path)

    @field_validator("prometheus_url")
    @classmethod
    def _url(cls, url: str | None) -> str | None:
        if not url:
            return None
        if not re.match(r"^https?://[^/\s]+", url):
            raise ValueError("a Prometheus base URL such as http://prometheus:9090")
        return url.rstrip("/")


class Audit(_Strict):
    """What audit.http probes; a check whose target is absent is "not applicable".

    ``pagination`` is the first page's request: its captures ``page`` (the page's
    list) and ``next`` (a cursor, or a path/URL to follow) are where the audit
    looks, and a query value using ``${next}`` is left out of the first request.
    Without those captures the audit takes a body that is a list, or the body's
    only list, and a ``Link: rel=next`` header. ``error_format`` is the shape every
    error body has: ``problem+json`` (RFC 9457), ``fastapi`` (``{"detail": ...}``),
    ``error-object`` (``{"error": {"code": str, "message": str}}``), or ``none``
    (not checked).
    """

    probe_path: str | None = None
    body_limit_path: str | None = None
    body_limit_bytes: int | None = Field(default=None, gt=0)
    pagination: Step | None = None
    rate_limit: list[Step] = Field(default_factory=list)
    error_format: Literal["problem+json", "fastapi", "error-object", "none"] = "none"


# --- The profile -------------------------------------------------------------------------------


class ServiceProfile(_Strict):
    """``service_*`` inventory variables: the service under test, as drills see it."""

    name: str = Field(default="service", min_length=1)
    health: Health = Field(default_factory=Health)
    identity: Identity | None = None
    auth: Auth = Field(default_factory=Auth)
    smoke: list[Step] = Field(default_factory=list)
    marker: Marker | None = None
    traffic: Traffic = Field(default_factory=Traffic)
    metrics: Metrics | None = None
    audit: Audit = Field(default_factory=Audit)
    uses_redis: bool = True
    hooks: dict[str, Hook] = Field(default_factory=dict)

    model_config = ConfigDict(extra="ignore", frozen=True)

    @model_validator(mode="after")
    def _placeholders_defined(self) -> ServiceProfile:
        """A ``${name}`` no earlier step captures is a typo, refused at preflight rather than mid-drill."""
        problems = _undefined("smoke", self.smoke, BUILTINS)
        if self.marker is not None:
            known = BUILTINS | set(self.marker.write.capture)
            problems += _undefined("marker.write", [self.marker.write], BUILTINS)
            problems += _undefined("marker.verify", self.marker.verify, known)
            problems += _undefined("marker.cleanup", self.marker.cleanup, known)
        # Traffic is drawn at random: a step may read back what any write step of it captures.
        captured = BUILTINS.union(*(step.capture for step in self.traffic.requests))
        for i, step in enumerate(self.traffic.requests):
            problems += _undefined(f"traffic.requests[{i}]", [step], captured, start=i)
        if problems:
            raise ValueError("; ".join(problems))
        return self

    def missing(self, *needs: str) -> list[str]:
        """What of ``needs`` this profile lacks, as inventory variables (``service_marker``).

        Needs are field names; ``health.ready`` style names a nested field.
        """
        lacking = []
        for need in needs:
            value: Any = self
            for part in need.split("."):
                value = getattr(value, part, None)
            if value in (None, [], {}):
                lacking.append("service_" + need)
        return lacking


def _undefined(
    where: str, steps: list[Step] | list[WeightedStep], known: set[str] | frozenset[str], start: int = 0
) -> list[str]:
    """``${name}`` uses in ``steps`` that neither a builtin nor an earlier capture defines."""
    problems = []
    defined = set(known)
    for i, step in enumerate(steps, start=start):
        used = placeholders(step.model_dump_json(include=_USES, by_alias=True))
        label = where if where.endswith("]") or where.startswith("marker.write") else f"{where}[{i}]"
        for name in sorted(used - defined):
            problems.append(
                f"service_{label} ({step.name!r}) uses ${{{name}}}, which no earlier step captures"
            )
        defined |= set(step.capture)
    return problems


#: The parts of a step that may use placeholders.
_USES = {"path", "headers", "query", "json_body", "form", "content", "expect_json"}


def load_profile(inv: Inventory) -> ServiceProfile:
    """The inventory's service profile, validated.

    Every mistake is reported, one line each, naming the inventory variable and the
    value given (``inventory lab: service_health.ready='healthz': a path starts with
    '/'``), in one :class:`ConfigError` (exit 2, never a traceback).
    """
    from pydantic import ValidationError

    from drillbook.core.errors import ConfigError

    values = {}
    for field in ServiceProfile.model_fields:
        value = inv.var("service_" + field)
        if value is not None:
            values[field] = value
    try:
        return ServiceProfile.model_validate(values)
    except ValidationError as exc:
        lines = _error_lines(exc)
        raise ConfigError("\n".join(f"inventory {inv.name}: {line}" for line in lines)) from None


def _is_tag(part: str | int) -> bool:
    """A pydantic union branch in an error location (``constrained-int``, ``literal[...]``), not a field."""
    return isinstance(part, str) and not re.fullmatch(r"[A-Za-z_]\w*", part)


def _error_lines(exc: Any) -> list[str]:
    """One line per mistake: union branches of one value merged, the variable written as in YAML."""
    merged: dict[tuple[str | int, ...], list[dict[str, Any]]] = {}
    for error in exc.errors():
        loc = tuple(p for p in error["loc"] if not _is_tag(p))
        merged.setdefault(loc, []).append(error)
    lines = []
    for loc, errors in merged.items():
        name = "service_" + "".join(f"[{p}]" if isinstance(p, int) else f".{p}" for p in loc).lstrip(".")
        first = errors[0]
        if any("literal['1xx'" in str(p) for e in errors for p in e["loc"]):
            msg = "a status (100-599) or a class of them ('2xx')"
        elif first["type"] == "extra_forbidden":
            msg = "no such setting (a typo?)"
        else:
            msg = str(first["msg"]).removeprefix("Value error, ")
        if not loc:  # the profile's own checks: each part already names its variable
            lines += [part for part in msg.split("; ") if part]
            continue
        given = first.get("input")
        shown = "" if first["type"] == "extra_forbidden" or isinstance(given, dict | list) else f"={given!r}"
        lines.append(f"{name}{shown}: {msg}")
    return lines


def placeholders(text: str) -> set[str]:
    """The ``${name}`` placeholders ``text`` uses."""
    return set(PLACEHOLDER.findall(text))


def substitute(value: Any, values: dict[str, Any]) -> Any:
    """``value`` with every ``${name}`` replaced from ``values`` (strings, lists and dicts, deeply).

    A string that is exactly one placeholder takes the value's own type (``${id}`` -> ``42``),
    so a JSON body can carry numbers. An unknown name raises ``KeyError`` naming it.
    """
    if isinstance(value, str):
        whole = PLACEHOLDER.fullmatch(value)
        if whole:
            return values[whole.group(1)]
        return PLACEHOLDER.sub(lambda m: str(values[m.group(1)]), value)
    if isinstance(value, list):
        return [substitute(v, values) for v in value]
    if isinstance(value, dict):
        return {substitute(k, values): substitute(v, values) for k, v in value.items()}
    return value
