"""Chaos drills without the lab: witnesses, plans, the arithmetic, the guards, a refused steady state."""

from __future__ import annotations

import dataclasses
import shutil
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from drillbook.chaos import analysis as an
from drillbook.chaos.drill import ChaosDrill, KillApp, KillDb, KillRedis
from drillbook.chaos.plan import ChaosSettings, build_plan, format_plan, guard_production, load_settings
from drillbook.chaos.witness import (
    Witness,
    classify_pg_answer,
    classify_redis_answer,
    pg_address,
    pg_startup_packet,
    postgres_check,
    redis_check,
    tcp_check,
)
from drillbook.core.checks import evaluate
from drillbook.core.drill import DrillContext, execute
from drillbook.core.errors import ConfigError
from drillbook.core.haproxy import server_down, server_up
from drillbook.core.inventory import load_inventory
from drillbook.core.paths import LAB_INVENTORY, REPO_ROOT
from drillbook.core.probes import Sample
from drillbook.core.traffic import Outcome

TEST_INVENTORY = Path(__file__).parent / "data" / "inventory"


# -- protocol witnesses -------------------------------------------------------------------


def test_pg_startup_packet_is_protocol_3() -> None:
    packet = pg_startup_packet("app", "appdb")
    assert int.from_bytes(packet[:4], "big") == len(packet)
    assert int.from_bytes(packet[4:8], "big") == 196608
    assert packet[8:].split(b"\0")[:4] == [b"user", b"app", b"database", b"appdb"]
    assert packet.endswith(b"\0\0")


def _pg_error(code: str, message: str) -> bytes:
    body = b"SFATAL\0" + b"C" + code.encode() + b"\0M" + message.encode() + b"\0\0"
    return b"E" + (len(body) + 4).to_bytes(4, "big") + body


def test_pg_answers_classified() -> None:
    assert classify_pg_answer(b"R\0\0\0\x17\0\0\0\x0aSCRAM-SHA-256\0\0")[0] is True
    up, detail = classify_pg_answer(_pg_error("57P03", "the database system is starting up"))
    assert up is False and "starting up" in detail
    up, detail = classify_pg_answer(_pg_error("28000", "no pg_hba.conf entry"))
    assert up is True and "28000" in detail
    assert classify_pg_answer(b"")[0] is False


def test_redis_answers_classified() -> None:
    assert classify_redis_answer(b"+PONG\r\n") == (True, "accepting (PONG)")
    assert classify_redis_answer(b"-NOAUTH Authentication required.\r\n")[0] is True
    up, detail = classify_redis_answer(b"-LOADING Redis is loading the dataset in memory\r\n")
    assert up is False and "LOADING" in detail


def test_pg_address_from_url_and_keyword_dsn() -> None:
    a = pg_address("postgresql://app:secret@127.0.0.1:23432/app")
    assert (a.host, a.port, a.user, a.database) == ("127.0.0.1", 23432, "app", "app")
    b = pg_address("host=db1 port=6432 user=u dbname=d password=x")
    assert (b.host, b.port, b.user, b.database) == ("db1", 6432, "u", "d")


class FakePostmaster:
    """A TCP server that answers a startup packet with an authentication request, and can vanish."""

    def __init__(self) -> None:
        self.sock = socket.socket()
        self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self.sock.bind(("127.0.0.1", 0))
        self.port = self.sock.getsockname()[1]
        self.sock.listen(16)
        self.thread = threading.Thread(target=self._serve, daemon=True)
        self.thread.start()

    def _serve(self) -> None:
        while True:
            try:
                conn, _ = self.sock.accept()
            except OSError:
                return
            with conn:
                try:
                    conn.recv(1024)
                    conn.sendall(b"R\0\0\0\x08\0\0\0\x03")
                except OSError:
                    pass

    def close(self) -> None:
        self.sock.close()


