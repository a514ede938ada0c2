"""Runbooks: Markdown files whose steps name drillbook tasks, checked against the namespace and walkable.

- :mod:`~drillbook.runbooks.model` parses a runbook (front matter, steps, commands, links);
- :mod:`~drillbook.runbooks.tasks` knows the tasks and validates an ``inv`` line with Invoke's parser;
- :mod:`~drillbook.runbooks.check` is ``runbook.check``; :mod:`~drillbook.runbooks.index` the README index;
- :mod:`~drillbook.runbooks.walk` is ``runbook.run`` and its incident log.
"""

from drillbook.runbooks.check import CheckResult, check
from drillbook.runbooks.model import Problem, Runbook, RunbookError, load, parse_file
from drillbook.runbooks.walk import WalkResult, walk

__all__ = [
    "CheckResult",
    "Problem",
    "Runbook",
    "RunbookError",
    "WalkResult",
    "check",
    "load",
    "parse_file",
    "walk",
]
