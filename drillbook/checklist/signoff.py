"""Manual sign-offs: who vouched for an item, when, and what they said.

Kept as JSON lines next to the drill journals (``<report root>/checklist/signoffs.jsonl``),
append-only, so the history of who signed what stays readable and a sign-off
ages out exactly like a drill does.
"""

from __future__ import annotations

import getpass
import json
from dataclasses import asdict, dataclass
from pathlib import Path

from drillbook.core.journal import utc_now


@dataclass(frozen=True)
class SignOff:
    """One line of the sign-off log: item id, who, when (UTC ISO string) and their note."""

    item: str
    by: str
    at: str
    note: str = ""


def signoff_path(report_root: Path) -> Path:
    """The append-only log's location; it may not exist yet (no sign-off so far)."""
    return report_root / "checklist" / "signoffs.jsonl"


def record(
    report_root: Path, item: str, by: str | None = None, note: str = "", at: str | None = None
) -> SignOff:
    """Append a sign-off and return it; ``by`` defaults to the login name, ``at`` to now (UTC)."""
    entry = SignOff(item=item, by=by or getpass.getuser(), at=at or utc_now(), note=note)
    path = signoff_path(report_root)
    path.parent.mkdir(parents=True, exist_ok=True)
    with path.open("a") as fh:
        fh.write(json.dumps(asdict(entry)) + "\n")
    return entry


def latest(report_root: Path) -> dict[str, SignOff]:
    """The newest sign-off per item; unreadable lines are skipped (a hand-edited file must not crash)."""
    out: dict[str, SignOff] = {}
    path = signoff_path(report_root)
    if not path.exists():
        return out
    for line in path.read_text().splitlines():
        try:
            data = json.loads(line)
            entry = SignOff(**data)
        except (ValueError, TypeError):
            continue
        if entry.item not in out or entry.at >= out[entry.item].at:
            out[entry.item] = entry
    return out
