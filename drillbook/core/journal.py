"""The drill journal: what was asked, what happened, what was measured, and the verdict.

A journal is written atomically (temp file + rename) after every phase, so a drill
killed halfway still leaves its evidence. Its fields are the contract every other
part of drillbook reads (report list, scorecard, checklist, metrics export)::

    drill, verdict, started_at, finished_at, inventory, environment, thresholds,
    measurements, witnesses, checks[{name, value, limit, ok, detail, op, limit_from}],
    phases[{name, started_at, duration_s, ok, detail}], artefacts[], error, interrupted

Nothing written here carries a secret: :meth:`Journal.write` and
:func:`summary_markdown` pass everything through :func:`drillbook.core.redact.redact`
(a drill may copy settings holding a DSN into ``thresholds``; the journal must
not keep its password). Reports are private by default: the report folder is
0700 and its files 0600 (:func:`report_modes`, ``DRILLBOOK_REPORT_MODE``), since
a journal still names hosts, users and databases.
"""

from __future__ import annotations

import json
import os
import stat
import tempfile
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, Literal

from drillbook.core.errors import ConfigError
from drillbook.core.redact import redact, redact_text

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
    """One lifecycle phase in the journal: ``duration_s`` in seconds, ``detail`` the error if not ok."""

    name: str
    started_at: str
    duration_s: float = 0.0
    ok: bool = True
    detail: str = ""


@dataclass
class Journal:
    """One drill run: the record every report, scorecard, checklist and metric reads.

    ``verdict`` stays ``running`` until the drill ends, so a journal left ``running``
    means the process was killed. ``thresholds`` and ``measurements`` are plain
    JSON values keyed by name; ``witnesses`` says what measured each one.
    """

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
        """The checks that did not hold, in the order they were evaluated."""
        return [c for c in self.checks if not c.ok]

    @property
    def exit_code(self) -> int:
        """The task's exit code: 0 pass, 1 fail, 2 error (or still running), 130 when interrupted."""
        if self.interrupted:
            return 130
        return EXIT_CODES.get(self.verdict, 2)

    def to_dict(self) -> dict[str, Any]:
        """Plain dict, NOT redacted: use :meth:`write` or :meth:`redacted` for anything written out."""
        return asdict(self)

    def redacted(self) -> Journal:
        """A copy with every secret masked (DSN passwords, secret-named keys, known secret values)."""
        return Journal.from_dict(redact(json.loads(json.dumps(self.to_dict(), default=str))))

    def write(self, path: Path) -> None:
        """Write atomically and redacted: readers never see half a journal, nor a password.

        When ``path`` is in the journal's own report folder, the folder and the
        files drills wrote into it are brought to the report modes as well
        (after every phase, so artefacts written with a plain ``write_text`` are
        covered too; the folder itself is private from the first write).
        """
        text = json.dumps(redact(self.to_dict()), indent=2, default=str) + "\n"
        write_atomic(path, text)
        if self.report_dir and Path(self.report_dir) == path.parent:
            seal_report_dir(path.parent)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> Journal:
        """Rebuild from JSON; unknown keys are dropped so journals from newer versions still load."""
        data = dict(data)
        data["checks"] = [Check(**c) for c in data.get("checks", [])]
        data["phases"] = [Phase(**p) for p in data.get("phases", [])]
        known = set(cls.__dataclass_fields__)
        return cls(**{k: v for k, v in data.items() if k in known})

    @classmethod
    def read(cls, path: Path) -> Journal:
        """Load a ``journal.json``; parse errors propagate (the caller decides if unreadable is fatal)."""
        return cls.from_dict(json.loads(path.read_text()))


REPORT_MODE_ENV = "DRILLBOOK_REPORT_MODE"


def report_modes() -> tuple[int, int]:
    """(folder mode, file mode) for reports: 0700/0600 unless ``$DRILLBOOK_REPORT_MODE`` says otherwise.

    The variable is the folder's octal mode (``0750`` to share with a group,
    ``0755`` for everyone); files get the same bits without execute (0640, 0644).
    """
    raw = os.environ.get(REPORT_MODE_ENV, "").strip()
    if not raw:
        return 0o700, 0o600
    try:
        mode = int(raw, 8)
    except ValueError:
        mode = -1
    if not 0 <= mode <= 0o777 or not mode & 0o700 == 0o700:
        raise ConfigError(f"{REPORT_MODE_ENV}={raw!r}: want an octal folder mode such as 0700 or 0750")
    return mode, mode & 0o666


def make_report_dir(path: Path) -> Path:
    """Create one report folder with the report mode (raises FileExistsError like ``Path.mkdir``).

    The call ``drillbook.core.drill._new_report_dir`` makes instead of ``path.mkdir()``.
    The mode is set with chmod after mkdir, so the umask cannot loosen it.
    """
    dir_mode, _ = report_modes()
    path.mkdir(mode=dir_mode)
    os.chmod(path, dir_mode)
    return path


def seal_report_dir(path: Path) -> None:
    """Bring a report folder and the regular files in it (recursively) to the report modes.

    Only ever tightens to the configured modes; symlinks are left alone.
    """
    dir_mode, file_mode = report_modes()
    for root, dirs, files in os.walk(path):
        for name in [*dirs, ""]:
            _chmod(Path(root, name) if name else Path(root), dir_mode)
        for name in files:
            _chmod(Path(root, name), file_mode)


def _chmod(path: Path, mode: int) -> None:
    try:
        st = path.lstat()
        if not stat.S_ISLNK(st.st_mode) and stat.S_IMODE(st.st_mode) != mode:
            os.chmod(path, mode)
    except OSError:
        pass  # a file removed meanwhile, or not ours: the folder's mode still protects it


def write_report_text(path: Path, text: str) -> None:
    """Write a text artefact (summary.md, HTML, metrics) redacted, atomically, in the report file mode."""
    write_atomic(path, redact_text(text))


def write_atomic(path: Path, text: str) -> None:
    """Write ``text`` to ``path`` through a temp file in the same directory and a rename.

    The file gets the report file mode (0600 by default): journals and
    summaries are written through here, and mkstemp's private temp file keeps
    that mode until the rename.
    """
    path.parent.mkdir(parents=True, exist_ok=True)
    _, file_mode = report_modes()
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.")
    try:
        os.fchmod(fd, file_mode)
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
    """A short human summary: verdict, checks, measurements with their witnesses, phases (redacted)."""
    journal = journal.redacted()
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
            limit = f"{c.op} {_fmt(c.limit)}" if c.op and c.op != "is true" else _fmt(c.limit)
            lines.append(f"| {c.name} | {_fmt(c.value)}{detail} | {limit} | {mark} |")
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
    return redact_text("\n".join(lines) + "\n")
