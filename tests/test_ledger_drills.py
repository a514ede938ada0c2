"""Every drill that applies to the ledger, run against it as a user would (issue 14's "done when").

The ledger (lab/ledger, inventory/lab-ledger) is unlike the reference service on
purpose: /api/v1 routes, UUIDs, a bearer login, readiness 500 without its
database, no Redis, migrations inside its package, a ``handler`` metric label,
its release in a header and no /version. Each drill runs through ``inv ... -i
inventory/lab-ledger`` in a subprocess, with the shortest windows it accepts, and
each test checks the verdict in the drill's journal plus one fact an outside
observer sees for itself (the restored copy's heartbeat rows, the live database's
revision, readiness seen failing by the test's own probe, the header every
instance sends after the canary). kill-redis does not apply: refused, exit 2, one line.

One ledger lab for the session (conftest's ``ledger_lab``, shared with
test_lab_second.py); the last test here takes it down and checks that.
"""

from __future__ import annotations

import json
import os
import socket
import threading
import time
from collections import Counter
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import psycopg
import pytest
from clirun import Ran, inv
from test_prometheus_lab import assert_close, compare_windows

from drillbook.backup import restore_into
from drillbook.canary import CanaryDrill
from drillbook.canary import load_settings as load_canary_settings
from drillbook.core import pgdata
from drillbook.core.ansible import run_playbook
from drillbook.core.drill import DrillContext, execute
from drillbook.core.inventory import Inventory
from drillbook.core.paths import REPO_ROOT
from drillbook.core.profile import load_profile

pytestmark = pytest.mark.lab

LEDGER = str(REPO_ROOT / "inventory" / "lab-ledger")
HEAD = "l002"


@pytest.fixture(scope="module")
def env(tmp_path_factory: pytest.TempPathFactory) -> dict[str, str]:
    """Reports and the canary's rollout record of this module in its own directories."""
    root = tmp_path_factory.mktemp("ledger-drills")
    return {"DRILLBOOK_REPORT_DIR": str(root / "reports"), "DRILLBOOK_STATE_DIR": str(root / "state")}


@pytest.fixture(scope="module")
def ledger(ledger_lab: Inventory) -> Iterator[Inventory]:
    """The session's ledger lab with one release everywhere (test_lab_second deploys others on purpose)."""
    version = str(ledger_lab.var("app_version"))
    releases = {_release(i.url) for i in ledger_lab.topology.app_instances}
    if releases != {version}:
        run_playbook(ledger_lab, "deploy.yml", extravars={"deploy_version": version})
    yield ledger_lab


def _release(url: str) -> str | None:
    try:
        return httpx.get(f"{url}/livez", timeout=5).headers.get("X-Release")
    except httpx.HTTPError:
        return None


def _drill(env: dict[str, str], task: str, *args: str, timeout: float = 600) -> tuple[Ran, dict[str, Any]]:
    """``inv TASK -i inventory/lab-ledger ARGS`` and the journal it wrote."""
    reports = Path(env["DRILLBOOK_REPORT_DIR"])
    before = set(reports.glob(f"*-{task}")) if reports.exists() else set()
    ran = inv(task, "-i", LEDGER, *args, env=env, timeout=timeout)
    new = sorted(set(reports.glob(f"*-{task}")) - before)
    assert new, ran.describe()
    return ran, json.loads((new[-1] / "journal.json").read_text())


def _verdict(ran: Ran, journal: dict[str, Any], expected: str = "pass") -> None:
    failed = [c for c in journal.get("checks", []) if not c.get("ok")]
    assert journal["verdict"] == expected, (journal.get("error"), failed, ran.describe()[-3000:])
    assert ran.rc == {"pass": 0, "fail": 1, "error": 2}[expected], ran.describe()


def _revision(inv_: Inventory) -> str:
    with psycopg.connect(inv_.topology.postgres_dsn) as conn:
        row = conn.execute("SELECT version_num FROM alembic_version").fetchone()
    return str(row[0]) if row else "base"


def _listening(url: str) -> bool:
    host, port = url.removeprefix("http://").split(":")
    with socket.socket() as s:
        s.settimeout(0.5)
        return s.connect_ex((host, int(port))) == 0


