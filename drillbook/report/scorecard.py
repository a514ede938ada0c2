"""The scorecard: for every drill, its latest verdict, key figure, and whether it is still fresh.

A checklist item is only as good as its last proof: "restore drill passed within
7 days". The limits live in the inventory (``report_freshness_days``, see
inventory/lab/group_vars/all/report.yml); a drill whose last *pass* is older than
its limit, or that never passed, is **stale**. ``runbook.check --strict`` and the
``drillbook_drill_stale`` metric are built on the same verdict.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path

from pydantic import BaseModel, Field, PositiveFloat
from rich.console import Console
from rich.table import Table
from rich.text import Text

from drillbook.core import settings as core_settings
from drillbook.core.console import VERDICT_MEANING, VERDICT_STYLE, out, plain
from drillbook.core.inventory import Inventory, load_inventory
from drillbook.core.store import Entry, display_path, load_entries
from drillbook.core.timefmt import age, age_s
from drillbook.report.figures import Figure, headline, key_figure


class ReportSettings(BaseModel):
    """``report_*`` variables of the inventory."""

    freshness_days: dict[str, PositiveFloat] = Field(default_factory=dict)
    freshness_default_days: PositiveFloat | None = None
    key_figures: dict[str, list[str]] = Field(default_factory=dict)

    def limit_days(self, drill: str) -> float | None:
        """Days a pass stays fresh for ``drill``: its own limit, else the default; None means never stale."""
        return self.freshness_days.get(drill, self.freshness_default_days)


def load_settings(inventory: Inventory | str | Path | None) -> ReportSettings:
    """Settings from an inventory (object or path); ``None`` gives the defaults."""
    if inventory is None:
        return ReportSettings()
    inv = inventory if isinstance(inventory, Inventory) else load_inventory(inventory)
    return core_settings.load_settings(inv, ReportSettings, "report_")


@dataclass
class DrillStatus:
    """One row of the scorecard."""

    drill: str
    runs: list[Entry]  # readable journals, oldest first (running ones included)
    limit_days: float | None
    now: datetime
    figures: list[str] = field(default_factory=list)

    @property
    def finished(self) -> list[Entry]:
        """Runs with a verdict; a journal still ``running`` is in progress or was killed."""
        return [e for e in self.runs if e.verdict != "running"]

    @property
    def latest(self) -> Entry | None:
        """The latest finished run (a journal still ``running`` is in progress or was killed)."""
        done = self.finished
        return done[-1] if done else None

    @property
    def last_run(self) -> Entry | None:
        """The newest run, finished or not (a ``running`` journal included)."""
        return self.runs[-1] if self.runs else None

    @property
    def last_pass(self) -> Entry | None:
        """The newest passing run, which is what freshness is measured from."""
        passed = [e for e in self.runs if e.verdict == "pass"]
        return passed[-1] if passed else None

    @property
    def verdict(self) -> str:
        """The latest finished run's verdict, or ``never`` when none finished."""
        latest = self.latest
        return latest.verdict if latest is not None else "never"

    @property
    def figure(self) -> Figure | None:
        """The latest finished run's key figure; None before any finished run or with no number."""
        latest = self.latest
        if latest is None or latest.journal is None:
            return None
        return key_figure(latest.journal, self.figures)

    @property
    def stale(self) -> bool:
        """True when :attr:`stale_reason` has a reason; a drill without a limit is never stale."""
        return self.stale_reason is not None

    @property
    def stale_reason(self) -> str | None:
        """Why the drill is stale (None when fresh or when it has no freshness limit)."""
        if self.limit_days is None:
            return None
        last = self.last_pass
        if last is None:
            return f"never passed (limit {_days(self.limit_days)})"
        age = self.now - last.ended
        if age > timedelta(days=self.limit_days):
            return f"last passed {age_s(age.total_seconds())} ago (limit {_days(self.limit_days)})"
        return None


