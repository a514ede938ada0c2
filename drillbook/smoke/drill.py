"""``inv smoke``: the pre-production smoke test, journaled like any drill.

Liveness and readiness through the load balancer and on every instance, a
database round trip through the API, and a full items CRUD cycle (create, read,
update, list with cursor until the item shows up, delete, read back 404). Each
step is a named check carrying its HTTP status and latency, so a failing smoke
test says which request broke. :func:`smoke_checks` is the flow itself,
callable without a drill (the tests do).
"""

from __future__ import annotations

import functools
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, ClassVar

import httpx
from pydantic import BaseModel, Field

from drillbook.core.checks import CheckSpec, Measurements, Outcome, each_ok, witnessed
from drillbook.core.drill import Drill, DrillRun
from drillbook.core.inventory import Topology
from drillbook.core.items_api import cursor_after

#: How many ids before the created item listing starts: with pages of 100 the cursor is followed twice.
LIST_LEAD = 250


@dataclass(frozen=True)
class SmokeStep:
    """One request of the flow: did it do what was expected, with which status, how fast."""

    name: str
    ok: bool
    status: int | None
    latency_ms: float
    detail: str = ""
    expected: int | None = None  # the HTTP status this step expects


def _timed(name: str, fn: Callable[[], tuple[bool, int | None, str]], expected: int) -> SmokeStep:
    """Run one step, timing it; a transport error or an odd body is a failed step, not a crash."""
    t0 = time.monotonic()
    try:
        ok, status, detail = fn()
    except (httpx.HTTPError, ValueError, KeyError, TypeError) as exc:
        ok, status, detail = False, None, f"{type(exc).__name__}: {exc}"
    return SmokeStep(name, ok, status, round((time.monotonic() - t0) * 1000, 2), detail, expected)


def smoke_checks(topo: Topology, timeout_s: float = 5.0, max_pages: int = 10) -> list[SmokeStep]:
    """Run every smoke step against ``topo`` and return them in order (never raises on HTTP errors)."""
    steps: list[SmokeStep] = []
    marker = f"smoke-{uuid.uuid4().hex[:12]}"
    state: dict[str, Any] = {}
    with httpx.Client(base_url=topo.lb_url, timeout=timeout_s) as lb:

        def status_is(path: str, expected: int, client: httpx.Client = lb) -> tuple[bool, int | None, str]:
            resp = client.get(path)
            return resp.status_code == expected, resp.status_code, ""

        steps.append(_timed("lb liveness", lambda: status_is("/health/live", 200), 200))
        steps.append(_timed("lb readiness", lambda: status_is("/health/ready", 200), 200))
        for inst in topo.app_instances:
            with httpx.Client(base_url=inst.url, timeout=timeout_s) as direct:
                steps.append(
                    _timed(
                        f"{inst.name} readiness",
                        functools.partial(status_is, "/health/ready", 200, direct),
                        200,
                    )
                )

        def create() -> tuple[bool, int | None, str]:
            resp = lb.post("/items", json={"name": marker, "value": "created"})
            if resp.status_code == 201:
                state["id"] = resp.json()["id"]
            return resp.status_code == 201, resp.status_code, f"id {state.get('id')}"

        def read(expected_value: str) -> Callable[[], tuple[bool, int | None, str]]:
            def step() -> tuple[bool, int | None, str]:
                resp = lb.get(f"/items/{state['id']}")
                got = resp.json().get("value") if resp.status_code == 200 else None
                return got == expected_value, resp.status_code, f"value {got!r}"

            return step

        def update() -> tuple[bool, int | None, str]:
            resp = lb.put(f"/items/{state['id']}", json={"name": marker, "value": "updated"})
            return resp.status_code == 200, resp.status_code, ""

        def list_with_cursor() -> tuple[bool, int | None, str]:
            # A few pages before the item, so that the cursor is followed at least twice.
            cursor: str | None = cursor_after(int(state["id"]) - LIST_LEAD)
            seen_ids: set[int] = set()
            for page in range(1, max_pages + 1):
                params: dict[str, Any] = {"limit": 100}
                if cursor:
                    params["cursor"] = cursor
                resp = lb.get("/items", params=params)
                if resp.status_code != 200:
                    return False, resp.status_code, f"page {page}"
                body = resp.json()
                ids = [int(item["id"]) for item in body["items"]]
                if seen_ids.intersection(ids):
                    return False, resp.status_code, f"page {page} repeats items already listed"
                seen_ids.update(ids)
                if int(state["id"]) in ids:
                    return True, resp.status_code, f"found on page {page}"
                cursor = body.get("next_cursor")
                if not cursor:
                    break
            return False, 200, f"item not listed after {len(seen_ids)} items"

        def delete() -> tuple[bool, int | None, str]:
            resp = lb.delete(f"/items/{state['id']}")
            return resp.status_code == 204, resp.status_code, ""

        crud: list[tuple[str, Callable[[], tuple[bool, int | None, str]], int]] = [
            ("create item (database write)", create, 201),
            ("read item (database round trip)", read("created"), 200),
            ("update item", update, 200),
            ("read updated item", read("updated"), 200),
            ("list items with cursor", list_with_cursor, 200),
            ("delete item", delete, 204),
            ("deleted item is gone", lambda: status_is(f"/items/{state['id']}", 404), 404),
        ]
        for name, fn, expected in crud:
            step = _timed(name, fn, expected)
            steps.append(step)
            if not step.ok and "id" not in state:
                break  # nothing was created: the rest would only repeat the same failure
    return steps


class SmokeMeasured(Measurements):
    """What one smoke run saw: every step judged, and the counts a scorecard shows."""

    steps: list[Outcome] = Field(default_factory=list)
    step_count: int = 0
    steps_failed: int = 0
    total_ms: float | None = witnessed("each step's HTTP status")


class Smoke(Drill[None, None, SmokeMeasured]):
    """Liveness, readiness, a database round trip and an items CRUD cycle through the load balancer.

    The steps are the checks (one per step, named after it), so a failing smoke
    test says which request broke; nothing is changed, so there is no act.
    """

    name: ClassVar[str] = "smoke"
    runbook: ClassVar[str | None] = "runbooks/release-readiness.md"
    measured: ClassVar[type[BaseModel] | None] = SmokeMeasured
    checks: ClassVar[tuple[CheckSpec, ...]] = (each_ok("steps"),)

    def observe(self, run: DrillRun, plan: None, acted: None) -> SmokeMeasured:
        """Run every step against the inventory's service; an HTTP failure is a failed step, not an error."""
        topo = run.inventory.topology
        run.note(f"smoke test through {topo.lb_url}")
        steps = smoke_checks(topo)
        return SmokeMeasured(
            steps=[_outcome(step) for step in steps],
            step_count=len(steps),
            steps_failed=sum(1 for s in steps if not s.ok),
            total_ms=round(sum(s.latency_ms for s in steps), 1),
        )


def _outcome(step: SmokeStep) -> Outcome:
    """A step as a judged outcome: its HTTP status against the one expected, latency in the detail."""
    return Outcome(
        name=step.name,
        ok=step.ok,
        value=step.status,
        expected=step.expected,
        detail=f"{step.latency_ms:.0f} ms {step.detail}".strip(),
    )