def test_doctor_finds_every_applicable_drill_runnable(ledger: Inventory, env: dict[str, str]) -> None:
    ran = inv("doctor", "-i", LEDGER, env=env)
    assert ran.rc == 0, ran.describe()
    lines = ran.stdout.splitlines()
    redis = next(x for x in lines if x.startswith("chaos.kill-redis "))
    assert "not applicable" in redis and "CANNOT" not in ran.stdout, ran.describe()
    assert "service_uses_redis is false" in ran.stdout


def test_smoke_writes_through_the_api_and_proves_it_in_postgres(
    ledger: Inventory, env: dict[str, str]
) -> None:
    ran, journal = _drill(env, "smoke")
    _verdict(ran, journal)
    steps = {c["name"] for c in journal["checks"]}
    assert any("login" in s for s in steps) and any("create entry" in s for s in steps)
    # the smoke's entry was deleted again: nothing named smoke-* is left behind in the ledger's table
    with psycopg.connect(ledger.topology.postgres_dsn) as conn:
        left = conn.execute("SELECT count(*) FROM entries WHERE account LIKE 'smoke-%'").fetchone()
    assert left == (0,)


def test_backup_then_restore_test_measures_rpo_from_the_heartbeat(
    ledger: Inventory, env: dict[str, str]
) -> None:
    ran, backup = _drill(env, "backup.run")
    _verdict(ran, backup)
    ran, restore = _drill(env, "backup.restore-test")
    _verdict(ran, restore)
    m = restore["measurements"]
    assert m["backup_id"] == backup["measurements"]["backup_id"]
    assert 0 <= m["rpo_s"] < 60 and "heartbeat" in restore["witnesses"]["rpo_s"]
    # Outside witness: the same backup restored by hand holds drillbook's heartbeat rows, the
    # newest of which is the RPO the drill reported (its start minus the newest beat).
    name = "drillbook_test_ledger_restored"
    admin = str(ledger.topology.postgres_admin_dsn)
    pgdata.drop_database(admin, name)
    try:
        restore_into(ledger, name, backup_id=m["backup_id"])
        with psycopg.connect(pgdata.dsn_for(admin, name)) as conn:
            rows, newest = conn.execute("SELECT count(*), max(ts) FROM drillbook.heartbeat_log").fetchone()
            entries = conn.execute("SELECT count(*) FROM entries").fetchone()
    finally:
        pgdata.drop_database(admin, name)
    assert rows > 0 and entries is not None
    started = pgdata_time(restore["started_at"])
    assert abs((started - newest.timestamp()) - m["rpo_s"]) < 1.5, (restore["started_at"], newest, m["rpo_s"])


def pgdata_time(iso: str) -> float:
    from datetime import datetime

    return datetime.fromisoformat(iso.replace("Z", "+00:00")).timestamp()


def test_rehearse_migrates_a_copy_and_leaves_the_live_database_alone(
    ledger: Inventory, env: dict[str, str]
) -> None:
    assert _revision(ledger) == HEAD
    ran, journal = _drill(env, "migrate.rehearse", "--from", "l001")
    _verdict(ran, journal)
    m = journal["measurements"]
    assert (m["from_revision"], m["to_revision"]) == ("l001", HEAD) and m["upgrade_s"] > 0
    assert m["downgrade_s"] > 0
    assert _revision(ledger) == HEAD  # the live database never moved
    with psycopg.connect(ledger.topology.postgres_admin_dsn) as conn:
        left = conn.execute(
            "SELECT count(*) FROM pg_database WHERE datname LIKE 'drillbook_rehearse%'"
        ).fetchone()
    assert left == (0,)


def test_rollback_then_up_with_the_ledgers_own_migration_command(
    ledger: Inventory, env: dict[str, str]
) -> None:
    ran, down = _drill(env, "migrate.rollback")
    _verdict(ran, down)
    assert down["measurements"]["final_revision"] == "l001" and _revision(ledger) == "l001"
    # the smoke requests went with the login's bearer token: 200 on the list, 404 on an unknown id
    smoke = {c["name"]: c["value"] for c in down["checks"] if ".smoke." in c["name"]}
    assert smoke and all(v in (200, 404) for v in smoke.values()), smoke
    with psycopg.connect(ledger.topology.postgres_dsn) as conn:
        columns = {
            r[0]
            for r in conn.execute(
                "SELECT column_name FROM information_schema.columns WHERE table_name = 'entries'"
            )
        }
    assert "currency" not in columns
    ran, up = _drill(env, "migrate.up")
    _verdict(ran, up)
    assert up["measurements"]["final_revision"] == HEAD and _revision(ledger) == HEAD


