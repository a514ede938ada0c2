"""``migrate.rehearse``: prove on a copy of real data that the migrations go forward *and back*.

On a scratch database holding the newest backup (or a fresh pg_dump):

0. prove that the migration command reads the copy and not the source
   (:mod:`drillbook.migrate.proof`): a marker revision in the copy's version
   table, read back through the command's own ``current``; after every step the
   source's schema fingerprint must be unchanged and the copy must have moved;
1. bring the copy to the starting revision (the database's own, or ``--from``);
2. fingerprint it: catalog (tables, columns, indexes, constraints, ...) and data
   (row counts, row checksums, one digest per column);
3. ``upgrade`` to the target, check the version table and the SQL assertions;
4. ``downgrade`` to the start and fingerprint again: every schema or data
   difference is a failed check that names the table, column or index;
5. ``upgrade`` again (the way a re-deploy after a rollback goes).

Each step is timed and watched for write-blocking locks. The scratch database
is dropped afterwards, also after Ctrl-C (an undo action registered before it
is created). The real database is only read, and the proof stops the drill
(exit 2) the moment the command is seen acting anywhere else.
"""

from __future__ import annotations

import os
from typing import Literal

from drillbook.core import pgdata
from drillbook.core.drill import DrillRun, LegacyDrill
from drillbook.core.errors import ConfigError
from drillbook.core.journal import utc_stamp
from drillbook.migrate import checks, copies, data, proof, revisions, schema
from drillbook.migrate.revisions import Plan, RevisionGraph, label
from drillbook.migrate.settings import MigrateSettings
from drillbook.migrate.steps import Step, run_step
from drillbook.migrate.target import Database, Migrations


