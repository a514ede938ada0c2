"""Migrations without a lab: revision graphs and plans, downgrade detection, diffs, settings, the command."""

from __future__ import annotations

import shlex
import sys
from pathlib import Path

import pytest

from drillbook.core.checks import Outcome, evaluate
from drillbook.core.errors import ConfigError
from drillbook.core.inventory import load_inventory
from drillbook.core.paths import LAB_INVENTORY
from drillbook.migrate import Rehearse, Up, load_settings
from drillbook.migrate.command import CommandResult, Connection, MigrateCommand, run_local, url_for_database
from drillbook.migrate.data import TableData
from drillbook.migrate.data import diff as data_diff
from drillbook.migrate.locks import HeldLock, LockReport, LockSample, analyse
from drillbook.migrate.measured import ChangeMeasured, RehearseLimits, RehearseMeasured
from drillbook.migrate.proof import choose_marker, reported_revisions
from drillbook.migrate.revisions import RevisionGraph, parse_history, plan, script_has_downgrade
from drillbook.migrate.schema import Catalog, diff, order_changes
from drillbook.migrate.settings import MigrateSettings

HISTORY = """\
INFO  [alembic.runtime.migration] Context impl PostgresqlImpl.
Rev: 0004_lossy (head)
Parent: 0003
Path: /nonexistent/drills/lossy/0004_lossy.py

    DRILL (lossy): a migration whose downgrade silently destroys data.

    Revision ID: 0004_lossy
    Revises: 0003

Rev: 0003 (current)
Parent: 0002
Path: /nonexistent/versions/0003_items_tags.py

    Add items.tags and an index on items.created_at.

Rev: 0002
Parent: 0001
Path: /nonexistent/versions/0002_create_sentinel.py

    Create the sentinel table.

Rev: 0001
Parent: <base>
Path: /nonexistent/versions/0001_create_items.py

    Create the items table.
"""


def graph() -> RevisionGraph:
    return parse_history(HISTORY)


def test_history_parses_into_a_chain() -> None:
    g = graph()
    assert g.ordered() == ["0001", "0002", "0003", "0004_lossy"]
    assert g.heads == ["0004_lossy"]
    assert g.revisions["0001"].parents == ()
    assert g.revisions["0004_lossy"].doc.startswith("DRILL (lossy)")
    assert g.revisions["0003"].path == "/nonexistent/versions/0003_items_tags.py"


def test_merge_points_and_several_heads() -> None:
    text = HISTORY + "\nRev: 0005a (head)\nParent: 0004_lossy\n\nRev: 0005b (head)\nParent: 0004_lossy\n"
    g = parse_history(text)
    assert sorted(g.heads) == ["0005a", "0005b"]
    with pytest.raises(ConfigError, match="2 heads"):
        g.resolve("head")
    merged = parse_history(text + "\nRev: 0006 (mergepoint)\nMerges: 0005a, 0005b\n")
    assert merged.heads == ["0006"] and merged.revisions["0006"].parents == ("0005a", "0005b")


def test_resolve_names_prefixes_and_unknowns() -> None:
    g = graph()
    assert g.resolve("base") is None and g.resolve(None) is None
    assert g.resolve("head") == "0004_lossy"
    assert g.resolve("0004") == "0004_lossy"
    with pytest.raises(ConfigError, match="ambiguous"):
        g.resolve("000")
    with pytest.raises(ConfigError, match=r"unknown revision '0009'.*0001, 0002, 0003, 0004_lossy"):
        g.resolve("0009")


def test_plans_up_down_and_nothing() -> None:
    g = graph()
    up = plan(g, ["0002"], "head")
    assert up.direction == "up" and [r.id for r in up.steps] == ["0003", "0004_lossy"]
    down = plan(g, ["0004_lossy"], "0002")
    assert down.direction == "down" and [r.id for r in down.steps] == ["0004_lossy", "0003"]
    assert plan(g, [], "0001").steps[0].id == "0001"
    assert plan(g, ["0003"], "0003").direction == "none"
    assert "nothing to do" in plan(g, ["0003"], "0003").describe()


def test_plan_refuses_a_database_the_code_does_not_know() -> None:
    with pytest.raises(ConfigError, match=r"database is at revision 0007.*newer than the code"):
        plan(graph(), ["0007"], "head")
    with pytest.raises(ConfigError, match="several revisions"):
        plan(graph(), ["0002", "0003"], "head")


def test_plan_refuses_another_branch() -> None:
    text = HISTORY + "\nRev: 0004b (head)\nParent: 0003\n"
    with pytest.raises(ConfigError, match="another branch"):
        plan(parse_history(text), ["0004b"], "0004_lossy")


