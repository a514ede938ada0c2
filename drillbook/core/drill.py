"""The drill lifecycle, written once and used by every drill.

    preflight -> act -> observe -> verify -> restore (always) -> report

A drill is a subclass of :class:`Drill` ``[Plan, Acted, Measured]`` whose phases hand
their results to the next one instead of leaving them on ``self``::

    plan = preflight(run)                 # settings read, steady state proven
    acted = act(run, plan)                # the change; undo actions registered
    measured = observe(run, plan, acted)  # a typed Measurements record
    verify                                # core evaluates the drill's declared checks

Each phase receives the :class:`DrillRun`, through which it records notes,
intermediate figures (with their outside witness), artefacts and undo actions.
:func:`execute` owns everything else: the per-fleet lock, SIGINT/SIGTERM handling,
the report directory, the journal written after every phase, the restore phase that
always runs (LIFO undo actions, then :meth:`Drill.restore`), the verdict,
``summary.md``, optional JUnit XML and the exit code.

Verdict: ``error`` (exit 2) when the drill could not measure: something raised, or a
precondition checked in ``preflight`` (the steady state) did not hold, since a
service that was not healthy before the drill cannot be blamed for what the drill
would have seen; ``fail`` (exit 1) when a declared check failed; ``pass`` otherwise.
"""

from __future__ import annotations

import time
import traceback
from collections.abc import Callable, Iterator
from contextlib import contextmanager, suppress
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, ClassVar, Generic, TypeVar, cast

from pydantic import BaseModel
from rich.markup import escape

from drillbook.core import interrupts
from drillbook.core.checks import CheckSpec, Measurements, evaluate, validate_specs
from drillbook.core.console import Progress, err
from drillbook.core.errors import CheckFailed, ConfigError, DrillbookError, DrillInterrupted
from drillbook.core.inventory import Inventory
from drillbook.core.journal import (
    Check,
    Journal,
    Phase,
    make_report_dir,
    summary_markdown,
    utc_now,
    utc_stamp,
    write_report_text,
)
from drillbook.core.junit import write_junit
from drillbook.core.lock import inventory_lock
from drillbook.core.paths import REPO_ROOT, default_report_root

LIFECYCLE = ("preflight", "act", "observe", "verify")


@dataclass
class DrillContext:
    """What the task layer hands to a drill: where to act, where to write, how loud to be."""

    inventory: Inventory
    report_root: Path = field(default_factory=default_report_root)
    junit: Path | None = None
    quiet: bool = False
    debug: bool = False


@dataclass
class _Undo:
    label: str
    action: Callable[[], None]


