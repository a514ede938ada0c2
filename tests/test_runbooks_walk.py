"""runbook.run: the walk asks, runs, shows verdicts and report paths, and keeps an incident log.

Unit tests drive the walker with scripted answers and a runner that writes a real
journal (the report layer must find it); the CLI test runs real tasks in
subprocesses; the lab test walks redis-outage on the lab with --yes.
"""

from __future__ import annotations

import getpass
import io
import os
import subprocess
import sys
import textwrap
from collections.abc import Callable, Sequence
from pathlib import Path

import pytest
from rich.console import Console

from drillbook.core.journal import Journal, utc_now, utc_stamp
from drillbook.core.paths import REPO_ROOT, RUNBOOKS
from drillbook.runbooks.model import parse_file
from drillbook.runbooks.walk import walk

RUNBOOK = """\
---
title: Practice
severity: SEV4
alerts: [Practice]
tasks: [lab.status, runbook.list]
owner: tests
---
# Practice

1. Read the dashboard (nothing to run).

2. Look at the service:

   ```shell
   inv lab.status --json
   ```

3. Run the practice drill:

   ```shell
   inv runbook.list
   ```

4. Deploy a version:

   ```shell
   inv lab.release <VERSION>
   ```
"""


def make_runbook(tmp_path: Path, text: str = RUNBOOK) -> Path:
    path = tmp_path / "runbooks" / "practice.md"
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(textwrap.dedent(text))
    return path


def quiet() -> Console:
    return Console(file=io.StringIO(), width=100)


class FakeRunner:
    """Records each command; ``runbook.list`` 'runs a drill' by writing a real journal."""

    def __init__(self, report_root: Path, codes: dict[str, int] | None = None) -> None:
        self.report_root = report_root
        self.codes = codes or {}
        self.calls: list[tuple[list[str], dict[str, str]]] = []

    def __call__(self, argv: list[str], env: dict[str, str]) -> int:
        self.calls.append((argv, env))
        if argv[0] == "runbook.list":
            report = self.report_root / f"{utc_stamp()}-practice.drill"
            Journal(
                drill="practice.drill",
                inventory="x",
                environment="lab",
                verdict="pass",
                finished_at=utc_now(),
            ).write(report / "journal.json")
            (report / "summary.md").write_text("# practice.drill: PASS\n")
        return self.codes.get(argv[0], 0)


def scripted(answers: list[str]) -> Callable[[str, Sequence[str], str], str]:
    def ask(question: str, choices: Sequence[str], default: str) -> str:
        if not answers:
            raise EOFError
        answer = answers.pop(0)
        if isinstance(answer, BaseException):
            raise answer
        assert not choices or answer in choices, (question, answer)
        return answer

    return ask


def test_yes_runs_every_task_step_and_logs_it(tmp_path: Path) -> None:
    root = tmp_path / "reports"
    runner = FakeRunner(root)
    result = walk(
        parse_file(make_runbook(tmp_path)),
        report_root=root,
        inventory="inventory/lab",
        yes=True,
        notes=["rehearsal for INC-1"],
        runner=runner,
        console=quiet(),
    )
    assert result.exit_code == 0
    assert [argv for argv, _ in runner.calls] == [["lab.status", "--json"], ["runbook.list"]]
    env = runner.calls[0][1]
    assert env["DRILLBOOK_REPORT_DIR"] == str(root)
    assert env["DRILLBOOK_INVENTORY"] == str((Path("inventory/lab")).resolve())

    log = result.log_path
    assert log.parent == root / "incidents" and log.name.endswith("-practice.md")
    text = log.read_text()
    user = getpass.getuser()
    assert "# Incident log: Practice" in text and "- note: rehearsal for INC-1" in text
    assert f"{user}: done (no task to run)" in text
    assert f"{user}: ran `inv lab.status --json`" in text
    assert "exit code 0" in text and "verdict **pass**" in text
    report = result.records[2].runs[0].reports[0]
    assert "- report: [" in text and f"(../{report.name}/summary.md)" in text
    # the placeholder step cannot run unattended: skipped, said so, not a failure
    assert "skipped `inv lab.release <VERSION>`: it needs values for <VERSION>" in text
    assert "finished: 2 task steps run, 1 skipped, 0 commands failed" in text


def test_interactive_run_skip_note_and_placeholder_values(tmp_path: Path) -> None:
    root = tmp_path / "reports"
    runner = FakeRunner(root, codes={"lab.release": 1})
    answers = ["done", "saw the alert", "skip", "", "run", "drill passed", "run", "2.4.0", "continue", ""]
    result = walk(
        parse_file(make_runbook(tmp_path)),
        report_root=root,
        ask=scripted(answers),
        runner=runner,
        console=quiet(),
    )
    assert [argv for argv, _ in runner.calls] == [["runbook.list"], ["lab.release", "2.4.0"]]
    assert result.exit_code == 1  # a command failed
    text = result.log_path.read_text()
    assert "note: saw the alert" in text and "note: drill passed" in text
    assert "skipped `inv lab.status --json`" in text
    assert "ran `inv lab.release 2.4.0`" in text and "exit code 1" in text
    assert "1 commands failed" in text


