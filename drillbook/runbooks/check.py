"""``runbook.check``: a runbook never names a task that does not exist, and every drill has a runbook.

Checked, each problem reported with file and line:

- front matter present and valid (title, severity, alerts, tasks, owner);
- every ``inv X.Y --opt`` in a runbook (shell blocks and inline code) parses with
  Invoke's own parser against the real namespace: the task exists, the options
  exist, values have the right type, required positionals are given;
- every task listed in the front matter exists;
- every relative link resolves;
- every drill task (one that accepts ``--junit``) names ``runbooks/<file>.md`` in
  its docstring and that file exists; every drill class's ``runbook`` exists;
- the index (runbooks/README.md) is current;
- with ``strict``: no runbook's drill is stale (the caller hands in a :class:`Freshness`,
  in practice the report capability's scorecard, so runbooks never import report).
"""

from __future__ import annotations

import inspect
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Protocol

from invoke.collection import Collection

from drillbook.core.drill import Drill, DrillClass
from drillbook.runbooks import index
from drillbook.runbooks.model import INDEX_NAME, Problem, Runbook, load_all, parse_file
from drillbook.runbooks.tasks import TaskCatalog


class DrillFreshness(Protocol):
    """How fresh one drill's evidence is: why it is stale, or None."""

    @property
    def stale_reason(self) -> str | None:
        """Why the drill is stale, or None when it is fresh (or has no freshness limit)."""


class Freshness(Protocol):
    """Answers "is this drill stale?" (the report capability's ``Scorecard`` is one).

    A protocol, not an import: runbooks and report are capabilities side by side,
    and the tasks layer hands the scorecard in.
    """

    def status(self, drill: str) -> DrillFreshness:
        """The freshness of ``drill`` (one that never ran is judged by its limit too)."""


@dataclass
class CheckResult:
    """Everything ``runbook.check`` found, and what it looked at (for its summary line)."""

    problems: list[Problem] = field(default_factory=list)
    runbooks: int = 0
    commands: int = 0
    drill_tasks: int = 0

    @property
    def errors(self) -> list[Problem]:
        """The problems that fail the check."""
        return [p for p in self.problems if p.level == "error"]

    @property
    def warnings(self) -> list[Problem]:
        """The problems reported without failing the check."""
        return [p for p in self.problems if p.level == "warning"]

    @property
    def ok(self) -> bool:
        """No errors (warnings allowed)."""
        return not self.errors


def check(
    runbooks_dir: Path,
    namespace: Collection,
    *,
    scorecard: Freshness | None = None,
    freshness_drills: list[str] | None = None,
    inventory_name: str = "inventory",
    drill_classes: Sequence[DrillClass] | None = None,
) -> CheckResult:
    """Check every runbook in ``runbooks_dir`` against ``namespace``.

    ``scorecard`` turns on the strict freshness check. ``freshness_drills`` are the
    drills the inventory gives a freshness limit; each must be a drill task.
    ``drill_classes`` are the Drill subclasses whose ``runbook`` is checked
    (default: every one defined in drillbook that a task of the same name runs).
    """
    catalog = TaskCatalog(namespace)
    runbooks = load_all(runbooks_dir)
    result = CheckResult(runbooks=len(runbooks))
    for rb in runbooks:
        result.problems.extend(rb.problems)
        result.problems.extend(_check_tasks(rb, catalog))
        result.problems.extend(_check_links(rb))
        result.commands += len(rb.commands)
    result.problems.extend(_check_index(runbooks_dir, runbooks, catalog))
    classes = _drill_classes() if drill_classes is None else list(drill_classes)
    drill_problems, result.drill_tasks = _check_drill_tasks(runbooks_dir, catalog, classes)
    result.problems.extend(drill_problems)
    if freshness_drills is not None:
        drills = {t.name for t in catalog.drill_tasks}
        for name in freshness_drills:
            if catalog.resolve(name) not in drills:
                result.problems.append(
                    Problem(
                        Path(inventory_name),
                        0,
                        f"report_freshness_days names {name!r}, which is not a drill task"
                        f"{catalog.suggest(name)}",
                    )
                )
    if scorecard is not None:
        for rb in runbooks:
            result.problems.extend(_check_fresh(rb, catalog, scorecard))
    result.problems.sort(key=lambda p: (str(p.path), p.line))
    return result


def _check_tasks(rb: Runbook, catalog: TaskCatalog) -> Iterator[Problem]:
    used: set[str] = set()
    for cmd in rb.commands:
        verdict = catalog.validate(cmd)
        if verdict.error:
            yield Problem(rb.path, cmd.line, f"`{cmd.display()}`: {verdict.error}")
        used.update(verdict.tasks)
    listed: set[str] = set()
    for name in rb.meta.tasks:
        resolved = catalog.resolve(name)
        if resolved is None:
            yield Problem(
                rb.path,
                rb.line_of("tasks"),
                f"front matter 'tasks' names {name!r}, which is not a task{catalog.suggest(name)}",
            )
        else:
            listed.add(resolved)
    if rb.meta.tasks:
        for cmd in (c for step in rb.steps for c in step.commands):
            for name in catalog.validate(cmd).tasks:
                if name not in listed:
                    yield Problem(
                        rb.path, cmd.line, f"step runs {name}, not listed in front matter 'tasks'", "warning"
                    )
        for name in sorted(listed - used):
            yield Problem(
                rb.path, rb.line_of("tasks"), f"front matter lists {name}, but no step runs it", "warning"
            )