def test_irreversible_steps_are_named() -> None:
    g = graph()
    lossy = g.revisions["0004_lossy"]
    g.revisions["0004_lossy"] = type(lossy)(lossy.id, lossy.parents, lossy.path, lossy.doc, False)
    p = plan(g, ["0003"], "head")
    assert p.irreversible == ["0004_lossy"]
    assert plan(g, ["0002"], "0003").unknown_downgrade == ["0003"]


@pytest.mark.parametrize(
    ("body", "expected"),
    [
        ("    op.drop_column('items', 'note')\n", True),
        ("    pass\n", False),
        ('    """Nothing to undo."""\n', False),
        ('    """Doc."""\n    raise NotImplementedError("no way back")\n', False),
        ("    ...\n", False),
        ("    if True:\n        raise RuntimeError\n", True),
    ],
)
def test_downgrade_detection(body: str, expected: bool) -> None:
    source = f"def upgrade() -> None:\n    pass\n\n\ndef downgrade() -> None:\n{body}"
    assert script_has_downgrade(source) is expected


def test_missing_downgrade_function_is_no_downgrade() -> None:
    assert script_has_downgrade("def upgrade():\n    pass\n") is False


def test_lab_drill_scripts_are_classified() -> None:
    lab = Path(__file__).resolve().parents[1] / "lab" / "migrations"
    if not lab.is_dir():
        pytest.skip("lab/migrations not present")
    assert script_has_downgrade((lab / "versions" / "0003_items_tags.py").read_text())
    assert not script_has_downgrade((lab / "drills" / "irreversible" / "0004_irreversible.py").read_text())
    assert script_has_downgrade((lab / "drills" / "lossy" / "0004_lossy.py").read_text())


def test_schema_diff_names_each_difference() -> None:
    before = Catalog(
        objects={
            "table": {"public.items": "table"},
            "column": {"public.items.id": "bigint NOT NULL", "public.items.note": "text NULL"},
            "index": {"public.ix_items_created_at": "CREATE INDEX ..."},
        },
        column_order={"public.items": "id, note"},
    )
    after = Catalog(
        objects={
            "table": {"public.items": "table"},
            "column": {"public.items.id": "integer NOT NULL", "public.items.extra": "text NULL"},
            "index": {},
        },
        column_order={"public.items": "id, extra"},
    )
    described = [d.describe() for d in diff(before, after)]
    assert "column public.items.extra: new after (text NULL)" in described
    assert "column public.items.id: bigint NOT NULL -> integer NOT NULL" in described
    assert "column public.items.note: missing after (was text NULL)" in described
    assert "index public.ix_items_created_at: missing after (was CREATE INDEX ...)" in described
    assert diff(before, before) == []
    moved = Catalog(objects=before.objects, column_order={"public.items": "note, id"})
    assert order_changes(before, moved) == ["column order of public.items changed: (id, note) -> (note, id)"]


def test_data_diff_names_lost_rows_and_changed_columns() -> None:
    before = {
        "public.items": TableData(3, "c1", {"id": "a", "value": "v1"}),
        "public.gone": TableData(2, "g", {}),
    }
    after = {"public.items": TableData(3, "c2", {"id": "a", "value": "v2"})}
    described = [d.describe() for d in data_diff(before, after)]
    assert described == [
        "table data public.gone: missing after (was 2 rows)",
        "column data public.items.value: values before -> values changed",
    ]
    fewer = {
        "public.items": TableData(2, "c3", {"id": "b", "value": "v1"}),
        "public.gone": before["public.gone"],
    }
    assert "row count public.items: 3 -> 2" in [d.describe() for d in data_diff(before, fewer)]
    swapped = {**before, "public.items": TableData(3, "c9", {"id": "a", "value": "v1"})}
    assert [d.kind for d in data_diff(before, swapped)] == ["row data"]
    assert data_diff(before, dict(before)) == []


def test_lab_settings_validate() -> None:
    s = load_settings(load_inventory(LAB_INVENTORY))
    assert s.dsn_env == "REFSVC_DATABASE_URL" and s.run_on == "control"
    assert {r.name for r in s.smoke_requests} >= {"list-items"}
    assert all(r.method in ("GET", "HEAD") for r in s.smoke_requests)
    assert "sentinel" in s.volatile_tables


def test_smoke_requests_may_not_write() -> None:
    with pytest.raises(ValueError, match="GET"):
        MigrateSettings.model_validate(
            {"smoke_requests": [{"name": "x", "path": "/items", "method": "POST"}]}
        )
    with pytest.raises(ValueError, match="start with /"):
        MigrateSettings.model_validate({"smoke_requests": [{"name": "x", "path": "items"}]})


def test_url_for_database_keeps_credentials_and_options() -> None:
    url = "postgresql://app:s%40cret@127.0.0.1:5432/app?sslmode=disable"
    assert (
        url_for_database(url, "scratch_1")
        == "postgresql://app:s%40cret@127.0.0.1:5432/scratch_1?sslmode=disable"
    )
    assert "dbname=scratch_1" in url_for_database("host=127.0.0.1 dbname=app user=app", "scratch_1")


