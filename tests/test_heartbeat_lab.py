"""drillbook's heartbeat on the real lab PostgreSQL: the writer, the lab's daemon, the RPO it gives.

Databases a test creates carry a ``drillbook_test_hb`` prefix and are dropped by
their fixture. That ``lab.down`` stops the writer is proven by tests/test_lab.py's
down-and-up test (one lab restart for the whole suite, not two).
"""

from __future__ import annotations

import itertools
import os
import statistics
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from drillbook import labenv
from drillbook.backup import RestoreTest, load_settings, take_backup
from drillbook.core import heartbeat, pgdata
from drillbook.core.drill import DrillContext, execute
from drillbook.core.inventory import Inventory
from drillbook.core.journal import Journal

pytestmark = pytest.mark.lab

OTHER_SERVICE_DB = "drillbook_test_hb_orders"
NO_HEARTBEAT_DB = "drillbook_test_hb_bare"


@pytest.fixture(scope="module")
def inv(lab: dict[str, Any], lab_inventory: Inventory) -> Inventory:
    return lab_inventory


def _other_service_db(inv: Inventory, name: str) -> Iterator[str]:
    """A database of some other service: an ``orders`` table, no ``sentinel``, no ``items``."""
    admin = inv.topology.postgres_admin_dsn
    pgdata.create_database(admin, name, replace=True)
    dsn = pgdata.dsn_for(admin, name)
    with pgdata.connect(dsn) as conn:
        conn.execute("CREATE TABLE orders (id bigint PRIMARY KEY, total numeric, placed_at timestamptz)")
        conn.execute("INSERT INTO orders SELECT g, g * 1.5, now() FROM generate_series(1, 500) g")
    yield dsn
    pgdata.drop_database(admin, name)


@pytest.fixture()
def orders_db(inv: Inventory) -> Iterator[str]:
    yield from _other_service_db(inv, OTHER_SERVICE_DB)


@pytest.fixture()
def bare_db(inv: Inventory) -> Iterator[str]:
    yield from _other_service_db(inv, NO_HEARTBEAT_DB)


def _restore_test(inv: Inventory, tmp_path: Path, source: str, **overrides: Any) -> Journal:
    settings = load_settings(
        inv,
        local_path=str(tmp_path / "repo"),
        work_dir=str(tmp_path / "work"),
        redis=False,
        jobs=2,
        source_dsn=source,
        verify_queries=[],
        scratch_prefix="drillbook_test_hb_restore",
        **overrides,
    )
    take_backup(inv, settings=settings)
    ctx = DrillContext(inventory=inv, report_root=tmp_path / "reports", quiet=True)
    return execute(RestoreTest(settings), ctx)


# -- the writer ------------------------------------------------------------------------
def test_writer_beats_once_a_second_and_loses_nothing(inv: Inventory, orders_db: str) -> None:
    writer_id = f"test-{uuid.uuid4().hex[:8]}"
    lines: list[str] = []
    with heartbeat.HeartbeatWriter(orders_db, writer_id, say=lines.append) as writer:
        time.sleep(5.5)
    beats = writer.acknowledged
    # about one a second (the first beat at once), consecutive sequence numbers, no error
    assert 5 <= len(beats) <= 7, [b.seq for b in beats]
    assert [b.seq for b in beats] == list(range(1, len(beats) + 1))
    gaps = [(b.ts - a.ts).total_seconds() for a, b in itertools.pairwise(beats)]
    assert 0.8 <= statistics.median(gaps) <= 1.2, gaps
    assert writer.sampler.error_count == 0 and lines and "writing to drillbook.heartbeat" in lines[0]

    with pgdata.connect(orders_db) as conn:
        newest = heartbeat.newest(conn)
        assert newest is not None and (newest.writer_id, newest.seq) == (writer_id, beats[-1].seq)
        assert heartbeat.lost(conn, beats) == []
        # the reader is not blind: a beat removed from the log is reported lost, by number
        conn.execute(f"DELETE FROM {heartbeat.LOG_TABLE} WHERE writer_id = %s AND seq = 3", (writer_id,))
        assert heartbeat.lost(conn, beats) == [3]


def test_a_second_writer_with_the_same_id_is_refused(inv: Inventory, orders_db: str) -> None:
    with heartbeat.HeartbeatWriter(orders_db, "twin") as first:
        second = heartbeat.HeartbeatWriter(orders_db, "twin").start(wait_s=5)
        second.sampler.stop()
        assert first.acknowledged and not second.acknowledged
        assert second.fatal is not None and "another heartbeat writer with id 'twin'" in str(second.fatal)


