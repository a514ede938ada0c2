"""audit.hosts: facts collected on the hosts through Ansible, judged here.

``playbooks/audit-hosts.yml`` only reads (pid files, /proc, find, stat); this
module turns its results into findings. PostgreSQL settings and Redis
persistence are read from the servers themselves (``SHOW``, ``CONFIG GET``):
what runs is what counts, not what a config file says.
"""

from __future__ import annotations

from typing import Any

import psycopg
import redis as redis_lib
from pydantic import BaseModel, Field

from drillbook.audit.http import Finding
from drillbook.core.ansible import PlaybookResult, ProgressFn, run_playbook
from drillbook.core.inventory import Inventory


class HostAuditSettings(BaseModel):
    """``audit_*`` variables for audit.hosts."""

    postgres_required: dict[str, str] = Field(default_factory=dict)
    redis_persistence: str = "rdb"


def _results(result: PlaybookResult, task: str) -> list[tuple[str, dict[str, Any]]]:
    return [(r.host, r.res) for r in result.results if r.task == task and r.status in ("ok", "changed")]


def service_user(result: PlaybookResult) -> Finding:
    rows = _results(result, "Owner of the service process")
    problems, seen = [], []
    for host, res in rows:
        stat = res.get("stat", {})
        if not stat.get("exists"):
            problems.append(f"{host}: service process not running")
            continue
        seen.append(f"{host}: {stat.get('pw_name')} (uid {stat.get('uid')})")
        if stat.get("uid") == 0:
            problems.append(f"{host}: runs as root")
    if not rows:
        problems.append("no app host answered")
    return Finding("service_user_not_root", not problems, "; ".join(problems) or ", ".join(seen))


def secrets(result: PlaybookResult) -> Finding:
    """No world-readable file under a release holds a secret; fails when a directory was not scanned.

    ``find`` on a directory that does not exist succeeds with nothing found (it
    only lists the path in ``skipped_paths``): that proved nothing, so it fails
    the check instead of passing it.
    """
    problems, unscanned = [], []
    rows = _results(result, "World-readable files under the releases that look like they hold a secret")
    examined = 0
    for host, res in rows:
        for path, why in (res.get("skipped_paths") or {}).items():
            unscanned.append(f"{host}:{path} not scanned ({why})")
        examined += int(res.get("examined") or 0)
        for f in res.get("files", []):
            if int(f.get("mode", "0"), 8) & 0o004:
                problems.append(f"{host}:{f['path']} ({f.get('mode')})")
    if not rows:
        unscanned.append("no app host answered")
    return Finding(
        "no_world_readable_secrets",
        not problems and not unscanned,
        "; ".join([*problems[:10], *unscanned[:5]])
        or f"no world-readable secret among {examined} files under the releases of {len(rows)} hosts",
    )


def backup_schedule(result: PlaybookResult) -> Finding:
    cron = [
        f["path"]
        for _, res in _results(result, "Cron entries that run a backup")
        for f in res.get("files", [])
    ]
    timers = [
        h
        for h, res in _results(result, "Systemd timers that run a backup")
        if res.get("stat", {}).get("exists")
    ]
    ok = bool(cron or timers)
    evidence = (
        ", ".join(cron + [f"{h}: systemd timer" for h in timers]) or "no cron entry or timer runs backup.run"
    )
    return Finding("backup_schedule", ok, evidence)


def postgres_settings(dsn: str, required: dict[str, str]) -> Finding:
    with psycopg.connect(dsn, connect_timeout=5, autocommit=True) as conn:
        actual = {}
        for name in required:
            row = conn.execute("SELECT current_setting(%s)", (name,)).fetchone()
            actual[name] = str(row[0]) if row else ""
    wrong = [f"{k}={actual[k]!r} (want {v!r})" for k, v in required.items() if actual[k] != str(v)]
    seen = ", ".join(f"{k}={v}" for k, v in actual.items())
    return Finding("postgres_settings", not wrong, "; ".join(wrong) or f"SHOW: {seen or 'nothing required'}")


def redis_persistence(url: str | None, intent: str) -> Finding:
    if url is None:
        return Finding("redis_persistence", True, "no cache group in the inventory")
    client = redis_lib.Redis.from_url(url, socket_timeout=2, socket_connect_timeout=2)
    try:
        save = str(client.config_get("save").get("save", ""))
        aof = str(client.config_get("appendonly").get("appendonly", "no"))
    finally:
        client.close()
    actual = "aof" if aof == "yes" else "rdb" if save.strip() else "none"
    return Finding(
        "redis_persistence",
        actual == intent,
        f"CONFIG GET: save={save!r} appendonly={aof} -> {actual}, want {intent}",
    )


def run_checks(
    inv: Inventory, settings: HostAuditSettings, progress: ProgressFn | None = None
) -> list[Finding]:
    result = run_playbook(inv, "audit-hosts.yml", progress=progress)
    topo = inv.topology
    return [
        service_user(result),
        redis_persistence(topo.redis_url, settings.redis_persistence),
        postgres_settings(topo.postgres_admin_dsn, settings.postgres_required),
        backup_schedule(result),
        secrets(result),
    ]
