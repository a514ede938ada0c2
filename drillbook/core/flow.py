"""Requests as data: run a profile's :class:`~drillbook.core.profile.Step` list against the service.

The smoke test, the chaos drills' marker, their background traffic and the HTTP
audit all speak to the user's service the same way, and only through this module:
a step's ``${name}`` placeholders are filled (``run_id`` once per flow, ``uuid``
fresh at each use, and what earlier steps captured), it is sent with the
profile's auth (static headers, or the token a login step returned), and its
answer is judged: the status against ``expect_status``, JSON pointers against
``expect_json``, captures taken, then the optional SQL check on the service's own
database (bound parameters, never spliced) and the optional ``module:function``
hook. In the manner of Hurl and Tavern, a capture feeds later steps; unlike a
script, a step whose input is missing is not sent but recorded as
``skipped: needs ${x}``, so one broken request reads as one cause, not a cascade.

Nothing here raises on a bad answer: a refused connection, a body that is not
JSON or a pointer that is absent is a failed :class:`StepResult` with a one-line
detail. Each result becomes a :class:`~drillbook.core.checks.Outcome` for the
drill's declared ``each_ok`` check.
"""

from __future__ import annotations

import importlib
import json
import re
import time
import uuid
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import httpx
import jsonpointer  # type: ignore[import-untyped]  # ships no type information

from drillbook.core.checks import Outcome
from drillbook.core.profile import ServiceProfile, SqlCheck, Step, placeholders, status_matches, substitute

if TYPE_CHECKING:
    from drillbook.core.inventory import Inventory

#: Names every flow knows without a capture.
BUILTINS = frozenset({"run_id", "uuid"})
SQL_PARAM = re.compile(r"%\(([A-Za-z_]\w*)\)s")
_MISSING = object()


class Values(dict[str, Any]):
    """Captured values and the builtins; ``${uuid}`` is a new id at every use."""

    def __missing__(self, key: str) -> Any:
        if key == "uuid":
            return uuid.uuid4().hex
        raise KeyError(key)


def new_values(run_id: str | None = None) -> Values:
    """Fresh values for one flow: its ``run_id`` (12 hex digits unless given)."""
    return Values(run_id=run_id or uuid.uuid4().hex[:12])


def needs(step: Step) -> set[str]:
    """The names ``step`` uses that are not builtins: what earlier steps must have captured.

    Its checks (``expect_json``, ``sql``) may also use what the step itself captures.
    """
    texts: list[str] = [step.path, json.dumps(step.json_body)]
    texts += [*step.headers.values(), *step.query.values(), *(step.form or {}).values(), step.content or ""]
    names = set().union(*(placeholders(t) for t in texts))
    checked = placeholders(json.dumps(step.expect_json))
    if step.sql is not None:
        checked |= set(SQL_PARAM.findall(step.sql.query))
    return (names | (checked - set(step.capture))) - BUILTINS


@dataclass(frozen=True)
class Prepared:
    """A step with its placeholders filled: what goes on the wire."""

    method: str
    path: str
    headers: dict[str, str]
    params: dict[str, str]
    json: Any = None
    form: dict[str, str] | None = None
    content: str | None = None


def prepare(step: Step, values: dict[str, Any], auth: dict[str, str] | None = None) -> Prepared:
    """``step`` filled from ``values``, with ``auth`` headers under its own (``KeyError``: a missing name)."""
    return Prepared(
        method=step.method,
        path=str(substitute(step.path, values)),
        headers={**(auth or {}), **{k: str(v) for k, v in substitute(step.headers, values).items()}},
        params={k: str(v) for k, v in substitute(step.query, values).items()},
        json=substitute(step.json_body, values),
        form=substitute(step.form, values),
        content=substitute(step.content, values),
    )


def send(client: httpx.Client, req: Prepared, timeout_s: float | None = None) -> httpx.Response:
    """Send ``req`` on ``client`` (raises ``httpx.HTTPError`` on transport failures)."""
    return client.request(
        req.method,
        req.path,
        headers=req.headers,
        params=req.params or None,
        json=req.json,
        data=req.form,
        content=req.content,
        timeout=timeout_s if timeout_s is not None else httpx.USE_CLIENT_DEFAULT,
    )


def expected_text(step: Step) -> str:
    """The step's accepted statuses for messages, e.g. ``200/201``."""
    return "/".join(str(s) for s in step.expect_status)


def _snippet(resp: httpx.Response) -> str:
    text = resp.text.strip().replace("\n", " ")
    return text[:120] + ("..." if len(text) > 120 else "")


def pick(resp: httpx.Response, where: str, doc: Any = _MISSING) -> Any:
    """The value at ``where`` (a JSON pointer, ``""`` for the whole body, or ``header:<Name>``).

    Raises ``LookupError`` naming what is absent, ``ValueError`` when the body is not JSON.
    """
    if where.startswith("header:"):
        name = where.removeprefix("header:")
        if name not in resp.headers:
            raise LookupError(f"no {name} header")
        return resp.headers[name]
    body = resp.json() if doc is _MISSING else doc
    found = jsonpointer.resolve_pointer(body, where, _MISSING)
    if found is _MISSING:
        raise LookupError(f"no {where or '(body)'} in the body")
    return found