def test_writer_survives_a_restart_of_its_connection(inv: Inventory, orders_db: str) -> None:
    """A beat that cannot be written is a gap, not the end: the writer reconnects and goes on."""
    admin = inv.topology.postgres_admin_dsn
    with heartbeat.HeartbeatWriter(orders_db, "reconnect") as writer:
        time.sleep(1.5)
        with pgdata.connect(admin) as conn:
            conn.execute(
                "SELECT pg_terminate_backend(pid) FROM pg_stat_activity"
                " WHERE application_name = 'drillbook-heartbeat' AND datname = %s",
                (OTHER_SERVICE_DB,),
            )
        time.sleep(3)
    seqs = [b.seq for b in writer.acknowledged]
    assert writer.sampler.error_count >= 1 and len(seqs) >= 4
    assert seqs == sorted(set(seqs))  # never a number twice, even across the reconnect
    with pgdata.connect(orders_db) as conn:
        assert heartbeat.lost(conn, writer.acknowledged) == []


def test_writer_never_recreates_its_tables_behind_a_restore(inv: Inventory, orders_db: str) -> None:
    """Tables gone after the first beat (a restore re-creating the database): report it, do not re-create."""
    with heartbeat.HeartbeatWriter(orders_db, "restore-race") as writer:
        time.sleep(1.5)
        with pgdata.connect(orders_db) as conn:
            conn.execute("DROP SCHEMA drillbook CASCADE")
        time.sleep(2.5)
    with pgdata.connect(orders_db) as conn:
        assert not heartbeat.tables_exist(conn)
    assert writer.fatal is None and writer.acknowledged  # it goes on trying: an outage, not a mistake
    assert "not re-creating it while a restore" in writer.sampler.errors[-1].error


# -- the daemon the lab runs -----------------------------------------------------------
def test_lab_runs_the_writer_as_a_daemon_with_the_system_python(inv: Inventory) -> None:
    pidfile = Path(str(inv.var("heartbeat_dir"))) / "heartbeat.pid"
    pid = int(pidfile.read_text().split()[0])
    cmdline = Path(f"/proc/{pid}/cmdline").read_bytes().split(b"\0")
    assert cmdline[:3] == [b"/usr/bin/python3", b"-m", b"drillbook.core.heartbeat_daemon"]
    assert os.stat(f"/proc/{pid}").st_uid != 0  # an unprivileged user, not root
    assert b"admin-lab-password" not in b" ".join(cmdline)  # the DSN is in the environment, not argv

    piece = next(p for p in labenv.status(inv).pieces if p.piece == "heartbeat")
    assert piece.ok and "lab-db seq" in piece.detail, piece
    with pgdata.connect(inv.topology.postgres_dsn) as conn:  # the service's own user can read it
        newest = heartbeat.newest(conn)
        now = conn.execute("SELECT clock_timestamp()").fetchone()
    assert newest is not None and newest.writer_id == "lab-db" and newest.age_s(now[0] if now else None) < 3


def test_daemon_check_says_why_in_one_line(inv: Inventory, bare_db: str) -> None:
    run = subprocess.run(
        [sys.executable, "-m", "drillbook.core.heartbeat_daemon", "--writer-id", "nobody", "--check", "5"],
        env={**os.environ, heartbeat.DSN_ENV: bare_db},
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert run.returncode == 2 and run.stderr.count("\n") == 1, run.stderr
    assert "no heartbeat of writer 'nobody'" in run.stderr and "Traceback" not in run.stderr


# -- the RPO it gives ------------------------------------------------------------------
def test_restore_test_measures_rpo_from_the_heartbeat_without_a_sentinel(
    inv: Inventory, orders_db: str, tmp_path: Path
) -> None:
    with heartbeat.HeartbeatWriter(orders_db, "orders-db"):
        time.sleep(2.5)
        journal = _restore_test(inv, tmp_path, orders_db, rpo_target_s=120)
    assert journal.verdict == "pass", (journal.error, journal.failed_checks)
    ms = journal.measurements
    with pgdata.connect(orders_db) as conn:
        assert conn.execute("SELECT to_regclass('sentinel')").fetchone() == (None,)
    # the newest beat inside the backup is about the backup's age: one beat a second
    assert ms["rpo_s"] is not None and ms["backup_age_s"] - 0.5 <= ms["rpo_s"] <= ms["backup_age_s"] + 2
    assert "drillbook.heartbeat" in journal.witnesses["rpo_s"]
    rpo = next(c for c in journal.checks if c.name == "rpo")
    assert rpo.ok and rpo.limit == 120


def test_restore_test_without_a_heartbeat_is_an_error_not_a_pass(
    inv: Inventory, bare_db: str, tmp_path: Path
) -> None:
    journal = _restore_test(inv, tmp_path, bare_db, rpo_target_s=120)
    assert journal.verdict == "error"
    assert journal.error is not None and journal.error.startswith("RPO not measured: no drillbook.heartbeat")
    assert journal.measurements["rpo_s"] is None
    assert journal.measurements["tables_verified"] == 1  # the restore itself was proven
