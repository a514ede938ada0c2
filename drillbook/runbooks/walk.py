"""``runbook.run``: walk a runbook step by step, run its tasks, and keep an incident log.

Each step is shown; a step with ``inv`` commands asks run / skip / quit, runs the
commands as subprocesses (the same drillbook namespace, the same inventory and
report root), and shows the exit code, verdict and report path of each. Every
event is appended to ``<report root>/incidents/<UTC stamp>-<runbook>.md`` the
moment it happens (flushed and synced), so a walk cut short by Ctrl-C, SIGTERM
or a closed terminal keeps everything written so far. ``yes=True`` answers
"run" to every step and asks for nothing: a rehearsal for CI.
"""

from __future__ import annotations

import getpass
import os
import re
import signal
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from types import FrameType

from rich.console import Console
from rich.markdown import Markdown
from rich.prompt import Prompt
from rich.rule import Rule

from drillbook.core.console import VERDICT_STYLE, out
from drillbook.core.journal import utc_now, utc_stamp
from drillbook.core.paths import REPO_ROOT, default_inventory
from drillbook.core.store import display_path, find_journals, read_entry
from drillbook.runbooks.model import Command, Runbook, Step

#: (question, choices, default) -> answer. Raises EOFError when there is no more input.
Ask = Callable[[str, Sequence[str], str], str]
#: (argv, env) -> exit code. The default runs the drillbook program in a subprocess.
Runner = Callable[[list[str], dict[str, str]], int]

_MARKER = re.compile(r"^(\s*\d+[.)]\s*)(.*)$")
_PROGRAM = "import sys; from drillbook.cli import main; main()"


def who() -> str:
    """The operator's login name for the incident log; never raises (containers may have no passwd entry)."""
    try:
        return getpass.getuser()
    except (KeyError, OSError):
        return os.environ.get("USER") or "unknown"


@dataclass
class CommandRun:
    """One ``inv`` command of a step: exit code (None if it never finished), seconds, new reports."""

    command: Command
    started_at: str
    exit_code: int | None = None
    duration_s: float = 0.0
    reports: list[Path] = field(default_factory=list)  # new report directories
    verdicts: list[str] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        """True only for exit code 0; an interrupted command (None) is not ok."""
        return self.exit_code == 0


@dataclass
class StepRecord:
    """What happened at one step: the operator's choice, the commands run and any note typed."""

    step: Step
    action: str  # run, skip, done, quit
    runs: list[CommandRun] = field(default_factory=list)
    note: str = ""


@dataclass
class WalkResult:
    """The whole walk, for the task's exit code; ``quit_at`` is the step number the operator quit at."""

    log_path: Path
    records: list[StepRecord] = field(default_factory=list)
    interrupted: bool = False
    quit_at: int | None = None

    @property
    def failed(self) -> list[CommandRun]:
        """Every command that did not exit 0, across all steps."""
        return [r for rec in self.records for r in rec.runs if not r.ok]

    @property
    def exit_code(self) -> int:
        """130 when interrupted (as a shell reports SIGINT), 1 if any command failed, else 0."""
        if self.interrupted:
            return 130
        return 1 if self.failed else 0


class IncidentLog:
    """An append-only Markdown file; every write is flushed to disk before the walk goes on."""

    def __init__(self, path: Path) -> None:
        self.path = path
        path.parent.mkdir(parents=True, exist_ok=True)

    def append(self, text: str) -> None:
        """Append one line (newline added if missing) and fsync, so a crash loses nothing written."""
        with self.path.open("a", encoding="utf-8") as fh:
            fh.write(text if text.endswith("\n") else text + "\n")
            fh.flush()
            os.fsync(fh.fileno())


def incident_path(report_root: Path, runbook: Runbook) -> Path:
    """A new file under ``<report root>/incidents/``; a numeric suffix keeps two walks in one second apart."""
    base = report_root / "incidents" / f"{utc_stamp()}-{runbook.name}.md"
    path, n = base, 1
    while path.exists():
        n += 1
        path = base.with_name(f"{base.stem}-{n}.md")
    return path


