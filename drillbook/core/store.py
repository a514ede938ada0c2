"""Find and read drill journals under a report root.

Every drill leaves ``<root>/<UTC stamp>-<drill>/journal.json``. Reports pile up over
months, files get truncated by a full disk or edited by hand, so a journal that
does not parse is kept as an *unreadable* entry with the reason, never a crash:
the scorecard shows it and goes on with the rest.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from drillbook.core.journal import Journal

JOURNAL_NAME = "journal.json"
VERDICTS = ("running", "pass", "fail", "error")
#: How deep under the root journals may sit (``<root>/<run>/journal.json`` and one level more).
MAX_DEPTH = 2
_STAMP = re.compile(r"^(\d{8}T\d{6}Z)-(.+?)(?:-\d+)?$")


@dataclass(frozen=True)
class Entry:
    """One journal file: the parsed journal, or why it could not be read."""

    path: Path
    journal: Journal | None
    error: str | None = None

    @property
    def dir(self) -> Path:
        """The run's report directory (the journal's parent)."""
        return self.path.parent

    @property
    def readable(self) -> bool:
        """False when the journal did not parse; :attr:`error` then says why."""
        return self.journal is not None

    @property
    def drill(self) -> str:
        """From the journal, else the directory name, so an unreadable run still counts for its drill."""
        if self.journal is not None:
            return self.journal.drill
        match = _STAMP.match(self.dir.name)
        return match.group(2) if match else self.dir.name

    @property
    def verdict(self) -> str:
        """The journal's verdict, or ``unreadable``."""
        return self.journal.verdict if self.journal is not None else "unreadable"

    @property
    def started(self) -> datetime:
        """When the drill started; for an unreadable journal, its directory's stamp or the file time."""
        if self.journal is not None:
            parsed = parse_time(self.journal.started_at)
            if parsed is not None:
                return parsed
        match = _STAMP.match(self.dir.name)
        if match:
            return datetime.strptime(match.group(1), "%Y%m%dT%H%M%SZ").replace(tzinfo=UTC)
        try:
            return datetime.fromtimestamp(self.path.stat().st_mtime, UTC)
        except OSError:
            return datetime.fromtimestamp(0, UTC)

    @property
    def finished(self) -> datetime | None:
        """None while running, when killed before the end, or when the journal is unreadable."""
        return parse_time(self.journal.finished_at) if self.journal is not None else None

    @property
    def ended(self) -> datetime:
        """The moment a run counts from (finished, else started)."""
        return self.finished or self.started

    @property
    def summary(self) -> Path:
        """The page a person opens: summary.md when present, else the journal."""
        summary = self.dir / "summary.md"
        return summary if summary.exists() else self.path


def parse_time(value: Any) -> datetime | None:
    """UTC ISO-8601 (``...Z`` or with an offset) -> aware datetime; None when absent or malformed."""
    if not isinstance(value, str) or not value:
        return None
    try:
        parsed = datetime.fromisoformat(value.replace("Z", "+00:00"))
    except ValueError:
        return None
    return parsed if parsed.tzinfo else parsed.replace(tzinfo=UTC)


def find_journals(root: Path) -> list[Path]:
    """Every ``journal.json`` under ``root`` (at most :data:`MAX_DEPTH` levels down)."""
    if not root.is_dir():
        return []
    found: list[Path] = []
    for depth in range(1, MAX_DEPTH + 1):
        found.extend(root.glob("/".join(["*"] * depth + [JOURNAL_NAME])))
    return sorted(p for p in found if p.is_file())


def read_entry(path: Path) -> Entry:
    """Read one journal; anything wrong with it becomes ``Entry.error``."""
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError) as exc:
        return Entry(path, None, f"cannot read: {exc}")
    except json.JSONDecodeError as exc:
        return Entry(path, None, f"not JSON: {exc.msg} at line {exc.lineno}")
    problem = _shape_problem(data)
    if problem:
        return Entry(path, None, problem)
    try:
        journal = Journal.from_dict(data)
    except (TypeError, ValueError, KeyError, AttributeError) as exc:
        return Entry(path, None, f"not a drill journal: {exc}")
    return Entry(path, journal)


def _shape_problem(data: Any) -> str | None:
    """The fields the report layer relies on, checked before trusting the file."""
    if not isinstance(data, dict):
        return f"not a drill journal: top level is {type(data).__name__}, not an object"
    if not isinstance(data.get("drill"), str) or not data["drill"]:
        return "not a drill journal: no 'drill' name"
    if data.get("verdict") not in VERDICTS:
        return f"not a drill journal: verdict {data.get('verdict')!r} is not one of {', '.join(VERDICTS)}"
    if parse_time(data.get("started_at")) is None:
        return f"not a drill journal: started_at {data.get('started_at')!r} is not an ISO-8601 time"
    for key, kind in (("measurements", dict), ("thresholds", dict), ("checks", list), ("phases", list)):
        if key in data and not isinstance(data[key], kind):
            return f"not a drill journal: '{key}' is not a {kind.__name__}"
    for item in data.get("checks", []):
        if not isinstance(item, dict) or "name" not in item:
            return "not a drill journal: a check without a name"
    return None


def load_entries(root: Path) -> list[Entry]:
    """Every journal under ``root``, oldest first (unreadable ones included)."""
    entries = [read_entry(p) for p in find_journals(root)]
    return sorted(entries, key=lambda e: (e.started, str(e.path)))


def display_path(path: Path) -> str:
    """``path`` relative to the working directory when it is under it, else as given."""
    try:
        return str(path.resolve().relative_to(Path.cwd().resolve()))
    except ValueError:
        return str(path)
