"""Migrations against the real lab: status, rehearsals, upgrades that roll back, restores, Ctrl-C.

The lab's database starts at 0003 (the main chain); drill sets come from
REFSVC_MIGRATION_SET (lab/README.md) and two test-only revisions are written
into a copy of the release's migrations under tmp_path. Every test leaves the
database at 0003: the ``back_at_head`` fixture checks, and repairs if a test
failed half-way.
"""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from drillbook.backup import load_settings as backup_settings
from drillbook.backup import take_backup
from drillbook.core import pgdata
from drillbook.core.drill import Drill, DrillContext, execute
from drillbook.core.errors import LockHeld
from drillbook.core.inventory import Inventory
from drillbook.core.journal import Journal
from drillbook.core.lock import inventory_lock
from drillbook.core.paths import REPO_ROOT
from drillbook.migrate import Migrations, Rehearse, Rollback, Up, load_settings, migration_status
from drillbook.migrate.settings import MigrateSettings

pytestmark = pytest.mark.lab

HEAD = "0003"
FRESH_DB = "drillbook_test_mig_fresh"

# A revision that breaks the running service (it renames a column the code
# reads) but has a correct downgrade: the automatic rollback's main path.
RENAME = '''"""TEST: rename items.value, which the running service still reads.

Revision ID: 0004_rename
Revises: 0003
"""
from alembic import op

revision = "0004_rename"
down_revision = "0003"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.execute("ALTER TABLE items RENAME COLUMN value TO value_v2")


def downgrade() -> None:
    op.execute("ALTER TABLE items RENAME COLUMN value_v2 TO value")
'''

# A harmless but slow revision, to press Ctrl-C in the middle of it.
SLOW = '''"""TEST: a slow, harmless upgrade.

Revision ID: 0004_slow
Revises: 0003
"""
from alembic import op

revision = "0004_slow"
down_revision = "0003"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.execute("ALTER TABLE items ADD COLUMN slow_note text")
    op.execute("SELECT pg_sleep(3)")


def downgrade() -> None:
    op.execute("ALTER TABLE items DROP COLUMN slow_note")
'''


# -- fixtures ----------------------------------------------------------------------------------
def _settings(inv: Inventory, migration_set: str | None = None, **overrides: Any) -> MigrateSettings:
    base = load_settings(inv)
    env = {k: v for k, v in base.env.items() if k != "REFSVC_MIGRATION_SET"}
    if migration_set:
        env["REFSVC_MIGRATION_SET"] = migration_set
    return load_settings(inv, env=env, **overrides)


def _run(drill: Drill, inv: Inventory, root: Path) -> Journal:
    return execute(drill, DrillContext(inventory=inv, report_root=root, quiet=True))


def _items(inv: Inventory) -> tuple[int, str]:
    """Row count and checksum of items, read independently of the drill (pgdata, admin)."""
    dsn = pgdata.dsn_for(inv.topology.postgres_admin_dsn, pgdata.database_name(inv.topology.postgres_dsn))
    with pgdata.connect(dsn) as conn:
        table = next(t for t in pgdata.list_tables(conn) if t.qualified == "public.items")
    fp = pgdata.fingerprints(dsn, [table])["public.items"]
    return fp.rows, fp.checksum


def _revision(inv: Inventory) -> list[str]:
    return Migrations(inv, _settings(inv)).current()


@pytest.fixture(scope="module")
def inv(lab: dict[str, Any], lab_inventory: Inventory) -> Inventory:
    """The lab, with items whose values are longer than the lossy drill's 32-character summary."""
    with pgdata.connect(lab_inventory.topology.postgres_dsn) as conn:
        long_values = pgdata.scalar(conn, "SELECT count(*) FROM items WHERE length(value) > 32")
        if long_values < 200:
            conn.execute(
                "INSERT INTO items (name, value) SELECT 'migrate-test-' || g, repeat(md5(g::text), 2)"
                " FROM generate_series(1, 200) AS g"
            )
    return lab_inventory


@pytest.fixture(autouse=True)
def back_at_head(inv: Inventory) -> Iterator[None]:
    """Every test must leave the database at 0003 on the main chain; repair (and fail) if not."""
    assert _revision(inv) == [HEAD], "the lab database must start at 0003"
    yield
    now = _revision(inv)
    if now != [HEAD]:
        _repair(inv, now)
    assert now == [HEAD], f"test left the database at {now}"


