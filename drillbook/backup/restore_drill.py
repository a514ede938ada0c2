"""``backup.restore-test``: prove a backup restores, intact, within the RTO, through the real restore.

The drill restores with :func:`~drillbook.backup.restore.restore_into`, the very
function ``backup.restore`` and the migration rehearsal run, so what it proves
is what a recovery would do; it adds a scratch target, timings and judgement
around it, never a copy of its steps.

preflight
    Settings, repository reachable, source reachable (read-only session), the
    backup chosen and its manifest readable, the scratch name refused if it is
    the source's or exists already, free disk space when it can be known. A
    refusal here is ``error``: nothing was changed.
act
    With ``--scratch cluster`` a throwaway cluster on the control machine first
    (its removal registered before it starts). The scratch database's drop is
    registered before it exists, so Ctrl-C or any failure drops it. Then
    ``restore_into``: download, integrity (SHA-256 of every file), ``pg_restore
    -j N``, every table's rows and checksum against the manifest; each stage's
    seconds journaled as it ends. A bad file or a failing pg_restore stops the
    drill as ``fail``, naming the file or pg_restore's error.
observe
    The inventory's SQL assertions and the newest heartbeat (RPO: drillbook's
    own ``drillbook.heartbeat``, or ``backup_rpo_query``) in the restored
    database; with an RPO target and no heartbeat to read, the verdict is
    ``error`` with the reason (drillbook could not measure, the backup is not
    blamed and the drill never passes); with ``--boot-app`` one instance of the service on it
    until its readiness probe answers 200. Returns :class:`RestoreMeasured`.
verify
    The declared :attr:`RestoreTest.checks` (core evaluates them): files intact,
    tables equal to the manifest, each assertion, the booted app ready, backup
    age, ``total_s <= backup_rto_s``, ``rpo_s <= backup_rpo_target_s`` (when set).
report
    The verdict is written next to the backup (``verified/<id>.json``) for
    ``backup.list`` and ``backup.prune``.
"""

from __future__ import annotations

import os
import time
from dataclasses import dataclass
from datetime import datetime

from pydantic import BaseModel, Field

from drillbook.backup import boot
from drillbook.backup.drill import RUNBOOK
from drillbook.backup.errors import BackupCorrupt, BackupFailed
from drillbook.backup.manifest import Manifest, parse_time
from drillbook.backup.repository import Repository, VerificationRecord, open_repository, work_dir
from drillbook.backup.restore import (
    RestoreHooks,
    RestoreResult,
    Stage,
    pick_backup,
    protected_names,
    restore_admin_dsn,
    restore_into,
)
from drillbook.backup.restored import measure_rpo, run_queries
from drillbook.backup.scratch_cluster import ScratchCluster, start_cluster
from drillbook.backup.settings import BackupSettings, load_settings
from drillbook.backup.space import space_checks
from drillbook.backup.take import check_source
from drillbook.core import pgdata
from drillbook.core.checks import Measurements, Outcome, at_most, each_ok, is_true, witnessed
from drillbook.core.drill import Drill, DrillRun
from drillbook.core.errors import ConfigError, DrillbookError
from drillbook.core.readiness import Readiness

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
    """What the restore drill is judged against (copied into the journal; the checks' ``limit_from``)."""

    rto_s: float
    rpo_target_s: float | None
    max_age_s: float | None
    verify_queries: int


class RestoreMeasured(Measurements):
    """Everything the restore drill measured; the checks read only these fields."""

    restore_s: float | None = witnessed("pg_restore process lifetime (+ CREATE DATABASE)")
    total_s: float | None = witnessed("drill clock: download start to last recovery step (journal phases)")
    rto_target_s: float | None = witnessed("inventory backup_rto_s")
    rpo_s: float | None = witnessed(
        "newest drillbook.heartbeat beat (or backup_rpo_query) in the restored db"
    )
    backup_age_s: float | None = witnessed("manifest started_at vs drill start")
    tables_verified: int | None = witnessed("count(*) and checksum per table in the restored db")
    rows_verified: int | None = witnessed("SELECT count(*) per table in the restored db")
    restore_mb_per_s: float | None = witnessed("pg_database_size() of the restored db / restore_s")
    backup_id: str | None = None
    backup_bytes: int | None = witnessed("the backup's manifest")
    scratch_db: str | None = None
    download_s: float | None = witnessed("drill clock")
    integrity_s: float | None = witnessed("drill clock")
    restored_bytes: int | None = witnessed("pg_database_size() of the restored db")
    verify_s: float | None = witnessed("drill clock")
    boot_s: float | None = witnessed("the profile's readiness of the instance booted on the restored db")
    files_intact: bool | None = None
    integrity_detail: str = ""
    tables_match_manifest: bool | None = None
    tables_detail: str = ""
    queries: list[Outcome] = Field(default_factory=list)
    boot: list[Outcome] = Field(default_factory=list)