def test_audit_http_passes_and_says_what_does_not_apply(ledger: Inventory, env: dict[str, str]) -> None:
    ran, journal = _drill(env, "audit.http")
    _verdict(ran, journal)
    assert journal["measurements"]["checks_not_applicable"] >= 2, journal["measurements"]
    # outside: the ledger answers with the headers the audit judged
    resp = httpx.get(f"{ledger.topology.lb_url}/livez", headers={"X-Request-ID": "abc-123"}, timeout=5)
    assert resp.headers["X-Request-ID"] == "abc-123" and resp.headers["X-Content-Type-Options"] == "nosniff"


def test_kill_redis_is_refused_in_one_line_naming_why(ledger: Inventory, env: dict[str, str]) -> None:
    ran = inv("chaos.kill-redis", "-i", LEDGER, env=env)
    assert ran.rc == 2, ran.describe()
    errors = [x for x in ran.err_lines if x.startswith("error:")]
    assert len(errors) == 1, ran.describe()
    assert errors[0].startswith("error: inventory ") and errors[0].endswith(
        "lab-ledger: service_uses_redis is false, the service has no Redis to lose"
    ), errors
    assert "Traceback" not in ran.stderr


class ReadyWatch:
    """The test's own probe of one instance's readiness, every 0.1 s, while a drill runs."""

    def __init__(self, url: str) -> None:
        self.url = url
        self.seen: list[int | str] = []
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def _run(self) -> None:
        # 3 s: the ledger's /readyz waits up to 1 s for a pool connection before its 500, so a 1 s
        # client timeout raced it and saw ReadTimeout instead of the status (CI, 2026-12-03)
        with httpx.Client(timeout=3.0, transport=httpx.HTTPTransport(retries=0)) as client:
            while not self._stop.is_set():
                try:
                    self.seen.append(client.get(self.url).status_code)
                except httpx.HTTPError as exc:
                    self.seen.append(type(exc).__name__)
                time.sleep(0.1)

    def __enter__(self) -> ReadyWatch:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join(timeout=5)


def test_kill_db_readiness_flips_to_500_and_back(ledger: Inventory, env: dict[str, str]) -> None:
    url = ledger.topology.app_instances[0].url + "/readyz"
    with ReadyWatch(url) as watch:
        ran, journal = _drill(env, "chaos.kill-db", "--duration", "2")
    _verdict(ran, journal)
    m = journal["measurements"]
    assert m["readiness_flip_s"] <= 5 and m["data_intact"] is True
    # outside: this test's own probe saw readiness fail (the ledger's 500, not a 503) and come back
    assert 500 in watch.seen, Counter(watch.seen)
    assert watch.seen[-1] == 200 and httpx.get(url, timeout=5).status_code == 200


def test_kill_app_haproxy_routes_around_and_the_instance_restarts(
    ledger: Inventory, env: dict[str, str]
) -> None:
    home = Path(str(ledger.var("lab_dir"))) / "app" / "ledger-2"
    before = (home / "ledger.pid").read_text().strip()
    ran, journal = _drill(env, "chaos.kill-app", "--duration", "2", "--instance", "ledger-2")
    _verdict(ran, journal)
    m = journal["measurements"]
    assert m["killed_instance"] == "ledger-2" and m["error_pct_during_outage"] <= 1.0
    after = (home / "ledger.pid").read_text().strip()
    assert after != before and Path(f"/proc/{after}").exists()  # a new process, started by the restore
    assert httpx.get(ledger.topology.instance("ledger-2").url + "/readyz", timeout=5).status_code == 200


def test_load_run_with_the_profiles_locustfile(ledger: Inventory, env: dict[str, str]) -> None:
    def served() -> float:
        text = httpx.get(ledger.topology.app_instances[0].url + "/metrics", timeout=5).text
        return sum(
            float(line.rsplit(" ", 1)[1])
            for line in text.splitlines()
            if line.startswith("ledger_requests_total{") and 'handler="/metrics"' not in line
        )

    first = served()
    ran, journal = _drill(env, "load.run", "--rps", "25", "--duration", "8s", "--ramp", "2s")
    _verdict(ran, journal)
    m = journal["measurements"]
    assert m["achieved_rps"] > 0
    # outside: the ledger itself counted the requests (its own metric, `handler` label)
    assert served() - first > 20