def _repair(inv: Inventory, now: list[str]) -> None:
    sets = {"0004_lossy": "lossy", "0004_broken": "broken", "0004_irreversible": "irreversible"}
    rev = now[0] if now else ""
    dsn = inv.topology.postgres_dsn
    if rev == "0004_broken_downgrade":
        with pgdata.connect(dsn) as conn:
            conn.execute("ALTER TABLE items RENAME COLUMN val TO value")
            conn.execute("UPDATE alembic_version SET version_num = '0003'")
        return
    if rev == "0004_irreversible":
        with pgdata.connect(dsn) as conn:
            conn.execute("ALTER TABLE items DROP COLUMN slug")
            conn.execute("UPDATE alembic_version SET version_num = '0003'")
        return
    m = Migrations(inv, _settings(inv, sets.get(rev)))
    m.migrate("downgrade" if rev else "upgrade", HEAD, m.source)


@pytest.fixture()
def test_release(tmp_path: Path, inv: Inventory) -> Path:
    """A copy of the release's alembic.ini and migrations with the test revisions in versions/."""
    src = Path(load_settings(inv).alembic_ini).parent
    dest = tmp_path / "release"
    dest.mkdir()
    shutil.copy2(src / "alembic.ini", dest / "alembic.ini")
    shutil.copytree(src / "migrations", dest / "migrations", ignore=shutil.ignore_patterns("__pycache__"))
    return dest


def _with_revision(release: Path, name: str, source: str) -> str:
    (release / "migrations" / "versions" / f"{name}.py").write_text(source)
    return str(release / "alembic.ini")


# -- status ------------------------------------------------------------------------------------
def test_status_of_a_fresh_and_a_migrated_database(inv: Inventory) -> None:
    admin = inv.topology.postgres_admin_dsn
    owner = pgdata.dsn_params(inv.topology.postgres_dsn)["user"]
    pgdata.create_database(admin, FRESH_DB, owner=owner, replace=True)
    try:
        fresh = migration_status(inv, database=FRESH_DB)
    finally:
        pgdata.drop_database(admin, FRESH_DB)
    assert fresh.current == [] and fresh.heads == [HEAD]
    assert [(r.id, r.has_downgrade) for r in fresh.pending] == [
        ("0001", True),
        ("0002", True),
        ("0003", True),
    ]
    assert fresh.to_dict()["current"] is None

    migrated = migration_status(inv)
    assert migrated.current == [HEAD] and migrated.pending == [] and migrated.up_to_date
    assert "pending:  none" in migrated.lines()


def test_status_shows_an_irreversible_pending_revision(
    inv: Inventory, monkeypatch: pytest.MonkeyPatch
) -> None:
    # On the control machine the command inherits drillbook's environment, as from a shell.
    monkeypatch.setenv("REFSVC_MIGRATION_SET", "irreversible")
    data = migration_status(inv).to_dict()
    assert data["current"] == HEAD and data["head"] == "0004_irreversible" and not data["up_to_date"]
    assert [(p["revision"], p["has_downgrade"]) for p in data["pending"]] == [("0004_irreversible", False)]


# -- rehearse ----------------------------------------------------------------------------------
def _scratch_dbs(inv: Inventory, prefix: str) -> list[str]:
    with pgdata.connect(inv.topology.postgres_admin_dsn) as conn:
        rows = conn.execute(
            "SELECT datname FROM pg_database WHERE datname LIKE %s", (prefix + "%",)
        ).fetchall()
    return [str(r[0]) for r in rows]


def test_rehearse_passes_on_the_main_chain_from_the_newest_backup(inv: Inventory, tmp_path: Path) -> None:
    take_backup(inv, settings=backup_settings(inv, redis=False))
    settings = _settings(inv)
    journal = _run(Rehearse(settings, from_="0001", source="backup"), inv, tmp_path)
    assert journal.verdict == "pass", (journal.error, journal.failed_checks)
    m = journal.measurements
    assert m["copy_source"].startswith("backup ")
    assert m["from_revision"] == "0001" and m["to_revision"] == HEAD and m["pending"] == ["0002", "0003"]
    for step in ("prepare", "upgrade", "downgrade", "reupgrade"):
        assert m[f"{step}_s"] > 0
    assert m["longest_lock_s"] is not None and m["schema_differences"] == [] and m["data_differences"] == []
    assert m["rows"] >= 200
    assert journal.thresholds["roundtrip_max_differences"] == 0
    assert {"at_target.sql.items-have-names", "schema_roundtrip_differences"} <= {
        c.name for c in journal.checks
    }
    names = [p.name for p in journal.phases]
    assert names.index("act/upgrade") < names.index("act/downgrade") < names.index("act/reupgrade")
    assert _scratch_dbs(inv, settings.scratch_prefix) == []