@dataclass(frozen=True)
class RestorePlan:
    """What preflight settled: settings, the backup, where it goes."""

    settings: BackupSettings
    repository: Repository
    manifest: Manifest
    scratch_name: str
    admin_dsn: str  # the restore server; "" with --scratch cluster (known once the cluster runs)
    drill_start: datetime
    backup_age_s: float


@dataclass(frozen=True)
class Restored:
    """What act left: the restore's own result and when the recovery clock started."""

    result: RestoreResult
    t_act: float


class _StageClock(RestoreHooks):
    """Journals each stage of ``restore_into`` as it ends and remembers which one was running."""

    def __init__(self, run: DrillRun) -> None:
        self.run = run
        self.running: Stage | None = None
        self.done: list[Stage] = []

    def stage_started(self, stage: Stage) -> None:
        """Remember the running stage, so a failure can be blamed on it (pg_restore vs the rest)."""
        self.running = stage

    def stage_done(self, stage: Stage, seconds: float, detail: str) -> None:
        """Journal the stage's detail; download and integrity also get a ``<stage>_s`` measurement."""
        self.running = None
        self.done.append(stage)
        if stage in ("download", "integrity"):  # restore_s and verify_s are measured with their context
            self.run.measure(f"{stage}_s", round(seconds, 3), witness="drill clock")
        for phase in reversed(self.run.journal.phases):
            if phase.name.endswith(stage):
                phase.detail = detail
                break


