"""One command-line grammar: every task's options, walked from the namespace ``inv`` runs.

What a user relies on: ``-i`` is ``--inventory`` on every task (README's
``inv backup.restore-test -i inventory/staging`` once restored from a backup id
instead), ``-h`` is help, ``--debug`` is ``-d`` everywhere, every task that can
change a fleet has ``--allow-production``, and no number is parsed by Invoke
(whose typed options turn ``--rps abc`` into a traceback).
"""

from __future__ import annotations

import copy
import re

import pytest
from clirun import inv
from invoke.parser import Argument

from drillbook.core.paths import REPO_ROOT
from drillbook.tasks import build_namespace
from drillbook.tasks._cli import RESERVED_SHORT_FLAGS, SHORT_FLAGS, CliTask

NAMESPACE = build_namespace()

#: The tasks that change nothing on a fleet. A new task is guarded unless it is added here,
#: on purpose, together with ``writes=False`` on the task.
READ_ONLY = {
    "audit.hosts",
    "backup.list",
    "checklist",
    "checklist.sign",
    "deploy.status",
    "doctor",
    "init",  # writes the scaffold into a local folder, never to a fleet
    "lab.status",
    "load.report",
    "migrate.status",
    "report.html",
    "report.list",
    "report.metrics",
    "report.scorecard",
    "runbook.check",
    "runbook.index",
    "runbook.list",
    "runbook.show",
    "test",
    "test.all",
    "test.lint",
    "test.roles",
}


def _tasks() -> dict[str, CliTask]:
    found = {}
    for name in NAMESPACE.task_names:
        task = NAMESPACE[name]
        assert isinstance(task, CliTask), f"{name} is a plain Invoke task: use @cli_task or @drill_task"
        found[task.cli_name] = task
    return found


TASKS = _tasks()


def _arguments(task: CliTask) -> list[Argument]:
    """Invoke's own view of the task's options (on a copy: Invoke consumes the help dict)."""
    clone = copy.copy(task)
    clone.help = dict(task.help)
    return clone.get_arguments(ignore_unknown_help=True)


def test_the_namespace_has_the_tasks_the_issue_names() -> None:
    for name in ("lab.down", "load.run", "backup.restore-test", "chaos.recover", "runbook.run", "demo"):
        assert name in TASKS


@pytest.mark.parametrize("name", sorted(TASKS))
def test_every_task_speaks_the_one_grammar(name: str) -> None:
    task = TASKS[name]
    args = {a.name: a for a in _arguments(task)}
    shorts = {n: a.name for a in args.values() for n in a.names if len(n) == 1}
    for option, flag in SHORT_FLAGS.items():
        if option in args:
            assert set(args[option].names) == {option.replace("_", "-"), flag}, (name, args[option].names)
        assert shorts.get(flag, option) == option, f"{name}: -{flag} is --{shorts.get(flag)}, not --{option}"
    assert "h" not in shorts, f"{name}: -h is --{shorts.get('h')}; -h is help"
    for short, option in shorts.items():
        if option not in SHORT_FLAGS:
            assert short not in RESERVED_SHORT_FLAGS, f"{name}: --{option} takes -{short}"
    for arg in args.values():
        assert arg.kind in (str, bool, list), f"{name} --{arg.name}: parse numbers with float_option"
    if name in READ_ONLY:
        assert not task.writes and "allow_production" not in args, name
    else:
        assert task.writes and "allow_production" in args, f"{name} writes but has no --allow-production"
        assert args["allow_production"].names == ("allow-production",), "consent has no short flag"


def test_a_task_cannot_take_a_common_short_flag() -> None:
    from drillbook.tasks._cli import CommonOptions, cli_task

    def body(c: object, instance: str | None = None, *, opts: CommonOptions) -> None:
        """A task that wants -i for itself."""

    with pytest.raises(TypeError, match="reserved"):
        cli_task(common=("inventory",), short={"instance": "i"})(body)
    with pytest.raises(TypeError, match="reserved"):
        cli_task(common=("inventory",), short={"instance": "h"})(body)
    with pytest.raises(TypeError, match="writes"):
        cli_task(common=())(body)  # a writing task must know its inventory to guard it


def test_dash_i_is_the_inventory_on_the_command_line(tmp_path: object) -> None:
    """README's example: -i names the inventory on backup.restore-test, not a backup id."""
    ran = inv("backup.restore-test", "-i", "inventory/does-not-exist")
    assert ran.rc == 2, ran.describe()
    assert ran.err_lines == ["error: inventory inventory/does-not-exist does not exist"], ran.describe()
    ran = inv("load.run", "-h")
    assert ran.rc == 0 and "--headroom" in ran.stdout and "Usage" in ran.stdout, ran.describe()


def guarded_table() -> str:
    """The Markdown table docs/safety.md carries, generated from the namespace."""
    lines = ["| task | changes something | production |", "|---|---|---|"]
    for name in sorted(TASKS):
        writes = TASKS[name].writes
        lines.append(
            f"| `{name}` | {'yes' if writes else 'no'} | "
            f"{'refused without `--allow-production`' if writes else 'allowed'} |"
        )
    return "\n".join(lines)


def test_docs_safety_lists_the_guarded_tasks_as_the_code_does() -> None:
    doc = (REPO_ROOT / "docs" / "safety.md").read_text()
    block = re.search(r"<!-- guarded-tasks -->\n(.*?)\n<!-- /guarded-tasks -->", doc, re.S)
    assert block, "docs/safety.md has no <!-- guarded-tasks --> block"
    assert block.group(1).strip() == guarded_table(), "regenerate with:\n" + guarded_table()