def test_canary_promotes_a_good_release_named_by_the_header(
    ledger: Inventory, env: dict[str, str], monkeypatch: pytest.MonkeyPatch
) -> None:
    """Through the Python API: the short windows of test_canary_lab.py's ``quick`` (error_detectable
    0.25: a few hundred requests can only show large increases), steps 50 and 100."""
    monkeypatch.setenv("DRILLBOOK_STATE_DIR", env["DRILLBOOK_STATE_DIR"])
    settings = load_canary_settings(ledger).model_copy(
        update={
            "window_s": 3,
            "interval_s": 0.5,
            "sample_wait_s": 6,
            "min_samples": 10,
            "rollback_budget_s": 3600,
            "error_detectable": 0.25,
            "steps": [50.0, 100.0],
        }
    )
    context = DrillContext(inventory=ledger, report_root=Path(env["DRILLBOOK_REPORT_DIR"]), quiet=True)
    journal = execute(CanaryDrill(settings, "1.1.0", traffic_rps=60), context)
    assert journal.verdict == "pass", (journal.error, journal.failed_checks)
    m = journal.measurements
    assert m["promoted"] is True and m["from_version"] == "1.0.0" and m["to_version"] == "1.1.0"
    # the witnesses say how this service was asked (its header, its readiness path), not /version
    assert journal.witnesses["promoted"] == "X-Release header of GET /livez on every instance"
    assert "GET /readyz" in journal.witnesses["canary_deployed"]
    assert "/version" not in json.dumps(journal.witnesses)
    # outside: every instance names the promoted release in its header, and deploy.status agrees
    assert {_release(i.url) for i in ledger.topology.app_instances} == {"1.1.0"}
    status = inv("deploy.status", "-i", LEDGER, "--json", env=env)
    assert status.rc == 0, status.describe()
    fleet = json.loads(status.stdout)
    assert fleet["version"] == "1.1.0" and fleet["version_source"] == "X-Release header of GET /livez"


def test_prometheus_windows_equal_the_ledgers_own_metrics(ledger: Inventory) -> None:
    """The Prometheus path on this service: its metric name, a ``handler`` label, ``code``, coarse buckets.

    The ledger's own Prometheus (roles/prometheus, port DRILLBOOK_LAB_PORT_BASE + 190) scrapes
    both instances every second; its windows must say what the instances' own /metrics say,
    within a scrape interval.
    """
    run_playbook(ledger, "prometheus.yml")
    try:
        metrics = load_profile(ledger).metrics
        assert metrics is not None and (metrics.route_label, metrics.status_label) == ("handler", "code")
        # /livez answers 200 without a token; every request is counted by handler and code.
        looks = compare_windows(ledger, str(ledger.var("lab_prometheus_url")), "/livez")
        for prom, direct, elapsed in looks:
            assert_close(prom, direct, elapsed)
        prom, direct, _ = looks[-1]
        assert direct.canary.requests >= 20 and direct.baseline.requests >= 20, direct
        # The ledger's coarse buckets, read from Prometheus as from the instances.
        assert [le for le, _ in prom.canary.buckets] == [0.1, 0.5, 1.0, 5.0, float("inf")]
    finally:
        run_playbook(ledger, "prometheus.yml", tags=["stop"], cancellable=False)


def test_lab_down_stops_it(ledger: Inventory) -> None:
    ran = inv("lab.down", "-i", LEDGER)
    assert ran.rc == 0, ran.describe()
    topo = ledger.topology
    assert not any(_listening(u) for u in [topo.lb_url, *(i.url for i in topo.app_instances)])
    with pytest.raises(psycopg.OperationalError):
        psycopg.connect(topo.postgres_dsn, connect_timeout=2).close()
    if os.environ.get("DRILLBOOK_KEEP_LAB"):  # a developer's rerun wants it back
        assert inv("lab.up", "-i", LEDGER, timeout=900).rc == 0
