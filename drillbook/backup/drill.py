"""The drills: ``backup.run`` takes a backup, ``backup.restore-test`` proves one restores.

RestoreTest, phase by phase:

* preflight: settings, repository reachable, source reachable (read-only
  session), the backup chosen and its manifest readable, the scratch name
  refused if it is the source's, free disk space when it can be known.
* act: download, integrity (SHA-256 of every file), restore (``pg_restore -j N``
  into a scratch database whose drop is registered first, so Ctrl-C or any
  failure drops it; with ``--scratch cluster`` into a throwaway cluster on the
  control machine, stopped and removed the same way).
* observe: every table's rows and checksum against the manifest, the
  inventory's SQL assertions, the newest sentinel row (RPO), then with
  ``--boot-app`` one instance of the service against the scratch database
  until its readiness probe answers 200.
* verify: the checks, including ``total_s <= backup_rto_s``.
* report: the verdict is written next to the backup (``verified/<id>.json``)
  for ``backup.list`` and ``backup.prune``.
"""

from __future__ import annotations

import os
import time
from datetime import UTC, datetime
from typing import Any

from pydantic import BaseModel

from drillbook.backup import boot
from drillbook.backup.errors import BackupCorrupt, BackupFailed
from drillbook.backup.manifest import Manifest, parse_time
from drillbook.backup.repository import Fetched, Repository, VerificationRecord, open_repository, work_dir
from drillbook.backup.restore import (
    fetch,
    integrity_problems,
    pg_restore,
    pick_backup,
    protected_names,
    restore_admin_dsn,
    space_checks,
    verify_tables,
)
from drillbook.backup.scratch_cluster import ScratchCluster, start_cluster
from drillbook.backup.settings import BackupSettings, load_settings
from drillbook.backup.take import Backup, check_source, source_dsn, take_backup
from drillbook.core import pgdata
from drillbook.core.drill import DrillRun, LegacyDrill
from drillbook.core.errors import ConfigError, DrillbookError

RUNBOOK = "runbooks/restore-from-backup.md"

#: The measurements the issue names, listed first in every restore-test journal.
KEY_MEASUREMENTS = (
    "restore_s",
    "total_s",
    "rto_target_s",
    "rpo_s",
    "backup_age_s",
    "tables_verified",
    "rows_verified",
    "restore_mb_per_s",
)


class RestoreThresholds(BaseModel):
    """What the restore drill is judged against (copied into the journal)."""

    rto_s: float
    rpo_target_s: float | None
    max_age_s: float | None
    verify_queries: int


class BackupRun(LegacyDrill):
    """Take one backup and journal it (what ``inv backup.run`` runs)."""

    name = "backup.run"
    runbook = RUNBOOK

    def __init__(self, settings: BackupSettings | None = None, repository: Repository | None = None) -> None:
        super().__init__()
        self.settings = settings
        self.repository = repository
        self.backup: Backup | None = None

    def preflight(self, run: DrillRun) -> None:
        self.settings = self.settings or load_settings(run.inventory)
        self.repository = self.repository or open_repository(self.settings)
        self.repository.check(write=True)
        run.note(f"source {check_source(run.inventory, self.settings)} (read-only session)")
        run.note(f"repository {self.repository.location}")

    def act(self, run: DrillRun) -> None:
        assert self.settings is not None
        self.backup = take_backup(
            run.inventory,
            settings=self.settings,
            repository=self.repository,
            progress=run.note,
            phase=run.phase,
        )

    def observe(self, run: DrillRun) -> None:
        b = self.backup
        assert b is not None
        m = b.manifest
        run.measure("backup_id", b.id)
        run.measure("backup_s", round(b.duration_s, 3), witness="drill clock")
        run.measure("dump_s", round(b.dump_s, 3), witness="pg_dump process lifetime")
        run.measure("backup_bytes", m.total_bytes, witness=f"manifest files[] of {b.location}")
        run.measure("db_size_bytes", m.db_size_bytes, witness="pg_database_size() at the snapshot")
        run.measure("dump_mb_per_s", round(m.db_size_bytes / 1e6 / max(b.dump_s, 1e-6), 1))
        run.measure("tables", len(m.tables))
        run.measure("rows", m.rows, witness="count(*) per table at the dump's snapshot")
        run.measure("wal_lsn_start", m.wal_lsn_start, witness="pg_current_wal_lsn() at the snapshot")
        run.measure("redis_keys", m.redis.keys if m.redis else None, witness="INFO keyspace at BGSAVE")
        run.measure("location", b.location)

    def verify(self, run: DrillRun) -> None:
        b = self.backup
        assert b is not None and self.repository is not None
        listed = any(e == b.id for e in self.repository.ids())
        manifest = self.repository.read_manifest(b.id)
        run.check_true(
            "manifest_readable", manifest is not None and listed, detail=f"{b.id} in {b.repository.location}"
        )
        run.check_at_least("tables", len(b.manifest.tables), 1)


