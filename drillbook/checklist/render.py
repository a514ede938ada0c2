"""The checklist for people: a rich table in the terminal, Markdown, or one static HTML page."""

from __future__ import annotations

import html
from collections.abc import Sequence
from datetime import UTC, datetime

import jinja2
from rich.table import Table
from rich.text import Text

from drillbook.checklist.model import SECTIONS
from drillbook.checklist.status import ItemStatus, summary_line

STATE_STYLE = {
    "proven": "green",
    "failing": "bold red",
    "error": "bold yellow",
    "stale": "yellow",
    "unproven": "dim",
}
#: ``error`` reads "could not run": drillbook's blindness, kept apart from the service failing.
STATE_MARK = {
    "proven": "PROVEN",
    "failing": "FAILING",
    "error": "ERROR (could not run)",
    "stale": "STALE",
    "unproven": "unproven",
}


def _ordered(statuses: Sequence[ItemStatus]) -> list[ItemStatus]:
    return sorted(statuses, key=lambda s: SECTIONS.index(s.item.section))


def table(statuses: Sequence[ItemStatus]) -> Table:
    """The terminal view, in section order; cells are plain Text so sign-off notes cannot inject markup."""
    t = Table(title="production-readiness checklist", caption=summary_line(statuses), show_lines=False)
    for col in ("section", "id", "status", "statement", "evidence", "reason"):
        t.add_column(col, overflow="fold")
    for st in _ordered(statuses):
        status = Text(STATE_MARK[st.state], style=STATE_STYLE[st.state])
        if not st.required:
            status.append(" (optional)")
        evidence = st.item.evidence.describe() + (f"\n{st.evidence_path}" if st.evidence_path else "")
        # Text, not markup: a reason carries sign-off names and tools' messages ("[failed on host]").
        section, ident, statement = (Text(cell) for cell in (st.item.section, st.item.id, st.item.statement))
        t.add_row(section, ident, status, statement, Text(evidence), Text(st.reason))
    return t


def markdown(statuses: Sequence[ItemStatus], now: datetime | None = None) -> str:
    """A Markdown page with links to each item's evidence journal; ``|`` in text is replaced so rows hold."""
    now = now or datetime.now(UTC)
    lines = [
        "# Production-readiness checklist",
        "",
        f"{summary_line(statuses)} (as of {now.strftime('%Y-%m-%d %H:%M UTC')})",
        "",
        "| section | item | status | statement | evidence | reason |",
        "|---|---|---|---|---|---|",
    ]
    for st in _ordered(statuses):
        evidence = st.item.evidence.describe()
        if st.evidence_path:
            evidence += f" ([journal]({st.evidence_path}/journal.json))"
        optional = "" if st.required else " (optional)"
        lines.append(
            f"| {st.item.section} | {st.item.id} | **{STATE_MARK[st.state]}**{optional} | "
            f"{st.item.statement.replace('|', '/')} | {evidence} | {st.reason.replace('|', '/')} |"
        )
    return "\n".join(lines) + "\n"


_PAGE = jinja2.Template(
    """<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>Production-readiness checklist</title>
<style>
body{font-family:system-ui,sans-serif;margin:2rem;color:#222}
table{border-collapse:collapse;width:100%}
th,td{border:1px solid #ddd;padding:.4rem .6rem;text-align:left;vertical-align:top}
th{background:#f4f4f4}.proven{color:#17803d;font-weight:600}.failing{color:#c62828;font-weight:700}
.error{color:#ef6c00;font-weight:700}.stale{color:#b26a00;font-weight:600}.unproven{color:#888}
</style></head><body>
<h1>Production-readiness checklist</h1>
<p>{{ summary }} &middot; as of {{ now }}</p>
<table><tr><th>section</th><th>item</th><th>status</th><th>statement</th><th>evidence</th><th>reason</th></tr>
{% for st in statuses %}<tr><td>{{ st.item.section }}</td><td>{{ st.item.id }}</td>
<td class="{{ st.state }}">{{ marks[st.state] }}{% if not st.required %} (optional){% endif %}</td>
<td>{{ st.item.statement }}</td><td>{{ st.item.evidence.describe() }}
{% if st.evidence_path %}<br><a href="{{ st.evidence_path }}/journal.json">journal</a>{% endif %}</td>
<td>{{ st.reason }}</td></tr>
{% endfor %}</table></body></html>
""",
    autoescape=True,
)


def html_page(statuses: Sequence[ItemStatus], now: datetime | None = None) -> str:
    """One self-contained HTML page (inline style, values autoescaped), for sharing outside a terminal."""
    now = now or datetime.now(UTC)
    return str(
        _PAGE.render(
            statuses=_ordered(statuses),
            summary=html.escape(summary_line(statuses)),
            now=now.strftime("%Y-%m-%d %H:%M UTC"),
            marks=STATE_MARK,
        )
    )