class RestoreTest(Drill[RestorePlan, Restored, RestoreMeasured]):
    """Restore a backup into a scratch database, prove it, time it, drop it (``inv backup.restore-test``)."""

    name = "backup.restore-test"
    runbook = RUNBOOK
    measured = RestoreMeasured
    checks = (
        at_most("backup_age_s", limit_from="max_age_s", name="backup_fresh"),
        is_true("files_intact", name="integrity", detail_from="integrity_detail"),
        each_ok("queries"),
        is_true("tables_match_manifest", detail_from="tables_detail"),
        each_ok("boot"),
        at_most("total_s", limit_from="rto_s", name="rto"),
        at_most("rpo_s", limit_from="rpo_target_s", name="rpo"),
    )

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
            thresholds=_thresholds(settings) if settings else None,
            backup_id=backup_id,
            scratch=scratch,
            scratch_name=scratch_name,
            boot_app=boot_app,
        )
        self.settings = settings
        self.repository = repository  # also where report() writes the verdict
        self.backup_id = backup_id
        self.scratch = scratch
        self.scratch_name = scratch_name
        self.boot_app = boot_app

    # -- preflight ---------------------------------------------------------------------------
    def preflight(self, run: DrillRun) -> RestorePlan:
        """Check everything before a byte moves: repository, source, backup choice, scratch name, disk.

        A corrupt manifest or too little free space ends the drill here, with a check
        saying which; the headline measurements are put in the journal in their order.
        """
        inv = run.inventory
        drill_start = parse_time(run.journal.started_at)
        s = self.settings or load_settings(inv)
        self.thresholds = _thresholds(s)
        run.journal.thresholds = self.thresholds.model_dump()
        for key in KEY_MEASUREMENTS:  # the headline figures first, in this order, in journal and summary
            run.journal.measurements.setdefault(key, None)
        run.measure("rto_target_s", s.rto_s, witness="inventory backup_rto_s")
        repo = self.repository = self.repository or open_repository(s)
        repo.check()
        run.note(f"repository {repo.location}")
        run.note(f"source {check_source(inv, s)}: read-only session, never written")
        try:
            m = pick_backup(repo, self.backup_id)
        except BackupCorrupt as exc:
            run.require("manifest_readable", False, True, False, str(exc))
            raise  # not reached: require raised
        run.measure("backup_id", m.id)
        run.measure("backup_bytes", m.total_bytes, witness=f"manifest of {m.id}")
        age = (drill_start - m.started).total_seconds()
        run.measure(
            "backup_age_s", round(age, 3), witness=f"manifest started_at {m.started_at} vs drill start"
        )
        admin = restore_admin_dsn(inv, s) if self.scratch == "db" else ""
        stamp = m.id.lower().replace("-", "_")
        scratch = self.scratch_name or f"{s.scratch_prefix}_{stamp}_{os.getpid()}"
        pgdata.guard(scratch, protected_names(inv, s))  # refuses the source's name: ConfigError, exit 2
        if admin:
            with pgdata.connect(admin) as conn:
                if pgdata.database_exists(conn, scratch):
                    raise ConfigError(
                        f"scratch database {scratch} already exists on "
                        f"{pgdata.describe(admin)}; drop it or choose another --scratch-name"
                    )
        run.measure("scratch_db", scratch)
        checks, unknown = space_checks(m, repo, s, admin or None)
        for c in checks:
            run.require(f"disk_{c.what}", c.free_bytes, f">= {c.need_bytes}", c.ok, str(c))
        for u in unknown:
            run.note(f"free space not checked: {u}")
        return RestorePlan(s, repo, m, scratch, admin, drill_start, round(age, 3))

    # -- act ---------------------------------------------------------------------------------
    def act(self, run: DrillRun, plan: RestorePlan) -> Restored:
        """Restore into the scratch database (or cluster) through ``restore_into``, the real restore's code.

        The scratch database's drop is registered before it exists, so an interrupt at
        any point cleans up. Integrity and pg_restore failures become failed checks.
        """
        s, m, scratch = plan.settings, plan.manifest, plan.scratch_name
        admin = plan.admin_dsn
        if self.scratch == "cluster":
            admin = _scratch_cluster(run, s, m).admin_dsn
        else:
            protect = protected_names(run.inventory, s)
            # registered before the database exists: Ctrl-C at any point below still drops it
            run.on_restore(f"drop scratch database {scratch}", lambda: _drop(run, admin, scratch, protect))
        clock = _StageClock(run)
        t_act = time.monotonic()
        try:
            result = restore_into(
                run.inventory,
                scratch,
                backup_id=m.id,
                settings=s,
                repository=plan.repository,
                admin_dsn=admin,
                progress=run.note,
                phase=run.phase,
                hooks=clock,
                raise_on_mismatch=False,  # the declared check judges it, after the other measurements
            )
        except BackupCorrupt as exc:
            if "integrity" not in clock.done:  # the manifest itself, re-read by restore_into
                run.require("manifest_readable", False, True, False, str(exc))
            run.require("integrity", False, True, False, _first(exc.problems))
            raise  # not reached: require raised
        except BackupFailed as exc:
            if clock.running != "restore":
                raise
            run.require("pg_restore", "failed", "exit 0", False, str(exc))
            raise  # not reached
        run.measure("restore_s", round(result.restore_s, 3), witness="pg_restore process lifetime")
        return Restored(result, t_act)

    # -- observe -----------------------------------------------------------------------------
    def observe(self, run: DrillRun, plan: RestorePlan, acted: Restored) -> RestoreMeasured:
        """Run the queries, measure RPO, optionally boot the app; ``total_s`` counts from act's start."""
        s, m, r = plan.settings, plan.manifest, acted.result
        with run.phase("queries"):
            t0 = time.monotonic()
            queries = run_queries(r.dsn, s)
            rpo = measure_rpo(r.dsn, s, plan.drill_start, run.note)
            run.measure("rpo_s", rpo.rpo_s, witness=rpo.witness)
            if rpo.rpo_s is None and s.rpo_target_s is not None:
                run.journal.error = f"RPO not measured: {rpo.why_not}"
            verify_s = r.verify_s + time.monotonic() - t0
        boot_s, booted = self._boot(run, plan, r) if self.boot_app else (None, [])
        total_s = time.monotonic() - acted.t_act
        v = r.verify
        bad = v.mismatches if v else []
        return RestoreMeasured(
            restore_s=round(r.restore_s, 3),
            total_s=round(total_s, 3),
            rto_target_s=s.rto_s,
            rpo_s=rpo.rpo_s,
            backup_age_s=plan.backup_age_s,
            tables_verified=v.tables_verified if v else None,
            rows_verified=v.rows_verified if v else None,
            restore_mb_per_s=round(r.restored_bytes / 1e6 / max(r.restore_s, 1e-6), 1),
            backup_id=m.id,
            backup_bytes=m.total_bytes,
            scratch_db=plan.scratch_name,
            download_s=round(r.download_s, 3),
            integrity_s=round(r.integrity_s, 3),
            restored_bytes=r.restored_bytes,
            verify_s=round(verify_s, 3),
            boot_s=boot_s,
            files_intact=True,  # restore_into raised otherwise, and act stopped the drill
            integrity_detail=f"{len(m.files)} files, sha256 checked",
            tables_match_manifest=bool(v and not bad and v.tables_verified == len(m.tables)),
            tables_detail=f"{v.tables_verified if v else 0}/{len(m.tables)} tables"
            + "".join(f"; {t}" for t in bad[:5]),
            queries=queries,
            boot=booted,
        )

    def _boot(self, run: DrillRun, plan: RestorePlan, r: RestoreResult) -> tuple[float | None, list[Outcome]]:
        """One instance of the service on the restored database, timed to its first "ready" (the profile's
        readiness: path and ready statuses, or a TCP connect)."""
        inv, timeout = run.inventory, plan.settings.boot_app_timeout_s
        same = pgdata.same_server(r.admin_dsn, inv.topology.postgres_dsn)
        dsn = boot.app_dsn_for(inv, r.database) if same else r.dsn
        with run.phase("boot-app") as ph:
            app = boot.start_app(inv, dsn, run.report_dir / "boot-app.log")
            run.on_restore("stop the booted instance", app.stop)
            readiness = Readiness.of(inv)
            ready = _wait_ready(app, readiness, timeout)
            ph.detail = f"{readiness.url(app.url)} " + (
                f"ready after {ready:.2f}s" if ready is not None else "never ready"
            )
        run.artefact(app.log)
        outcome = Outcome(
            name="app_ready",
            ok=ready is not None,
            value=ready is not None,
            expected=True,
            detail=f"within {timeout:.0f}s (boot-app.log)",
        )
        return (round(ready, 3) if ready is not None else None), [outcome]

    # -- report ------------------------------------------------------------------------------
    def report(self, run: DrillRun, measured: RestoreMeasured | None) -> str:
        """Write the verdict next to the backup; from the journal, so a drill stopped in act counts too."""
        j = run.journal
        backup_id = j.measurements.get("backup_id")
        if self.repository is None or not backup_id or j.verdict not in ("pass", "fail"):
            return ""
        record = VerificationRecord(
            backup_id=str(backup_id),
            drill_at=j.started_at,
            verdict=j.verdict,
            verified_at=j.started_at if j.verdict == "pass" else None,
            total_s=j.measurements.get("total_s"),
            rpo_s=j.measurements.get("rpo_s"),
            report_dir=j.report_dir,
        )
        try:
            self.repository.write_record(record)
        except DrillbookError as exc:
            j.notes.append(f"could not record the verification: {exc}")
        return ""


