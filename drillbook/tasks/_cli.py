"""What every task shares: one command-line grammar, the production guard, errors to one line.

Every task of the namespace is a :class:`CliTask` (``@cli_task`` / ``@drill_task``), so
the rules below hold for all of them by construction, and tests/test_cli_grammar.py
walks the namespace to prove it:

- The common options have one long and one short name everywhere (:data:`SHORT_FLAGS`):
  ``-i/--inventory``, ``-r/--report-dir``, ``-j/--junit``, ``-d/--debug``, ``-q/--quiet``.
  Invoke's automatic short flags are off: they made ``-i`` mean ``--id``, ``--into``,
  ``--ini`` or ``--instance`` depending on the task, and ``-h`` mean ``--headroom``.
  A task-specific option gets a short flag only when the task asks for one, and never
  one of the common ones or ``-h`` (help).
- A task changes something unless it says ``writes=False``: a writing task gets
  ``--allow-production`` and refuses an inventory with ``drillbook_environment:
  production`` without it (drillbook/core/guard.py), in one line, exit 2, before its
  body runs (no lock, no report folder, no Ansible). A task added later is guarded
  unless its author opts out. ``--dry-run`` changes nothing, so it is not refused
  (chaos prints its plan with the refusal line).
- Numbers are parsed here (:func:`float_option`, :func:`int_option`), never by Invoke
  (whose typed defaults turn ``--rps abc`` into a traceback): non-finite, out-of-range
  and absurd values are refused with one line.
- drillbook's errors, and OS errors such as an unwritable output path, become one line
  on stderr and exit 2; a traceback only with ``--debug``.
"""

from __future__ import annotations

import inspect
import math
import os
import sys
import traceback
from collections.abc import Callable, Iterable, Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass, fields
from pathlib import Path
from typing import TYPE_CHECKING, Any, TypeVar

from invoke.exceptions import Exit
from invoke.tasks import Task

from drillbook.core.console import err, plain
from drillbook.core.errors import ConfigError, DrillbookError
from drillbook.core.paths import default_report_root

if TYPE_CHECKING:  # the lifecycle, Ansible's inventory and pydantic load when a task runs, not at --list
    from drillbook.core.drill import AnyDrill
    from drillbook.core.inventory import Inventory
    from drillbook.core.journal import Journal

INVENTORY_HELP = "Inventory directory or file (default: $DRILLBOOK_INVENTORY, else inventory/lab)."
COMMON_HELP = {
    "inventory": INVENTORY_HELP,
    "report_dir": "Where reports go (default: $DRILLBOOK_REPORT_DIR, else reports/).",
    "junit": "Also write the verdict as JUnit XML to this file, for CI systems.",
    "debug": "Show tracebacks instead of one-line errors.",
    "quiet": "Only print the verdict, not progress.",
    "allow_production": "Run although the inventory says drillbook_environment: production.",
}

#: The one short flag of each common option, the same on every task that has the option.
SHORT_FLAGS = {"inventory": "i", "report_dir": "r", "junit": "j", "debug": "d", "quiet": "q"}
#: Short flags no task-specific option may take: the common ones, and -h (Invoke's --help).
RESERVED_SHORT_FLAGS = frozenset({*SHORT_FLAGS.values(), "h"})


@dataclass(frozen=True)
class CommonOptions:
    """The options tasks share (help in COMMON_HELP), handed to a task's body as ``opts``."""

    inventory: str | None = None
    report_dir: str | None = None
    junit: str | None = None
    debug: bool = False
    quiet: bool = False
    allow_production: bool = False


COMMON_OPTIONS = tuple(f.name for f in fields(CommonOptions))
#: The common options of a drill task (allow_production is added to every writing task).
DRILL_OPTIONS = ("inventory", "report_dir", "junit", "debug", "quiet")
_COMMON_PARAMETERS = {
    f.name: inspect.Parameter(f.name, inspect.Parameter.KEYWORD_ONLY, default=f.default, annotation=f.type)
    for f in fields(CommonOptions)
}


def helps(common: Iterable[str] = DRILL_OPTIONS, /, **specific: str) -> dict[str, str]:
    """Task-specific option help plus that of the common options the task has."""
    return {**{name: COMMON_HELP[name] for name in common}, **specific}