def judge(step: Step, resp: httpx.Response, values: dict[str, Any]) -> tuple[bool, str, dict[str, Any]]:
    """(ok, detail, captured): ``resp`` against the step's status, ``expect_json`` and captures.

    Never raises: a body that is not JSON where JSON is needed is a failed step.
    """
    if not status_matches(step.expect_status, resp.status_code):
        return False, f"HTTP {resp.status_code}, expected {expected_text(step)}: {_snippet(resp)}", {}
    if not step.expect_json and not any(not w.startswith("header:") for w in step.capture.values()):
        doc: Any = None
    else:
        try:
            doc = resp.json()
        except ValueError:
            return False, f"HTTP {resp.status_code}, body is not JSON: {_snippet(resp)!r}", {}
    problems: list[str] = []
    captured: dict[str, Any] = {}
    for name, where in step.capture.items():
        try:
            captured[name] = pick(resp, where, doc)
        except LookupError as exc:
            problems.append(f"capture {name}: {exc}")
    known = Values({**values, **captured})
    for pointer, want in step.expect_json.items():
        try:
            got = pick(resp, pointer, doc)
            expected = substitute(want, known)
        except LookupError as exc:  # KeyError (a name nothing captured) is a LookupError too
            problems.append(f"{pointer}: {exc}")
            continue
        if got != expected:
            problems.append(f"{pointer} is {got!r}, expected {expected!r}")
    if problems:
        return False, f"HTTP {resp.status_code}: " + "; ".join(problems), captured
    return True, f"HTTP {resp.status_code}", captured


def sql_check(
    dsn: str | None, check: SqlCheck, values: dict[str, Any], timeout_s: int = 5
) -> tuple[bool, str]:
    """(ok, detail): ``check.query`` on the service's database, ``values`` bound as parameters."""
    if not dsn:
        return False, "sql: the inventory names no postgres_dsn"
    import psycopg

    params = {name: values[name] for name in SQL_PARAM.findall(check.query) if name in values}
    try:
        with psycopg.connect(dsn, connect_timeout=timeout_s, autocommit=True) as conn:
            row = conn.execute(check.query, params).fetchone()  # type: ignore[arg-type]
    except psycopg.Error as exc:
        first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        return False, f"sql: {first}"
    got = row[0] if row else None
    if got != check.expect and str(got) != str(check.expect):
        return False, f"sql: got {got!r}, expected {check.expect!r}"
    return True, f"sql: {got!r}"


def call_hook(hook: str, resp: httpx.Response, values: dict[str, Any]) -> str | None:
    """Run ``module:function(response, values)``; its text (or its exception) is the failure."""
    module, _, name = hook.partition(":")
    if module.split(".")[0] == "drillbook":
        return f"hook {hook}: a hook is the user's own code, not a drillbook module"
    try:
        fn = getattr(importlib.import_module(module), name)
        result = fn(resp, dict(values))
    except Exception as exc:  # the user's code: any failure is the step's, in one line
        return f"hook {hook}: {type(exc).__name__}: {exc}"
    return None if result is None else f"hook {hook}: {result}"


@dataclass(frozen=True)
class StepResult:
    """One step as sent and judged: a record for the journal, never an exception."""

    name: str
    ok: bool
    status: int | None
    latency_ms: float
    detail: str = ""
    expected: str = "2xx"
    captured: dict[str, Any] = field(default_factory=dict)
    skipped: bool = False

    def outcome(self) -> Outcome:
        """The step as a judged outcome: status against the expected ones, latency in the detail."""
        latency = "" if self.skipped else f"{self.latency_ms:.0f} ms "
        return Outcome(
            name=self.name,
            ok=self.ok,
            value=self.status,
            expected=self.expected,
            detail=latency + self.detail,
        )


