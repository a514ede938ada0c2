"""runbook.check: runbooks name real tasks with real options, drill tasks name real runbooks.

Most tests build a small runbook directory and a small Invoke namespace of their
own, so each mistake the checker must catch is staged on purpose and its file and
line asserted. One test runs the checker on the repository itself.
"""

from __future__ import annotations

import textwrap
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from invoke.collection import Collection
from invoke.context import Context
from invoke.tasks import task

from drillbook.core.drill import Drill
from drillbook.core.journal import Journal
from drillbook.core.paths import LAB_INVENTORY, REPO_ROOT, RUNBOOKS
from drillbook.report.scorecard import ReportSettings, build_scorecard, load_settings
from drillbook.runbooks import index
from drillbook.runbooks.check import CheckResult, check, runbook_drills
from drillbook.runbooks.model import commands_in, parse_file, parse_text
from drillbook.runbooks.tasks import TaskCatalog


# -- a namespace of our own --------------------------------------------------------
@task(help={"junit": "JUnit file.", "inventory": "Inventory.", "target_s": "Limit."})
def restore_test(
    c: Context, inventory: str | None = None, junit: str | None = None, target_s: float = 60
) -> None:
    """Restore the latest backup and time it. Runbook: runbooks/restore.md."""


@task(help={"junit": "JUnit file."})
def forgotten(c: Context, junit: str | None = None) -> None:
    """A drill task whose docstring names no runbook."""


@task(help={"json": "JSON.", "count": "How many."})
def status(c: Context, json_: bool = False, count: int = 1) -> None:
    """Show status."""


@task
def release(c: Context, version: str) -> None:
    """Build a release."""


def fake_namespace(with_forgotten: bool = False) -> Collection:
    backup = Collection("backup", restore_test)
    if with_forgotten:
        backup.add_task(forgotten)
    return Collection(backup, Collection("lab", status, release))


GOOD = """\
---
title: Restore from backup
severity: SEV1
alerts: [DataLoss]
tasks: [backup.restore-test, lab.status]
owner: db team
---
# Restore from backup

1. Check the service:

   ```shell
   inv lab.status --json
   ```

2. Restore and time it (see [the index](README.md)):

   ```shell
   $ DRILLBOOK_INVENTORY=inventory/lab inv backup.restore-test \\
       --target-s 30 --junit out.xml
   ```
"""


def write(directory: Path, name: str, text: str) -> Path:
    directory.mkdir(parents=True, exist_ok=True)
    path = directory / name
    path.write_text(textwrap.dedent(text))
    return path


@pytest.fixture()
def rbdir(tmp_path: Path) -> Path:
    d = tmp_path / "runbooks"
    write(d, "restore.md", GOOD)
    write(d, "README.md", "# Runbooks\n\n- [restore](restore.md)\n")
    index.write_index(d / "README.md", [parse_file(d / "restore.md")])
    return d


def errors_of(result: CheckResult) -> list[str]:
    return [p.render() for p in result.errors]


def test_a_good_runbook_passes(rbdir: Path) -> None:
    result = check(rbdir, fake_namespace(), drill_classes=[])
    assert result.ok, errors_of(result)
    assert result.runbooks == 1 and result.commands == 2 and result.drill_tasks == 1
    assert not result.warnings, [p.render() for p in result.warnings]


def test_missing_task_bad_option_and_bad_value_are_reported_with_file_and_line(rbdir: Path) -> None:
    bad = write(
        rbdir,
        "bad.md",
        """\
        ---
        title: Bad
        severity: SEV3
        alerts: []
        tasks: [lab.status, backup.restore-tset]
        owner: me
        ---
        1. Missing task:

           ```shell
           inv lab.stats
           ```
        2. Bad option, then a bad value, then a missing positional:

           ```bash
           inv lab.status --verbose
           inv lab.status --count many && inv lab.release
           ```
        3. Inline mention of `inv backup.nothing --x` in prose.
        """,
    )
    problems: dict[tuple[str, int], list[str]] = {}
    for p in check(rbdir, fake_namespace(), drill_classes=[]).errors:
        problems.setdefault((p.path.name, p.line), []).append(p.message)
    assert problems[("bad.md", 11)] == ["`inv lab.stats`: no task lab.stats (did you mean lab.status?)"]
    assert "task lab.status has no option --verbose" in problems[("bad.md", 16)][0]
    assert sorted(problems[("bad.md", 17)]) == [
        "`inv lab.release`: 'lab.release' did not receive required positional arguments: 'version'",
        "`inv lab.status --count many`: bad option value: invalid literal for int() with base 10: 'many'",
    ]
    assert "no task backup.nothing" in problems[("bad.md", 19)][0]
    assert "'backup.restore-tset', which is not a task" in problems[("bad.md", 5)][0]
    assert bad.exists()