def test_rehearse_fails_on_the_lossy_downgrade_naming_the_column(inv: Inventory, tmp_path: Path) -> None:
    settings = _settings(inv, "lossy")
    journal = _run(Rehearse(settings, source="dump"), inv, tmp_path)
    assert journal.verdict == "fail", journal.error
    failed = [c.name for c in journal.failed_checks]
    assert "roundtrip column data public.items.value" in failed
    assert "data_roundtrip_differences" in failed
    counted = {c.name: c for c in journal.checks}["data_roundtrip_differences"]
    assert (counted.value, counted.op, counted.limit, counted.limit_from) == (
        1,
        "<=",
        0,
        "roundtrip_max_differences",
    )
    assert journal.measurements["data_differences"] == [
        "column data public.items.value: values before -> values changed"
    ]
    assert journal.measurements["schema_differences"] == []
    assert journal.measurements["copy_source"] == "pg_dump of app"
    assert _scratch_dbs(inv, settings.scratch_prefix) == []


def test_rehearse_refuses_an_irreversible_revision_before_copying(inv: Inventory, tmp_path: Path) -> None:
    journal = _run(Rehearse(_settings(inv, "irreversible")), inv, tmp_path)
    assert journal.verdict == "error" and journal.exit_code == 2
    assert journal.error and "0004_irreversible have no downgrade" in journal.error
    assert not any(p.name.startswith("act/") for p in journal.phases)


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"to": "0009"}, "unknown revision '0009'"),
        ({"to": "0002"}, "older than the database's 0003: use migrate.rollback"),
    ],
)
def test_up_refuses_bad_input_before_anything_changes(
    inv: Inventory, tmp_path: Path, kwargs: dict[str, Any], message: str
) -> None:
    before = _items(inv)
    journal = _run(Up(_settings(inv), **kwargs), inv, tmp_path)
    assert journal.exit_code == 2 and journal.error and message in journal.error
    assert not any(p.name.startswith("act/") for p in journal.phases) and _items(inv) == before


def test_up_refuses_an_irreversible_revision_without_the_flag(inv: Inventory, tmp_path: Path) -> None:
    journal = _run(Up(_settings(inv, "irreversible")), inv, tmp_path)
    assert journal.exit_code == 2 and "--allow-irreversible" in (journal.error or "")


def test_up_refuses_while_another_drill_holds_the_lock(inv: Inventory, tmp_path: Path) -> None:
    with (
        inventory_lock(inv.lock_scope, "chaos.kill-db", inv.name),
        pytest.raises(LockHeld, match=r"chaos\.kill-db"),
    ):
        _run(Up(_settings(inv)), inv, tmp_path)


# -- up and rollback -----------------------------------------------------------------------------
def test_up_to_a_failing_upgrade_rolls_back_with_data_intact(inv: Inventory, tmp_path: Path) -> None:
    before = _items(inv)
    journal = _run(Up(_settings(inv, "broken")), inv, tmp_path)
    m = journal.measurements
    assert journal.verdict == "fail" and journal.error is None
    assert m["rolled_back"] is True and m["rollback_method"] == "transaction"
    assert m["restored_from_backup"] is False and m["backup_id"]
    assert m["final_revision"] == HEAD and _items(inv) == before
    assert {c.name: c.ok for c in journal.checks}["data_intact_differences"] is True


def test_up_that_breaks_the_service_is_downgraded_automatically(
    inv: Inventory, tmp_path: Path, test_release: Path
) -> None:
    ini = _with_revision(test_release, "0004_rename", RENAME)
    before = _items(inv)
    journal = _run(Up(_settings(inv), ini=ini), inv, tmp_path / "reports")
    m = journal.measurements
    failed = {c.name for c in journal.failed_checks}
    assert any(name.startswith("after_upgrade.smoke.list-items") for name in failed), failed
    assert m["rolled_back"] is True and m["rollback_method"] == "downgrade"
    assert m["migrate_s"] > 0 and m["rollback_s"] > 0 and m["restored_from_backup"] is False
    assert not any(name.startswith("after_rollback") for name in failed)
    assert m["final_revision"] == HEAD and _items(inv) == before