class DrillRun:
    """The handle a drill's phases use to record what happened."""

    def __init__(self, drill: AnyDrill, ctx: DrillContext, report_dir: Path, journal: Journal) -> None:
        self.drill = drill
        self.ctx = ctx
        self.inventory = ctx.inventory
        self.report_dir = report_dir
        self.journal = journal
        self.progress = Progress(enabled=not ctx.quiet)
        self._undo: list[_Undo] = []
        self._phase_stack: list[str] = []

    # -- recording ------------------------------------------------------------
    def note(self, message: str) -> None:
        """Progress for the operator, kept in the journal too."""
        self.progress(message)
        self.journal.notes.append(f"{utc_now()} {message}")

    def measure(self, name: str, value: Any, witness: str | None = None) -> Any:
        """Record a key figure; ``witness`` says who else can confirm it (probe, HAProxy stats, SQL)."""
        self.journal.measurements[name] = value
        if witness:
            self.journal.witnesses[name] = witness
        return value

    def check(self, name: str, value: Any, limit: Any, ok: bool, detail: str = "") -> bool:
        """Record a named comparison; a failed one makes the verdict ``fail`` (the drill goes on).

        Drills do not judge their measurements with this (core's verify evaluates their
        declared checks); :meth:`require` uses it for the conditions a drill cannot go on without.
        """
        self.journal.checks.append(Check(name=name, value=value, limit=limit, ok=bool(ok), detail=detail))
        mark = "[green]ok[/green]" if ok else "[red]FAIL[/red]"
        self.progress(f"check {name}: {value} (limit {limit}) {mark}" + (f" - {detail}" if detail else ""))
        return bool(ok)

    def require(self, name: str, value: Any, limit: Any, ok: bool, detail: str = "") -> None:
        """A check that stops the drill when it fails.

        In ``preflight`` (steady state, preconditions) the verdict is then ``error``: the
        drill could not run. Later (the change itself misbehaved) it is ``fail``.
        """
        if not self.check(name, value, limit, ok, detail):
            raise CheckFailed(f"{name}: {detail or value}")

    def record(self, measured: BaseModel) -> None:
        """Journal a measurement record: every field, and the witness of those that name one."""
        self.journal.measurements.update(measured.model_dump(mode="json"))
        if isinstance(measured, Measurements):
            for name, witness in measured.witnesses().items():
                # A witness named during the run (with its own figures) says more than the declared one.
                self.journal.witnesses.setdefault(name, witness)

    def verify(self, drill: Drill[Any, Any, Any], measured: BaseModel | None) -> None:
        """Evaluate the drill's declared checks against its record: the only judge of a verdict."""
        if not drill.checks:
            return
        if measured is None:
            raise DrillbookError(f"{drill.name} measured nothing, so none of its checks could be judged")
        for check in evaluate(drill.checks, measured, drill.thresholds):
            self.journal.checks.append(check)
            mark = "[green]ok[/green]" if check.ok else "[red]FAIL[/red]"
            limit = f"{check.op} {check.limit}" if check.op not in ("", "is true") else check.limit
            detail = f" - {escape(check.detail)}" if check.detail else ""
            value = escape(str(check.value))
            self.progress(f"check {check.name}: {value} ({escape(str(limit))}) {mark}{detail}")

    def artefact(self, path: Path) -> Path:
        """Register a file in the report directory (paths kept relative to it)."""
        rel = path.relative_to(self.report_dir) if path.is_relative_to(self.report_dir) else path
        if str(rel) not in self.journal.artefacts:
            self.journal.artefacts.append(str(rel))
        return path

    def on_restore(self, label: str, action: Callable[[], None]) -> None:
        """Register an undo action; the restore phase runs them last-in first-out, always."""
        self._undo.append(_Undo(label, action))

    def save(self) -> None:
        """Write the journal (atomically, redacted); called after every phase so a kill keeps evidence."""
        self.journal.write(self.report_dir / "journal.json")

    # -- phases ---------------------------------------------------------------
    @contextmanager
    def phase(self, name: str) -> Iterator[Phase]:
        """Time a phase (or a named step inside one) and journal it, even when it raises."""
        full = "/".join([*self._phase_stack, name]) if self._phase_stack else name
        record = Phase(name=full, started_at=utc_now())
        self.journal.phases.append(record)
        self._phase_stack.append(name)
        t0 = time.monotonic()
        try:
            yield record
        except BaseException as exc:
            record.ok = False
            record.detail = record.detail or _describe(exc)
            raise
        finally:
            record.duration_s = round(time.monotonic() - t0, 4)
            self._phase_stack.pop()
            with suppress(OSError):
                self.save()

    def _run_undo(self) -> None:
        while self._undo:
            undo = self._undo.pop()
            with self.phase(undo.label) as record:
                try:
                    undo.action()
                except Exception as exc:  # one failed undo must not skip the others
                    record.ok = False
                    record.detail = _describe(exc)
                    self.journal.error = self.journal.error or f"restore step '{undo.label}' failed: {exc}"
                    self.note(f"[red]restore step '{undo.label}' failed:[/red] {exc}")


def _describe(exc: BaseException) -> str:
    if isinstance(exc, DrillbookError):
        return str(exc)
    if isinstance(exc, KeyboardInterrupt):
        return "interrupted"
    return f"{type(exc).__name__}: {exc}"


PlanT = TypeVar("PlanT")
ActedT = TypeVar("ActedT")
MeasuredT = TypeVar("MeasuredT", bound=BaseModel)