def test_broken_front_matter_is_reported_with_file_and_line(rbdir: Path) -> None:
    write(rbdir, "yaml.md", "---\ntitle: Broken\nseverity: [SEV1\nowner: x\n---\n1. step\n")
    write(rbdir, "none.md", "# No front matter\n\n1. step\n")
    write(rbdir, "types.md", "---\ntitle: T\nseverity: SEV2\nalerts: {a: 1}\ntasks: []\n---\n1. step\n")
    problems = [p.render() for p in check(rbdir, fake_namespace(), drill_classes=[]).errors]
    assert any("yaml.md:4: error: front matter is not valid YAML" in p for p in problems), problems
    assert any("none.md:1: error: no YAML front matter" in p for p in problems), problems
    assert any("types.md:4: error: front matter 'alerts': must be a list of names" in p for p in problems)
    assert any("types.md:1: error: front matter has no 'owner'" in p for p in problems)
    assert any("types.md:5: error: front matter 'tasks': lists no task" in p for p in problems)


def test_broken_relative_link_is_reported(rbdir: Path) -> None:
    write(
        rbdir,
        "links.md",
        GOOD + "\n3. See [the other one](other.md#step-2), [site](https://example.org)"
        " and [top](#restore-from-backup).\n",
    )
    problems = [
        p.render()
        for p in check(rbdir, fake_namespace(), drill_classes=[]).errors
        if p.path.name == "links.md"
    ]
    assert problems == [f"{rbdir / 'links.md'}:23: error: link target other.md#step-2 does not exist"]


def test_drill_task_without_runbook_or_with_a_missing_one_fails(rbdir: Path) -> None:
    problems = [
        p.render() for p in check(rbdir, fake_namespace(with_forgotten=True), drill_classes=[]).errors
    ]
    assert any(
        "drill task backup.forgotten does not name its runbook" in p and "test_runbooks.py" in p
        for p in problems
    ), problems
    (rbdir / "restore.md").unlink()
    problems = [p.render() for p in check(rbdir, fake_namespace(), drill_classes=[]).errors]
    assert any(
        "drill task backup.restore-test names runbooks/restore.md, which does not exist" in p
        for p in problems
    ), problems


class RestoreDrill(Drill):
    name = "backup.restore-test"
    runbook = "runbooks/missing.md"


def test_a_drill_class_naming_a_missing_runbook_fails(rbdir: Path) -> None:
    problems = check(rbdir, fake_namespace(), drill_classes=[RestoreDrill]).problems
    assert [(p.level, p.message) for p in problems if p.path.name == "test_runbooks.py"] == [
        (
            "error",
            "drill backup.restore-test (RestoreDrill.runbook) names runbooks/missing.md, "
            "which does not exist",
        ),
        (
            "warning",
            "drill backup.restore-test names runbooks/missing.md but task backup.restore-test's "
            "docstring names runbooks/restore.md",
        ),
    ]


def test_index_out_of_date_fails_until_regenerated(rbdir: Path) -> None:
    new = GOOD.replace("alerts: [DataLoss]", "alerts: [DataLoss, BackupMissing]")
    write(rbdir, "restore.md", new)
    problems = [p.render() for p in check(rbdir, fake_namespace(), drill_classes=[]).errors]
    assert any("README.md" in p and "index is out of date" in p for p in problems), problems
    assert index.write_index(rbdir / "README.md", [parse_file(rbdir / "restore.md")])
    assert check(rbdir, fake_namespace(), drill_classes=[]).ok
    assert "| BackupMissing | [Restore from backup](restore.md) | SEV1 |" in (rbdir / "README.md").read_text()


def test_freshness_limits_must_name_drill_tasks(rbdir: Path) -> None:
    result = check(
        rbdir,
        fake_namespace(),
        drill_classes=[],
        freshness_drills=["backup.restore-test", "lab.status", "backup.nope"],
    )
    messages = [p.message for p in result.errors]
    assert any("'lab.status', which is not a drill task" in m for m in messages)
    assert any("'backup.nope', which is not a drill task" in m for m in messages)
    assert not any("restore-test" in m for m in messages)


def _journal(root: Path, drill: str, verdict: str, days_ago: float) -> None:
    at = datetime.now(UTC) - timedelta(days=days_ago)
    stamp = at.isoformat(timespec="milliseconds").replace("+00:00", "Z")
    j = Journal(
        drill=drill, inventory="inv", environment="lab", started_at=stamp, finished_at=stamp, verdict=verdict
    )  # type: ignore[arg-type]
    j.write(root / f"{at.strftime('%Y%m%dT%H%M%SZ')}-{drill}" / "journal.json")