class Rehearse(LegacyDrill):
    name = "migrate.rehearse"
    runbook = "runbooks/migration-rollback.md"

    def __init__(
        self,
        settings: MigrateSettings,
        *,
        to: str | None = None,
        from_: str | None = None,
        ini: str | None = None,
        allow_irreversible: bool = False,
        source: Literal["auto", "backup", "dump"] | None = None,
    ) -> None:
        super().__init__(
            thresholds=settings,
            to=to or "head",
            from_=from_,
            ini=ini,
            allow_irreversible=allow_irreversible,
            source=source or settings.rehearse_source,
        )
        self.settings = settings
        self.to = to or "head"
        self.from_ = from_
        self.ini = ini
        self.allow_irreversible = allow_irreversible
        self.source: Literal["auto", "backup", "dump"] = source or settings.rehearse_source
        self.migrations: Migrations | None = None
        self.plan: Plan | None = None
        self.graph: RevisionGraph | None = None
        self.scratch: Database | None = None
        self.steps: list[Step] = []
        self.proof: proof.Proof | None = None
        self.before: tuple[schema.Catalog, dict[str, data.TableData]] | None = None

    # -- preflight: every bad input is refused here, before anything exists -----------------------
    def preflight(self, run: DrillRun) -> None:
        # The key figures first, so they lead the journal and the summary even when the drill stops early.
        for key in ("upgrade_s", "downgrade_s", "reupgrade_s", "longest_lock_s", "proof_s"):
            run.measure(key, None)
        m = self.migrations = Migrations(run.inventory, self.settings, ini=self.ini)
        self.graph = graph = m.graph()
        current = m.current()
        live = m.plan(self.to, graph=graph)  # validates the database's revision and the target
        start = graph.resolve(self.from_) if self.from_ else live.current
        self.plan = plan = revisions.plan(graph, [start] if start else [], self.to)
        run.measure("database_revision", ", ".join(current) or "base", witness="version table of the source")
        run.measure("from_revision", label(plan.current))
        run.measure("to_revision", label(plan.target))
        run.measure("pending", [r.id for r in plan.steps])
        if plan.direction == "down":
            raise ConfigError(
                f"--to {label(plan.target)} is older than the starting revision {label(plan.current)}: "
                "a rehearsal goes forward from --from (default: the database's revision) to --to and back"
            )
        irreversible = plan.irreversible
        run.measure("irreversible", irreversible)
        if irreversible and not self.allow_irreversible:
            raise ConfigError(
                f"revision(s) {', '.join(irreversible)} have no downgrade (irreversible): a rehearsal cannot "
                "prove the way back and migrate.up refuses them; --allow-irreversible rehearses the upgrade "
                "only"
            )
        if plan.unknown_downgrade:
            run.note(
                f"cannot read the scripts of {', '.join(plan.unknown_downgrade)} here: downgrade unknown"
            )
        run.note(f"rehearsal plan: {plan.describe()} on a copy of {m.source.describe()}")
        if plan.direction == "none":
            run.note(
                f"nothing to rehearse: the start is already {label(plan.target)}; "
                "pass --from an older revision to rehearse the way up to it"
            )
        self._drop_leftovers(run, m)

    def _drop_leftovers(self, run: DrillRun, m: Migrations) -> None:
        """Scratch databases of a rehearsal that was killed (SIGKILL skips the undo actions)."""
        prefix = self.settings.scratch_prefix + "\\_%"
        with pgdata.connect(m.server_admin_dsn) as conn:
            rows = conn.execute("SELECT datname FROM pg_database WHERE datname LIKE %s", (prefix,)).fetchall()
        for (name,) in rows:
            run.note(f"dropping leftover scratch database {name}")
            pgdata.drop_database(m.server_admin_dsn, str(name), protect={m.source.name})

    # -- act: copy, fingerprint, up, check, down, fingerprint, up ----------------------------------
    def act(self, run: DrillRun) -> None:
        m, plan = self.migrations, self.plan
        assert m is not None and plan is not None
        if plan.direction == "none":
            return
        name = f"{self.settings.scratch_prefix}_{utc_stamp().lower()}_{os.getpid()}"

        def drop() -> None:
            pgdata.drop_database(m.server_admin_dsn, name, protect={m.source.name})

        run.on_restore(f"drop scratch database {name}", drop)
        with run.phase("copy") as record:
            copy = copies.make_copy(run, m, name, self.source)
            record.detail = f"{copy.source} -> {name}"
        self.scratch = db = copy.database
        run.measure("copy_source", copy.source)
        run.measure("copy_s", round(copy.seconds, 3), witness="wall clock around restore/pg_restore")
        assert self.graph is not None
        with run.phase("proof") as record:
            guard = self.proof = proof.Proof(run, m, self.graph, db, source=m.source)
            if copy.source.startswith("backup "):
                backup_id = copy.source.split(" ", 1)[1]
                guard.restore_hint = (
                    f"Restore it from backup {backup_id} (the one this rehearsal copied): "
                    f"inv backup.restore --id {backup_id} --into <new database>, then swap "
                    "(runbooks/restore-from-backup.md)"
                )
            guard.before_writing()
            record.detail = f"the command reads {name}, not {m.source.name}"
        prepare = revisions.plan(self.graph, m.current(db), label(plan.current))
        if prepare.direction != "none":
            # The copy is not at the start (an older backup, or --from): get it there first.
            verb = "upgrade" if prepare.direction == "up" else "downgrade"
            self._step(run, m, db, "prepare", verb, plan.current)
        with run.phase("fingerprint-before"):
            self.before = self._fingerprint(db)
        rows = self.before[1]
        run.measure("tables", len(rows))
        run.measure("rows", data.total_rows(rows), witness="count(*) per table on the scratch copy")

        self._step(run, m, db, "upgrade", "upgrade", plan.target)
        self._assertions(run, db, "at_target")
        if plan.irreversible:
            run.note(
                f"irreversible revision(s) {', '.join(plan.irreversible)}: the way back is not rehearsed"
            )
            self._longest_lock(run)
            return
        self._step(run, m, db, "downgrade", "downgrade", plan.current)
        with run.phase("fingerprint-after"):
            after = self._fingerprint(db)
        self._compare(run, after)
        self._step(run, m, db, "reupgrade", "upgrade", plan.target)
        self._longest_lock(run)

    def _step(
        self, run: DrillRun, m: Migrations, db: Database, name: str, verb: str, target: str | None
    ) -> Step:
        before = m.current(db)
        step = run_step(run, m, db, name, verb, target)
        self.steps.append(step)
        if self.proof is not None:
            self.proof.after_step(step, before)  # raises before the next step can land elsewhere
        run.require(
            f"{name}_ok",
            ", ".join(step.revision_after or []) or "base",
            label(target),
            step.ok,
            "" if step.ok else step.result.why(),
        )
        return step

    def _fingerprint(self, db: Database) -> tuple[schema.Catalog, dict[str, data.TableData]]:
        with pgdata.connect(db.admin_dsn, read_only=True) as conn:
            catalog = schema.dump(conn)
        return catalog, data.fingerprint(db.admin_dsn)

    def _assertions(self, run: DrillRun, db: Database, prefix: str) -> None:
        for o in checks.sql_assertions(db.dsn, self.settings.sql_assertions):
            run.check(f"{prefix}.{o.name}", o.value, o.limit, o.ok, o.detail)

    def _compare(self, run: DrillRun, after: tuple[schema.Catalog, dict[str, data.TableData]]) -> None:
        assert self.before is not None
        (cat_a, rows_a), (cat_b, rows_b) = self.before, after
        schema_diffs = schema.diff(cat_a, cat_b)
        data_diffs = data.diff(rows_a, rows_b)
        for note in schema.order_changes(cat_a, cat_b):
            run.note(note + " (not a failure)")
        for d in [*schema_diffs, *data_diffs]:
            run.check(
                f"roundtrip {d.kind} {d.name}",
                d.after or "missing",
                d.before or "absent",
                False,
                d.describe(),
            )
        run.measure(
            "schema_differences",
            [d.describe() for d in schema_diffs],
            witness="pg_catalog before upgrade vs after downgrade",
        )
        run.measure(
            "data_differences",
            [d.describe() for d in data_diffs],
            witness=f"row counts, {pgdata.CHECKSUM_METHOD}, per-column digests",
        )
        run.check_at_most(
            "schema_roundtrip_differences", len(schema_diffs), 0, f"{cat_a.count()} catalog objects"
        )
        run.check_at_most("data_roundtrip_differences", len(data_diffs), 0, f"{data.total_rows(rows_a)} rows")

    def _longest_lock(self, run: DrillRun) -> None:
        # The rehearsed steps only: "prepare" just brings the copy to the start.
        measured = [
            (s.locks.longest_s, s)
            for s in self.steps
            if s.locks.longest_s is not None and s.name != "prepare"
        ]
        if not measured:
            run.measure("longest_lock_s", None, witness="not measured: the side connection saw nothing")
            return
        value, step = max(measured, key=lambda x: x[0] or 0.0)
        run.measure("longest_lock_s", value, witness=f"{step.name}: {step.locks.summary()}")

    def report(self, run: DrillRun) -> str:
        if not self.steps:
            return ""
        lines = [
            "## Steps",
            "",
            "| step | command | seconds | longest write-blocking lock |",
            "|---|---|---|---|",
        ]
        for s in self.steps:
            lines.append(
                f"| {s.name} | {s.verb} {label(s.target)} | {s.result.duration_s:.3f} | {s.locks.summary()} |"
            )
        return "\n".join(lines)