def test_quit_stops_the_walk_and_says_where(tmp_path: Path) -> None:
    root = tmp_path / "reports"
    runner = FakeRunner(root)
    result = walk(
        parse_file(make_runbook(tmp_path)),
        report_root=root,
        ask=scripted(["done", "", "quit"]),
        runner=runner,
        console=quiet(),
    )
    assert runner.calls == [] and result.quit_at == 2 and result.exit_code == 0
    assert "quit at step 2" in result.log_path.read_text()


def test_interrupted_walk_keeps_the_log_written_so_far(tmp_path: Path) -> None:
    root = tmp_path / "reports"
    runner = FakeRunner(root)
    answers: list[str] = ["done", "first note", "run", "", KeyboardInterrupt()]  # type: ignore[list-item]
    result = walk(
        parse_file(make_runbook(tmp_path)),
        report_root=root,
        ask=scripted(answers),
        runner=runner,
        console=quiet(),
    )
    assert result.interrupted and result.exit_code == 130
    text = result.log_path.read_text()
    assert "note: first note" in text and "ran `inv lab.status --json`" in text
    assert "**interrupted** at step 3" in text


def test_interrupt_during_a_command_is_logged(tmp_path: Path) -> None:
    root = tmp_path / "reports"

    def runner(argv: list[str], env: dict[str, str]) -> int:
        raise KeyboardInterrupt

    result = walk(
        parse_file(make_runbook(tmp_path)), report_root=root, yes=True, runner=runner, console=quiet()
    )
    text = result.log_path.read_text()
    assert result.exit_code == 130
    assert (
        "ran `inv lab.status --json`" in text
        and "interrupted after" in text
        and "**interrupted** at step 2" in text
    )


def test_no_terminal_input_stops_cleanly(tmp_path: Path) -> None:
    result = walk(
        parse_file(make_runbook(tmp_path)),
        report_root=tmp_path / "r",
        ask=scripted([]),
        runner=FakeRunner(tmp_path / "r"),
        console=quiet(),
    )
    assert result.exit_code == 0 and "input closed at step 1" in result.log_path.read_text()


def _cli(
    *args: str, env: dict[str, str] | None = None, timeout: int = 300
) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "invoke", *args],
        cwd=REPO_ROOT,
        capture_output=True,
        text=True,
        timeout=timeout,
        env={**os.environ, **(env or {})},
    )


def test_runbook_run_yes_from_the_command_line_runs_real_tasks(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    from drillbook.cli import program

    runbook = make_runbook(tmp_path, RUNBOOK.replace("inv lab.status --json", "inv runbook.show nope"))
    root = tmp_path / "reports"
    with pytest.raises(SystemExit) as exit_:  # the walk runs here; each task in a subprocess
        program.run(
            ["drillbook", "runbook.run", str(runbook), "--yes", "--report-dir", str(root), "--note", "ci"]
        )
    assert exit_.value.code == 1  # runbook.show nope exits 2
    logs = list((root / "incidents").glob("*-practice.md"))
    assert len(logs) == 1
    text = logs[0].read_text()
    assert "ran `inv runbook.show nope`" in text and "exit code 2" in text
    assert "ran `inv runbook.list`" in text and "exit code 0" in text
    assert "incident log:" in capsys.readouterr().out


@pytest.mark.lab
def test_runbook_run_yes_redis_outage_on_the_lab(lab: dict[str, object], tmp_path: Path) -> None:
    """The redis-outage runbook walked unattended on the lab: its tasks run, the log has each of them."""
    from drillbook.tasks import namespace

    if "chaos.kill-redis" not in namespace.task_names:
        pytest.skip("chaos.kill-redis is not in the namespace yet (the chaos capability has not landed)")
    rb = parse_file(RUNBOOKS / "redis-outage.md")
    assert not rb.errors, [p.render() for p in rb.errors]
    root = tmp_path / "reports"
    proc = _cli("runbook.run", "redis-outage", "--yes", "--report-dir", str(root), timeout=900)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    (log,) = (root / "incidents").glob("*-redis-outage.md")
    text = log.read_text()
    user = getpass.getuser()
    for step in rb.steps:
        assert f"## Step {step.number}: {step.title}" in text
        for cmd in step.commands:
            assert f"{user}: ran `{cmd.display()}`" in text
    assert text.count("exit code 0") == sum(len(s.commands) for s in rb.steps)
    journals = [Journal.read(p) for p in root.glob("*/journal.json")]
    assert journals and all(j.verdict == "pass" for j in journals), [(j.drill, j.verdict) for j in journals]
    for j in journals:
        assert Path(j.report_dir or "").name in text  # each drill's report path is in the log
    drills = {j.drill for j in journals}
    runs_the_drill = any(
        c.argv[0] == "chaos.kill-redis" and "--dry-run" not in c.argv for s in rb.steps for c in s.commands
    )
    if runs_the_drill:
        assert "chaos.kill-redis" in drills