def test_a_failing_downgrade_restores_the_pre_migration_backup(inv: Inventory, tmp_path: Path) -> None:
    before = _items(inv)
    journal = _run(Up(_settings(inv, "broken-downgrade")), inv, tmp_path)
    m = journal.measurements
    assert journal.verdict == "fail"
    assert (
        m["rolled_back"] is True and m["restored_from_backup"] is True and m["rollback_method"] == "restore"
    )
    assert any("RESTORE TO SOURCE" in n for n in journal.notes)
    phases = {p.name: p for p in journal.phases}
    assert phases["act/rollback"].ok is False and phases["act/restore-source"].ok is True
    assert m["final_revision"] == HEAD and _items(inv) == before
    after_rollback = [c for c in journal.checks if c.name.startswith("after_rollback")]
    assert after_rollback and all(c.ok for c in after_rollback)
    kept = m["kept_failed_database"]
    admin = inv.topology.postgres_admin_dsn
    with pgdata.connect(admin) as conn:
        owner = pgdata.scalar(conn, "SELECT pg_get_userbyid(datdba) FROM pg_database WHERE datname = 'app'")
        assert pgdata.database_exists(conn, kept)
    pgdata.drop_database(admin, kept)
    assert owner == pgdata.dsn_params(inv.topology.postgres_dsn)["user"]


def test_rollback_then_up_pass_their_checks(inv: Inventory, tmp_path: Path) -> None:
    down = _run(Rollback(_settings(inv)), inv, tmp_path)
    assert down.verdict == "pass", (down.error, down.failed_checks)
    assert down.measurements["final_revision"] == "0002" and down.measurements["rolled_back"] is False
    up = _run(Up(_settings(inv)), inv, tmp_path)
    assert up.verdict == "pass", (up.error, up.failed_checks)
    assert up.measurements["final_revision"] == HEAD and up.measurements["migrate_s"] > 0


def test_ctrl_c_during_up_finishes_the_step_and_says_so(
    inv: Inventory, tmp_path: Path, test_release: Path
) -> None:
    ini = _with_revision(test_release, "0004_slow", SLOW)
    reports = tmp_path / "reports"
    env = {**os.environ, "DRILLBOOK_REPORT_DIR": str(reports)}
    proc = subprocess.Popen(
        ["inv", "migrate.up", "--ini", ini, "--quiet"],
        cwd=REPO_ROOT,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        # Press Ctrl-C when the migration is inside its slow statement, seen by the server itself.
        deadline = time.monotonic() + 120
        with pgdata.connect(inv.topology.postgres_admin_dsn) as conn:
            while time.monotonic() < deadline and proc.poll() is None:
                busy = pgdata.scalar(
                    conn, "SELECT count(*) FROM pg_stat_activity WHERE query LIKE 'SELECT pg_sleep(3)%'"
                )
                if busy:
                    break
                time.sleep(0.1)
            else:
                pytest.fail(f"the slow upgrade never started: {proc.communicate(timeout=60)[1][-2000:]}")
        proc.send_signal(signal.SIGINT)
        _, stderr = proc.communicate(timeout=120)
    finally:
        if proc.poll() is None:
            proc.kill()
    (path,) = reports.glob("*/journal.json")
    journal = Journal.read(path)
    try:
        assert proc.returncode == 130, stderr
        assert journal.interrupted and journal.measurements["interrupted_during"] == "upgrade"
        assert journal.measurements["final_revision"] == "0004_slow"
        assert journal.measurements["rolled_back"] is False
        assert any("the step was finished and verified" in n for n in journal.notes)
    finally:
        m = Migrations(inv, _settings(inv), ini=ini)
        m.migrate("downgrade", HEAD, m.source)


@pytest.mark.slow
def test_migrations_run_on_an_app_host_through_ansible(inv: Inventory) -> None:
    m = Migrations(inv, _settings(inv, run_on="host", host="app[0]"))
    result = m.command.run(["heads"])
    assert result.ok and result.where == inv.hosts("app")[0] and result.stdout.split()[0] == HEAD