class CliTask(Task[Callable[..., None]]):
    """A task whose body declares only its own options and takes the common ones as ``opts``.

    Invoke builds the command line from :meth:`argspec`: the body's own parameters, then
    the common options (keyword, CommonOptions' defaults, in its order). Short flags come
    from :data:`SHORT_FLAGS` and the task's own ``short`` map only (see the module
    docstring). The body stays the task's own function (its file and line are what
    runbook.check shows).
    """

    def __init__(
        self,
        body: Callable[..., None],
        *,
        common: Iterable[str],
        writes: bool,
        short: Mapping[str, str],
        **task_kwargs: Any,
    ) -> None:
        wanted = set(common) | ({"allow_production"} if writes else set())
        self.common = tuple(name for name in COMMON_OPTIONS if name in wanted)
        self.writes = writes
        where = f"{body.__module__}.{body.__name__}"
        if wanted - set(self.common) or "opts" not in inspect.signature(body).parameters:
            raise TypeError(f"{where}: needs a keyword opts and common options of {COMMON_OPTIONS}")
        if writes and "inventory" not in self.common:
            raise TypeError(
                f"{where}: a task that writes needs --inventory (say writes=False if it does not)"
            )
        taken = {name: flag for name, flag in short.items() if flag in RESERVED_SHORT_FLAGS or len(flag) != 1}
        if taken:
            raise TypeError(f"{where}: short flags {taken} are reserved for common options or help")
        self.short = {**{n: SHORT_FLAGS[n] for n in self.common if n in SHORT_FLAGS}, **short}
        task_kwargs["auto_shortflags"] = False
        super().__init__(body, **task_kwargs)

    @property
    def cli_name(self) -> str:
        """The dotted name ``inv`` knows the task by (``backup.restore-test``, ``demo``)."""
        module = self.body.__module__.rsplit(".", 1)[-1].replace("_", "-")
        name = (self.name or self.body.__name__).strip("_").replace("_", "-")
        return module if self.is_default else f"{module}.{name}"

    def argspec(self, body: Callable[..., Any]) -> inspect.Signature:
        sig = super().argspec(body)
        own = [p for p in sig.parameters.values() if p.name != "opts"]
        return sig.replace(parameters=[*own, *(_COMMON_PARAMETERS[name] for name in self.common)])

    def arg_opts(self, name: str, default: str, taken_names: set[str]) -> dict[str, Any]:
        opts = super().arg_opts(name, default, taken_names)
        if name in self.short and self.short[name] not in opts["names"]:
            opts["names"] = [*opts["names"], self.short[name]]
        return opts

    def __call__(self, *args: Any, **kwargs: Any) -> Callable[..., None]:  # Invoke's annotation
        common = CommonOptions(**{name: kwargs.pop(name) for name in self.common if name in kwargs})
        if self.writes and not kwargs.get("dry_run"):
            with cli_errors(common.debug):
                inv = open_inventory(common.inventory)
                from drillbook.core.guard import give_consent, refuse_production

                refuse_production(inv, common.allow_production, self.cli_name)
                if common.allow_production:
                    give_consent(inv)  # for the drills and tasks this task runs in turn
        return super().__call__(*args, opts=common, **kwargs)


def cli_task(
    *,
    help: Mapping[str, str] | None = None,
    common: Iterable[str] = (),
    writes: bool = True,
    short: Mapping[str, str] | None = None,
    **task_kwargs: Any,
) -> Callable[[Callable[..., None]], CliTask]:
    """``@task`` for every drillbook task: ``help`` covers its own options, COMMON_HELP is added.

    The body declares its own options and a keyword ``opts: CommonOptions``; ``common``
    names the common options it has (the others keep their defaults in ``opts``).
    ``writes`` (the default) means the task may change the fleet, so it gets the
    production guard; a task that only reads says ``writes=False``. ``short`` gives a
    task-specific option a short flag. ``help`` may override a common option's help;
    the rest goes to Invoke's ``Task``.
    """
    common = tuple(common)
    help_common = (*common, "allow_production") if writes else common

    def decorate(body: Callable[..., None]) -> CliTask:
        return CliTask(
            body,
            common=common,
            writes=writes,
            short=dict(short or {}),
            help=helps(help_common, **(help or {})),
            **task_kwargs,
        )

    return decorate


def drill_task(
    *, help: Mapping[str, str] | None = None, common: Iterable[str] = DRILL_OPTIONS, **task_kwargs: Any
) -> Callable[[Callable[..., None]], CliTask]:
    """:func:`cli_task` with the common drill options (inventory, report dir, JUnit, debug, quiet)."""
    return cli_task(help=help, common=common, **task_kwargs)


N = TypeVar("N", int, float)

#: Values above these are typos, not plans (a rate of 1e9 req/s, a 30-day chaos fault).
ABSURD = 1e7


def _option(
    option: str,
    value: str | None,
    convert: Callable[[str], N],
    what: str,
    minimum: float | None,
    maximum: float | None,
    above: float | None,
) -> N | None:
    if value is None or value == "":
        return None
    try:
        number = convert(str(value).strip())
    except (ValueError, OverflowError):
        raise ConfigError(f"--{option} must be {what}, got {value!r}") from None
    if not math.isfinite(number):
        raise ConfigError(f"--{option} must be a finite number, got {value!r}")
    if above is not None and number <= above:
        raise ConfigError(f"--{option} must be > {above:g}, got {value}")
    if minimum is not None and number < minimum:
        raise ConfigError(f"--{option} must be >= {minimum:g}, got {value}")
    limit = ABSURD if maximum is None else maximum
    if number > limit:
        raise ConfigError(f"--{option} must be <= {limit:g}, got {value}")
    return number


