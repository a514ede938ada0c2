"""``migrate.rehearse``: prove on a copy of real data that the migrations go forward *and back*.

On a scratch database holding the newest backup (or a fresh pg_dump):

0. prove that the migration command reads the copy and not the source
   (:mod:`drillbook.migrate.proof`): a marker revision in the copy's version
   table, read back through the command's own ``current``; after every step the
   source's schema fingerprint must be unchanged and the copy must have moved;
1. bring the copy to the starting revision (the database's own, or ``--from``);
2. fingerprint it: catalog (tables, columns, indexes, constraints, ...) and data
   (row counts, row checksums, one digest per column);
3. ``upgrade`` to the target, run the SQL assertions;
4. ``downgrade`` to the start and fingerprint again;
5. ``upgrade`` again (the way a re-deploy after a rollback goes).

Those are ``act``; ``observe`` compares the two fingerprints and returns
:class:`~drillbook.migrate.measured.RehearseMeasured`; core judges its declared
checks: the assertions at the target, every schema or data difference (a failed
check naming the table, column or index), their counts against
``roundtrip_max_differences``, the longest write-blocking lock against
``migrate_max_lock_s``. A step that does not reach its revision stops the drill
there (``<step>_ok``, verdict fail).

Each step is timed and watched for write-blocking locks. The scratch database
is dropped afterwards, also after Ctrl-C (an undo action registered before it
is created). The real database is only read, and the proof stops the drill
(exit 2) the moment the command is seen acting anywhere else.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from typing import Literal

from drillbook.core import pgdata
from drillbook.core.checks import Outcome, at_most, each_ok
from drillbook.core.drill import Drill, DrillRun
from drillbook.core.errors import ConfigError
from drillbook.core.journal import utc_stamp
from drillbook.migrate import checks, copies, data, proof, revisions, schema
from drillbook.migrate.measured import RehearseLimits, RehearseMeasured, StepFigures
from drillbook.migrate.revisions import Plan, RevisionGraph, label
from drillbook.migrate.settings import MigrateSettings
from drillbook.migrate.steps import Step, longest_lock, run_step
from drillbook.migrate.target import Database, Migrations

#: A database's catalog and data, read at one moment.
Snapshot = tuple[schema.Catalog, dict[str, data.TableData]]


@dataclass(frozen=True)
class RehearsePlan:
    """What preflight settled: the command, the revision graph and the way from start to target."""

    migrations: Migrations
    graph: RevisionGraph
    route: Plan


@dataclass
class Rehearsal:
    """What act did on the copy, handed to observe (filled step by step)."""

    copy: copies.Copy | None = None
    guard: proof.Proof | None = None
    steps: list[Step] = field(default_factory=list)
    before: Snapshot | None = None
    after: Snapshot | None = None
    at_target: list[Outcome] = field(default_factory=list)


class Rehearse(Drill[RehearsePlan, Rehearsal, RehearseMeasured]):
    """Up, back down and up again on a scratch copy, comparing schema and data (``inv migrate.rehearse``)."""

    name = "migrate.rehearse"
    runbook = "runbooks/migration-rollback.md"
    measured = RehearseMeasured
    checks = (
        each_ok("at_target"),
        each_ok("roundtrip"),
        at_most(
            "schema_roundtrip_differences",
            limit_from="roundtrip_max_differences",
            detail_from="schema_detail",
        ),
        at_most(
            "data_roundtrip_differences", limit_from="roundtrip_max_differences", detail_from="data_detail"
        ),
        at_most("longest_lock_s", limit_from="max_lock_s", detail_from="longest_lock_detail"),
    )

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

    # -- preflight: every bad input is refused here, before anything exists -----------------------
    def preflight(self, run: DrillRun) -> RehearsePlan:
        # The key figures first, so they lead the journal and the summary even when the drill stops early.
        for key in ("upgrade_s", "downgrade_s", "reupgrade_s", "longest_lock_s", "proof_s"):
            run.measure(key, None)
        m = Migrations(run.inventory, self.settings, ini=self.ini)
        graph = m.graph()
        current = m.current()
        live = m.plan(self.to, graph=graph)  # validates the database's revision and the target
        start = graph.resolve(self.from_) if self.from_ else live.current
        route = revisions.plan(graph, [start] if start else [], self.to)
        run.measure("database_revision", ", ".join(current) or "base", witness="version table of the source")
        run.measure("from_revision", label(route.current))
        run.measure("to_revision", label(route.target))
        run.measure("pending", [r.id for r in route.steps])
        if route.direction == "down":
            raise ConfigError(
                f"--to {label(route.target)} is older than the starting revision {label(route.current)}: "
                "a rehearsal goes forward from --from (default: the database's revision) to --to and back"
            )
        irreversible = route.irreversible
        run.measure("irreversible", irreversible)
        if irreversible and not self.allow_irreversible:
            raise ConfigError(
                f"revision(s) {', '.join(irreversible)} have no downgrade (irreversible): a rehearsal cannot "
                "prove the way back and migrate.up refuses them; --allow-irreversible rehearses the upgrade "
                "only"
            )
        if route.unknown_downgrade:
            run.note(
                f"cannot read the scripts of {', '.join(route.unknown_downgrade)} here: downgrade unknown"
            )
        run.note(f"rehearsal plan: {route.describe()} on a copy of {m.source.describe()}")
        if route.direction == "none":
            run.note(
                f"nothing to rehearse: the start is already {label(route.target)}; "
                "pass --from an older revision to rehearse the way up to it"
            )
        # The round trip is judged only when it is rehearsed; the journal's thresholds say which.
        roundtrip = route.direction == "up" and not irreversible
        self.thresholds = RehearseLimits.model_validate(
            {**self.settings.model_dump(), "roundtrip_max_differences": 0 if roundtrip else None}
        )
        run.journal.thresholds = self.thresholds.model_dump()
        self._drop_leftovers(run, m)
        return RehearsePlan(m, graph, route)

    def _drop_leftovers(self, run: DrillRun, m: Migrations) -> None:
        """Scratch databases of a rehearsal that was killed (SIGKILL skips the undo actions)."""
        prefix = self.settings.scratch_prefix + "\\_%"
        with pgdata.connect(m.server_admin_dsn) as conn:
            rows = conn.execute("SELECT datname FROM pg_database WHERE datname LIKE %s", (prefix,)).fetchall()
        for (name,) in rows:
            run.note(f"dropping leftover scratch database {name}")
            pgdata.drop_database(m.server_admin_dsn, str(name), protect={m.source.name})

    # -- act: copy, prove, fingerprint, up, assertions, down, fingerprint, up ----------------------
    def act(self, run: DrillRun, plan: RehearsePlan) -> Rehearsal:
        m, route = plan.migrations, plan.route
        done = Rehearsal()
        if route.direction == "none":
            return done
        name = f"{self.settings.scratch_prefix}_{utc_stamp().lower()}_{os.getpid()}"

        def drop() -> None:
            pgdata.drop_database(m.server_admin_dsn, name, protect={m.source.name})

        run.on_restore(f"drop scratch database {name}", drop)
        with run.phase("copy") as record:
            copy = done.copy = copies.make_copy(run, m, name, self.source)
            record.detail = f"{copy.source} -> {name}"
        db = copy.database
        run.measure("copy_source", copy.source)
        run.measure("copy_s", round(copy.seconds, 3), witness="wall clock around restore/pg_restore")
        with run.phase("proof") as record:
            guard = done.guard = proof.Proof(run, m, plan.graph, db, source=m.source)
            if copy.source.startswith("backup "):
                backup_id = copy.source.split(" ", 1)[1]
                guard.restore_hint = (
                    f"Restore it from backup {backup_id} (the one this rehearsal copied): "
                    f"inv backup.restore --id {backup_id} --into <new database>, then swap "
                    "(runbooks/restore-from-backup.md)"
                )
            guard.before_writing()
            record.detail = f"the command reads {name}, not {m.source.name}"
        prepare = revisions.plan(plan.graph, m.current(db), label(route.current))
        if prepare.direction != "none":
            # The copy is not at the start (an older backup, or --from): get it there first.
            verb = "upgrade" if prepare.direction == "up" else "downgrade"
            self._step(run, m, db, done, "prepare", verb, route.current)
        with run.phase("fingerprint-before"):
            done.before = _snapshot(db)
        run.measure("tables", len(done.before[1]))
        run.measure("rows", data.total_rows(done.before[1]), witness="count(*) per table on the scratch copy")

        self._step(run, m, db, done, "upgrade", "upgrade", route.target)
        done.at_target = checks.prefixed(
            "at_target", checks.sql_assertions(db.dsn, self.settings.sql_assertions)
        )
        if route.irreversible:
            run.note(
                f"irreversible revision(s) {', '.join(route.irreversible)}: the way back is not rehearsed"
            )
            return done
        self._step(run, m, db, done, "downgrade", "downgrade", route.current)
        with run.phase("fingerprint-after"):
            done.after = _snapshot(db)
        self._step(run, m, db, done, "reupgrade", "upgrade", route.target)
        return done

    def _step(
        self,
        run: DrillRun,
        m: Migrations,
        db: Database,
        done: Rehearsal,
        name: str,
        verb: str,
        target: str | None,
    ) -> Step:
        """One step; the drill stops (fail) if it misses ``target``, (error) if it landed elsewhere."""
        before = m.current(db)
        step = run_step(run, m, db, name, verb, target)
        done.steps.append(step)
        if done.guard is not None:
            done.guard.after_step(step, before)  # raises before the next step can land elsewhere
        run.require(
            f"{name}_ok",
            ", ".join(step.revision_after or []) or "base",
            label(target),
            step.ok,
            "" if step.ok else step.result.why(),
        )
        return step

    # -- observe: what the round trip changed --------------------------------------------------------
    def observe(self, run: DrillRun, plan: RehearsePlan, acted: Rehearsal) -> RehearseMeasured:
        steps = {s.name: s for s in acted.steps}
        # The rehearsed steps only: "prepare" just brings the copy to the start.
        lock_s, lock_detail = longest_lock(s for s in acted.steps if s.name != "prepare")
        copy, guard = acted.copy, acted.guard
        measured = RehearseMeasured(
            copy_source=copy.source if copy else None,
            copy_s=round(copy.seconds, 3) if copy else None,
            tables=len(acted.before[1]) if acted.before else None,
            rows=data.total_rows(acted.before[1]) if acted.before else None,
            longest_lock_s=lock_s,
            longest_lock_detail=lock_detail,
            proof_s=round(guard.seconds, 3) if guard else None,
            at_target=acted.at_target,
            steps=[
                StepFigures(
                    name=s.name,
                    command=f"{s.verb} {label(s.target)}",
                    seconds=round(s.result.duration_s, 3),
                    locks=s.locks.summary(),
                )
                for s in acted.steps
            ],
            prepare_s=_seconds(steps.get("prepare")),
            upgrade_s=_seconds(steps.get("upgrade")),
            downgrade_s=_seconds(steps.get("downgrade")),
            reupgrade_s=_seconds(steps.get("reupgrade")),
        )
        if acted.before is not None and acted.after is not None:
            self._compare(run, acted.before, acted.after, measured)
        return measured

    def _compare(self, run: DrillRun, before: Snapshot, after: Snapshot, measured: RehearseMeasured) -> None:
        (cat_a, rows_a), (cat_b, rows_b) = before, after
        schema_diffs = schema.diff(cat_a, cat_b)
        data_diffs = data.diff(rows_a, rows_b)
        for note in schema.order_changes(cat_a, cat_b):
            run.note(note + " (not a failure)")
        measured.roundtrip = checks.differences("roundtrip", [*schema_diffs, *data_diffs])
        measured.schema_differences = [d.describe() for d in schema_diffs]
        measured.data_differences = [d.describe() for d in data_diffs]
        measured.schema_roundtrip_differences = len(schema_diffs)
        measured.schema_detail = f"{cat_a.count()} catalog objects"
        measured.data_roundtrip_differences = len(data_diffs)
        measured.data_detail = f"{data.total_rows(rows_a)} rows"

    def report(self, run: DrillRun, measured: RehearseMeasured | None) -> str:
        if measured is None or not measured.steps:
            return ""
        lines = [
            "## Steps",
            "",
            "| step | command | seconds | longest write-blocking lock |",
            "|---|---|---|---|",
        ]
        for s in measured.steps:
            lines.append(f"| {s.name} | {s.command} | {s.seconds:.3f} | {s.locks} |")
        return "\n".join(lines)


def _seconds(step: Step | None) -> float | None:
    return round(step.result.duration_s, 3) if step is not None else None


def _snapshot(db: Database) -> Snapshot:
    with pgdata.connect(db.admin_dsn, read_only=True) as conn:
        catalog = schema.dump(conn)
    return catalog, data.fingerprint(db.admin_dsn)
