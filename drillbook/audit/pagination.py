"""audit.http's pagination check: paging through a list while another client writes.

The list, the cursor and the writes are the profile's (``service_audit.pagination``,
``service_marker``), so the check knows no service's shapes. It walks the list
once at rest, then again while a writer inserts through the marker's write step:
the second walk must repeat no entry and skip none the first one saw. A body the
check does not understand is a finding that says so, never an exception.
"""

from __future__ import annotations

import json
import threading
import time
from dataclasses import dataclass, field, replace
from typing import Any

import httpx

from drillbook.core.flow import Flow, Values, pick, prepare, send
from drillbook.core.profile import Step, placeholders, status_matches

#: Where a next cursor is looked for when the step captures no ``next``.
NEXT_GUESSES = ("/next_cursor", "/next", "/links/next", "/cursor", "/next_page")


@dataclass
class Walk:
    """One pass through the list: the keys in the order seen, and how it ended."""

    keys: list[str] = field(default_factory=list)
    pages: int = 0
    reached_end: bool = False
    problem: str = ""


def entry_key(entry: Any) -> str:
    """An entry's identity: its ``id`` when it has one, else the entry itself as canonical JSON."""
    if isinstance(entry, dict) and "id" in entry:
        return str(entry["id"])
    return json.dumps(entry, sort_keys=True, default=str)


def page_entries(step: Step, resp: httpx.Response, body: Any) -> list[Any] | None:
    """The page's list: the ``page`` capture, a list body, or the body's only list (None: not found)."""
    if "page" in step.capture:
        try:
            found = pick(resp, step.capture["page"], body)
        except LookupError:
            return None
        return found if isinstance(found, list) else None
    if isinstance(body, list):
        return body
    if isinstance(body, dict):
        lists = [v for v in body.values() if isinstance(v, list)]
        return lists[0] if len(lists) == 1 else None
    return None


def next_of(step: Step, resp: httpx.Response, body: Any) -> str | None:
    """The next page's cursor or address (None: the last page)."""
    wheres = [step.capture["next"]] if "next" in step.capture else list(NEXT_GUESSES)
    for where in wheres:
        try:
            found = pick(resp, where, body)
        except (LookupError, ValueError):
            continue
        if found not in (None, ""):
            return str(found)
    link = resp.links.get("next", {}).get("url")
    return str(link) if link else None


def walk(flow: Flow, step: Step, max_pages: int, until: set[str] | None = None) -> Walk:
    """Page through the list from the start, at most ``max_pages``; stop early once ``until`` is all seen."""
    result = Walk()
    uses_next = any("next" in placeholders(v) for v in [step.path, *step.query.values()])
    first = step.model_copy(
        update={"query": {k: v for k, v in step.query.items() if "next" not in placeholders(v)}}
    )
    cursor: str | None = None
    client = flow.client()
    auth = flow.auth_headers()
    while result.pages < max_pages:
        values = Values(flow.values)
        if cursor is None:
            req = prepare(first, values, auth)
        elif uses_next:
            values["next"] = cursor
            req = prepare(step, values, auth)
        else:  # a next link: follow it as given
            req = replace(prepare(first, values, auth), path=cursor, params={})
        resp = send(client, req, step.timeout_s)
        result.pages += 1
        label = f"page {result.pages}"
        if not status_matches(step.expect_status, resp.status_code):
            result.problem = f"{label}: HTTP {resp.status_code} {resp.text[:80]!r}"
            return result
        try:
            body = resp.json()
        except ValueError:
            result.problem = f"{label}: body is not JSON: {resp.text[:80]!r}"
            return result
        entries = page_entries(step, resp, body)
        if entries is None:
            shape = sorted(body) if isinstance(body, dict) else type(body).__name__
            result.problem = f"{label}: no list of entries in the body (keys {shape}); declare capture page"
            return result
        result.keys += [entry_key(e) for e in entries]
        cursor = next_of(step, resp, body)
        if cursor is None:
            result.reached_end = True
            return result
        if until is not None and until <= set(result.keys):
            return result
    return result


@dataclass
class Writer:
    """Writes through the marker's write step from its own flow until stopped; remembers each write."""

    flow: Flow
    step: Step
    limit: int = 200
    written: list[dict[str, Any]] = field(default_factory=list)
    _stop: threading.Event = field(default_factory=threading.Event)
    _thread: threading.Thread | None = None

    def write_one(self) -> bool:
        result = self.flow.run_step(self.step)
        if result.ok:
            self.written.append(dict(self.flow.values))
        return result.ok

    def start(self) -> None:
        def loop() -> None:
            while not self._stop.is_set() and len(self.written) < self.limit:
                if not self.write_one():
                    time.sleep(0.05)

        self._thread = threading.Thread(target=loop, name="audit-writer", daemon=True)
        self._thread.start()
        deadline = time.monotonic() + 5
        while len(self.written) < 3 and self._thread.is_alive() and time.monotonic() < deadline:
            time.sleep(0.01)  # page while inserts are really happening

    def stop(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=10)


def cleanup(flow: Flow, steps: list[Step], written: list[dict[str, Any]]) -> None:
    """Remove what the check wrote, with the marker's cleanup steps."""
    for values in written:
        flow.values.update(values)
        flow.run(steps, with_login=False)
