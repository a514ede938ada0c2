"""``report.html``: one static page, the scorecard a team looks at before a release.

Self-contained: plots are PNGs embedded as base64 data URIs, links to journals are
relative to the page, so the page can be archived by CI or opened from a laptop.
"""

from __future__ import annotations

import base64
import os
from dataclasses import dataclass
from pathlib import Path

from jinja2 import Environment, select_autoescape

from drillbook.core.console import VERDICT_MEANING
from drillbook.core.inventory import Inventory
from drillbook.core.journal import write_atomic
from drillbook.core.store import Entry
from drillbook.report.figures import headline
from drillbook.report.plots import plot_png, series_for
from drillbook.report.scorecard import DrillStatus, ReportSettings, Scorecard, build_scorecard, load_settings

RECENT_RUNS = 60

_TEMPLATE = """<!doctype html>
<html lang="en">
<head>
<meta charset="utf-8">
<title>drillbook scorecard</title>
<style>
 body { font-family: system-ui, sans-serif; margin: 2em; color: #222; }
 table { border-collapse: collapse; margin-bottom: 2em; }
 th, td { border: 1px solid #ccc; padding: .3em .6em; text-align: left; vertical-align: top; }
 th { background: #f3f3f3; }
 .pass { color: #2e7d32; font-weight: bold; } .fail { color: #c62828; font-weight: bold; }
 .error { color: #ef6c00; font-weight: bold; } .running, .never, .unreadable { color: #777; }
 .stale { color: #c62828; font-weight: bold; } .fresh { color: #2e7d32; }
 .failed-check { color: #c62828; } small { color: #666; }
 img { max-width: 100%; border: 1px solid #eee; }
</style>
</head>
<body>
<h1>drillbook scorecard</h1>
<p><small>generated {{ generated }} from <code>{{ root }}</code>{% if inventory %}, freshness limits from
<code>{{ inventory }}</code>{% endif %}</small></p>

<h2>Latest verdict per drill</h2>
<table>
<tr><th>drill</th><th>verdict</th><th>key figure</th><th>checks</th><th>last run</th><th>last pass</th>
<th>freshness</th><th>runs</th><th>journal</th></tr>
{% for row in rows %}
<tr>
 <td><a href="#{{ row.anchor }}">{{ row.drill }}</a></td>
 <td class="{{ row.verdict }}">{{ row.verdict }}
 {% if row.meaning %}<br><small>{{ row.meaning }}</small>{% endif %}
 {% if row.error %}<br><small>{{ row.error }}</small>{% endif %}</td>
 <td>{{ row.figure }}</td>
 <td>{{ row.checks }}{% for c in row.failed_checks %}
  <br><span class="failed-check">&#x2717; {{ c }}</span>{% endfor %}</td>
 <td>{{ row.last_run }}</td>
 <td>{{ row.last_pass }}</td>
 <td class="{{ 'stale' if row.stale else 'fresh' }}">{{ row.freshness }}</td>
 <td>{{ row.runs }}</td>
 <td>{% if row.summary %}<a href="{{ row.summary }}">summary</a> &middot;
  <a href="{{ row.journal }}">journal</a>{% endif %}</td>
</tr>
{% endfor %}
</table>

<h2>Trends</h2>
{% for plot in plots %}
<h3 id="{{ plot.anchor }}">{{ plot.drill }}</h3>
<img alt="trend of {{ plot.names }} for {{ plot.drill }}" src="data:image/png;base64,{{ plot.png }}">
{% else %}
<p>No drill has run twice yet: trends appear from the second run.</p>
{% endfor %}

<h2>Recent runs</h2>
<table>
<tr><th>started (UTC)</th><th>drill</th><th>verdict</th><th>key figure</th><th>journal</th></tr>
{% for run in recent %}
<tr><td>{{ run.when }}</td><td>{{ run.drill }}</td><td class="{{ run.verdict }}">{{ run.verdict }}</td>
<td>{{ run.figure }}</td><td><a href="{{ run.link }}">{{ run.path }}</a>
{% if run.error %}<br><small>{{ run.error }}</small>{% endif %}</td></tr>
{% endfor %}
</table>
{% if unreadable %}
<h2>Unreadable journals</h2>
<ul>{% for u in unreadable %}<li><a href="{{ u.link }}">{{ u.path }}</a>: {{ u.error }}</li>{% endfor %}</ul>
{% endif %}
</body>
</html>
"""