def test_command_failure_names_the_exception_line() -> None:
    result = CommandResult(
        argv=("alembic", "upgrade", "head"),
        where="control machine",
        rc=1,
        stdout="",
        stderr="INFO  [alembic] Running upgrade\nsqlalchemy.exc.ProgrammingError: column x does not exist\n"
        "(Background on this error at: https://sqlalche.me/e/21/f405)\n",
        duration_s=1.0,
    )
    assert result.why() == "exit 1: sqlalchemy.exc.ProgrammingError: column x does not exist"
    assert "rc=1" in result.log()


def test_local_command_gets_the_url_and_times_out(tmp_path: Path) -> None:
    ok = run_local(
        [sys.executable, "-c", "import os; print(os.environ['DBURL'])"], {"DBURL": "x://y"}, None, 10
    )
    assert ok.ok and ok.stdout.strip() == "x://y"
    slow = run_local([sys.executable, "-c", "import time; time.sleep(30)"], {}, str(tmp_path), 0.5)
    assert slow.timed_out and not slow.ok and "timed out" in slow.why()


def test_missing_tool_is_a_config_error() -> None:
    with pytest.raises(ConfigError, match="cannot run migration command"):
        run_local(["/nonexistent/alembic", "heads"], {}, None, 5)


def test_lock_report_wording() -> None:
    report = LockReport(
        interval_s=0.02, samples=10, longest=HeldLock("items", "AccessExclusiveLock", 0.12, 7)
    )
    assert report.longest_s == 0.12
    assert report.summary().startswith("AccessExclusiveLock on items for >= 0.120s (seen in 7 samples)")
    assert LockReport(interval_s=0.02, samples=5).longest_s == 0.0
    assert LockReport(interval_s=0.02, error="side connection failed").longest_s is None


# -- connection placeholders and the target proof's pure parts ------------------------------------
URL = "postgresql://app:s3cret-pw@db.example:6543/scratch_1"
_ECHO = (
    "import os, sys; print(sys.argv[1:]); "
    "print(os.environ['PW'][::-1] == 'wp-terc3s', os.environ['PGPASSWORD'][::-1] == 'wp-terc3s'); "
    "print(os.environ.get('WHOLE')); print('leak:', os.environ.get('PW'))"
)


def _command(**settings: object) -> MigrateCommand:
    inv = load_inventory(Path(__file__).parent / "data" / "inventory")
    return MigrateCommand(inv, MigrateSettings.model_validate(settings))


def test_placeholders_reach_argv_without_the_password_and_env_with_it() -> None:
    echo = f"{shlex.quote(sys.executable)} -c {shlex.quote(_ECHO)}"
    cmd = _command(
        cmd=echo + " {dsn} {host} {port} {database} {user}",
        env={"PW": "{password}", "WHOLE": "{dsn}"},
        dsn_env=None,
    )
    result = cmd.run([], dsn=URL)
    assert result.ok, result.why()
    assert result.argv[3:] == (
        "postgresql://app@db.example:6543/scratch_1",
        "db.example",
        "6543",
        "scratch_1",
        "app",
    )
    lines = result.stdout.splitlines()
    assert lines[1] == "True True"  # the password went through the environment only
    assert lines[2] == "postgresql://app:***@db.example:6543/scratch_1"  # and is cut from the output
    assert lines[3] == "leak: ***"
    assert "s3cret" not in result.log() and "s3cret" not in " ".join(result.argv)


def test_dsn_env_is_still_a_shorthand_for_the_whole_url() -> None:
    probe = "import os; print(os.environ['DBURL'].replace('s3cret-pw', 'PW'))"
    cmd = _command(cmd=f"{shlex.quote(sys.executable)} -c {shlex.quote(probe)}", dsn_env="DBURL")
    result = cmd.run([], dsn=URL)
    assert result.stdout.strip() == "postgresql://app:PW@db.example:6543/scratch_1"


def test_password_in_argv_and_a_command_without_connection_are_refused() -> None:
    with pytest.raises(ConfigError, match=r"must not use \{password\}"):
        _command(cmd="alembic -x pw={password} upgrade", dsn_env=None)
    with pytest.raises(ConfigError, match="gets no connection from drillbook"):
        _command(cmd="alembic", dsn_env=None, env={"X": "1"})
    assert _command(cmd="alembic", dsn_env=None, env={"APP_DB_NAME": "{database}"}).base_argv == ["alembic"]


def test_connection_parts_of_a_conninfo_string() -> None:
    conn = Connection.of("host=10.0.0.5 port=5433 dbname=app user=svc password=pw123")
    assert (conn.host, conn.port, conn.database, conn.user, conn.password) == (
        "10.0.0.5",
        "5433",
        "app",
        "svc",
        "pw123",
    )
    assert "pw123" not in conn.public_dsn and "dbname=app" in conn.public_dsn