def _thresholds(s: BackupSettings) -> RestoreThresholds:
    return RestoreThresholds(
        rto_s=s.rto_s,
        rpo_target_s=s.rpo_target_s,
        max_age_s=s.max_age_s,
        verify_queries=len(s.verify_queries),
    )


def _scratch_cluster(run: DrillRun, s: BackupSettings, m: Manifest) -> ScratchCluster:
    """A throwaway cluster for ``--scratch cluster``; its removal is registered before it starts."""
    started: list[ScratchCluster] = []

    def stop() -> None:
        for c in started:
            c.stop()

    run.on_restore("stop and remove the scratch cluster", stop)
    with run.phase("scratch-cluster") as ph:
        cluster = start_cluster(
            work_dir(s) / "clusters", m.server_version_num // 10000, s.pg_bin_dir, s.scratch_cluster_user
        )
        started.append(cluster)
        ph.detail = f"{cluster.data_dir} on 127.0.0.1:{cluster.port}"
    return cluster


def _drop(run: DrillRun, admin: str, scratch: str, protect: set[str]) -> None:
    if pgdata.drop_database(admin, scratch, protect=protect):
        run.note(f"dropped scratch database {scratch}")


def _first(problems: list[str], n: int = 5) -> str:
    more = f" (+{len(problems) - n} more)" if len(problems) > n else ""
    return "; ".join(problems[:n]) + more


def _wait_ready(app: boot.BootedApp, readiness: Readiness, timeout_s: float) -> float | None:
    """Seconds until the booted instance is ready as the profile says; None on timeout or if it died."""
    t0 = time.monotonic()
    while time.monotonic() - t0 < timeout_s:
        if app.proc.poll() is not None:
            return None
        if readiness.ready(readiness.check(app.url, timeout_s=1.0)):
            return time.monotonic() - t0
        time.sleep(0.05)
    return None