def float_option(
    option: str,
    value: str | None,
    *,
    minimum: float | None = None,
    maximum: float | None = None,
    above: float | None = None,
) -> float | None:
    """An optional numeric option, None when not given.

    Options are declared ``str | None`` so Invoke hands them over unparsed: its typed
    defaults raise a traceback on ``abc``. Refused, in one line: not a number, nan/inf,
    ``< minimum``, ``<= above``, ``> maximum`` (default :data:`ABSURD`).
    """
    return _option(option, value, float, "a number", minimum, maximum, above)


def int_option(
    option: str, value: str | None, *, minimum: int | None = None, maximum: int | None = None
) -> int | None:
    """An optional whole-number option (see float_option)."""
    return _option(option, value, int, "a whole number", minimum, maximum, None)


@contextmanager
def cli_errors(debug: bool = False) -> Iterator[None]:
    """Turn drillbook's errors into one red line and an exit code; a traceback only with --debug.

    An OSError (an unwritable or missing output path, a full disk) is the user's to fix,
    so it gets the same one line and exit 2.
    """
    try:
        yield
    except DrillbookError as exc:
        if debug:
            traceback.print_exc()
        err.print(f"[red]error:[/red] {plain(str(exc))}", highlight=False)
        raise Exit(code=exc.exit_code) from None
    except OSError as exc:
        if debug:
            traceback.print_exc()
        where = f": {exc.filename}" if exc.filename else ""
        err.print(f"[red]error:[/red] {plain(exc.strerror or str(exc))}{plain(str(where))}", highlight=False)
        raise Exit(code=2) from None
    except KeyboardInterrupt:
        err.print("[yellow]interrupted[/yellow]")
        raise Exit(code=130) from None


_opened: dict[str | None, Inventory] = {}


def open_inventory(path: str | None) -> Inventory:
    """Load an inventory once per process (the guard and the task body share it)."""
    from drillbook.core.inventory import load_inventory

    if path not in _opened:
        _opened[path] = load_inventory(path)
    return _opened[path]


def _why(exc: OSError) -> str:
    """An OS error as a reason a user can act on (mkdir -p through a file says "File exists")."""
    if isinstance(exc, FileExistsError | NotADirectoryError):
        return "a parent is a file"
    return exc.strerror or str(exc)


def writable_dir(option: str, path: Path) -> Path:
    """Create ``path`` and prove a file can be written there, or refuse in one line (exit 2).

    Checked before a drill starts, so an unwritable --report-dir fails before any lock,
    change or measurement, and by trying rather than by os.access (root passes that).
    """
    try:
        path.mkdir(parents=True, exist_ok=True)
        probe = path / f".drillbook-write-test-{os.getpid()}"
        probe.write_bytes(b"")
        probe.unlink()
    except OSError as exc:
        raise ConfigError(f"--{option} {path}: cannot write there ({_why(exc)})") from None
    return path


def writable_file(option: str, path: Path) -> Path:
    """Prove ``path`` can be written (its directory exists or can be made; it is not a directory)."""
    if path.is_dir():
        raise ConfigError(f"--{option} {path}: is a directory, give a file name")
    existed = path.exists()
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        with path.open("a"):
            pass
    except OSError as exc:
        raise ConfigError(f"--{option} {path}: cannot write there ({_why(exc)})") from None
    if not existed:
        path.unlink(missing_ok=True)
    return path


def allowed_on(inv: Inventory, opts: CommonOptions) -> bool:
    """Whether the production guard lets ``opts`` change ``inv`` (for drills that check again)."""
    from drillbook.core.guard import production_allowed

    return production_allowed(inv, opts.allow_production)


def report_root(opts: CommonOptions) -> Path:
    """The report root of ``opts``, proven writable."""
    return writable_dir("report-dir", Path(opts.report_dir) if opts.report_dir else default_report_root())


def run_drill(
    drill: AnyDrill, inv: Inventory, opts: CommonOptions, *, exit_on_verdict: bool = True
) -> Journal:
    """Execute a drill, print its summary, and exit 0 (pass), 1 (fail), 2 (error) or 130 (interrupted)."""
    from drillbook.core.drill import DrillContext, execute, print_summary

    ctx = DrillContext(
        inventory=inv,
        report_root=report_root(opts),
        junit=writable_file("junit", Path(opts.junit)) if opts.junit else None,
        quiet=opts.quiet,
        debug=opts.debug,
    )
    journal = execute(drill, ctx)
    print_summary(journal, Path(journal.report_dir) if journal.report_dir else None)
    if exit_on_verdict and journal.exit_code:
        sys.stdout.flush()
        raise Exit(code=journal.exit_code)
    return journal