def _check_links(rb: Runbook) -> Iterator[Problem]:
    for link in rb.links:
        if not link.is_relative or not link.path_part:
            continue
        target = (rb.path.parent / link.path_part).resolve()
        if not target.exists():
            yield Problem(rb.path, link.line, f"link target {link.target} does not exist")


def _check_index(runbooks_dir: Path, runbooks: list[Runbook], catalog: TaskCatalog) -> Iterator[Problem]:
    readme = runbooks_dir / INDEX_NAME
    if not readme.exists():
        yield Problem(readme, 0, "no runbook index: run `inv runbook.index` to create it")
        return
    parsed = parse_file(readme, front_matter=False)
    yield from parsed.problems
    yield from _check_links(parsed)
    for cmd in parsed.commands:
        verdict = catalog.validate(cmd)
        if verdict.error:
            yield Problem(readme, cmd.line, f"`{cmd.display()}`: {verdict.error}")
    current, line = index.is_current(readme, runbooks)
    if line == 0:
        yield Problem(readme, 0, "no generated index block: run `inv runbook.index`")
    elif not current:
        yield Problem(
            readme, line, "index is out of date with the runbooks' front matter: run `inv runbook.index`"
        )


def _check_drill_tasks(
    runbooks_dir: Path, catalog: TaskCatalog, classes: list[DrillClass]
) -> tuple[list[Problem], int]:
    problems: list[Problem] = []
    drills = catalog.drill_tasks
    for task in drills:
        where = task.source or Path(task.name)
        refs = task.runbook_refs
        if not refs:
            problems.append(
                Problem(
                    where,
                    task.line,
                    f"drill task {task.name} does not name its runbook (runbooks/<name>.md) in its docstring",
                )
            )
        for ref in refs:
            if not (runbooks_dir / Path(ref).name).is_file():
                problems.append(
                    Problem(where, task.line, f"drill task {task.name} names {ref}, which does not exist")
                )
    for cls in classes:
        task_name = catalog.resolve(cls.name)
        if not cls.runbook or task_name is None:
            continue  # a drill no task of this namespace runs under its own name
        reported = cls.runbook in catalog.tasks[task_name].runbook_refs
        if not reported and not (runbooks_dir / Path(cls.runbook).name).is_file():
            problems.append(
                Problem(
                    _source(cls),
                    _line(cls),
                    f"drill {cls.name} ({cls.__name__}.runbook) names {cls.runbook}, which does not exist",
                )
            )
        refs = catalog.tasks[task_name].runbook_refs
        if refs and cls.runbook not in refs:
            problems.append(
                Problem(
                    _source(cls),
                    _line(cls),
                    f"drill {cls.name} names {cls.runbook} but task {task_name}'s docstring names "
                    + ", ".join(refs),
                    "warning",
                )
            )
    return problems, len(drills)


def _drill_classes() -> list[DrillClass]:
    """Drill subclasses defined in drillbook itself (tests define their own, not checked)."""
    seen: list[DrillClass] = []
    stack: list[DrillClass] = [*Drill.__subclasses__()]
    while stack:
        cls = stack.pop()
        stack.extend(cls.__subclasses__())
        if cls.__module__.startswith("drillbook.") and cls not in seen:
            seen.append(cls)
    return sorted(seen, key=lambda c: (c.__module__, c.__name__))


def _source(cls: type) -> Path:
    try:
        return Path(inspect.getsourcefile(cls) or cls.__module__)
    except TypeError:
        return Path(cls.__module__)


def _line(cls: type) -> int:
    try:
        return inspect.getsourcelines(cls)[1]
    except (OSError, TypeError):
        return 0


def runbook_drills(rb: Runbook, catalog: TaskCatalog) -> list[str]:
    """The drill tasks a runbook rehearses: the ones it runs or lists, and the ones naming it."""
    names: list[str] = []
    for name in rb.meta.tasks:
        resolved = catalog.resolve(name)
        if resolved:
            names.append(resolved)
    for cmd in rb.commands:
        names.extend(catalog.validate(cmd).tasks)
    for task in catalog.drill_tasks:
        if any(Path(ref).name == rb.path.name for ref in task.runbook_refs):
            names.append(task.name)
    drills = {t.name for t in catalog.drill_tasks}
    return [n for n in dict.fromkeys(names) if n in drills]


def _check_fresh(rb: Runbook, catalog: TaskCatalog, card: Freshness) -> Iterator[Problem]:
    for drill in runbook_drills(rb, catalog):
        reason = card.status(drill).stale_reason
        if reason is not None:
            yield Problem(rb.path, 1, f"drill {drill} is stale: {reason}")