def test_witness_times_the_moment_a_service_stops_and_comes_back() -> None:
    server = FakePostmaster()
    port = server.port
    witness = Witness("pg", postgres_check("127.0.0.1", port, "app", "app", 0.2), interval_s=0.02).start()
    try:
        time.sleep(0.15)
        killed = time.monotonic()
        server.close()
        time.sleep(0.2)
        restarted = time.monotonic()
        server = FakePostmaster.__new__(FakePostmaster)
        server.sock = socket.socket()
        server.sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        server.sock.bind(("127.0.0.1", port))
        server.sock.listen(16)
        server.thread = threading.Thread(target=server._serve, daemon=True)
        server.thread.start()
        time.sleep(0.15)
    finally:
        witness.stop()
        server.close()
    down = witness.first_down_after(killed)
    back = witness.first_up_after(restarted)
    assert down is not None and down.detail == "refused"
    assert back is not None and back.detail.startswith("accepting")
    assert witness.last_up_before(down.t) is not None
    assert all(o.up for o in witness.observations if o.t < killed)


@pytest.fixture()
def redis_server(tmp_path: Path) -> Iterator[tuple[subprocess.Popen[bytes], int]]:
    if not shutil.which("redis-server"):
        pytest.skip("redis-server not installed")
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    proc = subprocess.Popen(
        ["redis-server", "--port", str(port), "--bind", "127.0.0.1", "--save", "", "--dir", str(tmp_path)],
        stdout=subprocess.DEVNULL,
    )
    check = redis_check("127.0.0.1", port)
    deadline = time.monotonic() + 5
    while not check()[0]:
        assert time.monotonic() < deadline, "redis-server did not start"
        time.sleep(0.02)
    yield proc, port
    proc.kill()
    proc.wait()


def test_redis_witness_sees_a_sigkill_at_once(redis_server: tuple[subprocess.Popen[bytes], int]) -> None:
    proc, port = redis_server
    witness = Witness("redis", redis_check("127.0.0.1", port, 0.2), interval_s=0.02).start()
    time.sleep(0.1)
    killed = time.monotonic()
    proc.kill()
    proc.wait()
    time.sleep(0.15)
    witness.stop()
    down = witness.first_down_after(killed)
    # refused, or reset when a look connected in the instant the process died
    assert down is not None and down.detail in ("refused", "reset")


def test_tcp_check_refused_on_a_closed_port() -> None:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    assert tcp_check("127.0.0.1", port)() == (False, "refused")


# -- arithmetic --------------------------------------------------------------------------


def _s(t: float, status: int | None, body: str | None = None, latency_ms: float = 10.0) -> Sample:
    return Sample(t=t, wall=1000 + t, status=status, latency_ms=latency_ms, body=body)


def test_flip_counts_from_the_origin_to_the_answer() -> None:
    samples = {
        "a": [_s(0.0, 200), _s(0.1, 200), _s(0.2, 503, latency_ms=50)],
        "b": [_s(0.05, 200), _s(0.15, 503), _s(0.25, 503)],
    }
    flips = an.flips(samples, origin=0.12, pred=an.status_is(503))
    assert {f.name: f.seconds for f in flips} == {"a": 0.13, "b": 0.04}
    assert an.slowest(flips) == 0.13
    never = an.flips({"c": [_s(0.2, 200)]}, origin=0.1, pred=an.status_is(503))
    assert an.slowest(never) is None and not never[0].seen
    # a flip after `until` (the restore) does not count
    late = an.flips({"a": [_s(5.0, 503)]}, origin=0.0, pred=an.status_is(503), until=4.0)
    assert late[0].seconds is None


def test_not_ready_is_any_non_ready_answer_and_degraded_comes_from_the_profile() -> None:
    from drillbook.core.profile import Health
    from drillbook.core.readiness import Readiness

    r = Readiness(Health(ready="/ready", degraded={"json_pointer": "/degraded", "equals": True}))
    for not_ready in (_s(0, 503), _s(0, 500), _s(0, 404), _s(0, None)):
        assert r.not_ready(not_ready), not_ready
    assert r.degraded_serving(_s(0, 200, '{"status":"ok","degraded":true}'))
    assert r.fully_ready(_s(0, 200, '{"status":"ok","degraded":false}'))
    assert not r.degraded_serving(_s(0, 503, '{"status":"unavailable"}'))
    assert r.fully_ready(_s(0, 204, "not json"))  # no flag to read: ready, not degraded
    plain = Readiness(Health(ready="/ready"))
    assert not plain.has_degraded and plain.degraded(_s(0, 200, '{"degraded":true}')) is None


