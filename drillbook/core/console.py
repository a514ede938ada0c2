"""Terminal output: one rich console for the whole process, on stderr for progress.

drillbook's own messages use rich markup (``[red]error:[/red]``), but much of what
they carry is not drillbook's: runbook names, inventory paths, a ``--by`` name, and
Ansible's or a server's own messages, which contain brackets (``[failed on host]``,
``[Errno 111]``). Printed as markup, such text disappears as an unknown tag or, with
a stray ``[/x]``, crashes the print. Two layers keep it text:

- :func:`plain` escapes a piece of foreign text where it is put into a message
  (the rule for code that builds messages);
- the consoles :data:`out` and :data:`err` keep only tags that are real rich
  styles (``[red]``, ``[bold green]``, ``[/]``) in whatever they print with markup on,
  and show every other ``[...]`` literally (the safety net for messages built
  elsewhere, e.g. a drill's ``run.note(f"error: {exc}")``).
"""

from __future__ import annotations

import re
import time
from typing import Any

from rich.console import Console
from rich.errors import MarkupError, StyleSyntaxError
from rich.markup import escape
from rich.style import Style
from rich.text import Text

VERDICT_STYLE = {"pass": "bold green", "fail": "bold red", "error": "bold yellow", "running": "cyan"}
#: What each verdict means to a reader: error is drillbook's blindness, not the service's fault.
VERDICT_MEANING = {"pass": "passing", "fail": "failing", "error": "could not run"}

# rich's own tag syntax (rich.markup.RE_TAGS): an optional run of backslashes, then [tag].
_TAG = re.compile(r"(\\*)\[([a-z#/@][^[]*?)]")


def plain(text: object) -> str:
    """``text`` escaped so rich prints it as it is (for foreign text inside a markup message)."""
    return escape(str(text))


def _is_style_tag(tag: str) -> bool:
    name = tag[1:] if tag.startswith("/") else tag
    if tag == "/":
        return True
    if name.startswith("@") or "=" in name:  # event handlers and meta: never from drillbook
        return False
    try:
        Style.parse(name)
    except (StyleSyntaxError, ValueError):
        return False
    return True


def safe_markup(message: str) -> str:
    """Keep the real style tags of ``message``; escape every other ``[...]`` so it shows as text.

    When the result still does not parse (a closing tag nothing opened), the whole
    message is escaped: a line printed without colour beats a crash.
    """

    def fix(match: re.Match[str]) -> str:
        slashes, tag = match.group(1), match.group(2)
        if len(slashes) % 2 or _is_style_tag(tag):
            return match.group(0)
        return f"{slashes}\\[{tag}]"

    fixed = _TAG.sub(fix, message)
    try:
        Text.from_markup(fixed)
    except MarkupError:
        return escape(message)
    return fixed


class SafeConsole(Console):
    """A Console whose markup strings keep only real style tags (see the module docstring)."""

    def print(self, *objects: Any, **kwargs: Any) -> None:
        """Like :meth:`Console.print`, but brackets in strings that are not style tags print literally."""
        markup = kwargs.get("markup")
        if markup is not False and (markup or self._markup):
            objects = tuple(safe_markup(o) if isinstance(o, str) else o for o in objects)
        super().print(*objects, **kwargs)


#: Results and tables go to stdout; progress and errors to stderr so ``--json`` output stays clean.
out = SafeConsole(highlight=False, soft_wrap=True)
err = SafeConsole(stderr=True, highlight=False, soft_wrap=True)


class Progress:
    """Timestamped progress lines relative to a drill's start: ``[  3.2s] killing redis``."""

    def __init__(self, label: str = "", enabled: bool = True) -> None:
        self.t0 = time.monotonic()
        self.label = label
        self.enabled = enabled

    def __call__(self, message: str) -> None:
        if self.enabled:
            elapsed = time.monotonic() - self.t0
            prefix = f"{plain(self.label)} " if self.label else ""
            err.print(f"[dim]\\[{elapsed:6.1f}s][/dim] {prefix}{message}", markup=True, highlight=False)