class RestoreTest(LegacyDrill):
    """Restore a backup into a scratch database, prove it, time it, drop it (``inv backup.restore-test``)."""

    name = "backup.restore-test"
    runbook = RUNBOOK

    def __init__(
        self,
        settings: BackupSettings | None = None,
        *,
        backup_id: str | None = None,
        scratch: str = "db",
        scratch_name: str | None = None,
        boot_app: bool = False,
        repository: Repository | None = None,
    ) -> None:
        if scratch not in ("db", "cluster"):
            raise ConfigError(f"--scratch must be db or cluster, got {scratch!r}")
        super().__init__(
            thresholds=self._thresholds(settings) if settings else None,
            backup_id=backup_id,
            scratch=scratch,
            scratch_name=scratch_name,
            boot_app=boot_app,
        )
        self.settings = settings
        self.repository = repository
        self.backup_id = backup_id
        self.scratch_name = scratch_name
        self.scratch = scratch
        self.cluster: ScratchCluster | None = None
        self.boot_app = boot_app
        # set along the way
        self.manifest: Manifest | None = None
        self.fetched: Fetched | None = None
        self.admin_dsn = ""
        self.scratch_dsn = ""
        self.t_act = 0.0
        self.t_end = 0.0
        self.drill_start = datetime.now(UTC)
        self.record_written = False

    @staticmethod
    def _thresholds(s: BackupSettings) -> RestoreThresholds:
        return RestoreThresholds(
            rto_s=s.rto_s,
            rpo_target_s=s.rpo_target_s,
            max_age_s=s.max_age_s,
            verify_queries=len(s.verify_queries),
        )

    # -- preflight ---------------------------------------------------------------------
    def preflight(self, run: DrillRun) -> None:
        inv = run.inventory
        self.drill_start = parse_time(run.journal.started_at)
        s = self.settings = self.settings or load_settings(inv)
        run.journal.thresholds = self._thresholds(s).model_dump()
        for key in KEY_MEASUREMENTS:  # the headline figures first, in this order, in journal and summary
            run.journal.measurements.setdefault(key, None)
        run.measure("rto_target_s", s.rto_s, witness="inventory backup_rto_s")
        repo = self.repository = self.repository or open_repository(s)
        repo.check()
        run.note(f"repository {repo.location}")
        run.note(f"source {check_source(inv, s)}: read-only session, never written")
        try:
            self.manifest = m = pick_backup(repo, self.backup_id)
        except BackupCorrupt as exc:
            run.require("manifest_readable", False, True, False, str(exc))
            return
        run.measure("backup_id", m.id)
        run.measure("backup_bytes", m.total_bytes, witness=f"manifest of {m.id}")
        age = (self.drill_start - m.started).total_seconds()
        run.measure(
            "backup_age_s", round(age, 3), witness=f"manifest started_at {m.started_at} vs drill start"
        )
        self.admin_dsn = restore_admin_dsn(inv, s) if self.scratch == "db" else ""
        protect = protected_names(inv, s)
        stamp = m.id.lower().replace("-", "_")
        self.scratch_name = self.scratch_name or f"{s.scratch_prefix}_{stamp}_{os.getpid()}"
        pgdata.guard(self.scratch_name, protect)  # refuses the source's name: ConfigError, exit 2
        if self.admin_dsn:
            with pgdata.connect(self.admin_dsn) as conn:
                if pgdata.database_exists(conn, self.scratch_name):
                    raise ConfigError(
                        f"scratch database {self.scratch_name} already exists on "
                        f"{pgdata.describe(self.admin_dsn)}; drop it or choose another --scratch-name"
                    )
        run.measure("scratch_db", self.scratch_name)
        checks, unknown = space_checks(m, repo, s, self.admin_dsn or None)
        for c in checks:
            run.require(f"disk_{c.what}", c.free_bytes, f">= {c.need_bytes}", c.ok, str(c))
        for u in unknown:
            run.note(f"free space not checked: {u}")
        if s.max_age_s is not None:
            run.check_at_most("backup_fresh", round(age, 1), s.max_age_s, detail=f"backup {m.id}")

    # -- act ---------------------------------------------------------------------------------
    def act(self, run: DrillRun) -> None:
        s, repo, m = self.settings, self.repository, self.manifest
        assert s is not None and repo is not None and m is not None and self.scratch_name
        inv = run.inventory
        jobs = s.effective_jobs
        scratch = self.scratch_name
        protect = protected_names(inv, s)
        if self.scratch == "cluster":
            run.on_restore("stop and remove the scratch cluster", self._stop_cluster)
            with run.phase("scratch-cluster") as ph:
                cluster = self.cluster = start_cluster(
                    work_dir(s) / "clusters",
                    m.server_version_num // 10000,
                    s.pg_bin_dir,
                    s.scratch_cluster_user,
                )
                ph.detail = f"{cluster.data_dir} on 127.0.0.1:{cluster.port}"
            self.admin_dsn = cluster.admin_dsn
        admin = self.admin_dsn
        if self.cluster is None:
            # registered before the database exists: Ctrl-C at any point below still drops it
            run.on_restore(
                f"drop scratch database {scratch}", lambda: self._drop(run, admin, scratch, protect)
            )
        self.t_act = time.monotonic()

        with run.phase("download") as ph:
            fetched = self.fetched = fetch(repo, m, s, progress=run.note)
            ph.detail = (
                f"{fetched.downloaded_bytes / 1e6:.1f} MB" if fetched.temporary else "local, read in place"
            )
        if fetched.temporary:
            run.on_restore("remove downloaded files", fetched.cleanup)
        run.measure("download_s", self._last_phase(run, "download"), witness="drill clock")

        with run.phase("integrity") as ph:
            problems = integrity_problems(fetched, m, jobs)
            ph.detail = f"{len(m.files)} files, {m.total_bytes / 1e6:.1f} MB"
        run.measure("integrity_s", self._last_phase(run, "integrity"), witness="drill clock")
        detail = "; ".join(str(p) for p in problems[:5]) + (
            f" (+{len(problems) - 5} more)" if len(problems) > 5 else ""
        )
        run.require(
            "integrity",
            "all files intact" if not problems else f"{len(problems)} bad file(s)",
            f"{len(m.files)} files match manifest sha256",
            not problems,
            detail or f"{len(m.files)} files, sha256 checked",
        )

        with run.phase("restore") as ph:
            pgdata.create_database(admin, scratch, protect=protect)
            self.scratch_dsn = pgdata.dsn_for(admin, scratch)
            run.note(f"pg_restore -j {jobs} into {scratch}")
            try:
                pg_restore(
                    fetched,
                    m,
                    self.scratch_dsn,
                    jobs=jobs,
                    no_owner=not pgdata.same_server(admin, source_dsn(inv, s)),
                    pg_bin_dir=s.pg_bin_dir,
                )
            except BackupFailed as exc:
                ph.ok = False
                ph.detail = str(exc)
                run.require("pg_restore", "failed", "exit 0", False, str(exc))
        restore_s = self._last_phase(run, "restore")
        run.measure("restore_s", restore_s, witness="pg_restore process lifetime (+ CREATE DATABASE)")
        with pgdata.connect(self.scratch_dsn) as conn:
            size = pgdata.database_size(conn)
        run.measure("restored_bytes", size, witness=f"pg_database_size('{scratch}')")
        run.measure(
            "restore_mb_per_s",
            round(size / 1e6 / max(restore_s, 1e-6), 1),
            witness=f"pg_database_size('{scratch}') / restore_s",
        )

    # -- observe ------------------------------------------------------------------------------
    def observe(self, run: DrillRun) -> None:
        s, m = self.settings, self.manifest
        assert s is not None and m is not None
        with run.phase("verify"):
            result = verify_tables(self.scratch_dsn, m, s.effective_jobs)
            self._run_queries(run)
            self._measure_rpo(run)
        run.measure("verify_s", self._last_phase(run, "verify"), witness="drill clock")
        run.measure(
            "tables_verified",
            result.tables_verified,
            witness=f"count(*) and checksum per table in restored db {self.scratch_name}",
        )
        run.measure(
            "rows_verified",
            result.rows_verified,
            witness=f"SELECT count(*) in restored db {self.scratch_name}",
        )
        bad = result.mismatches
        run.check(
            "tables_match_manifest",
            f"{result.tables_verified}/{len(result.tables)} tables",
            f"{len(m.tables)} tables, rows and checksums equal",
            not bad and result.tables_verified == len(m.tables),
            "; ".join(str(t) for t in bad[:5]),
        )
        if self.boot_app:
            self._boot(run)
        self.t_end = time.monotonic()
        run.measure(
            "total_s",
            round(self.t_end - self.t_act, 3),
            witness="drill clock: download start to last recovery step (journal phases)",
        )

    def _run_queries(self, run: DrillRun) -> None:
        s = self.settings
        assert s is not None
        if not s.verify_queries:
            return
        with pgdata.connect(self.scratch_dsn, read_only=True) as conn:
            for q in s.verify_queries:
                try:
                    value: Any = pgdata.scalar(conn, q.sql)
                    ok = value == q.expect or str(value) == str(q.expect)
                    run.check(f"query: {q.name}", value, q.expect, ok, q.sql)
                except Exception as exc:
                    run.check(
                        f"query: {q.name}", f"error: {str(exc).splitlines()[0]}", q.expect, False, q.sql
                    )

    def _measure_rpo(self, run: DrillRun) -> None:
        s = self.settings
        assert s is not None
        if not s.rpo_query:
            return
        try:
            with pgdata.connect(self.scratch_dsn, read_only=True) as conn:
                newest = pgdata.scalar(conn, s.rpo_query)
        except Exception as exc:
            run.note(f"RPO not measured: {s.rpo_query!r} failed: {str(exc).splitlines()[0]}")
            run.measure("rpo_s", None)
            return
        if not isinstance(newest, datetime):
            run.note(f"RPO not measured: {s.rpo_query!r} returned {newest!r}, not a timestamp")
            run.measure("rpo_s", None)
            return
        rpo = (self.drill_start - newest).total_seconds()
        run.measure(
            "rpo_s",
            round(rpo, 3),
            witness=f"{s.rpo_query} in restored db = {newest.isoformat()} "
            f"vs drill start {run.journal.started_at}",
        )

    def _boot(self, run: DrillRun) -> None:
        s = self.settings
        assert s is not None and self.scratch_name
        inv = run.inventory
        if pgdata.same_server(self.admin_dsn, inv.topology.postgres_dsn):
            dsn = boot.app_dsn_for(inv, self.scratch_name)
        else:
            dsn = self.scratch_dsn
        with run.phase("boot-app") as ph:
            app = boot.start_app(inv, dsn, run.report_dir / "boot-app.log")
            run.on_restore("stop the booted instance", app.stop)
            ready = boot.wait_ready(app, s.boot_app_timeout_s)
            ph.detail = f"{app.url}/health/ready " + (
                f"200 after {ready:.2f}s" if ready is not None else "never 200"
            )
        run.artefact(app.log)
        run.measure(
            "boot_s", round(ready, 3) if ready is not None else None, witness=f"GET {app.url}/health/ready"
        )
        run.check_true(
            "app_ready", ready is not None, detail=f"within {s.boot_app_timeout_s:.0f}s (boot-app.log)"
        )

    # -- verify -----------------------------------------------------------------------------
    def verify(self, run: DrillRun) -> None:
        s = self.settings
        assert s is not None
        ms = run.journal.measurements
        run.check_at_most("rto", ms.get("total_s"), s.rto_s, detail="total_s vs backup_rto_s")
        if s.rpo_target_s is not None:
            run.check_at_most("rpo", ms.get("rpo_s"), s.rpo_target_s, detail="newest sentinel vs drill start")

    # -- report ------------------------------------------------------------------------------
    def report(self, run: DrillRun) -> str:
        j = run.journal
        if self.manifest is None or self.repository is None or j.verdict not in ("pass", "fail"):
            return ""
        ms = j.measurements
        record = VerificationRecord(
            backup_id=self.manifest.id,
            drill_at=j.started_at,
            verdict=j.verdict,
            verified_at=j.started_at if j.verdict == "pass" else None,
            total_s=ms.get("total_s"),
            rpo_s=ms.get("rpo_s"),
            report_dir=j.report_dir,
        )
        try:
            self.repository.write_record(record)
            self.record_written = True
        except DrillbookError as exc:
            run.journal.notes.append(f"could not record the verification: {exc}")
        return ""

    # -- helpers ----------------------------------------------------------------------------
    def _stop_cluster(self) -> None:
        if self.cluster is not None:
            self.cluster.stop()

    @staticmethod
    def _drop(run: DrillRun, admin: str, scratch: str, protect: set[str]) -> None:
        if pgdata.drop_database(admin, scratch, protect=protect):
            run.note(f"dropped scratch database {scratch}")

    @staticmethod
    def _last_phase(run: DrillRun, name: str) -> float:
        for p in reversed(run.journal.phases):
            if p.name.endswith(name):
                return round(p.duration_s, 3)
        return 0.0
