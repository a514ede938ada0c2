"""Judge every checklist item against its evidence: proven, failing, stale or unproven.

- drill: the newest journal of that drill decides. Failed -> failing (with the
  failed checks as the reason); errored -> error, "could not run" (an unreachable
  host, a steady state not met: drillbook could not measure, which says nothing
  about the service and must not be counted as the service failing); passed
  within max_age_days -> proven; passed longer ago -> stale.
- audit: the newest audit journal holding that check decides, the same way, on
  that one check (a failed check in a run that errored is error, not failing).
- manual: the newest sign-off; older than max_age_days -> stale.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Literal

from drillbook.checklist.model import Checklist, Item
from drillbook.checklist.signoff import SignOff, latest
from drillbook.core.store import Entry, load_entries, parse_time
from drillbook.core.timefmt import age

State = Literal["proven", "failing", "error", "stale", "unproven"]
STATES: tuple[State, ...] = ("proven", "failing", "error", "stale", "unproven")


@dataclass(frozen=True)
class ItemStatus:
    """Where one checklist item stands, why, and the journal or sign-off that proves it (if any)."""

    item: Item
    state: State
    required: bool
    reason: str
    evidence_path: str | None = None
    evidence_at: datetime | None = None

    @property
    def blocking(self) -> bool:
        """A required item that is failing, could not be run or is stale makes ``inv checklist`` exit 1."""
        return self.required and self.state in ("failing", "error", "stale")


def evaluate(
    checklist: Checklist,
    report_root: Path,
    now: datetime | None = None,
    entries: Sequence[Entry] | None = None,
) -> list[ItemStatus]:
    """Judge every item against the journals (or sign-offs) under ``report_root``, newest evidence first.

    ``entries`` may be given to reuse an already loaded report root; an item
    whose evidence is older than its max age is stale.
    """
    now = now or datetime.now(UTC)
    entries = list(entries) if entries is not None else load_entries(report_root)
    readable = sorted((e for e in entries if e.journal is not None), key=lambda e: e.ended, reverse=True)
    signoffs = latest(report_root)
    out = []
    for item in checklist.items:
        max_age = timedelta(days=checklist.max_age_days(item))
        required = checklist.required(item)
        ev = item.evidence
        if ev.manual:
            out.append(_manual(item, required, signoffs.get(item.id), now, max_age))
        elif ev.drill:
            out.append(_drill(item, required, [e for e in readable if e.drill == ev.drill], now, max_age))
        else:
            runs = [e for e in readable if e.drill == ev.audit_drill and _has_check(e, ev.audit_check)]
            out.append(_audit(item, required, runs, ev.audit_check, now, max_age))
    return out


def _has_check(entry: Entry, name: str) -> bool:
    return entry.journal is not None and any(c.name == name for c in entry.journal.checks)


def _drill(item: Item, required: bool, runs: list[Entry], now: datetime, max_age: timedelta) -> ItemStatus:
    if not runs:
        return ItemStatus(item, "unproven", required, f"{item.evidence.drill} has never run")
    last = runs[0]
    assert last.journal is not None
    path = str(last.dir)
    if last.journal.verdict == "error":
        why = last.journal.error or "the drill could not measure"
        return ItemStatus(item, "error", required, f"could not run: {why}", path, last.ended)
    if last.journal.verdict != "pass":
        failed = [c.name for c in last.journal.failed_checks]
        why = ", ".join(failed) if failed else (last.journal.error or last.journal.verdict)
        return ItemStatus(item, "failing", required, f"{last.journal.verdict}: {why}", path, last.ended)
    if now - last.ended > max_age:
        return ItemStatus(
            item,
            "stale",
            required,
            f"passed {age(now, last.ended)} ago (limit {max_age.days} d)",
            path,
            last.ended,
        )
    return ItemStatus(item, "proven", required, f"passed {age(now, last.ended)} ago", path, last.ended)


def _audit(
    item: Item, required: bool, runs: list[Entry], check: str, now: datetime, max_age: timedelta
) -> ItemStatus:
    ev = item.evidence
    if not runs:
        return ItemStatus(item, "unproven", required, f"{ev.audit_drill} has not checked {check}")
    last = runs[0]
    assert last.journal is not None
    found = next(c for c in last.journal.checks if c.name == check)
    path = str(last.dir)
    if not found.ok and last.journal.verdict == "error":
        why = last.journal.error or found.detail or "the audit could not measure"
        return ItemStatus(item, "error", required, f"could not run: {why}", path, last.ended)
    if not found.ok:
        return ItemStatus(
            item, "failing", required, f"{check}: {found.detail or found.value}", path, last.ended
        )
    if now - last.ended > max_age:
        return ItemStatus(
            item,
            "stale",
            required,
            f"checked {age(now, last.ended)} ago (limit {max_age.days} d)",
            path,
            last.ended,
        )
    return ItemStatus(
        item, "proven", required, f"{found.detail or 'ok'} ({age(now, last.ended)} ago)", path, last.ended
    )


def _manual(
    item: Item, required: bool, sign: SignOff | None, now: datetime, max_age: timedelta
) -> ItemStatus:
    if sign is None:
        return ItemStatus(item, "unproven", required, f"no sign-off: inv checklist.sign {item.id}")
    at = parse_time(sign.at) or datetime.fromtimestamp(0, UTC)
    who = f"signed by {sign.by} {age(now, at)} ago" + (f": {sign.note}" if sign.note else "")
    if now - at > max_age:
        return ItemStatus(item, "stale", required, f"{who} (limit {max_age.days} d)", None, at)
    return ItemStatus(item, "proven", required, who, None, at)


def summary_line(statuses: Sequence[ItemStatus]) -> str:
    """``31/38 proven, 2 failing, 1 could not run, 4 stale, 0 unproven`` (could not run: only when any)."""
    count = {s: sum(1 for st in statuses if st.state == s) for s in STATES}
    error = f"{count['error']} could not run, " if count["error"] else ""
    return (
        f"{count['proven']}/{len(statuses)} proven, {count['failing']} failing, "
        f"{error}{count['stale']} stale, {count['unproven']} unproven"
    )
