"""Migrations act only where drillbook says (issue 13, item 1), against the real lab.

A third-party migration entry point (tests/data/migrate/thirdparty_migrate.py)
builds its URL from its own setting and ignores the one drillbook gives it. Set
to the live database, it is the incident: rehearse, up and rollback must stop
with exit 2, and (where a read-only call can tell) before the live schema
changes; the tests read the table list, columns and ``alembic_version`` of the
live database themselves, before and after. Mapped onto drillbook's placeholders
through ``migrate_env``, the same entry point rehearses on the copy and passes.

For up/rollback the database drillbook names is a second database on the lab's
server (``drillbook_test_proof_named``), so "another database" (the lab's
``app``) exists for the command to migrate by mistake.
"""

from __future__ import annotations

import dataclasses
import shlex
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from drillbook.core import pgdata
from drillbook.core.drill import Drill, DrillContext, execute
from drillbook.core.inventory import Inventory, load_inventory
from drillbook.core.journal import Journal
from drillbook.core.paths import LAB_INVENTORY
from drillbook.migrate import Migrations, Rehearse, Rollback, Up, load_settings
from drillbook.migrate.command import url_for_database
from drillbook.migrate.settings import MigrateSettings

pytestmark = pytest.mark.lab

HEAD = "0003"
NAMED = "drillbook_test_proof_named"
WRAPPER = Path(__file__).parent / "data" / "migrate" / "thirdparty_migrate.py"

# A harmless revision on top of the main chain: what a misdirected write adds to the live database.
NOTE = '''"""TEST: a harmless column.

Revision ID: 0004_note
Revises: 0003
"""
from alembic import op

revision = "0004_note"
down_revision = "0003"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.execute("ALTER TABLE items ADD COLUMN proof_note text")


def downgrade() -> None:
    op.execute("ALTER TABLE items DROP COLUMN proof_note")
'''


# -- what the tests read themselves -------------------------------------------------------------
def _live_schema(dsn: str) -> dict[str, Any]:
    """Tables, columns with types, and alembic_version of a database, read here with psycopg."""
    with pgdata.connect(dsn, read_only=True) as conn:
        columns = conn.execute(
            "SELECT table_name, column_name, data_type FROM information_schema.columns "
            "WHERE table_schema = 'public' ORDER BY 1, 2"
        ).fetchall()
        tables = conn.execute(
            "SELECT table_name FROM information_schema.tables WHERE table_schema = 'public' ORDER BY 1"
        ).fetchall()
        version = conn.execute("SELECT version_num FROM alembic_version").fetchall()
    return {"tables": tables, "columns": columns, "alembic_version": version}


def _run(drill: Drill, inv: Inventory, root: Path) -> Journal:
    return execute(drill, DrillContext(inventory=inv, report_root=root, quiet=True))


def _thirdparty(
    inv: Inventory, *, env: dict[str, str], writes_only: bool = False, **kw: Any
) -> MigrateSettings:
    """The lab's Alembic behind the third-party entry point (which overwrites REFSVC_DATABASE_URL)."""
    base = load_settings(inv)
    alembic = shlex.split(base.cmd)[0]
    flag = " --writes-only" if writes_only else ""
    cmd = f"{shlex.quote(sys.executable)} {shlex.quote(str(WRAPPER))}{flag} {shlex.quote(alembic)} -c {{ini}}"
    keep = {k: v for k, v in base.env.items() if k != "REFSVC_MIGRATION_SET"}
    return load_settings(inv, cmd=cmd, env={**keep, **env}, **kw)


def _scratch_dbs(inv: Inventory, prefix: str) -> list[str]:
    with pgdata.connect(inv.topology.postgres_admin_dsn) as conn:
        rows = conn.execute("SELECT datname FROM pg_database WHERE datname LIKE %s", (prefix + "%",))
        return [str(r[0]) for r in rows.fetchall()]