@dataclass
class Scorecard:
    """Every drill's row, plus all journals found (unreadable ones too, so they can be reported)."""

    report_root: Path
    drills: list[DrillStatus]
    entries: list[Entry]
    generated_at: datetime
    settings: ReportSettings = field(default_factory=ReportSettings)

    @property
    def unreadable(self) -> list[Entry]:
        """Journals that could not be parsed; they count for no drill but are shown so they get fixed."""
        return [e for e in self.entries if not e.readable]

    def get(self, drill: str) -> DrillStatus | None:
        """The row of a drill that ran or has a limit; None otherwise (see :meth:`status`)."""
        return next((d for d in self.drills if d.drill == drill), None)

    def status(self, drill: str) -> DrillStatus:
        """The row of ``drill``; one with no runs (judged by its freshness limit) when it never ran."""
        found = self.get(drill)
        if found is not None:
            return found
        return DrillStatus(
            drill,
            [],
            self.settings.limit_days(drill),
            self.generated_at,
            self.settings.key_figures.get(drill, []),
        )


def build_scorecard(
    report_root: Path, settings: ReportSettings | None = None, now: datetime | None = None
) -> Scorecard:
    """Every drill that ran under ``report_root`` or has a freshness limit, with its status."""
    settings = settings or ReportSettings()
    now = now or datetime.now(UTC)
    entries = load_entries(report_root)
    by_drill: dict[str, list[Entry]] = {name: [] for name in settings.freshness_days}
    for entry in entries:
        if entry.readable:
            by_drill.setdefault(entry.drill, []).append(entry)
    drills = [
        DrillStatus(
            drill=name,
            runs=runs,
            limit_days=settings.limit_days(name),
            now=now,
            figures=settings.key_figures.get(name, []),
        )
        for name, runs in sorted(by_drill.items())
    ]
    return Scorecard(
        report_root=report_root, drills=drills, entries=entries, generated_at=now, settings=settings
    )


def _days(days: float) -> str:
    return f"{days:g} day" + ("" if days == 1 else "s")


def freshness_text(d: DrillStatus) -> str:
    """``fresh (7d)``, ``STALE: never passed (limit 7 days)`` or ``no limit``, with rich markup."""
    if d.limit_days is None:
        return "[dim]no limit[/dim]"
    if d.stale:
        return f"[bold red]STALE[/bold red]: {d.stale_reason}"
    return f"[green]fresh[/green] ({d.limit_days:g}d)"


def scorecard_table(card: Scorecard) -> Table:
    """The Rich table ``report.scorecard`` prints: one row per drill, with age and freshness."""
    table = Table(title=f"drill scorecard ({display_path(card.report_root)})")
    for col in ("drill", "verdict", "key figure", "when (UTC)", "freshness", "report"):
        table.add_column(col, overflow="fold")
    for d in card.drills:
        latest = d.latest
        style = VERDICT_STYLE.get(d.verdict, "dim")
        meaning = VERDICT_MEANING.get(d.verdict) if d.verdict != "pass" else None
        headline_ = headline(latest.journal, d.figures) if latest and latest.journal else ""
        when = (
            f"{latest.ended:%Y-%m-%d %H:%M} ({age(card.generated_at, latest.ended)} ago)" if latest else "-"
        )
        table.add_row(
            Text(d.drill),
            Text(d.verdict + (f" ({meaning})" if meaning else ""), style=style),
            Text(headline_),
            when,
            freshness_text(d),
            Text(display_path(latest.dir)) if latest else "",
        )
    return table


def render_terminal(
    report_root: Path | str,
    inventory: Inventory | str | Path | None = None,
    console: Console | None = None,
) -> Scorecard:
    """Print the scorecard table (and any unreadable journals); used by ``inv demo`` and ``report.list``."""
    console = console or out
    card = build_scorecard(Path(report_root), load_settings(inventory))
    console.print(scorecard_table(card))
    for entry in card.unreadable:
        console.print(
            f"[yellow]unreadable journal[/yellow] {plain(display_path(entry.path))}: {plain(entry.error)}"
        )
    return card
