"""Backups and restore drills against the real lab: PostgreSQL, Redis, and an S3 API server (moto).

Every test writes to its own repository under tmp_path; the databases a test
creates on the lab's cluster carry a ``drillbook_test_bk`` prefix and are
dropped by their fixture.
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import textwrap
import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import pytest

from drillbook.backup import (
    BackupSettings,
    RepositoryError,
    RestoreTest,
    list_backups,
    load_settings,
    open_repository,
    prune,
    restore_into,
    take_backup,
)
from drillbook.backup import restore as restore_module
from drillbook.backup.errors import RestoreMismatch
from drillbook.backup.restore_drill import KEY_MEASUREMENTS
from drillbook.core import pgdata
from drillbook.core.drill import DrillContext, execute
from drillbook.core.errors import ConfigError
from drillbook.core.inventory import Inventory
from drillbook.core.journal import Journal
from drillbook.core.paths import LAB_INVENTORY, REPO_ROOT

pytestmark = pytest.mark.lab

BIG_DB = "drillbook_test_bk_src"


# -- helpers ---------------------------------------------------------------------------------
def _settings(inv: Inventory, root: Path, **overrides: Any) -> BackupSettings:
    values: dict[str, Any] = {
        "local_path": str(root / "repo"),
        "work_dir": str(root / "work"),
        "redis": False,
        "jobs": 2,
    }
    values.update(overrides)
    return load_settings(inv, **values)


def _drill(inv: Inventory, settings: BackupSettings, report_root: Path, **kw: Any) -> Journal:
    return execute(
        RestoreTest(settings, **kw), DrillContext(inventory=inv, report_root=report_root, quiet=True)
    )


def _databases(inv: Inventory, prefix: str) -> list[str]:
    with pgdata.connect(inv.topology.postgres_admin_dsn) as conn:
        rows = conn.execute(
            "SELECT datname FROM pg_database WHERE datname LIKE %s", (prefix + "%",)
        ).fetchall()
    return [str(r[0]) for r in rows]


def _inventory_with(tmp_path: Path, **variables: Any) -> Path:
    """A copy of the lab inventory with extra group_vars, for the command-line tests."""
    inv_dir = tmp_path / "inventory"
    shutil.copytree(LAB_INVENTORY, inv_dir)
    lines = [f"{k}: {json.dumps(v)}" for k, v in variables.items()]
    (inv_dir / "group_vars" / "all" / "zz_test.yml").write_text("\n".join(lines) + "\n")
    return inv_dir


def _inv_cli(*args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "invoke", *args],
        cwd=REPO_ROOT,
        capture_output=True,
        text=True,
        timeout=300,
        env={**os.environ, **(env or {})},
    )


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


# -- fixtures -----------------------------------------------------------------------------------
@pytest.fixture(scope="module")
def inv(lab: dict[str, Any], lab_inventory: Inventory) -> Inventory:
    return lab_inventory


@pytest.fixture(scope="module")
def big_source(inv: Inventory) -> Iterator[str]:
    """A ~60 MB database of its own (text, numbers, an index) for multipart uploads and a slow restore."""
    admin = inv.topology.postgres_admin_dsn
    pgdata.create_database(admin, BIG_DB, replace=True)
    dsn = pgdata.dsn_for(admin, BIG_DB)
    with pgdata.connect(dsn) as conn:
        conn.execute(
            "CREATE TABLE docs (id bigint PRIMARY KEY, title text, body text, score numeric, at timestamptz)"
        )
        conn.execute(
            "INSERT INTO docs SELECT g, md5(g::text), repeat(md5(random()::text), 4), random() * 1000,"
            " now() - g * interval '1 second' FROM generate_series(1, 220000) g"
        )
        conn.execute("CREATE INDEX ON docs (title)")
        conn.execute("CREATE TABLE tags (doc bigint REFERENCES docs, tag text)")
        conn.execute(
            "INSERT INTO tags SELECT g % 220000 + 1, 'tag-' || (g % 97) FROM generate_series(1, 50000) g"
        )
    yield dsn
    pgdata.drop_database(admin, BIG_DB)


@pytest.fixture(scope="module")
def big_backup(inv: Inventory, big_source: str, tmp_path_factory: pytest.TempPathFactory) -> BackupSettings:
    root = tmp_path_factory.mktemp("big")
    settings = _settings(
        inv,
        root,
        source_dsn=big_source,
        rpo_query=None,
        verify_queries=[],
        scratch_prefix="drillbook_test_bk_sig",
    )
    take_backup(inv, settings=settings)
    return settings


@contextmanager
def _moto_server(log: Path, **env: str) -> Iterator[str]:
    """moto's standalone S3 server on a free loopback port; yields its URL."""
    port = _free_port()
    with log.open("w") as out:
        proc = subprocess.Popen(
            [sys.executable, "-m", "moto.server", "-H", "127.0.0.1", "-p", str(port)],
            stdout=out,
            stderr=subprocess.STDOUT,
            env={**os.environ, **env},
        )
    try:
        deadline = time.monotonic() + 30
        while True:
            try:
                socket.create_connection(("127.0.0.1", port), timeout=0.5).close()
                break
            except OSError:
                assert proc.poll() is None and time.monotonic() < deadline, log.read_text()
                time.sleep(0.1)
        yield f"http://127.0.0.1:{port}"
    finally:
        proc.terminate()
        proc.wait(timeout=10)


