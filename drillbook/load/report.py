"""A load run's figures as Markdown: in summary.md at the end of a run, and again for ``inv load.report``.

Everything is rendered from the journal's measurements (not from live objects),
so a run finished last week prints exactly as it did then, and a run that was
interrupted prints what it had.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from drillbook.core.errors import ConfigError
from drillbook.core.journal import Journal

DRILL = "load.run"
PLOT = "load.png"

FILES = (
    ("locust.html", "Locust's HTML report"),
    ("locust_stats.csv", "Locust's statistics (CSV, whole run)"),
    ("locust_stats_history.csv", "Locust's statistics every second (CSV)"),
    ("locust_failures.csv", "failures (CSV)"),
    ("locust.log", "Locust's log"),
    ("drillbook_load.json", "per-second records by issue time (drillbook plugin)"),
)


def _f(value: Any, unit: str = "") -> str:
    if value is None or value == "":
        return "-"
    if isinstance(value, float):
        text = f"{value:,.2f}".rstrip("0").rstrip(".") if abs(value) < 1e5 else f"{value:,.0f}"
    elif isinstance(value, int):
        text = f"{value:,}"
    else:
        text = str(value)
    return f"{text}{unit}"


def _trio(m: dict[str, Any], prefix: str = "") -> str:
    values = [m.get(f"{prefix}p{q}_ms") for q in (50, 95, 99)]
    return "-" if all(v is None for v in values) else " / ".join(_f(v) for v in values)


def _row(label: str, m: dict[str, Any], *keys: str) -> str:
    return f"| {label} | " + " | ".join(_f(m.get(k)) for k in keys) + " |"


def section(measurements: dict[str, Any], artefacts: list[str], notes: list[str] | None = None) -> str:
    """The load-specific part of summary.md: plot, witnesses side by side, endpoints, generator, files."""
    m = measurements
    lines = ["## Load run", ""]
    if PLOT in artefacts:
        lines += [f"![achieved rate and p95 over time]({PLOT})", ""]
    steady = m.get("steady_s")
    lines += [
        f"Target {_f(m.get('target_rps'))} req/s = {_f(m.get('rps'))} x (1 + {_f(m.get('headroom'))}); "
        f"figures over the steady phase ({_f(steady)} s). The witnesses are sampled once a second, "
        "so their window is the whole seconds inside it; the service's count also holds the "
        "balancer's health checks.",
        "",
        "| figure | Locust (client side) | HAProxy frontend | service histograms |",
        "|---|---|---|---|",
        _row("rate, req/s", m, "achieved_rps", "haproxy_rps", "server_rps"),
        f"| requests (window) | {_f(m.get('requests'))} ({_f(m.get('steady_s'), ' s')}) "
        f"| {_f(m.get('haproxy_requests'))} ({_f(m.get('haproxy_window_s'), ' s')}) "
        f"| {_f(m.get('server_requests'))} ({_f(m.get('server_window_s'), ' s')}) |",
        f"| p50 / p95 / p99, ms | {_trio(m)} | - | {_trio(m, 'server_')} |",
        f"| errors | {_f(m.get('failures'))} ({_f(m.get('error_pct'), ' %')}) "
        f"| 5xx {_f(m.get('haproxy_5xx'))} | - |",
        "",
    ]
    endpoints = m.get("endpoints") or []
    if endpoints:
        lines += [
            "### Endpoints (steady phase, client side)",
            "",
            "| endpoint | requests | req/s | errors % | p50 ms | p95 ms | p99 ms |",
            "|---|---|---|---|---|---|---|",
        ]
        for row in endpoints:
            lines.append(
                f"| `{row.get('name')}` | {_f(row.get('requests'))} | {_f(row.get('rps'))} "
                f"| {_f(row.get('error_pct'))} | {_f(row.get('p50_ms'))} | {_f(row.get('p95_ms'))} "
                f"| {_f(row.get('p99_ms'))} |"
            )
        lines.append("")
    routes = m.get("server_routes") or []
    if routes:
        lines += ["### Routes (steady phase, service histograms)", ""]
        lines += ["| route | requests | req/s | p95 ms |", "|---|---|---|---|"]
        for row in routes:
            cells = [_f(row.get(k)) for k in ("requests", "rps", "p95_ms")]
            lines.append(f"| `{row.get('name')}` | " + " | ".join(cells) + " |")
        lines.append("")
    cpu_mean = m.get("generator_cpu_mean_pct") or {}
    cpu_max = m.get("generator_cpu_max_pct_by_process") or {}
    cpu = ", ".join(f"{k} {_f(v)} % (max {_f(cpu_max.get(k))} %)" for k, v in cpu_mean.items()) or "-"
    lines += [
        "### Generator",
        "",
        f"- users: up to {_f(m.get('users_max'))}, at most {_f(m.get('peak_in_flight'))} of them "
        "in flight at once (pool sized by Little's law: twice the tasks in flight, plus a margin)",
        f"- Locust CPU, mean over the steady phase: {cpu}; machine {_f(m.get('system_cpu_mean_pct'), ' %')}",
        f"- schedule: {_f(m.get('pacer_late_pct'), ' %')} of arrivals found no idle user, "
        f"{_f(m.get('pacer_dropped'))} dropped; {_f(m.get('start_late_pct'), ' %')} started more "
        f"than 5 ms late (by {_f(m.get('start_late_ms_mean'), ' ms')} on average); "
        f"event-loop lag {_f(m.get('wake_late_ms_mean'), ' ms')} on average",
        f"- spread of arrivals (per process): "
        f"{_f(m.get('arrivals_empty_slots_pct'), ' %')} of 10 ms slots empty, "
        f"at most {_f(m.get('arrivals_max_per_10ms'))} requests in one",
        f"- Locust's own count over the whole run (ramp included): "
        f"{_f(m.get('locust_requests_total'))} requests, {_f(m.get('locust_failures_total'))} failures",
    ]
    for note in notes or []:
        lines.append(f"- note: {note}")
    present = [(name, what) for name, what in FILES if name in artefacts]
    if present:
        lines += ["", "### Files", ""] + [f"- [{what}]({name})" for name, what in present]
    return "\n".join(lines) + "\n"


def find_run(root: Path, ident: str | None = None) -> Path:
    """A load run's report directory: ``ident`` is a path or a unique part of its name; default the latest."""
    if ident and Path(ident).is_dir() and (Path(ident) / "journal.json").exists():
        return Path(ident)
    runs = []
    if root.is_dir():
        runs = sorted(p for p in root.glob(f"*-{DRILL}*") if (p / "journal.json").exists())
    if not runs:
        raise ConfigError(f"no load runs under {root} (run inv load.run first)")
    if not ident:
        return runs[-1]
    matches = [p for p in runs if ident == p.name or ident in p.name]
    if not matches:
        raise ConfigError(f"no load run matching {ident!r} under {root}")
    if len(matches) > 1 and not any(p.name == ident for p in matches):
        names = ", ".join(p.name for p in matches[-5:])
        raise ConfigError(f"{ident!r} matches {len(matches)} runs ({names}); give more of the name")
    return next((p for p in matches if p.name == ident), matches[0])