def rich_ask(console: Console) -> Ask:
    """The interactive :data:`Ask` on a terminal; Rich re-asks until the answer is one of the choices."""

    def ask(question: str, choices: Sequence[str], default: str) -> str:
        if choices:
            return Prompt.ask(question, choices=list(choices), default=default, console=console)
        return Prompt.ask(question, default=default, show_default=bool(default), console=console)

    return ask


def subprocess_runner(argv: list[str], env: dict[str, str]) -> int:
    """Run ``drillbook <argv>`` (the namespace ``inv`` runs) with the terminal attached."""
    proc = subprocess.Popen([sys.executable, "-c", _PROGRAM, *argv], env=env, cwd=REPO_ROOT)
    try:
        return proc.wait()
    except KeyboardInterrupt:
        # The task got the terminal's SIGINT too (or we pass it on): let its restore phase finish.
        if proc.poll() is None:
            proc.send_signal(signal.SIGINT)
        proc.wait()
        raise


@contextmanager
def _sigterm_as_interrupt() -> Iterator[None]:
    """SIGTERM ends the walk like Ctrl-C does, through the code that logs it."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return

    def handler(_signum: int, _frame: FrameType | None) -> None:
        raise KeyboardInterrupt

    previous = signal.signal(signal.SIGTERM, handler)
    try:
        yield
    finally:
        signal.signal(signal.SIGTERM, previous)


class Walker:
    """One walk of a runbook: shows each step, asks, runs its commands, logs every event.

    ``ask`` and ``runner`` are the seams tests use instead of a terminal and a
    subprocess; the incident log's path is fixed at construction.
    """

    def __init__(
        self,
        runbook: Runbook,
        *,
        report_root: Path,
        inventory: str | None = None,
        yes: bool = False,
        notes: Sequence[str] = (),
        ask: Ask | None = None,
        runner: Runner | None = None,
        console: Console | None = None,
    ) -> None:
        self.runbook = runbook
        self.report_root = report_root
        self.inventory = inventory
        self.yes = yes
        self.notes = list(notes)
        self.console = console or out
        self.ask = ask or rich_ask(self.console)
        self.runner = runner or subprocess_runner
        self.user = who()
        self.log = IncidentLog(incident_path(report_root, runbook))
        self.result = WalkResult(self.log.path)

    # -- the walk -----------------------------------------------------------
    def walk(self) -> WalkResult:
        """Walk every step until the end or a quit; returns the result, never raises for Ctrl-C or SIGTERM.

        An interruption is logged and ends the walk without the footer; a closed input
        (EOF) is logged as a stop at the current step.
        """
        self._header()
        current: Step | None = None
        try:
            with _sigterm_as_interrupt():
                for step in self.runbook.steps:
                    current = step
                    record = self._step(step)
                    self.result.records.append(record)
                    if record.action == "quit":
                        self.result.quit_at = step.number
                        break
        except KeyboardInterrupt:
            self.result.interrupted = True
            where = f" at step {current.number}" if current else ""
            self.log.append(f"\n- {utc_now()} {self.user}: **interrupted**{where}; the log ends here")
            self.console.print(f"[yellow]interrupted[/yellow]{where}; log: {display_path(self.log.path)}")
            return self.result
        except EOFError:
            self.result.quit_at = current.number if current else None
            self.log.append(
                f"\n- {utc_now()} {self.user}: input closed at step "
                f"{current.number if current else '-'}: stopped (use --yes when there is no terminal)"
            )
        self._footer()
        return self.result

    def _header(self) -> None:
        rb, meta = self.runbook, self.runbook.meta
        mode = "rehearsal (--yes: every task step run, no questions)" if self.yes else "interactive"
        lines = [
            f"# Incident log: {meta.title or rb.name}",
            "",
            f"- runbook: `{display_path(rb.path)}`",
            f"- severity: {meta.severity or '-'}; owner: {meta.owner or '-'}",
            f"- alerts: {', '.join(meta.alerts) or '-'}",
            f"- started: {utc_now()} by {self.user} on {socket.gethostname()}",
            f"- inventory: {self.inventory or f'{display_path(default_inventory())} (default)'}",
            f"- reports: `{display_path(self.report_root)}`",
            f"- mode: {mode}",
        ]
        lines += [f"- note: {n}" for n in self.notes]
        self.log.append("\n".join(lines) + "\n")
        self.console.print(Rule(f"[bold]{meta.title or rb.name}[/bold]"))
        self.console.print(f"incident log: {display_path(self.log.path)}")

    def _footer(self) -> None:
        ran = sum(1 for r in self.result.records if r.action == "run")
        skipped = sum(1 for r in self.result.records if r.action == "skip")
        failed = len(self.result.failed)
        end = f"quit at step {self.result.quit_at}" if self.result.quit_at is not None else "finished"
        line = f"{end}: {ran} task steps run, {skipped} skipped, {failed} commands failed"
        self.log.append(f"\n## End\n\n- {utc_now()} {self.user}: {line}")
        style = "red" if failed else "green"
        self.console.print(Rule())
        self.console.print(f"[{style}]{line}[/{style}]; incident log: {display_path(self.log.path)}")

    def _step(self, step: Step) -> StepRecord:
        total = len(self.runbook.steps)
        self.console.print(Rule(f"step {step.number}/{total}: {step.title}", align="left"))
        self.console.print(Markdown(_without_marker(step.text)), soft_wrap=False)
        self.log.append(f"\n## Step {step.number}: {step.title}\n")
        if step.is_task_step:
            record = self._task_step(step)
        else:
            action = "done" if self.yes else self.ask("done / skip / quit", ("done", "skip", "quit"), "done")
            record = StepRecord(step, action)
            self.log.append(f"- {utc_now()} {self.user}: {_verb(action)} (no task to run)")
        if record.action != "quit" and not self.yes:
            note = self.ask("note for the log (enter for none)", (), "").strip()
            if note:
                record.note = note
                self.log.append(f"- {utc_now()} {self.user}: note: {note}")
        return record

    def _task_step(self, step: Step) -> StepRecord:
        for cmd in step.commands:
            self.console.print(f"  [bold]$ {cmd.display()}[/bold]")
        action = "run" if self.yes else self.ask("run / skip / quit", ("run", "skip", "quit"), "run")
        record = StepRecord(step, action)
        if action == "quit":
            self.log.append(f"- {utc_now()} {self.user}: quit")
            return record
        if action != "run":
            for cmd in step.commands:
                self.log.append(f"- {utc_now()} {self.user}: skipped `{cmd.display()}`")
            return record
        for cmd in step.commands:
            argv = self._fill(cmd)
            if argv is None:
                self.log.append(
                    f"- {utc_now()} {self.user}: skipped `{cmd.display()}`: it needs values for "
                    f"{', '.join(cmd.placeholders)} and --yes cannot ask for them"
                )
                self.console.print(f"[yellow]skipped[/yellow]: needs {', '.join(cmd.placeholders)}")
                continue
            run = self._run(cmd, argv)
            record.runs.append(run)
            if not run.ok and not self.yes:
                go_on = self.ask("the command failed: continue / quit", ("continue", "quit"), "continue")
                if go_on == "quit":
                    record.action = "quit"
                    self.log.append(f"- {utc_now()} {self.user}: quit after the failure")
                    break
        if record.action == "run" and not record.runs:
            record.action = "skip"
        return record

    def _fill(self, cmd: Command) -> list[str] | None:
        """The command's words with placeholders filled in by the operator (None under --yes)."""
        if not cmd.placeholders:
            return list(cmd.argv)
        if self.yes:
            return None
        values = {p: self.ask(f"value for {p}", (), "") for p in dict.fromkeys(cmd.placeholders)}
        filled = []
        for word in cmd.argv:
            flag, eq, value = word.partition("=")
            if word in values:
                filled.append(values[word])
            elif eq and value in values:
                filled.append(f"{flag}={values[value]}")
            else:
                filled.append(word)
        return filled

    def _env(self) -> dict[str, str]:
        env = dict(os.environ)
        env["DRILLBOOK_REPORT_DIR"] = str(self.report_root)
        if self.inventory:
            env["DRILLBOOK_INVENTORY"] = str(Path(self.inventory).resolve())
        return env

    def _run(self, cmd: Command, argv: list[str]) -> CommandRun:
        shown = " ".join([cmd.word, *argv]) if list(argv) != list(cmd.argv) else cmd.display()
        run = CommandRun(cmd, utc_now())
        self.log.append(f"- {run.started_at} {self.user}: ran `{shown}`")
        before = set(find_journals(self.report_root))
        t0 = time.monotonic()
        try:
            run.exit_code = self.runner(argv, self._env())
        except KeyboardInterrupt:
            run.duration_s = time.monotonic() - t0
            self._record_reports(run, before)
            self.log.append(f"  - interrupted after {run.duration_s:.1f} s")
            self._log_reports(run)
            raise
        run.duration_s = time.monotonic() - t0
        self._record_reports(run, before)
        verdicts = f", verdict {', '.join(f'**{v}**' for v in run.verdicts)}" if run.verdicts else ""
        self.log.append(f"  - exit code {run.exit_code} after {run.duration_s:.1f} s{verdicts}")
        self._log_reports(run)
        self._show_run(run)
        return run

    def _record_reports(self, run: CommandRun, before: set[Path]) -> None:
        for journal in sorted(set(find_journals(self.report_root)) - before):
            run.reports.append(journal.parent)
            run.verdicts.append(read_entry(journal).verdict)

    def _log_reports(self, run: CommandRun) -> None:
        for report in run.reports:
            target = report / "summary.md" if (report / "summary.md").exists() else report / "journal.json"
            rel = os.path.relpath(target, self.log.path.parent)
            self.log.append(f"  - report: [{display_path(target)}]({rel})")

    def _show_run(self, run: CommandRun) -> None:
        code_style = "green" if run.ok else "red"
        parts = [f"exit [{code_style}]{run.exit_code}[/{code_style}] after {run.duration_s:.1f}s"]
        for report, verdict in zip(run.reports, run.verdicts, strict=True):
            style = VERDICT_STYLE.get(verdict, "")
            parts.append(f"[{style}]{verdict.upper()}[/{style}] report {display_path(report)}")
        self.console.print("  -> " + "; ".join(parts))


def walk(
    runbook: Runbook,
    *,
    report_root: Path,
    inventory: str | None = None,
    yes: bool = False,
    notes: Sequence[str] = (),
    ask: Ask | None = None,
    runner: Runner | None = None,
    console: Console | None = None,
) -> WalkResult:
    """Walk ``runbook``; see the module docstring."""
    return Walker(
        runbook,
        report_root=report_root,
        inventory=inventory,
        yes=yes,
        notes=notes,
        ask=ask,
        runner=runner,
        console=console,
    ).walk()


def _verb(action: str) -> str:
    return {"skip": "skipped", "quit": "quit", "done": "done", "run": "ran"}.get(action, action)


def _without_marker(text: str) -> str:
    """The step's text without its ``3.`` marker (the rule above already numbers it), dedented."""
    first, _, rest = text.partition("\n")
    match = _MARKER.match(first)
    if not match:
        return text
    pad = " " * len(match.group(1))
    lines = [match.group(2)] + [
        line[len(pad) :] if line.startswith(pad) else line.lstrip() for line in rest.splitlines()
    ]
    return "\n".join(lines)