def _o(t: float, ok: bool, latency_ms: float = 10.0, endpoint: str = "GET /items/{id}") -> Outcome:
    return Outcome(
        t=t, wall=1000 + t, endpoint=endpoint, status=200 if ok else 502, latency_ms=latency_ms, ok=ok
    )


def test_outage_traffic_counts_requests_in_flight_at_the_fault() -> None:
    outcomes = [
        _o(0.0, True),  # finished before the fault: not counted
        _o(0.9, False, latency_ms=300),  # in flight when the fault hit: counted
        _o(1.1, True, latency_ms=5),
        _o(1.5, True, latency_ms=800),
        _o(3.0, True),  # after the outage
    ]
    out = an.outage_traffic(outcomes, start=1.0, end=2.0)
    assert out.requests == 3 and out.failed == 1 and out.error_pct == pytest.approx(33.333)
    assert out.p95_ms is not None and 700 < out.p95_ms <= 800  # latency only of requests sent during it


def test_statuses_between_and_transitions() -> None:
    samples = [_s(0.0, 200), _s(0.1, 503), _s(0.2, None), _s(0.3, 200)]
    assert an.statuses_between(samples, 0.05, 0.25) == {"503": 1, "none": 1}
    states = [t["state"] for t in an.probe_transitions(samples, 1000)]
    assert states == ["200", "503", "none", "200"]


# -- settings, plans, guards --------------------------------------------------------------


@pytest.fixture(scope="module")
def lab_inv():  # type: ignore[no-untyped-def]
    return load_inventory(LAB_INVENTORY)


