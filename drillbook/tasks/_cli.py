"""What every task shares: common options, inventory loading, errors to one line, exit codes."""

from __future__ import annotations

import inspect
import sys
import traceback
from collections.abc import Callable, Iterable, Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass, fields
from pathlib import Path
from typing import Any, TypeVar

from invoke.exceptions import Exit
from invoke.tasks import Task

from drillbook.core.console import err
from drillbook.core.drill import AnyDrill, DrillContext, execute, print_summary
from drillbook.core.errors import ConfigError, DrillbookError
from drillbook.core.inventory import Inventory, load_inventory
from drillbook.core.journal import Journal
from drillbook.core.paths import default_report_root

INVENTORY_HELP = "Inventory directory or file (default: $DRILLBOOK_INVENTORY, else inventory/lab)."
COMMON_HELP = {
    "inventory": INVENTORY_HELP,
    "report_dir": "Where reports go (default: $DRILLBOOK_REPORT_DIR, else reports/).",
    "junit": "Also write the verdict as JUnit XML to this file, for CI systems.",
    "debug": "Show tracebacks instead of one-line errors.",
    "quiet": "Only print the verdict, not progress.",
}


@dataclass(frozen=True)
class CommonOptions:
    """The options every drill task has (help in COMMON_HELP), handed to its body as ``opts``."""

    inventory: str | None = None
    report_dir: str | None = None
    junit: str | None = None
    debug: bool = False
    quiet: bool = False


COMMON_OPTIONS = tuple(f.name for f in fields(CommonOptions))
_COMMON_PARAMETERS = {
    f.name: inspect.Parameter(f.name, inspect.Parameter.KEYWORD_ONLY, default=f.default, annotation=f.type)
    for f in fields(CommonOptions)
}


def helps(common: Iterable[str] = COMMON_OPTIONS, /, **specific: str) -> dict[str, str]:
    """Task-specific option help plus that of the common options the task has."""
    return {**{name: COMMON_HELP[name] for name in common}, **specific}


class DrillTask(Task[Callable[..., None]]):
    """A task whose body declares only its own options and takes the common ones as ``opts``.

    Invoke builds the command line from :meth:`argspec`: the body's own parameters, then
    the common options (keyword, CommonOptions' defaults, in its order), so the flags and
    their automatic short flags are those the options get when written out in the body.
    The body stays the task's own function (its file and line are what runbook.check shows).
    """

    def __init__(self, body: Callable[..., None], *, common: Iterable[str], **task_kwargs: Any) -> None:
        wanted = set(common)
        self.common = tuple(name for name in COMMON_OPTIONS if name in wanted)
        if wanted - set(self.common) or "opts" not in inspect.signature(body).parameters:
            raise TypeError(f"{body.__name__}: needs a keyword opts and common options of {COMMON_OPTIONS}")
        super().__init__(body, **task_kwargs)

    def argspec(self, body: Callable[..., Any]) -> inspect.Signature:
        sig = super().argspec(body)
        own = [p for p in sig.parameters.values() if p.name != "opts"]
        return sig.replace(parameters=[*own, *(_COMMON_PARAMETERS[name] for name in self.common)])

    def __call__(self, *args: Any, **kwargs: Any) -> Callable[..., None]:  # Invoke's annotation
        common = {name: kwargs.pop(name) for name in self.common if name in kwargs}
        return super().__call__(*args, opts=CommonOptions(**common), **kwargs)


def drill_task(
    *, help: Mapping[str, str] | None = None, common: Iterable[str] = COMMON_OPTIONS, **task_kwargs: Any
) -> Callable[[Callable[..., None]], DrillTask]:
    """``@task`` for a drill task: ``help`` covers its own options, COMMON_HELP is added.

    The body declares its own options and a keyword ``opts: CommonOptions``; ``common``
    narrows the common options to a subset (the others keep their defaults in ``opts``),
    ``help`` may override a common option's help, the rest goes to Invoke's ``Task``.
    """
    common = tuple(common)

    def decorate(body: Callable[..., None]) -> DrillTask:
        return DrillTask(body, common=common, help=helps(common, **(help or {})), **task_kwargs)

    return decorate


N = TypeVar("N", int, float)


def _option(
    option: str, value: str | None, convert: Callable[[str], N], what: str, minimum: float | None
) -> N | None:
    if value is None or value == "":
        return None
    try:
        number = convert(value)
    except ValueError:
        raise ConfigError(f"--{option} must be {what}, got {value!r}") from None
    if minimum is not None and number < minimum:
        raise ConfigError(f"--{option} must be >= {minimum:g}, got {value}")
    return number


def float_option(option: str, value: str | None, *, minimum: float | None = None) -> float | None:
    """An optional numeric option: Invoke hands options without a typed default over as strings."""
    return _option(option, value, float, "a number", minimum)


def int_option(option: str, value: str | None, *, minimum: int | None = None) -> int | None:
    """An optional whole-number option (see float_option)."""
    return _option(option, value, int, "a whole number", minimum)


@contextmanager
def cli_errors(debug: bool = False) -> Iterator[None]:
    """Turn drillbook's errors into one red line and an exit code; a traceback only with --debug."""
    try:
        yield
    except DrillbookError as exc:
        if debug:
            traceback.print_exc()
        err.print(f"[red]error:[/red] {exc}", highlight=False)
        raise Exit(code=exc.exit_code) from None
    except KeyboardInterrupt:
        err.print("[yellow]interrupted[/yellow]")
        raise Exit(code=130) from None


def open_inventory(path: str | None) -> Inventory:
    return load_inventory(path)


def run_drill(
    drill: AnyDrill, inv: Inventory, opts: CommonOptions, *, exit_on_verdict: bool = True
) -> Journal:
    """Execute a drill, print its summary, and exit 0 (pass), 1 (fail), 2 (error) or 130 (interrupted)."""
    ctx = DrillContext(
        inventory=inv,
        report_root=Path(opts.report_dir) if opts.report_dir else default_report_root(),
        junit=Path(opts.junit) if opts.junit else None,
        quiet=opts.quiet,
        debug=opts.debug,
    )
    journal = execute(drill, ctx)
    print_summary(journal, Path(journal.report_dir) if journal.report_dir else None)
    if exit_on_verdict and journal.exit_code:
        sys.stdout.flush()
        raise Exit(code=journal.exit_code)
    return journal