class Drill(Generic[PlanT, ActedT, MeasuredT]):
    """Base class of every drill: override the phases you need, declare ``checks``.

    ``name`` is the task name (``chaos.kill-db``), ``runbook`` the runbook an operator
    opens when it fails (printed on failure, checked by ``runbook.check``).
    ``measured`` is the type ``observe`` returns and ``checks`` what verify compares in
    it (core/checks.py); a check naming a field the record lacks fails when the class
    is defined, not in the middle of a drill.
    """

    name: ClassVar[str] = "drill"
    runbook: ClassVar[str | None] = None
    measured: ClassVar[type[BaseModel] | None] = None
    checks: ClassVar[tuple[CheckSpec, ...]] = ()

    def __init_subclass__(cls, **kwargs: Any) -> None:
        super().__init_subclass__(**kwargs)
        if cls.measured is not None:
            validate_specs(cls.checks, cls.measured, cls.__name__)

    def __init__(self, thresholds: BaseModel | None = None, **options: Any) -> None:
        self.thresholds = thresholds
        self.options = options

    def preflight(self, run: DrillRun) -> PlanT:
        """Read settings, prove the steady state; ``run.require`` refuses to act (verdict error)."""
        return cast(PlanT, None)

    def act(self, run: DrillRun, plan: PlanT) -> ActedT:
        """Make the change (kill, deploy, restore, load); register undo actions with run.on_restore."""
        return cast(ActedT, None)

    def observe(self, run: DrillRun, plan: PlanT, acted: ActedT) -> MeasuredT | None:
        """Sample probes and metrics on a clock; return the measurement record the checks read."""
        return None

    def restore(self, run: DrillRun) -> None:
        """Final, idempotent clean-up after the undo actions (e.g. wait until all is healthy)."""

    def report(self, run: DrillRun, measured: MeasuredT | None) -> str:
        """Extra Markdown for summary.md (plots, tables)."""
        return ""


#: Any drill, whatever its phase types (what the task layer and the demo hand to :func:`execute`).
AnyDrill = Drill[Any, Any, Any]
DrillClass = type[Drill[Any, Any, Any]]


def execute(drill: AnyDrill, ctx: DrillContext) -> Journal:
    """Run ``drill`` through the whole lifecycle and return its finished journal."""
    inv = ctx.inventory
    with inventory_lock(inv.lock_scope, drill.name, inv.name):
        report_dir = _new_report_dir(ctx.report_root, drill.name)
        journal = Journal(
            drill=drill.name,
            inventory=inv.name,
            environment=inv.environment,
            thresholds=drill.thresholds.model_dump() if drill.thresholds else {},
            options={k: _jsonable(v) for k, v in drill.options.items()},
            runbook=drill.runbook,
            report_dir=str(report_dir),
        )
        run = DrillRun(drill, ctx, report_dir, journal)
        run.save()
        if not ctx.quiet:
            where = f"{escape(inv.name)} -> {escape(_display(report_dir))}"
            err.print(f"[bold]{drill.name}[/bold] against {where}")
        lifecycle = _Lifecycle(drill, run)
        with interrupts.handled():
            try:
                lifecycle.run()
            except CheckFailed as exc:
                if lifecycle.phase == "preflight":
                    journal.error = f"precondition not met, nothing was changed: {exc}"
                    run.note(f"[yellow]could not run:[/yellow] {escape(str(exc))}")
                else:
                    run.note(f"stopped: {escape(str(exc))}")
            except DrillInterrupted as exc:
                journal.interrupted = True
                journal.error = str(exc)
                run.note(f"[yellow]{exc}[/yellow]: restoring")
            except DrillbookError as exc:
                journal.error = str(exc)
                run.note(f"[red]error:[/red] {escape(str(exc))}")
            except Exception as exc:
                journal.error = f"{type(exc).__name__}: {exc}"
                write_report_text(report_dir / "traceback.txt", traceback.format_exc())
                run.artefact(report_dir / "traceback.txt")
                run.note(f"[red]unexpected error:[/red] {escape(journal.error)} (traceback.txt)")
            finally:
                _restore(drill, run)
            _finish(drill, run, lifecycle.measured)
    return journal