def test_current_output_is_read_as_known_revisions_and_the_marker_differs_from_the_source() -> None:
    result = CommandResult(
        argv=("alembic", "current"),
        where="control machine",
        rc=0,
        stdout="0003 (head)\nsome banner line\n",
        stderr="INFO  [alembic.runtime.migration] Context impl PostgresqlImpl.\n",
        duration_s=0.5,
    )
    g = graph()
    assert reported_revisions(result, g) == ["0003"]
    assert choose_marker(g, ("0003",)) == ["0001"]
    assert choose_marker(g, ("0001",)) == ["0002"]
    assert choose_marker(g, ()) == ["0001"]
    single = parse_history("Rev: 0001 (head)\nParent: <base>\nPath: /x/0001.py\n\n    One.\n")
    assert choose_marker(single, ("0001",)) == []


def test_lock_samples_become_spans_from_first_to_last_sight() -> None:
    ddl = (101, "items", "AccessExclusiveLock")
    samples = [
        LockSample(t=10.00, wall=0.0, granted=(ddl,), waiting=frozenset({7})),
        LockSample(t=10.02, wall=0.0, granted=(ddl, (102, "other", "ShareLock")), waiting=frozenset({7, 8})),
        LockSample(t=10.10, wall=0.0, granted=(ddl,), waiting=frozenset()),
        LockSample(t=10.12, wall=0.0, granted=(), waiting=frozenset()),
    ]
    report = analyse(samples, 0.02)
    assert report.samples == 4 and report.max_waiting == 2
    assert report.longest == HeldLock("items", "AccessExclusiveLock", 0.1, 3)
    assert [h.relation for h in report.locks] == ["items", "other"]
    assert analyse([], 0.02, "side connection failed: X").summary().startswith("not measured")


def _outcome(name: str, ok: bool) -> Outcome:
    return Outcome(name=name, ok=ok, value=ok, expected=True)


def test_rehearse_checks_are_data_with_numeric_limits_from_settings() -> None:
    measured = RehearseMeasured(
        longest_lock_s=0.7,
        longest_lock_detail="upgrade: AccessExclusiveLock on items",
        schema_roundtrip_differences=0,
        data_roundtrip_differences=1,
        at_target=[_outcome("at_target.sql.items", True)],
        roundtrip=[_outcome("roundtrip column data public.items.value", False)],
    )
    limits = RehearseLimits(max_lock_s=0.5, roundtrip_max_differences=0)
    checks = {c.name: c for c in evaluate(Rehearse.checks, measured, limits)}
    assert list(checks) == [
        "at_target.sql.items",
        "roundtrip column data public.items.value",
        "schema_roundtrip_differences",
        "data_roundtrip_differences",
        "longest_lock_s",
    ]
    lock = checks["longest_lock_s"]
    assert (lock.value, lock.op, lock.limit, lock.limit_from, lock.ok) == (
        0.7,
        "<=",
        0.5,
        "max_lock_s",
        False,
    )
    assert "items" in lock.detail
    data_check = checks["data_roundtrip_differences"]
    assert (data_check.limit, data_check.ok, checks["schema_roundtrip_differences"].ok) == (0, False, True)
    # The way back not rehearsed (irreversible, nothing pending) and no lock limit: nothing judged.
    off = RehearseLimits(roundtrip_max_differences=None)
    assert evaluate(Rehearse.checks, RehearseMeasured(longest_lock_s=0.7), off) == []
    # The list-valued records never reach the journal's measurements: the checks carry them.
    assert "roundtrip" not in measured.model_dump() and "at_target" not in measured.model_dump()


def test_up_judges_the_change_and_the_undo_only_through_its_declared_checks() -> None:
    measured = ChangeMeasured(
        migrate_s=1.2,
        rolled_back=True,
        longest_lock_s=None,
        change=[_outcome("upgrade_ok", True), _outcome("after_upgrade.smoke.list-items.app-1", False)],
        undo=[_outcome("rolled_back_to_start", True), _outcome("data_intact_differences", True)],
    )
    checks = evaluate(Up.checks, measured, MigrateSettings())
    assert [(c.name, c.ok) for c in checks] == [
        ("upgrade_ok", True),
        ("after_upgrade.smoke.list-items.app-1", False),
        ("rolled_back_to_start", True),
        ("data_intact_differences", True),
    ]
    # A lock limit with nothing measured fails, naming why, rather than passing silently.
    (lock,) = [
        c for c in evaluate(Up.checks, measured, MigrateSettings(max_lock_s=1)) if c.name == "longest_lock_s"
    ]
    assert not lock.ok and lock.detail == "not measured"