# -- fixtures ------------------------------------------------------------------------------------
@pytest.fixture(scope="module")
def inv(lab: dict[str, Any], lab_inventory: Inventory) -> Inventory:
    return lab_inventory


@pytest.fixture()
def release(tmp_path: Path, inv: Inventory) -> str:
    """A copy of the release's migrations with the harmless 0004_note; returns its alembic.ini."""
    import shutil

    src = Path(load_settings(inv).alembic_ini).parent
    dest = tmp_path / "release"
    dest.mkdir()
    shutil.copy2(src / "alembic.ini", dest / "alembic.ini")
    shutil.copytree(src / "migrations", dest / "migrations", ignore=shutil.ignore_patterns("__pycache__"))
    (dest / "migrations" / "versions" / "0004_note.py").write_text(NOTE)
    return str(dest / "alembic.ini")


@pytest.fixture()
def live(inv: Inventory, release: str) -> Iterator[str]:
    """The lab's live database (DSN); it must be at 0003 before and after, repaired if a test broke it."""
    dsn = inv.topology.postgres_dsn
    assert _live_schema(dsn)["alembic_version"] == [(HEAD,)]
    yield dsn
    now = _live_schema(dsn)["alembic_version"]
    if now != [(HEAD,)]:
        m = Migrations(inv, load_settings(inv), ini=release)
        m.migrate("downgrade" if now == [("0004_note",)] else "upgrade", HEAD, m.source)
    assert _live_schema(dsn)["alembic_version"] == [(HEAD,)]


@pytest.fixture()
def named(inv: Inventory) -> Iterator[Inventory]:
    """The lab inventory, but naming another database (at 0003) as the one to migrate."""
    admin = inv.topology.postgres_admin_dsn
    owner = pgdata.dsn_params(inv.topology.postgres_dsn)["user"]
    pgdata.create_database(admin, NAMED, owner=owner, replace=True)
    m = Migrations(inv, load_settings(inv))
    assert m.migrate("upgrade", HEAD, m.source.copy_named(NAMED)).ok
    other = load_inventory(LAB_INVENTORY)
    other.__dict__["topology"] = dataclasses.replace(
        inv.topology, postgres_dsn=pgdata.dsn_for(inv.topology.postgres_dsn, NAMED)
    )
    try:
        yield other
    finally:
        pgdata.drop_database(admin, NAMED)


# -- rehearse ------------------------------------------------------------------------------------
def test_rehearse_with_a_command_that_ignores_the_dsn_stops_before_writing(
    inv: Inventory, live: str, tmp_path: Path
) -> None:
    """The incident: `--from 0001` would have downgraded the live database; the marker catches it first."""
    settings = _thirdparty(inv, env={"THIRDPARTY_DATABASE_URL": live})
    before = _live_schema(live)
    journal = _run(Rehearse(settings, from_="0001", source="dump"), inv, tmp_path)
    print(f"\n{journal.error}")
    assert journal.exit_code == 2 and journal.verdict == "error", journal.error
    assert journal.error and "ignores the database drillbook gives it" in journal.error
    assert "nothing was migrated" in journal.error and "\n" not in journal.error
    assert "lab-password" not in journal.error
    phases = [p.name for p in journal.phases]
    assert "act/proof" in phases and "act/prepare" not in phases and "act/upgrade" not in phases
    assert _live_schema(live) == before
    assert _scratch_dbs(inv, settings.scratch_prefix) == []