class _Lifecycle:
    """Runs the four forward phases in order, handing each one's result to the next."""

    def __init__(self, drill: AnyDrill, run: DrillRun) -> None:
        self.drill = drill
        self.run_ = run
        self.phase = ""
        self.measured: BaseModel | None = None

    def run(self) -> None:
        """preflight, act, observe, verify in order; :attr:`phase` says where an exception came from."""
        drill, run = self.drill, self.run_
        self.phase = "preflight"
        with run.phase("preflight"):
            plan = drill.preflight(run)
        self.phase = "act"
        with run.phase("act"):
            acted = drill.act(run, plan)
        self.phase = "observe"
        with run.phase("observe"):
            self.measured = drill.observe(run, plan, acted)
            if self.measured is not None:
                run.record(self.measured)
        self.phase = "verify"
        with run.phase("verify"):
            run.verify(drill, self.measured)


def _restore(drill: AnyDrill, run: DrillRun) -> None:
    with interrupts.shielded():
        try:
            with run.phase("restore"):
                run._run_undo()
                drill.restore(run)
        except Exception as exc:
            run.journal.error = run.journal.error or f"restore failed: {_describe(exc)}"
            run.note(f"[red]restore failed:[/red] {escape(_describe(exc))}")


def _finish(drill: AnyDrill, run: DrillRun, measured: BaseModel | None) -> None:
    journal = run.journal
    with run.phase("report"):
        if journal.error or journal.interrupted:
            journal.verdict = "error"
        elif journal.failed_checks or any(not p.ok for p in journal.phases if p.name != "report"):
            journal.verdict = "fail"
        else:
            journal.verdict = "pass"
        journal.finished_at = utc_now()
        extra = ""
        try:
            extra = drill.report(run, measured)
        except Exception as exc:
            journal.notes.append(f"report extras failed: {_describe(exc)}")
        write_report_text(run.report_dir / "summary.md", summary_markdown(journal, extra))
        if run.ctx.junit:
            write_junit(journal, run.ctx.junit)
    run.save()


def _new_report_dir(root: Path, drill_name: str) -> Path:
    """``<root>/<UTC stamp>-<drill>``, unique even when two drills start in the same second.

    Created 0700 (``DRILLBOOK_REPORT_MODE`` may loosen it): a report names hosts, users and
    figures of a fleet, not for every local user.
    """
    try:
        root.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise ConfigError(f"cannot create the report folder {root}: {exc.strerror}") from None
    base = root / f"{utc_stamp()}-{drill_name}"
    path, n = base, 1
    while True:
        try:
            make_report_dir(path)
            return path
        except OSError as exc:
            if not isinstance(exc, FileExistsError):
                raise ConfigError(f"cannot create a report folder in {root}: {exc.strerror}") from None
            n += 1
            path = base.with_name(f"{base.name}-{n}")


def _display(path: Path) -> str:
    try:
        return str(path.relative_to(Path.cwd()))
    except ValueError:
        try:
            return str(path.relative_to(REPO_ROOT))
        except ValueError:
            return str(path)


def _jsonable(value: Any) -> Any:
    if isinstance(value, (str, int, float, bool)) or value is None:
        return value
    if isinstance(value, (list, tuple)):
        return [_jsonable(v) for v in value]
    if isinstance(value, dict):
        return {str(k): _jsonable(v) for k, v in value.items()}
    return str(value)


def print_summary(journal: Journal, report_dir: Path | None = None) -> None:
    """The end-of-drill lines: verdict, failed checks, key measurements, report path, runbook on failure."""
    from drillbook.core.console import VERDICT_STYLE, out

    style = VERDICT_STYLE.get(journal.verdict, "")
    out.print(f"[{style}]{journal.drill}: {journal.verdict.upper()}[/{style}]")
    for c in journal.failed_checks:
        limit = f"{c.op} {c.limit}" if c.op and c.op != "is true" else str(c.limit)
        text = f"{c.name}: {c.value} ({limit})" + (f" - {c.detail}" if c.detail else "")
        out.print(f"  [red]x[/red] {escape(text)}")
    if journal.error:
        out.print(f"  [yellow]![/yellow] {escape(journal.error)}")
    for key, value in list(journal.measurements.items())[:12]:
        if isinstance(value, (int, float, bool, str)):
            out.print(f"  {key} = {value}")
    if report_dir:
        out.print(f"  report: {_display(report_dir)}")
    if journal.verdict != "pass" and journal.runbook:
        out.print(f"  runbook: {journal.runbook}")