def test_lab_settings_load_and_validate(lab_inv, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    s = load_settings(lab_inv)
    assert s.readiness_flip_limit_s == 5.0 and s.probe_interval_s == 0.1 and s.witness_interval_s == 0.05
    bad = _copy_inventory(tmp_path, extra="chaos_probe_interval_s: -1\n")
    with pytest.raises(ConfigError, match="chaos_probe_interval_s"):
        load_settings(load_inventory(bad))


def test_plans_name_targets_processes_and_probes(lab_inv) -> None:  # type: ignore[no-untyped-def]
    s = load_settings(lab_inv)
    db = build_plan(lab_inv, "kill-db", s)
    assert db.target.hosts == ("lab-db",) and db.target.witness == "postgres"
    assert "postmaster.pid" in db.target.process
    assert [n for n, _ in db.readiness_urls] == ["app-1", "app-2", "app-3"]
    redis = build_plan(lab_inv, "kill-redis", s)
    assert redis.target.hosts == ("lab-cache",) and redis.target.witness == "redis"
    app = build_plan(lab_inv, "kill-app", s, instance=2)
    assert app.target.hosts == ("lab-app-2",) and app.killed_instance is not None
    assert app.killed_instance.name == "app-2" and app.target.witness == "tcp"
    with pytest.raises(ConfigError, match="no app instance"):
        build_plan(lab_inv, "kill-app", s, instance=9)
    text = format_plan(db, duration_s=2, traffic_rps=30)
    for needle in (
        "lab-db",
        "postmaster.pid",
        "/health/ready",
        "not ready (any non-ready status, a timeout or a refused connection) within 5.0 s",
        "30 requests/s",
        "hold: 2 s",
    ):
        assert needle in text, needle
    assert "app:***@" in text  # no password in a printout


def _copy_inventory(tmp_path: Path, extra: str) -> Path:
    dest = tmp_path / "inventory"
    shutil.copytree(LAB_INVENTORY, dest)
    (dest / "group_vars" / "all" / "zz-test.yml").write_text(extra)
    return dest


def test_kill_redis_without_a_degraded_signal_judges_errors_and_latency_alone(tmp_path: Path) -> None:
    no_signal = "service_health: {live: /health/live, ready: /health/ready}\nchaos_cache_key_template: null\n"
    inv = load_inventory(_copy_inventory(tmp_path / "plain", no_signal))
    drill = KillRedis.for_inventory(inv)
    judged = {c.measurement for c in drill.checks}
    assert {"error_pct_during_outage", "outage_p95_ms", "recovery_s", "data_intact"} <= judged
    assert not judged & {"readiness_stayed_ready", "degraded_flip_s", "cache_back"}
    assert "not judged" in format_plan(drill.plan, duration_s=1, traffic_rps=1)
    lab = KillRedis.for_inventory(load_inventory(LAB_INVENTORY))
    assert {"readiness_stayed_ready", "degraded_flip_s", "cache_back"} <= {c.measurement for c in lab.checks}


def test_kill_redis_is_refused_without_redis(tmp_path: Path) -> None:
    inv = load_inventory(_copy_inventory(tmp_path / "noredis", "service_uses_redis: false\n"))
    with pytest.raises(ConfigError, match="service_uses_redis is false"):
        build_plan(inv, "kill-redis", load_settings(inv))


def test_kill_db_plan_probes_the_profile_s_readiness(tmp_path: Path) -> None:
    inv = load_inventory(_copy_inventory(tmp_path / "tcp", "service_health: {}\n"))
    plan = build_plan(inv, "kill-db", load_settings(inv))
    assert all(url.startswith("tcp://127.0.0.1:") for _n, url in plan.readiness_urls)
    assert "connect tcp://" in format_plan(plan, duration_s=1, traffic_rps=1)


def test_kill_db_without_a_readiness_path_cannot_measure(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A TCP connect stays up when the database dies: error naming the variable, no fault."""
    monkeypatch.setenv("DRILLBOOK_STATE_DIR", str(tmp_path / "state"))
    inv = load_inventory(_copy_inventory(tmp_path / "tcp", "service_health: {}\n"))
    ran: list[str] = []
    monkeypatch.setattr("drillbook.chaos.fault.run_playbook", lambda *a, **k: ran.append("playbook"))
    drill = KillDb(build_plan(inv, "kill-db", load_settings(inv)), duration_s=1)
    journal = execute(drill, DrillContext(inventory=inv, report_root=tmp_path / "reports", quiet=True))
    assert journal.verdict == "error" and journal.exit_code == 2 and ran == []
    assert "service_health.ready" in (journal.error or ""), journal.error


def test_production_inventory_refuses_chaos(tmp_path: Path) -> None:
    inv = load_inventory(_copy_inventory(tmp_path, "drillbook_environment: production\n"))
    with pytest.raises(ConfigError, match="--allow-production"):
        guard_production(inv, allow_production=False)
    with pytest.raises(ConfigError, match="--allow-production"):
        KillDb.for_inventory(inv)
    guard_production(inv, allow_production=True)
    plan = build_plan(inv, "kill-db", load_settings(inv))
    assert "refused" in format_plan(plan, duration_s=1, traffic_rps=1, allowed=False)


def _inv(*args: str, env_extra: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    import os

    env = {**os.environ, **(env_extra or {})}
    return subprocess.run(
        [sys.executable, "-m", "invoke", *args],
        cwd=REPO_ROOT,
        capture_output=True,
        text=True,
        env=env,
        timeout=120,
    )


def test_dry_run_prints_the_plan_and_does_nothing(tmp_path: Path) -> None:
    res = _inv("chaos.kill-redis", "--dry-run", "--duration", "3", "--traffic", "10")
    assert res.returncode == 0, res.stderr
    assert "dry run, nothing is done" in res.stdout and "lab-cache" in res.stdout and "PING" in res.stdout
    prod = _copy_inventory(tmp_path, "drillbook_environment: production\n")
    res = _inv("chaos.kill-db", "--dry-run", "--inventory", str(prod))
    assert res.returncode == 0 and "--allow-production" in res.stdout
    res = _inv("chaos.kill-db", "--inventory", str(prod))
    assert res.returncode == 2 and "--allow-production" in res.stderr
    res = _inv("chaos.kill-app", "--dry-run", "--duration", "soon")
    assert res.returncode == 2 and "--duration must be a number" in res.stderr


def test_task_docstrings_name_their_runbooks() -> None:
    from drillbook.tasks import chaos as tasks

    for fn, runbook in (
        (tasks.kill_db, KillDb.runbook),
        (tasks.kill_redis, KillRedis.runbook),
        (tasks.kill_app, KillApp.runbook),
    ):
        assert runbook and runbook in (fn.__doc__ or ""), fn
        assert (REPO_ROOT / runbook).exists(), runbook


# -- steady state ------------------------------------------------------------------------


def test_unhealthy_target_gets_no_fault(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Nothing listens on the test inventory's ports: could not run (error, exit 2), no playbook runs."""
    monkeypatch.setenv("DRILLBOOK_STATE_DIR", str(tmp_path / "state"))
    inv = load_inventory(TEST_INVENTORY)
    ran: list[str] = []
    monkeypatch.setattr("drillbook.chaos.fault.run_playbook", lambda *a, **k: ran.append("playbook"))
    drill = KillDb(build_plan(inv, "kill-db", ChaosSettings()), duration_s=1)
    journal = execute(drill, DrillContext(inventory=inv, report_root=tmp_path / "reports", quiet=True))
    assert journal.verdict == "error" and journal.exit_code == 2
    assert ran == []
    (check,) = journal.failed_checks
    assert check.name == "steady_state" and "no fault injected" in check.detail
    assert not any(p.name.startswith("act") for p in journal.phases)


# -- the typed shape: declared checks, numeric limits, one "is it up" --------------------


@pytest.mark.parametrize("cls", [KillDb, KillRedis, KillApp])
def test_every_numeric_check_has_a_numeric_limit_from_the_settings(cls: type[ChaosDrill[Any]]) -> None:
    """Judged from data: a record with every figure missing fails every check, each with its limit."""
    assert cls.measured is not None
    record = cls.measured()
    checks = evaluate(cls.checks, record, ChaosSettings())
    names = [c.name for c in checks]
    assert names[0] == "fault_witnessed" and names[-2:] == ["data_intact", "acknowledged_writes_lost"]
    assert "recovery_s" in names and len(names) == len(set(names))
    assert not any(c.ok for c in checks), [c.name for c in checks if c.ok]
    numeric = [c for c in checks if c.op in ("<=", ">=", "==")]
    assert numeric and all(
        isinstance(c.limit, int | float) and not isinstance(c.limit, bool) for c in numeric
    )
    limits = {c.name: (c.limit, c.limit_from) for c in checks}
    assert limits["recovery_s"] == (60.0, "recovery_limit_s")


def test_kill_redis_judges_its_own_flip_limit() -> None:
    by_name = {c.name: c for c in KillRedis.checks}
    assert by_name["degraded_flip_s"].limit_from == "degraded_flip_limit_s"
    assert ChaosSettings().degraded_flip_limit_s == ChaosSettings().readiness_flip_limit_s == 5.0
    record = KillRedis.measured(degraded_flip_s=6.0)  # type: ignore[misc]
    judged = evaluate(KillRedis.checks, record, ChaosSettings(degraded_flip_limit_s=7))
    (check,) = [c for c in judged if c.name == "degraded_flip_s"]
    assert check.ok and check.limit == 7


def test_check_details_stay_out_of_the_measurements() -> None:
    """The journal's measurement names are the figures; a check's explanation lives in the check."""
    record = KillDb.measured(readiness_flip_detail="app-1 never answered 503")  # type: ignore[misc]
    dumped = record.model_dump()
    assert "readiness_flip_detail" not in dumped and "fault_witnessed" not in dumped
    assert {"readiness_flip_s", "readiness_flip_by_instance", "recovery_s", "data_intact"} <= set(dumped)
    (flip,) = [c for c in evaluate(KillDb.checks, record, ChaosSettings()) if c.name == "readiness_flip_s"]
    assert "app-1 never answered 503" in flip.detail


def test_kill_app_without_haproxy_does_not_judge_lb_detect(lab_inv) -> None:  # type: ignore[no-untyped-def]
    plan = build_plan(lab_inv, "kill-app", load_settings(lab_inv), instance=2)
    with_lb = KillApp(plan)
    assert with_lb.thresholds is not None and with_lb.thresholds.lb_detect_limit_s == 5.0  # type: ignore[attr-defined]
    without = KillApp(dataclasses.replace(plan, haproxy_socket=None))
    names = [c.name for c in evaluate(KillApp.checks, KillApp.measured(), without.thresholds)]  # type: ignore[misc]
    assert "lb_detect_s" not in names and "others_stayed_in_rotation" in names


def test_haproxy_up_and_down_are_stated_once() -> None:
    for status in ("UP", "UP 1/3", "no check"):
        assert server_up(status) and not server_down(status), status
    for status in ("DOWN", "DOWN 1/2", "MAINT", "NOLB"):
        assert server_down(status) and not server_up(status), status
    assert not server_up("DRAIN") and not server_down("DRAIN")  # draining: neither
