"""Backup pieces that need no database: manifest sealing, file integrity, retention, guards, settings."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from drillbook.backup.errors import BackupCorrupt
from drillbook.backup.manifest import DumpEntry, Manifest, TableEntry, check_files, describe_files
from drillbook.backup.prune import Candidate, id_time, plan
from drillbook.backup.repository import LocalRepository, VerificationRecord, list_backups
from drillbook.backup.settings import BackupSettings, load_settings
from drillbook.core import pgdata
from drillbook.core.errors import ConfigError
from drillbook.core.inventory import load_inventory

DATA = Path(__file__).parent / "data" / "inventory"


def _manifest(root: Path, backup_id: str = "20261122T010203Z") -> Manifest:
    return Manifest(
        id=backup_id,
        database="app",
        source="admin@127.0.0.1:5432/app",
        inventory="inventory/lab",
        environment="lab",
        server_version="15.18",
        server_version_num=150018,
        db_size_bytes=1000,
        started_at="2026-11-22T01:02:03.000Z",
        finished_at="2026-11-22T01:02:04.000Z",
        wal_lsn_start="0/1A2B3C4",
        dump=DumpEntry(tool="pg_dump (PostgreSQL) 15.18", jobs=2, compression=1, duration_s=0.5),
        checksum_method=pgdata.CHECKSUM_METHOD,
        tables={"public.items": TableEntry(rows=3, checksum="-42")},
        files=describe_files(root),
    )


@pytest.fixture()
def backup_dir(tmp_path: Path) -> Path:
    root = tmp_path / "repo" / "20261122T010203Z"
    (root / "pg").mkdir(parents=True)
    (root / "pg" / "toc.dat").write_bytes(b"toc" * 100)
    (root / "pg" / "3001.dat.gz").write_bytes(bytes(range(256)) * 40)
    return root


def test_manifest_round_trip_and_self_digest(backup_dir: Path) -> None:
    m = _manifest(backup_dir)
    text = m.to_json()
    back = Manifest.from_json(text)
    assert back.digest and back.total_bytes == 300 + 256 * 40 and back.rows == 3
    assert [f.path for f in back.files] == ["pg/3001.dat.gz", "pg/toc.dat"]
    edited = json.loads(text)
    edited["tables"]["public.items"]["rows"] = 4
    with pytest.raises(BackupCorrupt, match="does not match its digest"):
        Manifest.from_json(json.dumps(edited), where="x/manifest.json")


def test_truncated_manifest_is_named(backup_dir: Path) -> None:
    text = _manifest(backup_dir).to_json()
    with pytest.raises(BackupCorrupt, match=r"^id/manifest.json: not valid JSON \(truncated\?\)"):
        Manifest.from_json(text[: len(text) // 2], where="id/manifest.json")


def test_check_files_names_corrupt_missing_and_truncated(backup_dir: Path) -> None:
    m = _manifest(backup_dir)
    assert check_files(backup_dir, m.files) == []
    data = backup_dir / "pg" / "3001.dat.gz"
    raw = bytearray(data.read_bytes())
    raw[100] ^= 0xFF
    data.write_bytes(bytes(raw))
    (problem,) = check_files(backup_dir, m.files)
    assert problem.path == "pg/3001.dat.gz" and "sha256" in problem.reason
    data.write_bytes(bytes(raw[:50]))
    (problem,) = check_files(backup_dir, m.files)
    assert "truncated" in problem.reason
    (backup_dir / "pg" / "toc.dat").unlink()
    assert {p.path: p.reason for p in check_files(backup_dir, m.files)}["pg/toc.dat"] == "missing"


def test_listing_hides_incomplete_and_reports_unreadable(backup_dir: Path) -> None:
    repo = LocalRepository(backup_dir.parent)
    (backup_dir.parent / "20261122T020000Z" / "pg").mkdir(parents=True)  # interrupted: no manifest
    assert list_backups(repo) == []
    repo.commit(_manifest(backup_dir), backup_dir)
    (entry,) = list_backups(repo)
    assert entry.id == "20261122T010203Z" and entry.verified_at is None
    assert [e.id for e in list_backups(repo, include_incomplete=True)] == [
        "20261122T010203Z",
        "20261122T020000Z",
    ]
    repo.write_record(
        VerificationRecord(
            backup_id=entry.id,
            drill_at="2026-11-22T03:00:00Z",
            verdict="pass",
            verified_at="2026-11-22T03:00:00Z",
        )
    )
    assert list_backups(repo)[0].verified_at == "2026-11-22T03:00:00Z"
    manifest = backup_dir / "manifest.json"
    manifest.write_text(manifest.read_text()[:100])
    (broken,) = list_backups(repo)
    assert broken.manifest is None and "truncated" in (broken.problem or "")
    assert repo.new_id(datetime(2026, 11, 22, 1, 2, 3, tzinfo=UTC)) == "20261122T010203Z-2"


def _c(day: int, hour: int, *, verified: bool = False, complete: bool = True) -> Candidate:
    at = datetime(2026, 11, day, hour, tzinfo=UTC)
    return Candidate(id=at.strftime("%Y%m%dT%H%M%SZ"), at=at, complete=complete, verified=verified)


def test_prune_keeps_last_daily_and_newest_verified() -> None:
    backups = [_c(18, 1, verified=True), _c(19, 1), _c(20, 1), _c(20, 13), _c(21, 1), _c(22, 1)]
    now = datetime(2026, 11, 22, 2, tzinfo=UTC)
    decisions = {d.id: d for d in plan(backups, keep_last=2, keep_daily=3, now=now, incomplete_grace_s=3600)}
    kept = sorted(i for i, d in decisions.items() if d.keep)
    assert kept == ["20261118T010000Z", "20261120T130000Z", "20261121T010000Z", "20261122T010000Z"]
    assert "newest verified backup" in decisions["20261118T010000Z"].reasons
    assert decisions["20261119T010000Z"].reasons == ["outside retention"]
    assert not decisions["20261120T010000Z"].keep  # not the newest of its day


def test_prune_never_drops_newest_verified_even_with_tightest_policy() -> None:
    backups = [_c(20, 1), _c(21, 1, verified=True), _c(22, 1)]
    now = datetime(2026, 11, 22, 2, tzinfo=UTC)
    keep = [d.id for d in plan(backups, keep_last=1, keep_daily=0, now=now, incomplete_grace_s=0) if d.keep]
    assert keep == ["20261122T010000Z", "20261121T010000Z"]


def test_prune_leaves_young_incomplete_backups_alone() -> None:
    now = datetime(2026, 11, 22, 2, tzinfo=UTC)
    young, old = _c(22, 1, complete=False), _c(20, 1, complete=False)
    decisions = {
        d.id: d for d in plan([young, old], keep_last=1, keep_daily=1, now=now, incomplete_grace_s=7200)
    }
    assert decisions[young.id].keep and not decisions[old.id].keep
    assert "abandoned" in decisions[old.id].reasons[0]
    assert id_time("20261122T010203Z-2") == datetime(2026, 11, 22, 1, 2, 3, tzinfo=UTC)
    assert now - id_time(young.id) == timedelta(hours=1)


def test_scratch_guard_refuses_source_and_system_databases() -> None:
    for name in ("app", "postgres", "template0", "template1", ""):
        with pytest.raises(ConfigError):
            pgdata.guard(name, protect={"app"})
    pgdata.guard("drillbook_restore_x", protect={"app"})
    with pytest.raises(ConfigError, match="63 bytes"):
        pgdata.guard("x" * 64)


def test_dsn_helpers_never_expose_the_password() -> None:
    dsn = "postgresql://admin:s3cret@db1:5433/postgres?sslmode=require"
    other = pgdata.dsn_for(dsn, "app")
    assert pgdata.database_name(other) == "app" and pgdata.database_name(dsn) == "postgres"
    assert pgdata.describe(other) == "admin@db1:5433/app"
    tool = pgdata.tool_env(other, base_env={})
    assert "s3cret" not in tool.conninfo and tool.env == {"PGPASSWORD": "s3cret"}
    assert "sslmode=require" in tool.conninfo
    assert pgdata.same_server(dsn, "postgresql://app:x@db1:5433/app")
    assert not pgdata.same_server(dsn, "postgresql://app:x@db2:5433/app")


def test_settings_from_inventory_with_overrides(tmp_path: Path) -> None:
    inv = load_inventory(DATA)
    s = load_settings(inv, local_path=str(tmp_path), jobs=3)
    assert isinstance(s, BackupSettings) and s.repository == "local" and s.effective_jobs == 3
    assert s.compression == 1 and s.rto_s > 0
    with pytest.raises(Exception, match="compression"):
        load_settings(inv, compression=12)
