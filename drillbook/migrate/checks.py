"""Post-migration checks: is the running service still healthy on the new schema?

The service keeps running while its database migrates, so a migration that
renames a column the code still reads breaks requests while readiness (a
``SELECT 1``) stays green. Three kinds of checks, all from the inventory:

* readiness of every app instance (within ``migrate_ready_timeout_s``);
* read-only smoke requests against every instance (``migrate_smoke_requests``),
  which exercise the queries the code really runs, sent with the service
  profile's auth (static headers, or the token its login step returns);
* SQL assertions on the migrated database (``migrate_sql_assertions``).

Each check returns core's :class:`~drillbook.core.checks.Outcome` (``expected`` is what
passes); the drills put them in their measurement records, judged by ``each_ok``.
"""

from __future__ import annotations

import time
from collections.abc import Iterable, Sequence

import httpx

from drillbook.core import pgdata
from drillbook.core.checks import Outcome
from drillbook.core.flow import Flow
from drillbook.core.inventory import AppInstance, Inventory
from drillbook.core.readiness import Readiness
from drillbook.migrate.schema import Difference
from drillbook.migrate.settings import SmokeRequest, SqlAssertion


def prefixed(prefix: str, outcomes: Iterable[Outcome]) -> list[Outcome]:
    """The same outcomes named ``<prefix>.<name>`` (``after_upgrade.ready.app-1``), for the journal."""
    return [o.model_copy(update={"name": f"{prefix}.{o.name}"}) for o in outcomes]


def differences(prefix: str, diffs: Iterable[Difference]) -> list[Outcome]:
    """One failed outcome per schema or data difference (``<prefix> <kind> <name>``): what was, what is."""
    return [
        Outcome(
            name=f"{prefix} {d.kind} {d.name}",
            ok=False,
            value=d.after or "missing",
            expected=d.before or "absent",
            detail=d.describe(),
        )
        for d in diffs
    ]


def readiness(instances: Sequence[AppInstance], ready: Readiness, timeout_s: float) -> list[Outcome]:
    """Every instance is ready (by the service profile) within ``timeout_s``, polled 0.2 s apart."""
    outcomes = []
    deadline = time.monotonic() + timeout_s
    for inst in instances:
        sample = ready.check(inst.url)
        while not ready.ready(sample) and time.monotonic() < deadline:
            time.sleep(0.2)
            sample = ready.check(inst.url)
        ok = ready.ready(sample)
        outcomes.append(
            Outcome(
                name=f"ready.{inst.name}",
                ok=ok,
                value=sample.status or sample.error,
                expected="ready",
                detail="" if ok else f"{ready.url(inst.url)}: {ready.describe()}",
            )
        )
    return outcomes


def auth_headers(inv: Inventory) -> dict[str, str]:
    """The profile's auth headers (after its login, if any): a service's real routes need them.

    A login that fails leaves only the static headers; the smoke requests then
    answer 401 and fail by name, which is the truth about the service.
    """
    with Flow.for_inventory(inv) as flow:
        return flow.auth_headers()


def smoke(
    instances: Sequence[AppInstance], requests: Iterable[SmokeRequest], headers: dict[str, str] | None = None
) -> list[Outcome]:
    """Each smoke request against each instance, with ``headers``; its status must be in ``expect_status``."""
    outcomes = []
    with httpx.Client(transport=httpx.HTTPTransport(retries=0), headers=headers or {}) as client:
        for req in requests:
            for inst in instances:
                status, error = _get(client, inst.url + req.path, method=req.method, timeout_s=req.timeout_s)
                ok = status in req.expect_status
                outcomes.append(
                    Outcome(
                        name=f"smoke.{req.name}.{inst.name}",
                        ok=ok,
                        value=status or error,
                        expected="/".join(map(str, req.expect_status)),
                        detail="" if ok else f"{req.method} {inst.url}{req.path}",
                    )
                )
    return outcomes


def sql_assertions(dsn: str, assertions: Iterable[SqlAssertion]) -> list[Outcome]:
    """Each assertion's first column of its first row must be true; errors count as false."""
    import psycopg

    items = list(assertions)
    if not items:
        return []
    outcomes = []
    with pgdata.connect(dsn, read_only=True, application_name="drillbook-migrate-check") as conn:
        for a in items:
            try:
                value = pgdata.scalar(conn, a.sql)
                outcomes.append(
                    Outcome(
                        name=f"sql.{a.name}",
                        ok=value is True,
                        value=value,
                        expected=True,
                        detail="" if value else a.sql,
                    )
                )
            except psycopg.Error as exc:
                text = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
                outcomes.append(
                    Outcome(name=f"sql.{a.name}", ok=False, value="error", expected=True, detail=text)
                )
    return outcomes


def _get(
    client: httpx.Client, url: str, *, method: str = "GET", timeout_s: float = 2.0
) -> tuple[int | None, str | None]:
    try:
        resp = client.request(method, url, timeout=timeout_s)
        return resp.status_code, None
    except httpx.HTTPError as exc:
        return None, type(exc).__name__