class Flow:
    """Steps against one service: its base URL, instances, auth and database, and the values so far.

    One flow is one run: captures of a step are ``${name}`` for the next ones. Use it
    as a context manager (it keeps one HTTP client per base URL).
    """

    def __init__(
        self,
        profile: ServiceProfile,
        base_url: str,
        *,
        dsn: str | None = None,
        instances: Sequence[tuple[str, str]] = (),
        values: dict[str, Any] | None = None,
    ) -> None:
        self.profile = profile
        self.base_url = base_url.rstrip("/")
        self.dsn = dsn
        self.instances = tuple(instances)
        self.values = new_values()
        self.values.update(values or {})
        self._clients: dict[str, httpx.Client] = {}
        self._auth: dict[str, str] | None = None
        #: Which step captures which name, for "skipped" details.
        self._captured_by: dict[str, str] = {}

    @classmethod
    def for_inventory(cls, inv: Inventory, profile: ServiceProfile | None = None) -> Flow:
        """A flow against the inventory's load balancer, instances and database."""
        from drillbook.core.profile import load_profile

        topo = inv.topology
        return cls(
            profile or load_profile(inv),
            topo.lb_url,
            dsn=topo.postgres_dsn,
            instances=[(i.name, i.url) for i in topo.app_instances],
        )

    def fork(self) -> Flow:
        """A flow of its own (clients, values) on the same service and auth, for another thread."""
        other = Flow(
            self.profile, self.base_url, dsn=self.dsn, instances=self.instances, values=dict(self.values)
        )
        other._auth = None if self._auth is None else dict(self._auth)
        return other

    def __enter__(self) -> Flow:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def close(self) -> None:
        """Close every HTTP client; the flow may be used again afterwards (clients are recreated)."""
        for client in self._clients.values():
            client.close()
        self._clients.clear()

    def client(self, base_url: str | None = None) -> httpx.Client:
        """One client per base URL, reused across steps; no retries, so every answer is a real one."""
        url = (base_url or self.base_url).rstrip("/")
        if url not in self._clients:
            self._clients[url] = httpx.Client(
                base_url=url,
                timeout=self.profile.health.timeout_s,
                transport=httpx.HTTPTransport(retries=0),
                headers={"User-Agent": "drillbook-flow"},
            )
        return self._clients[url]

    # -- auth ----------------------------------------------------------------------------
    def login(self) -> StepResult | None:
        """Run the profile's login step once (None: no login); its token goes into the auth headers."""
        login = self.profile.auth.login
        self._auth = {k: str(v) for k, v in substitute(self.profile.auth.headers, self.values).items()}
        if login is None:
            return None
        step = login.step.model_copy(update={"capture": {**login.step.capture, "token": login.token}})
        self._captured_by.setdefault("token", step.name)
        result = self._run_one(step, self.base_url, f"login: {step.name}", auth={})
        if result.ok:
            header = str(substitute(login.format, {**self.values, "token": result.captured["token"]}))
            self._auth[login.header] = header
        return result

    def auth_headers(self) -> dict[str, str]:
        """The headers every request carries (after the login, when the profile has one)."""
        if self._auth is None:
            self.login()
        return dict(self._auth or {})

    # -- running -------------------------------------------------------------------------
    def run(self, steps: Iterable[Step], *, with_login: bool = True) -> list[StepResult]:
        """Every step in order (``each_instance`` ones once per instance); the login first if any."""
        steps = list(steps)
        for step in steps:
            for name in step.capture:
                self._captured_by.setdefault(name, step.name)
        results: list[StepResult] = []
        if with_login and self._auth is None:
            login = self.login()
            if login is not None:
                results.append(login)
                if not login.ok:
                    return results + [self._skipped(s, s.name, {"token"}) for s in steps]
        for step in steps:
            if step.each_instance and self.instances:
                for inst, url in self.instances:
                    results.append(self.run_step(step, url, f"{step.name} ({inst})"))
            else:
                results.append(self.run_step(step))
        return results

    def run_step(self, step: Step, base_url: str | None = None, label: str | None = None) -> StepResult:
        """One step against ``base_url`` (default: the load balancer); captures join the flow's values."""
        return self._run_one(step, base_url or self.base_url, label or step.name, self.auth_headers())

    def _skipped(self, step: Step, label: str, missing: set[str]) -> StepResult:
        why = ", ".join(
            "${" + n + "}" + (f" (from {self._captured_by[n]!r})" if n in self._captured_by else "")
            for n in sorted(missing)
        )
        return StepResult(label, False, None, 0.0, f"skipped: needs {why}", expected_text(step), skipped=True)

    def _run_one(self, step: Step, base_url: str, label: str, auth: dict[str, str]) -> StepResult:
        missing = {n for n in needs(step) if n not in self.values}
        if missing:
            return self._skipped(step, label, missing)
        req = prepare(step, self.values, auth)
        t0 = time.monotonic()
        try:
            resp = send(self.client(base_url), req, step.timeout_s)
        except httpx.HTTPError as exc:
            ms = round((time.monotonic() - t0) * 1000, 2)
            return StepResult(
                label, False, None, ms, f"{type(exc).__name__}: {exc}".strip(), expected_text(step)
            )
        ms = round((time.monotonic() - t0) * 1000, 2)
        ok, detail, captured = judge(step, resp, self.values)
        if ok:
            self.values.update(captured)
            notes = [detail]
            if step.sql is not None:
                ok, text = sql_check(self.dsn, step.sql, self.values)
                notes.append(text)
            if ok and step.hook is not None:
                problem = call_hook(step.hook, resp, self.values)
                ok = problem is None
                notes.append(problem or f"hook {step.hook}: ok")
            detail = "; ".join(notes)
        if captured:
            detail += "; captured " + ", ".join(sorted(captured))
        return StepResult(label, ok, resp.status_code, ms, detail, expected_text(step), captured=captured)