def test_rehearse_stops_after_the_first_write_that_lands_on_the_source(
    inv: Inventory, live: str, release: str, tmp_path: Path
) -> None:
    """A command honest for `current` but not for writes: caught right after its first step, named."""
    settings = _thirdparty(inv, env={"THIRDPARTY_DATABASE_URL": live}, writes_only=True)
    journal = _run(Rehearse(settings, to="0004_note", ini=release, source="dump"), inv, tmp_path)
    print(f"\n{journal.error}")
    assert journal.exit_code == 2 and journal.error, journal.error
    assert "migrated another database" in journal.error and "the source" in journal.error
    assert pgdata.describe(live) in journal.error and "lab-password" not in journal.error
    phases = [p.name for p in journal.phases]
    assert "act/upgrade" in phases and "act/downgrade" not in phases  # stopped at once
    assert _live_schema(live)["alembic_version"] == [("0004_note",)]  # the damage the step did (repaired)
    assert _scratch_dbs(inv, settings.scratch_prefix) == []


def test_rehearse_passes_when_the_placeholders_are_mapped_onto_its_own_settings(
    inv: Inventory, live: str, tmp_path: Path
) -> None:
    env = {
        "THIRDPARTY_DB_HOST": "{host}",
        "THIRDPARTY_DB_PORT": "{port}",
        "THIRDPARTY_DB_NAME": "{database}",
        "THIRDPARTY_DB_USER": "{user}",
        "THIRDPARTY_DB_PASSWORD": "{password}",
    }
    settings = _thirdparty(inv, env=env, dsn_env=None)
    before = _live_schema(live)
    journal = _run(Rehearse(settings, from_="0001", source="dump"), inv, tmp_path)
    assert journal.verdict == "pass", (journal.error, journal.failed_checks)
    m = journal.measurements
    assert m["proof_s"] > 0 and "reported 0001" in m["proof_of_target"]
    assert m["source_fingerprint"].startswith(HEAD)
    assert _live_schema(live) == before
    print(
        f"\nproof_s={m['proof_s']} of a rehearsal: copy {m['copy_s']}s, steps",
        [m[f"{s}_s"] for s in ("prepare", "upgrade", "downgrade", "reupgrade")],
    )


# -- up and rollback -----------------------------------------------------------------------------
@pytest.mark.parametrize("drill", [Up, Rollback])
def test_up_and_rollback_with_a_command_that_ignores_the_dsn_stop_before_writing(
    inv: Inventory, named: Inventory, live: str, release: str, tmp_path: Path, drill: type[Up]
) -> None:
    """drillbook names NAMED; the command migrates the lab's `app`: caught by the probe database."""
    named_dsn = named.topology.postgres_dsn
    settings = _thirdparty(
        named, env={"THIRDPARTY_DATABASE_URL": live}, dsn=url_for_database(live, NAMED), backup_before=False
    )
    before, named_before = _live_schema(live), _live_schema(named_dsn)
    journal = _run(drill(settings, ini=release), named, tmp_path)
    print(f"\n{journal.error}")
    assert journal.exit_code == 2 and journal.error, journal.error
    assert "ignores the database drillbook gives it" in journal.error, journal.error
    assert "probe database" in journal.error and "nothing was migrated" in journal.error
    assert not any(p.name.startswith("act/") for p in journal.phases)
    assert _live_schema(live) == before and _live_schema(named_dsn) == named_before
    assert _scratch_dbs(inv, settings.scratch_prefix) == []


def test_up_stops_when_the_command_succeeds_but_the_named_database_did_not_move(
    inv: Inventory, named: Inventory, live: str, release: str, tmp_path: Path
) -> None:
    named_dsn = named.topology.postgres_dsn
    settings = _thirdparty(
        named,
        env={"THIRDPARTY_DATABASE_URL": live},
        writes_only=True,
        dsn=url_for_database(live, NAMED),
        backup_before=False,
    )
    journal = _run(Up(settings, ini=release), named, tmp_path)
    print(f"\n{journal.error}")
    assert journal.exit_code == 2 and journal.error, journal.error
    assert "migrated another database" in journal.error and "is still at 0003" in journal.error
    assert "No pre-migration backup" in journal.error
    assert "act/rollback" not in [p.name for p in journal.phases]  # no undo on the wrong database
    assert _live_schema(named_dsn)["alembic_version"] == [(HEAD,)]
