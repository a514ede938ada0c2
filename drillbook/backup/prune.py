"""Retention: which backups to keep, which to delete, and why.

A backup is kept when any rule wants it:

* ``keep-last N``: the N newest complete backups;
* ``keep-daily D``: the newest backup of each of the D most recent days (UTC)
  that have one;
* *newest verified*: the newest backup whose last restore drill passed, always,
  whatever N and D say; deleting the only backup known to restore would turn a
  retention setting into an outage.

Incomplete backups (no manifest: interrupted, or being written right now) are
only removed once older than ``backup_incomplete_grace_s``. The plan is a pure
function of the listing, so it is tested without a repository and printed as is
by ``--dry-run``.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import UTC, datetime

from drillbook.backup.repository import Repository, list_backups
from drillbook.core import interrupts


@dataclass(frozen=True)
class Candidate:
    """One backup as retention sees it: ``at`` from its id (UTC), ``verified`` when its last drill passed."""

    id: str
    at: datetime
    complete: bool
    verified: bool


@dataclass
class Decision:
    """Keep or delete one backup, with every rule that wanted it kept (or why it goes)."""

    id: str
    keep: bool
    reasons: list[str] = field(default_factory=list)

    def __str__(self) -> str:
        return f"{'keep' if self.keep else 'delete'} {self.id}: {', '.join(self.reasons)}"


def id_time(backup_id: str) -> datetime:
    """The UTC time encoded in a backup id (``20261122T015108Z`` or ``...Z-2``)."""
    return datetime.strptime(backup_id.split("-")[0], "%Y%m%dT%H%M%SZ").replace(tzinfo=UTC)


def plan(
    candidates: list[Candidate],
    *,
    keep_last: int,
    keep_daily: int,
    now: datetime,
    incomplete_grace_s: float,
) -> list[Decision]:
    """One decision per candidate, newest first."""
    ordered = sorted(candidates, key=lambda c: (c.at, c.id), reverse=True)
    decisions = {c.id: Decision(c.id, keep=False) for c in ordered}
    complete = [c for c in ordered if c.complete]
    for c in complete[:keep_last]:
        decisions[c.id].reasons.append(f"one of the {keep_last} newest")
    days: list[str] = []
    for c in complete:
        day = c.at.strftime("%Y-%m-%d")
        if day not in days:
            days.append(day)
            if len(days) <= keep_daily:
                decisions[c.id].reasons.append(f"newest of {day}")
    verified = next((c for c in complete if c.verified), None)
    if verified:
        decisions[verified.id].reasons.append("newest verified backup")
    incomplete = {c.id for c in ordered if not c.complete}
    for c in ordered:
        if not c.complete:
            age = (now - c.at).total_seconds()
            if age < incomplete_grace_s:
                decisions[c.id].reasons.append(f"incomplete, may still be being written ({age:.0f}s old)")
    for d in decisions.values():
        d.keep = bool(d.reasons)
        if not d.reasons:
            d.reasons.append(
                "incomplete (no manifest), abandoned" if d.id in incomplete else "outside retention"
            )
    return [decisions[c.id] for c in ordered]


def prune(
    repo: Repository,
    *,
    keep_last: int,
    keep_daily: int,
    incomplete_grace_s: float,
    dry_run: bool = False,
    now: datetime | None = None,
) -> list[Decision]:
    """Apply :func:`plan` to ``repo``; with ``dry_run`` nothing is deleted."""
    entries = list_backups(repo, include_incomplete=True)
    candidates = [
        Candidate(
            id=e.id,
            at=id_time(e.id),
            complete=e.complete,
            verified=bool(e.record and e.record.verified_at and e.manifest is not None),
        )
        for e in entries
    ]
    decisions = plan(
        candidates,
        keep_last=keep_last,
        keep_daily=keep_daily,
        now=now or datetime.now(UTC),
        incomplete_grace_s=incomplete_grace_s,
    )
    if not dry_run:
        for d in decisions:
            if not d.keep:
                with interrupts.shielded():
                    repo.delete(d.id)
    return decisions