@pytest.fixture(scope="module")
def moto(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """An S3 API server for the module, with throwaway credentials in the environment (the AWS chain)."""
    keys = ("AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY", "AWS_DEFAULT_REGION")
    saved = {k: os.environ.get(k) for k in keys}
    os.environ.update(AWS_ACCESS_KEY_ID="drillbook-test", AWS_SECRET_ACCESS_KEY="drillbook-test")
    os.environ["AWS_DEFAULT_REGION"] = "us-east-1"
    try:
        with _moto_server(tmp_path_factory.mktemp("moto") / "moto.log") as url:
            yield url
    finally:
        for k, v in saved.items():
            if v is None:
                os.environ.pop(k, None)
            else:
                os.environ[k] = v


def _bucket(url: str) -> str:
    import boto3

    name = f"drillbook-test-{uuid.uuid4().hex[:8]}"
    boto3.client("s3", endpoint_url=url).create_bucket(Bucket=name)
    return name


# -- round trip on the lab's own database -------------------------------------------------------
def test_round_trip_restores_the_snapshot_not_later_writes(inv: Inventory, tmp_path: Path) -> None:
    marker = f"bk-{uuid.uuid4().hex[:8]}"
    app = inv.topology.postgres_dsn
    with pgdata.connect(app) as conn:
        conn.execute("INSERT INTO items (name, value) VALUES (%s, 'before')", (marker + "-before",))
    settings = _settings(
        inv,
        tmp_path,
        redis=True,
        verify_queries=[
            {
                "name": "row written before the backup",
                "sql": f"SELECT count(*) FROM items WHERE name = '{marker}-before'",
                "expect": 1,
            },
            {
                "name": "row written after the backup",
                "sql": f"SELECT count(*) FROM items WHERE name = '{marker}-after'",
                "expect": 0,
            },
        ],
    )
    try:
        backup = take_backup(inv, settings=settings)
        with pgdata.connect(app) as conn:
            conn.execute("INSERT INTO items (name, value) VALUES (%s, 'after')", (marker + "-after",))
        m = backup.manifest
        assert m.redis is not None and (Path(backup.location) / m.redis.file).is_file()
        assert {"public.items", "drillbook.heartbeat", "drillbook.heartbeat_log"} <= set(m.tables)
        assert m.wal_lsn_start
        assert all(len(f.sha256) == 64 for f in m.files)

        journal = _drill(inv, settings, tmp_path / "reports")
    finally:
        with pgdata.connect(app) as conn:
            conn.execute("DELETE FROM items WHERE name LIKE %s", (marker + "%",))

    assert journal.verdict == "pass", (journal.error, journal.failed_checks)
    ms = journal.measurements
    assert set(KEY_MEASUREMENTS) <= set(ms) and list(ms)[: len(KEY_MEASUREMENTS)] == list(KEY_MEASUREMENTS)
    assert ms["tables_verified"] == len(m.tables) and ms["rows_verified"] == m.rows
    assert ms["restore_s"] > 0 and ms["total_s"] >= ms["restore_s"] and ms["rto_target_s"] == settings.rto_s
    # RPO: drillbook's newest heartbeat inside the backup is about the backup's age (one beat a second)
    assert ms["rpo_s"] is not None and ms["backup_age_s"] - 2 <= ms["rpo_s"] <= ms["backup_age_s"] + 5
    assert "restored db" in journal.witnesses["rows_verified"]
    assert "drillbook.heartbeat" in journal.witnesses["rpo_s"]
    checks = {c.name: c for c in journal.checks}
    assert (
        checks["query: row written after the backup"].ok and checks["query: row written before the backup"].ok
    )
    assert checks["tables_match_manifest"].ok and checks["rto"].ok and checks["integrity"].ok
    assert ms["scratch_db"] not in _databases(inv, "drillbook_restore")
    (entry,) = list_backups(open_repository(settings))
    assert entry.verified_at == journal.started_at


def test_restore_into_gives_a_verified_copy(inv: Inventory, tmp_path: Path) -> None:
    settings = _settings(inv, tmp_path)
    take_backup(inv, settings=settings)
    result = restore_into(inv, "drillbook_test_bk_copy", settings=settings)
    try:
        assert result.verify is not None and result.verify.ok
        with pgdata.connect(result.dsn) as conn:
            assert (
                pgdata.scalar(conn, "SELECT count(*) FROM sentinel")
                == result.manifest.tables["public.sentinel"].rows
            )
    finally:
        pgdata.drop_database(inv.topology.postgres_admin_dsn, "drillbook_test_bk_copy")
    with pytest.raises(ConfigError, match="protected"):
        restore_into(inv, "app", settings=settings)


def test_scratch_cluster_and_boot_app(inv: Inventory, tmp_path: Path) -> None:
    """--scratch cluster --boot-app: restored off the lab's cluster, the service booted on it and timed."""
    work = Path(tempfile.mkdtemp(prefix="drillbook-test-bk-"))  # pytest's tmp is private to root
    work.chmod(0o755)
    settings = _settings(inv, tmp_path, work_dir=str(work))
    take_backup(inv, settings=settings)
    try:
        journal = _drill(inv, settings, tmp_path / "reports", scratch="cluster", boot_app=True)
        assert not list((work / "clusters").iterdir()), "the scratch cluster must be removed"
    finally:
        shutil.rmtree(work, ignore_errors=True)
    assert journal.verdict == "pass", (journal.error, journal.failed_checks)
    ms = journal.measurements
    assert ms["boot_s"] is not None and ms["total_s"] >= ms["restore_s"] + ms["boot_s"]
    assert "readiness" in journal.witnesses["boot_s"]
    assert ms["scratch_db"] not in _databases(inv, "drillbook_restore")
    assert "boot-app.log" in journal.artefacts


# -- faults ---------------------------------------------------------------------------------------
def test_corrupted_file_fails_the_drill_and_names_the_file(
    inv: Inventory, big_backup: BackupSettings, tmp_path: Path
) -> None:
    src = Path(str(big_backup.local_path))
    repo_dir = tmp_path / "repo"
    shutil.copytree(src, repo_dir)
    settings = big_backup.model_copy(update={"local_path": str(repo_dir)})
    (backup_dir,) = [p for p in repo_dir.iterdir() if p.name[0].isdigit()]
    victim = max((backup_dir / "pg").glob("*.dat.gz"), key=lambda p: p.stat().st_size)
    with victim.open("r+b") as fh:
        fh.seek(1000)
        byte = fh.read(1)
        fh.seek(1000)
        fh.write(bytes([byte[0] ^ 0xFF]))
    name = f"pg/{victim.name}"

    journal = _drill(inv, settings, tmp_path / "reports")
    assert journal.verdict == "fail" and journal.exit_code == 1 and not journal.error
    (failed,) = journal.failed_checks
    assert failed.name == "integrity" and name in failed.detail
    assert "restore_s" not in journal.measurements or journal.measurements["restore_s"] is None
    assert not _databases(inv, "drillbook_test_bk_sig")
    (entry,) = list_backups(open_repository(settings))
    assert entry.record is not None and entry.record.verdict == "fail" and entry.verified_at is None

    # the same through the command line: exit 1, the file named, no traceback
    inv_dir = _inventory_with(
        tmp_path, backup_local_path=str(repo_dir), backup_source_dsn=big_backup.source_dsn
    )
    res = _inv_cli(
        "backup.restore-test", "--inventory", str(inv_dir), "--quiet", "--report-dir", str(tmp_path / "r")
    )
    assert res.returncode == 1, res.stderr
    assert name in res.stdout and "Traceback" not in res.stdout + res.stderr


def test_a_fault_inside_restore_into_fails_the_drill(
    inv: Inventory, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The drill restores through restore_into: a row lost inside it fails the drill and the real restore."""
    real = restore_module.pg_restore

    def loses_a_row(*args: Any, **kwargs: Any) -> float:
        seconds = real(*args, **kwargs)
        with pgdata.connect(args[2]) as conn:  # the target database, just restored
            conn.execute("DELETE FROM sentinel WHERE ctid = (SELECT ctid FROM sentinel LIMIT 1)")
        return seconds

    settings = _settings(inv, tmp_path, rpo_query=None, scratch_prefix="drillbook_test_bk_fault")
    take_backup(inv, settings=settings)
    monkeypatch.setattr(restore_module, "pg_restore", loses_a_row)

    journal = _drill(inv, settings, tmp_path / "reports")
    assert journal.verdict == "fail" and journal.exit_code == 1 and not journal.error
    (failed,) = journal.failed_checks
    assert failed.name == "tables_match_manifest" and "public.sentinel" in failed.detail
    (entry,) = list_backups(open_repository(settings))
    assert entry.manifest is not None
    assert journal.measurements["tables_verified"] == len(entry.manifest.tables) - 1
    assert not _databases(inv, "drillbook_test_bk_fault"), "the scratch database must be dropped"

    # the same fault in a real restore (backup.restore, migrate): refused, nothing left behind
    with pytest.raises(RestoreMismatch, match=r"public\.sentinel"):
        restore_into(inv, "drillbook_test_bk_fault_copy", settings=settings)
    assert not _databases(inv, "drillbook_test_bk_fault")

    # a stage of restore_into that raises is the drill's error (exit 2), the scratch dropped
    def broken(*args: Any, **kwargs: Any) -> Any:
        raise RuntimeError("fault injected into verify_tables")

    monkeypatch.setattr(restore_module, "verify_tables", broken)
    journal = _drill(inv, settings, tmp_path / "reports")
    assert journal.verdict == "error" and "fault injected" in str(journal.error)
    assert any(p.name == "act/verify" and not p.ok for p in journal.phases)
    assert not _databases(inv, "drillbook_test_bk_fault")


def test_unreachable_repository_is_one_line_exit_2(inv: Inventory, tmp_path: Path) -> None:
    inv_dir = _inventory_with(tmp_path, backup_local_path=str(tmp_path / "nowhere"))
    res = _inv_cli(
        "backup.restore-test", "--inventory", str(inv_dir), "--quiet", "--report-dir", str(tmp_path / "r")
    )
    assert res.returncode == 2
    assert "does not exist" in res.stdout + res.stderr and "Traceback" not in res.stdout + res.stderr
    (line,) = [line for line in res.stdout.splitlines() if "does not exist" in line]
    assert line.strip().startswith("!") and "backup repository" in line, res.stdout


# -- S3 -------------------------------------------------------------------------------------------
def test_s3_round_trip_through_moto(inv: Inventory, big_source: str, moto: str, tmp_path: Path) -> None:
    import boto3

    bucket = _bucket(moto)
    settings = _settings(
        inv,
        tmp_path,
        repository="s3",
        source_dsn=big_source,
        s3_bucket=bucket,
        s3_prefix="lab/backups",
        s3_endpoint_url=moto,
        s3_region="us-east-1",
        s3_sse="AES256",
        s3_storage_class="STANDARD_IA",
        s3_multipart_threshold_mb=5,
        s3_multipart_chunk_mb=5,
        rpo_query=None,
        verify_queries=[],
    )
    backup = take_backup(inv, settings=settings)
    s3 = boto3.client("s3", endpoint_url=moto)
    biggest = max(backup.manifest.files, key=lambda f: f.size)
    assert biggest.size > 5 * 1024 * 1024, "the test data must be large enough for a multipart upload"
    head = s3.head_object(Bucket=bucket, Key=f"lab/backups/{backup.id}/{biggest.path}")
    assert "-" in head["ETag"]  # multipart ETag: <md5 of part md5s>-<parts>
    assert head["ServerSideEncryption"] == "AES256" and head["StorageClass"] == "STANDARD_IA"
    assert not list((tmp_path / "work").glob(f"{backup.id}*")), "staging must be removed after upload"

    journal = _drill(inv, settings, tmp_path / "reports")
    assert journal.verdict == "pass", (journal.error, journal.failed_checks)
    assert (
        journal.measurements["download_s"] > 0
        and journal.measurements["rows_verified"] == backup.manifest.rows
    )
    record = json.loads(
        s3.get_object(Bucket=bucket, Key=f"lab/backups/verified/{backup.id}.json")["Body"].read()
    )
    assert record["verdict"] == "pass"
    assert [e.verified_at for e in list_backups(open_repository(settings))] == [journal.started_at]
    assert not list((tmp_path / "work").iterdir()), "downloads must be removed after the drill"

    # a file missing from the bucket is named, verdict fail
    s3.delete_object(Bucket=bucket, Key=f"lab/backups/{backup.id}/{biggest.path}")
    journal = _drill(inv, settings, tmp_path / "reports")
    assert journal.verdict == "fail" and biggest.path in journal.failed_checks[0].detail

    # a missing bucket is a repository error: one line, exit 2 through the task layer
    with pytest.raises(RepositoryError, match=r"drillbook-no-such-bucket.*does not exist"):
        open_repository(settings.model_copy(update={"s3_bucket": "drillbook-no-such-bucket"})).check()


def test_s3_refused_credentials_are_a_repository_error(inv: Inventory, moto: str, tmp_path: Path) -> None:
    """moto with authentication on: unknown keys are refused, as AWS refuses them."""
    with _moto_server(tmp_path / "moto.log", INITIAL_NO_AUTH_ACTION_COUNT="0") as url:
        settings = _settings(inv, tmp_path, repository="s3", s3_bucket="drillbook-test", s3_endpoint_url=url)
        with pytest.raises(RepositoryError, match=r"access denied .*check the AWS credentials"):
            open_repository(settings).check()


# -- retention -------------------------------------------------------------------------------------
def test_prune_keeps_the_newest_verified_backup(inv: Inventory, tmp_path: Path) -> None:
    settings = _settings(inv, tmp_path, rpo_query=None)
    repo = open_repository(settings)
    ids = [take_backup(inv, settings=settings, repository=repo).id for _ in range(3)]
    oldest, middle, newest = ids
    journal = _drill(inv, settings, tmp_path / "reports", backup_id=oldest)
    assert journal.verdict == "pass"

    dry = prune(repo, keep_last=1, keep_daily=0, incomplete_grace_s=3600, dry_run=True)
    assert {d.id: d.keep for d in dry} == {newest: True, middle: False, oldest: True}
    assert [e.id for e in list_backups(repo)] == ids, "--dry-run deletes nothing"
    assert "newest verified backup" in next(d for d in dry if d.id == oldest).reasons

    prune(repo, keep_last=1, keep_daily=0, incomplete_grace_s=3600)
    assert [e.id for e in list_backups(repo)] == [oldest, newest]
    assert not (Path(str(settings.local_path)) / middle).exists()


# -- Ctrl-C ------------------------------------------------------------------------------------------
SIGINT_DRILL = textwrap.dedent(
    """
    import json, sys
    from pathlib import Path
    from drillbook.backup import BackupSettings, RestoreTest
    from drillbook.core.drill import DrillContext, execute
    from drillbook.core.inventory import load_inventory

    settings = BackupSettings.model_validate_json(Path(sys.argv[1]).read_text())
    ctx = DrillContext(inventory=load_inventory(), report_root=Path(sys.argv[2]), quiet=True)
    sys.exit(execute(RestoreTest(settings), ctx).exit_code)
    """
)


def test_sigint_during_restore_drops_the_scratch_database(
    inv: Inventory, big_backup: BackupSettings, tmp_path: Path
) -> None:
    script, conf, reports = tmp_path / "drill.py", tmp_path / "settings.json", tmp_path / "reports"
    script.write_text(SIGINT_DRILL)
    conf.write_text(big_backup.model_dump_json())
    proc = subprocess.Popen([sys.executable, str(script), str(conf), str(reports)], cwd=REPO_ROOT)
    prefix = big_backup.scratch_prefix
    seen = None
    try:
        deadline = time.monotonic() + 60
        with pgdata.connect(inv.topology.postgres_admin_dsn) as conn:
            while time.monotonic() < deadline and proc.poll() is None:
                seen = pgdata.scalar(
                    conn,
                    "SELECT datname FROM pg_stat_activity"
                    " WHERE application_name = 'pg_restore' AND datname LIKE %s",
                    (prefix + "%",),
                )
                if seen:
                    break
                time.sleep(0.02)
        assert seen, "pg_restore was never seen running"
        proc.send_signal(signal.SIGINT)
        assert proc.wait(timeout=60) == 130
    finally:
        if proc.poll() is None:
            proc.kill()
    assert _databases(inv, prefix) == []
    (journal_path,) = reports.glob("*/journal.json")
    journal = json.loads(journal_path.read_text())
    assert journal["interrupted"] and journal["verdict"] == "error"
    drop = [p for p in journal["phases"] if p["name"].startswith("restore/drop scratch database")]
    assert drop and drop[0]["ok"]
