"""Key figures: the one or few numbers that say how a drill went, with the limit they are judged by.

A journal's measurements are free-form; the report layer reads the ones named in
:data:`KEY_FIGURES` (or the per-drill list in ``report_key_figures``) and finds the
limit in the check that judged the figure, so ``restore_s`` is plotted against the
RTO that the restore check used, whatever the drill calls its threshold.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any

from drillbook.core.journal import Check, Journal

#: The figures the scorecard looks for, in order of preference: the first one a journal has is its key figure.
KEY_FIGURES = ("restore_s", "readiness_flip_s", "detection_s", "achieved_rps", "p95_ms")
_LIMIT = re.compile(r"^\s*(<=|>=|<|>|==)?\s*(-?\d+(?:\.\d+)?(?:[eE][-+]?\d+)?)\s*$")


@dataclass(frozen=True)
class Figure:
    """A numeric measurement and, when a check judged it, the limit (``op`` is ``<=``/``>=``...)."""

    name: str
    value: float
    limit: float | None = None
    op: str | None = None
    ok: bool | None = None

    @property
    def limit_text(self) -> str:
        """``<= 30`` for a judged figure; empty when no check judged it."""
        if self.limit is None:
            return ""
        return f"{self.op or ''} {_num(self.limit)}".strip()

    def render(self) -> str:
        """``rto_s=12.3 (<= 60)``: how tables and the scorecard show a figure."""
        text = f"{self.name}={_num(self.value)}"
        return f"{text} ({self.limit_text})" if self.limit is not None else text


def _num(value: float) -> str:
    return f"{value:.3f}".rstrip("0").rstrip(".") if abs(value) < 1e6 else f"{value:.0f}"


def as_number(value: Any) -> float | None:
    """A measurement as a float; bools and non-numbers are not figures."""
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        return None
    number = float(value)
    return number if number == number and abs(number) != float("inf") else None


def parse_limit(limit: Any) -> tuple[str | None, float | None]:
    """``"<= 300"`` -> ("<=", 300.0); ``300`` -> (None, 300.0); anything else -> (None, None)."""
    number = as_number(limit)
    if number is not None:
        return None, number
    if isinstance(limit, str):
        match = _LIMIT.match(limit)
        if match:
            return match.group(1), float(match.group(2))
    return None, None


def _judging_check(journal: Journal, name: str, value: float) -> Check | None:
    """The check that judged measurement ``name``: same name, then a name containing it, then same value."""
    exact = [c for c in journal.checks if c.name == name]
    containing = [c for c in journal.checks if name in c.name]
    same_value = [c for c in journal.checks if as_number(c.value) == value]
    for group in (exact, containing, same_value):
        for check in group:
            if parse_limit(check.limit)[1] is not None:
                return check
    return None


def figure(journal: Journal, name: str) -> Figure | None:
    """A numeric measurement with the limit of the check that judged it; None when absent or not a number."""
    value = as_number(journal.measurements.get(name))
    if value is None:
        return None
    check = _judging_check(journal, name, value)
    if check is None:
        return Figure(name, value)
    op, limit = parse_limit(check.limit)
    return Figure(name, value, limit, op, check.ok)


def figure_names(journal: Journal, preferred: list[str] | None = None) -> list[str]:
    """The key figures present in ``journal``, preferred ones first."""
    wanted = list(preferred or []) + [n for n in KEY_FIGURES if n not in (preferred or [])]
    return [n for n in wanted if as_number(journal.measurements.get(n)) is not None]


def key_figure(journal: Journal, preferred: list[str] | None = None) -> Figure | None:
    """The one figure a table shows: a known key figure, else the first numeric measurement."""
    names = figure_names(journal, preferred)
    if not names:
        names = [k for k, v in journal.measurements.items() if as_number(v) is not None][:1]
    return figure(journal, names[0]) if names else None


def headline(journal: Journal, preferred: list[str] | None = None) -> str:
    """The key figure, plus the first failed check when the figure alone would not explain a fail."""
    fig = key_figure(journal, preferred)
    text = fig.render() if fig else ""
    failed = [c for c in journal.failed_checks if fig is None or c.name != fig.name]
    if failed:
        c = failed[0]
        more = f" (+{len(failed) - 1} more)" if len(failed) > 1 else ""
        text = f"{text}; " if text else ""
        text += f"failed {c.name}={_value(c.value)} ({c.limit}){more}"
    return text


def _value(value: Any) -> str:
    number = as_number(value)
    return _num(number) if number is not None else str(value)[:60]