def test_strict_fails_on_a_runbook_whose_drill_is_stale(rbdir: Path, tmp_path: Path) -> None:
    reports = tmp_path / "reports"
    settings = ReportSettings(freshness_days={"backup.restore-test": 7})
    catalog = TaskCatalog(fake_namespace())
    assert runbook_drills(parse_file(rbdir / "restore.md"), catalog) == ["backup.restore-test"]

    result = check(rbdir, fake_namespace(), drill_classes=[], scorecard=build_scorecard(reports, settings))
    assert [p.render() for p in result.errors] == [
        f"{rbdir / 'restore.md'}:1: error: drill backup.restore-test is stale: never passed (limit 7 days)"
    ]
    _journal(reports, "backup.restore-test", "pass", days_ago=9)
    _journal(reports, "backup.restore-test", "fail", days_ago=1)
    result = check(rbdir, fake_namespace(), drill_classes=[], scorecard=build_scorecard(reports, settings))
    assert "last passed 9d ago (limit 7 days)" in result.errors[0].message
    _journal(reports, "backup.restore-test", "pass", days_ago=2)
    assert check(rbdir, fake_namespace(), drill_classes=[], scorecard=build_scorecard(reports, settings)).ok
    assert check(rbdir, fake_namespace(), drill_classes=[]).ok  # not strict: staleness is not checked


# -- the model ---------------------------------------------------------------------
def test_steps_commands_and_placeholders_are_parsed(tmp_path: Path) -> None:
    rb = parse_text(
        GOOD + "\n3. Deploy:\n\n   ```shell\n   inv lab.release <VERSION>   # the bad one\n   ```\n"
        "\n## Afterwards\n\nNot a step.\n",
        tmp_path / "x.md",
    )
    assert [s.number for s in rb.steps] == [1, 2, 3]
    assert rb.steps[1].commands[0].argv == ("backup.restore-test", "--target-s", "30", "--junit", "out.xml")
    assert rb.steps[1].commands[0].line == 19  # the first line of a continued command
    assert rb.steps[2].commands[0].placeholders == ["<VERSION>"]
    assert "Not a step" not in rb.steps[2].text
    assert rb.meta.tasks == ["backup.restore-test", "lab.status"] and rb.meta.severity == "SEV1"
    assert [link.target for link in rb.links] == ["README.md"]


def test_shell_lines_split_into_commands() -> None:
    cmds = commands_in("A=1 inv lab.status --json && curl -s x | inv backup.restore-test; echo done", 3)
    assert [c.argv for c in cmds] == [("lab.status", "--json"), ("backup.restore-test",)]
    assert commands_in("echo 'unbalanced", 1) == []


# -- the repository ----------------------------------------------------------------
def test_the_repository_runbooks_pass_runbook_check() -> None:
    """runbooks/ against the real namespace: fails until every drill's runbook exists."""
    from drillbook.tasks import namespace

    settings = load_settings(LAB_INVENTORY)
    result = check(RUNBOOKS, namespace, freshness_drills=list(settings.freshness_days))
    assert result.ok, "\n".join(p.render(REPO_ROOT) for p in result.errors)


def test_runbook_check_on_the_real_namespace_fails_on_a_missing_task(tmp_path: Path) -> None:
    from drillbook.tasks import namespace

    d = tmp_path / "runbooks"
    write(d, "oops.md", GOOD.replace("inv lab.status --json", "inv chaos.kill-everything --now"))
    result = check(d, namespace)
    assert any(
        p.path.name == "oops.md" and p.line == 13 and "no task chaos.kill-everything" in p.message
        for p in result.errors
    ), [p.render() for p in result.errors]


def test_runbook_check_command_exits_1_listing_each_problem(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("COLUMNS", "250")
    d = tmp_path / "runbooks"
    write(d, "oops.md", GOOD.replace("inv lab.status --json", "inv lab.status --jsonn"))
    assert drillbook_cli("runbook.check", "--dir", str(d)) == 1
    captured = capsys.readouterr()
    assert (
        "oops.md:13: error: `inv lab.status --jsonn`: task lab.status has no option --jsonn" in captured.out
    )
    assert "runbook.check:" in captured.err and "errors" in captured.err


def drillbook_cli(*args: str) -> int:
    """Run the drillbook program in this process (as ``inv`` would) and return its exit code."""
    from drillbook.cli import program

    try:
        program.run(["drillbook", *args])
    except SystemExit as exc:
        return int(exc.code or 0)
    return 0