@dataclass(frozen=True)
class Plot:
    """One drill's trend chart, embedded in the page as a base64 PNG (the page has no side files)."""

    drill: str
    anchor: str
    names: str
    png: str  # base64


def _anchor(drill: str) -> str:
    return "drill-" + "".join(ch if ch.isalnum() else "-" for ch in drill)


def _when(entry: Entry | None) -> str:
    return entry.ended.strftime("%Y-%m-%d %H:%M:%S") if entry else "-"


def _row(d: DrillStatus, base: Path) -> dict[str, object]:
    latest = d.latest
    journal = latest.journal if latest else None
    failed = [f"{c.name}: {c.value} (limit {c.limit})" for c in journal.failed_checks] if journal else []
    if d.limit_days is None:
        freshness = "no limit"
    elif d.stale:
        freshness = f"STALE: {d.stale_reason}"
    else:
        freshness = f"fresh (limit {d.limit_days:g} days)"
    fig = d.figure
    return {
        "drill": d.drill,
        "anchor": _anchor(d.drill),
        "verdict": d.verdict,
        # error is "could not run" (drillbook's blindness), fail is "failing" (the service's):
        # the page says which, and why the run could not measure.
        "meaning": VERDICT_MEANING.get(d.verdict, "") if d.verdict != "pass" else "",
        "error": (journal.error or "") if journal and d.verdict == "error" else "",
        "figure": fig.render() if fig else "",
        "checks": f"{len(journal.checks) - len(failed)}/{len(journal.checks)} ok" if journal else "",
        "failed_checks": failed,
        "last_run": _when(latest),
        "last_pass": _when(d.last_pass),
        "stale": d.stale,
        "freshness": freshness,
        "runs": len(d.finished),
        "summary": _rel(latest.summary, base) if latest else "",
        "journal": _rel(latest.path, base) if latest else "",
    }


def _rel(path: Path, base: Path) -> str:
    return Path(os.path.relpath(path.resolve(), base.resolve())).as_posix()


def plots_for(card: Scorecard) -> list[Plot]:
    """One plot per drill that has two or more finished runs."""
    plots = []
    for d in card.drills:
        if len([e for e in d.finished if e.journal is not None]) < 2:
            continue
        series = series_for(d)
        png = plot_png(d.drill, series)
        plots.append(
            Plot(
                d.drill,
                _anchor(d.drill),
                ", ".join(s.name for s in series),
                base64.b64encode(png).decode("ascii"),
            )
        )
    return plots


def render_html(card: Scorecard, out_dir: Path, inventory: str | None = None) -> str:
    """The scorecard page; links are relative to ``out_dir`` so the folder can be moved or served."""
    env = Environment(autoescape=select_autoescape(default=True, default_for_string=True))
    template = env.from_string(_TEMPLATE)
    recent = []
    for entry in reversed(card.entries[-RECENT_RUNS:]):
        figure = headline(entry.journal, card.settings.key_figures.get(entry.drill)) if entry.journal else ""
        recent.append(
            {
                "when": entry.started.strftime("%Y-%m-%d %H:%M:%S"),
                "drill": entry.drill,
                "verdict": entry.verdict,
                "figure": figure,
                "link": _rel(entry.summary, out_dir),
                "path": _rel(entry.dir, card.report_root),
                "error": entry.error or "",
            }
        )
    return template.render(
        generated=card.generated_at.strftime("%Y-%m-%d %H:%M:%S UTC"),
        root=str(card.report_root),
        inventory=inventory,
        rows=[_row(d, out_dir) for d in card.drills],
        plots=plots_for(card),
        recent=recent,
        unreadable=[
            {"link": _rel(e.path, out_dir), "path": _rel(e.path, card.report_root), "error": e.error}
            for e in card.unreadable
        ],
    )


def write_html(
    report_root: Path | str,
    out_path: Path | str | None = None,
    inventory: Inventory | str | Path | None = None,
    *,
    settings: ReportSettings | None = None,
) -> Path:
    """Write the scorecard page (default ``<report_root>/index.html``) and return its path."""
    root = Path(report_root)
    out = Path(out_path) if out_path else root / "index.html"
    card = build_scorecard(root, settings or load_settings(inventory))
    name = inventory.name if isinstance(inventory, Inventory) else (str(inventory) if inventory else None)
    write_atomic(out, render_html(card, out.parent, name))
    out.chmod(0o644)  # a web server or CI artefact store reads it as another user
    return out
