"""What a runbook may name: the tasks of the Invoke namespace and the options each accepts.

A command is validated by Invoke's own parser (the very code that runs ``inv``),
fed with the namespace's parser contexts, so a flag, an inverse ``--no-x`` flag,
a positional argument or a value of the wrong type is judged exactly as ``inv``
would judge it. A *drill task* is a task that accepts ``--junit``: every drill
task takes the common drill options (drillbook/tasks/_cli.py ``helps()``), and
``--junit`` is the one no other kind of task has a use for.
"""

from __future__ import annotations

import difflib
import inspect
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from invoke.collection import Collection
from invoke.exceptions import ParseError
from invoke.parser.context import ParserContext
from invoke.parser.parser import Parser
from invoke.program import Program

from drillbook.runbooks.model import Command, is_placeholder

DRILL_MARKER_OPTION = "junit"
RUNBOOK_REF = re.compile(r"runbooks/[\w.-]+\.md")


@dataclass(frozen=True)
class TaskInfo:
    """One task of the namespace, as the checker needs it."""

    name: str
    aliases: tuple[str, ...]
    options: tuple[str, ...]  # argument names, e.g. ("inventory", "junit")
    flags: tuple[str, ...]  # every accepted flag, e.g. ("--inventory", "-i", "--no-quiet")
    doc: str
    source: Path | None
    line: int

    @property
    def is_drill(self) -> bool:
        """A drill task: it takes ``--junit`` (see the module docstring)."""
        return DRILL_MARKER_OPTION in self.options

    @property
    def runbook_refs(self) -> list[str]:
        """``runbooks/x.md`` paths named in the help text, in order."""
        return list(dict.fromkeys(RUNBOOK_REF.findall(self.doc)))


@dataclass(frozen=True)
class Verdict:
    """The outcome of validating one command: the tasks it runs, or why it would not run."""

    tasks: tuple[str, ...]
    error: str | None = None


class TaskCatalog:
    """The tasks of a namespace and a validator for ``inv`` command lines."""

    def __init__(self, namespace: Collection) -> None:
        self.namespace = namespace
        self._contexts = namespace.to_contexts(ignore_unknown_help=True)
        program = Program()
        self._initial = ParserContext(args=[*program.core_args(), *program.task_args()])
        self.tasks: dict[str, TaskInfo] = {}
        self._alias: dict[str, str] = {}
        self._verdicts: dict[tuple[str, ...], Verdict] = {}
        for ctx in self._contexts:
            info = _task_info(namespace, ctx)
            self.tasks[info.name] = info
            for alias in (info.name, *info.aliases):
                self._alias[alias] = info.name

    def resolve(self, name: str) -> str | None:
        """The primary name of a task or alias (``demo`` -> ``demo.demo``), None when unknown."""
        return self._alias.get(name)

    def suggest(self, name: str) -> str:
        """`` (did you mean X?)`` for a close task name or alias, else an empty string."""
        close = difflib.get_close_matches(name, list(self._alias), n=1, cutoff=0.6)
        return f" (did you mean {close[0]}?)" if close else ""

    @property
    def drill_tasks(self) -> list[TaskInfo]:
        """Every drill task of the namespace."""
        return [t for t in self.tasks.values() if t.is_drill]

    def validate(self, command: Command) -> Verdict:
        """Parse ``command`` as ``inv`` would; placeholders count as valid values."""
        key = tuple(command.argv)
        if key not in self._verdicts:
            self._verdicts[key] = self._validate([_fill(word) for word in command.argv])
        return self._verdicts[key]

    def _validate(self, argv: list[str]) -> Verdict:
        parser = Parser(contexts=self._contexts, initial=self._initial)
        try:
            result = parser.parse_argv(argv)
        except ParseError as exc:
            return Verdict((), self._explain(exc))
        except (ValueError, TypeError) as exc:
            return Verdict((), f"bad option value: {exc}")
        names = tuple(self._alias.get(str(ctx.name), str(ctx.name)) for ctx in result if ctx.name)
        return Verdict(names)

    def _explain(self, exc: ParseError) -> str:
        message = str(exc)
        unknown = re.match(r"No idea what '(.*)' is!", message)
        ctx = exc.context
        if unknown:
            word = unknown.group(1)
            if word.startswith("-") and ctx is not None and ctx.name:
                task = self._alias.get(str(ctx.name), str(ctx.name))
                known = ", ".join(sorted(f for f in ctx.flags if f.startswith("--")))
                return f"task {task} has no option {word} (it has: {known})"
            if word.startswith("-"):
                return f"{word} is not an option of inv itself (task options go after the task name)"
            return f"no task {word}{self.suggest(word)}"
        task = self._alias.get(str(ctx.name), str(ctx.name)) if ctx is not None and ctx.name else "inv"
        return message if f"'{task}'" in message else f"{task}: {message}"


def _fill(word: str) -> str:
    """A placeholder (``<VERSION>``) stands for some value: give the parser one that casts to anything."""
    if is_placeholder(word):
        return "0"
    flag, eq, value = word.partition("=")
    if eq and flag.startswith("-") and is_placeholder(value):
        return f"{flag}=0"
    return word


def _task_info(namespace: Collection, ctx: ParserContext) -> TaskInfo:
    name = str(ctx.name)
    task: Any = namespace[name]
    body = getattr(task, "body", task)
    doc = inspect.getdoc(body) or ""
    source: Path | None = None
    line = 0
    try:
        source_file = inspect.getsourcefile(body)
        source = Path(source_file) if source_file else None
        line = inspect.getsourcelines(body)[1]
    except (OSError, TypeError):
        pass
    return TaskInfo(
        name=name,
        aliases=tuple(str(a) for a in ctx.aliases),
        options=tuple(sorted({str(a.name) for a in ctx.args.values()})),
        flags=tuple(str(f) for f in (*ctx.flags, *ctx.inverse_flags)),
        doc=doc,
        source=source,
        line=line,
    )
