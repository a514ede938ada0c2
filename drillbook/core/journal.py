"""The drill journal: what was asked, what happened, what was measured, and the verdict.

A journal is written atomically (temp file + rename) after every phase, so a drill
killed halfway still leaves its evidence. Its fields are the contract every other
part of drillbook reads (report list, scorecard, checklist, metrics export)::

    drill, verdict, started_at, finished_at, inventory, environment, thresholds,
    measurements, witnesses, checks[{name, value, limit, ok, detail, op, limit_from}],
    phases[{name, started_at, duration_s, ok, detail}], artefacts[], error, interrupted
"""

from __future__ import annotations

import json
import os
import tempfile
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, Literal

Verdict = Literal["running", "pass", "fail", "error"]

EXIT_CODES: dict[str, int] = {"pass": 0, "fail": 1, "error": 2}


def utc_now() -> str:
    """UTC ISO-8601 with milliseconds and a Z: sortable and unambiguous."""
    return datetime.now(UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")


def utc_stamp(at: datetime | None = None) -> str:
    """A compact UTC timestamp for directory names: 20261122T015108Z."""
    return (at or datetime.now(UTC)).strftime("%Y%m%dT%H%M%SZ")


@dataclass
class Check:
    """One named comparison of a measurement with its limit."""

    name: str
    value: Any
    limit: Any
    ok: bool
    detail: str = ""
    op: str = ""  # the comparison: "<=", ">=", "==", "is true" (empty in journals before declared checks)
    limit_from: str = ""  # the settings field the limit came from, when not a constant


@dataclass
class Phase:
    name: str
    started_at: str
    duration_s: float = 0.0
    ok: bool = True
    detail: str = ""


@dataclass
class Journal:
    drill: str
    inventory: str
    environment: str
    started_at: str = field(default_factory=utc_now)
    finished_at: str | None = None
    verdict: Verdict = "running"
    thresholds: dict[str, Any] = field(default_factory=dict)
    measurements: dict[str, Any] = field(default_factory=dict)
    witnesses: dict[str, str] = field(default_factory=dict)
    checks: list[Check] = field(default_factory=list)
    phases: list[Phase] = field(default_factory=list)
    artefacts: list[str] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)
    options: dict[str, Any] = field(default_factory=dict)
    runbook: str | None = None
    report_dir: str | None = None
    error: str | None = None
    interrupted: bool = False

    @property
    def failed_checks(self) -> list[Check]:
        return [c for c in self.checks if not c.ok]

    @property
    def exit_code(self) -> int:
        if self.interrupted:
            return 130
        return EXIT_CODES.get(self.verdict, 2)

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    def write(self, path: Path) -> None:
        """Write atomically: readers never see half a journal."""
        write_atomic(path, json.dumps(self.to_dict(), indent=2, default=str) + "\n")

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> Journal:
        data = dict(data)
        data["checks"] = [Check(**c) for c in data.get("checks", [])]
        data["phases"] = [Phase(**p) for p in data.get("phases", [])]
        known = set(cls.__dataclass_fields__)
        return cls(**{k: v for k, v in data.items() if k in known})

    @classmethod
    def read(cls, path: Path) -> Journal:
        return cls.from_dict(json.loads(path.read_text()))


def write_atomic(path: Path, text: str) -> None:
    """Write ``text`` to ``path`` through a temp file in the same directory and a rename."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.")
    try:
        with os.fdopen(fd, "w") as fh:
            fh.write(text)
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def _fmt(value: Any) -> str:
    if isinstance(value, float):
        return f"{value:.3f}".rstrip("0").rstrip(".") if abs(value) < 1e6 else f"{value:.0f}"
    if isinstance(value, (dict, list)):
        return json.dumps(value, default=str)[:120]
    return str(value)


def summary_markdown(journal: Journal, extra: str = "") -> str:
    """A short human summary: verdict, checks, measurements with their witnesses, phases."""
    lines = [
        f"# {journal.drill}: {journal.verdict.upper()}",
        "",
        f"- inventory: `{journal.inventory}` ({journal.environment})",
        f"- started: {journal.started_at}  finished: {journal.finished_at}",
    ]
    if journal.runbook:
        lines.append(f"- runbook: `{journal.runbook}`")
    if journal.interrupted:
        lines.append("- **interrupted**: the restore phase still ran; see phases")
    if journal.error:
        lines.append(f"- error: {journal.error}")
    if journal.checks:
        lines += ["", "## Checks", "", "| check | value | limit | ok |", "|---|---|---|---|"]
        for c in journal.checks:
            mark = "yes" if c.ok else "**NO**"
            detail = f" ({c.detail})" if c.detail else ""
            lines.append(f"| {c.name} | {_fmt(c.value)}{detail} | {_fmt(c.limit)} | {mark} |")
    if journal.measurements:
        lines += ["", "## Measurements", "", "| measurement | value | witness |", "|---|---|---|"]
        for key, value in journal.measurements.items():
            lines.append(f"| {key} | {_fmt(value)} | {journal.witnesses.get(key, '')} |")
    if journal.phases:
        lines += ["", "## Phases", "", "| phase | duration_s | ok | detail |", "|---|---|---|---|"]
        for p in journal.phases:
            lines.append(f"| {p.name} | {p.duration_s:.3f} | {'yes' if p.ok else 'NO'} | {p.detail} |")
    if journal.artefacts:
        lines += ["", "## Artefacts", ""] + [f"- [{a}]({a})" for a in journal.artefacts]
    if extra:
        lines += ["", extra]
    return "\n".join(lines) + "\n"