def reprint(journal: Journal, report_dir: Path) -> str:
    """The whole story of one run again: verdict, checks, figures, generator, files."""
    lines = [
        f"# {journal.drill}: {journal.verdict.upper()}" + (" (interrupted)" if journal.interrupted else ""),
        "",
        f"- report: `{report_dir}`",
        f"- inventory: `{journal.inventory}` ({journal.environment}); "
        f"started {journal.started_at}, finished {journal.finished_at}",
    ]
    if journal.error:
        lines.append(f"- error: {journal.error}")
    if journal.checks:
        lines += ["", "| check | value | limit | ok |", "|---|---|---|---|"]
        for c in journal.checks:
            detail = f" ({c.detail})" if c.detail else ""
            limit = f"{c.op} {_f(c.limit)}" if c.op in ("<=", ">=", "==") else c.limit  # declared checks
            lines.append(f"| {c.name} | {_f(c.value)}{detail} | {limit} | {'yes' if c.ok else '**NO**'} |")
    lines += ["", section(journal.measurements, journal.artefacts, _notes(journal))]
    return "\n".join(lines)


def _notes(journal: Journal) -> list[str]:
    """The judge's notes, kept in the journal as ``<time> note: <text>``."""
    messages = [n.split(" ", 1)[-1] for n in journal.notes]
    return [m.removeprefix("note: ") for m in messages if m.startswith("note: ")]
