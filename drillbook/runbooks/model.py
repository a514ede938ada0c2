"""A runbook file, parsed: front matter, numbered steps, the ``inv`` commands it names, its links.

The format (docs/runbooks.md) is plain Markdown so it reads well on any Git host::

    ---
    title: Redis outage
    severity: SEV2
    alerts: [RedisDown]
    tasks: [chaos.kill-redis, lab.status]
    owner: platform-team
    ---
    # Redis outage

    1. Confirm the cache is down:

       ```shell
       inv lab.status
       ```

Parsing never stops at the first mistake: every problem is collected with its file
and line, because the checker's job is to list them all. Callers that need a
valid runbook (``runbook.show``, ``runbook.run``) call :meth:`Runbook.raise_on_errors`.
"""

from __future__ import annotations

import re
import shlex
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from drillbook.core.errors import ConfigError

#: Fence info strings whose ``inv`` lines are task steps.
SHELL_LANGS = frozenset({"shell", "sh", "bash", "zsh", "console", "shell-session"})
#: Words that start a drillbook command: ``inv`` in a checkout, ``drillbook`` where it is installed.
COMMAND_WORDS = frozenset({"inv", "invoke", "drillbook"})
REQUIRED_KEYS = ("title", "severity", "alerts", "tasks", "owner")
#: Keys the format knows besides the required ones; anything else is a warning (a typo, usually).
OPTIONAL_KEYS = frozenset({"drills", "related", "description"})
SHELL_SEPARATORS = frozenset({"&&", "||", ";", "|", "&"})

_STEP = re.compile(r"^ {0,3}(\d{1,3})[.)](?:\s+(.*))?$")
_HEADING = re.compile(r"^ {0,3}#{1,6}(\s|$)")
_FENCE = re.compile(r"^(\s*)(`{3,}|~{3,})\s*([^\s`]*)")
_BOLD_LEAD = re.compile(r"^(?:\*\*|__)(.+?)(?:\*\*|__)")
_COMMENT = re.compile(r"<!--.*?-->")
_INLINE_CODE = re.compile(r"(`+)(.+?)\1")
_LINK = re.compile(r"!?\[(?:[^\]\\]|\\.)*\]\(\s*<?([^)\s>]+)>?(?:\s+[\"'(][^)]*)?\)")
_REF_DEF = re.compile(r"^ {0,3}\[[^\]]+\]:\s*<?(\S+?)>?(?:\s+.*)?$")
_PLACEHOLDER = re.compile(r"^(<[^<>]+>|\$\{?\w+\}?|\{\{?[^{}]+\}?\})$")


class RunbookError(ConfigError):
    """A runbook that cannot be used; the message starts with ``file:line:``."""


@dataclass(frozen=True)
class Problem:
    """One thing wrong with a runbook (or a task), where it is and how bad."""

    path: Path
    line: int
    message: str
    level: str = "error"  # or "warning"

    def render(self, root: Path | None = None) -> str:
        """``path:line: level: message`` with the path relative to ``root``, as editors and CI read it."""
        shown = _relative(self.path, root)
        where = f"{shown}:{self.line}" if self.line else shown
        return f"{where}: {self.level}: {self.message}"


@dataclass(frozen=True)
class Command:
    """One ``inv`` command line of a runbook: its words after ``inv``, as written."""

    argv: tuple[str, ...]
    text: str
    line: int
    word: str = "inv"

    @property
    def placeholders(self) -> list[str]:
        """Values left for the operator to fill in (``<VERSION>``, ``$VERSION``)."""
        return [a for a in self.argv if is_placeholder(a) or is_placeholder(a.partition("=")[2])]

    def display(self) -> str:
        """The command as an operator would type it (placeholders left unquoted)."""
        return " ".join([self.word, *(a if is_placeholder(a) else shlex.quote(a) for a in self.argv)])


@dataclass(frozen=True)
class Link:
    """A Markdown link of a runbook, checked by ``runbook.check`` when relative."""

    target: str
    line: int

    @property
    def is_relative(self) -> bool:
        """A link to a file of the repository (not an anchor, a URL or a scheme)."""
        t = self.target
        return not (t.startswith("#") or re.match(r"^[a-zA-Z][a-zA-Z0-9+.-]*:", t) or t.startswith("//"))

    @property
    def path_part(self) -> str:
        """The file part of the target, without anchor or query."""
        return self.target.split("#", 1)[0].split("?", 1)[0]


@dataclass
class CodeBlock:
    """A fenced code block; ``inv`` lines in shell blocks are commands."""

    lang: str
    line: int  # line of the opening fence
    lines: list[tuple[int, str]] = field(default_factory=list)  # (line number, text)

    @property
    def is_shell(self) -> bool:
        """Whether the fence's language is a shell (its ``inv`` lines are commands)."""
        return self.lang.lower() in SHELL_LANGS


@dataclass
class Step:
    """A numbered step: its text and the commands it runs (none for a manual step)."""

    number: int
    line: int
    title: str
    lines: list[str] = field(default_factory=list)
    commands: list[Command] = field(default_factory=list)

    @property
    def is_task_step(self) -> bool:
        """A step that runs a task (``runbook.run`` asks run / skip / quit); else a manual step."""
        return bool(self.commands)

    @property
    def text(self) -> str:
        """The step's Markdown, as shown to the operator."""
        return "\n".join(self.lines).rstrip()


@dataclass
class Meta:
    """The front matter: title, severity, the alerts that lead here, the tasks it runs, its owner."""

    title: str = ""
    severity: str = ""
    alerts: list[str] = field(default_factory=list)
    tasks: list[str] = field(default_factory=list)
    owner: str = ""
    extra: dict[str, Any] = field(default_factory=dict)


@dataclass
class Runbook:
    """A parsed runbook: front matter, steps, every command and link, and what is wrong with it."""

    path: Path
    meta: Meta
    body: str
    body_line: int  # file line of the body's first line
    steps: list[Step] = field(default_factory=list)
    commands: list[Command] = field(default_factory=list)  # every inv command, steps or not
    links: list[Link] = field(default_factory=list)
    problems: list[Problem] = field(default_factory=list)
    key_lines: dict[str, int] = field(default_factory=dict)  # front matter key -> file line

    @property
    def name(self) -> str:
        """The file name without ``.md`` (what ``inv runbook.run`` takes)."""
        return self.path.stem

    @property
    def errors(self) -> list[Problem]:
        """The problems that make the runbook unusable (warnings left out)."""
        return [p for p in self.problems if p.level == "error"]

    def raise_on_errors(self) -> None:
        """Refuse to walk a broken runbook: a RunbookError naming the first five problems."""
        if self.errors:
            raise RunbookError("; ".join(p.render() for p in self.errors[:5]))

    def line_of(self, key: str) -> int:
        """The file line of front matter ``key`` (1 when absent), for problems about it."""
        return self.key_lines.get(key, 1)


# -- parsing ------------------------------------------------------------------


def parse_file(path: Path, *, front_matter: bool = True) -> Runbook:
    """Parse ``path``; problems are collected in ``Runbook.problems``, never raised.

    ``front_matter=False`` is for the index (README.md), which has none.
    """
    try:
        text = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        rb = Runbook(path=path, meta=Meta(), body="", body_line=1)
        rb.problems.append(Problem(path, 0, f"cannot read: {exc}"))
        return rb
    return parse_text(text, path, front_matter=front_matter)


def parse_text(text: str, path: Path, *, front_matter: bool = True) -> Runbook:
    """Parse runbook text as if read from ``path``; problems are collected, never raised."""
    lines = text.splitlines()
    problems: list[Problem] = []
    meta, body_start = Meta(), 0
    key_lines: dict[str, int] = {}
    if front_matter:
        meta, key_lines, body_start = _front_matter(lines, path, problems)
    body_lines = lines[body_start:]
    rb = Runbook(
        path=path,
        meta=meta,
        body="\n".join(body_lines),
        body_line=body_start + 1,
        problems=problems,
        key_lines=key_lines,
    )
    _scan_body(rb, body_lines, body_start + 1)
    if front_matter and not rb.steps and not any(p.line == 1 for p in problems):
        problems.append(Problem(path, body_start + 1, "no numbered steps (1. ..., 2. ...)", "warning"))
    return rb


def _front_matter(lines: list[str], path: Path, problems: list[Problem]) -> tuple[Meta, dict[str, int], int]:
    if not lines or lines[0].strip() != "---":
        problems.append(Problem(path, 1, "no YAML front matter: the file must start with a '---' line"))
        return Meta(), {}, 0
    end = next((i for i in range(1, len(lines)) if lines[i].strip() in ("---", "...")), None)
    if end is None:
        problems.append(Problem(path, 1, "front matter is not closed: no second '---' line"))
        return Meta(), {}, len(lines)
    source = "\n".join(lines[1:end])
    try:
        node = yaml.compose(source, Loader=yaml.SafeLoader)
        data = yaml.safe_load(source)
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        line = mark.line + 2 if mark is not None else 1
        reason = getattr(exc, "problem", None) or str(exc).splitlines()[0]
        problems.append(Problem(path, line, f"front matter is not valid YAML: {reason}"))
        return Meta(), {}, end + 1
    if not isinstance(data, dict) or not isinstance(node, yaml.MappingNode):
        problems.append(Problem(path, 2, "front matter must be a YAML mapping (key: value lines)"))
        return Meta(), {}, end + 1
    key_lines = {str(k.value): k.start_mark.line + 2 for k, _ in node.value if isinstance(k, yaml.ScalarNode)}
    return _validate_meta(data, key_lines, path, problems), key_lines, end + 1


def _validate_meta(
    data: dict[Any, Any], key_lines: dict[str, int], path: Path, problems: list[Problem]
) -> Meta:
    meta = Meta()

    def bad(key: str, message: str, level: str = "error") -> None:
        problems.append(Problem(path, key_lines.get(key, 1), f"front matter '{key}': {message}", level))

    for key in REQUIRED_KEYS:
        if key not in data:
            problems.append(Problem(path, 1, f"front matter has no '{key}'"))
    for key in ("title", "severity", "owner"):
        value = data.get(key)
        if key not in data:
            continue
        if not isinstance(value, (str, int)) or isinstance(value, bool) or not str(value).strip():
            bad(key, f"must be a non-empty string, not {value!r}")
        else:
            setattr(meta, key, str(value).strip())
    for key in ("alerts", "tasks"):
        if key not in data:
            continue
        value = data[key]
        if value is None:
            value = []
        if isinstance(value, str):
            value = [value]
        if not isinstance(value, list) or not all(isinstance(v, str) and v.strip() for v in value):
            bad(key, f"must be a list of names, not {value!r}")
            continue
        names = [v.strip() for v in value]
        if key == "tasks":
            names = [_strip_command_word(n) for n in names]
            if not names:
                bad(key, "lists no task: a runbook's steps name the tasks to run")
        setattr(meta, key, names)
    for key, value in data.items():
        if str(key) in REQUIRED_KEYS:
            continue
        meta.extra[str(key)] = value
        if str(key) not in OPTIONAL_KEYS:
            bad(
                str(key),
                "unknown key (known: " + ", ".join((*REQUIRED_KEYS, *sorted(OPTIONAL_KEYS))) + ")",
                "warning",
            )
    return meta


def _strip_command_word(name: str) -> str:
    words = name.split()
    return " ".join(words[1:]) if len(words) > 1 and words[0] in COMMAND_WORDS else name


def _scan_body(rb: Runbook, lines: list[str], first_line: int) -> None:
    """One pass over the body: fences, steps, inline commands and links, each with its line."""
    step: Step | None = None
    block: CodeBlock | None = None
    fence = ""
    for offset, raw in enumerate(lines):
        lineno = first_line + offset
        if block is not None:
            stripped = raw.strip()
            if stripped.startswith(fence[0] * len(fence)) and set(stripped) <= {fence[0]}:
                _close_block(rb, block, step)
                block = None
            else:
                block.lines.append((lineno, raw))
            if step is not None:
                step.lines.append(raw)
            continue
        opening = _FENCE.match(raw)
        if opening:
            fence = opening.group(2)
            block = CodeBlock(lang=opening.group(3), line=lineno)
            if step is not None:
                step.lines.append(raw)
            continue
        numbered = _STEP.match(raw)
        if numbered:
            step = Step(number=int(numbered.group(1)), line=lineno, title=_title(numbered.group(2) or ""))
            step.lines.append(raw)
            rb.steps.append(step)
        elif _HEADING.match(raw):
            step = None
        elif step is not None:
            step.lines.append(raw)
        _scan_inline(rb, raw, lineno, step)
    if block is not None:
        rb.problems.append(Problem(rb.path, block.line, "code block is not closed"))
        _close_block(rb, block, step)
    _check_numbering(rb)


def _close_block(rb: Runbook, block: CodeBlock, step: Step | None) -> None:
    if not block.is_shell:
        return
    for lineno, text in _logical_lines(block.lines):
        for cmd in commands_in(text, lineno, rb):
            rb.commands.append(cmd)
            if step is not None:
                step.commands.append(cmd)


def _scan_inline(rb: Runbook, raw: str, lineno: int, step: Step | None) -> None:
    raw = _COMMENT.sub("", raw)
    for match in _INLINE_CODE.finditer(raw):
        code = match.group(2).strip()
        if code.split(" ", 1)[0] in COMMAND_WORDS and " " in code:
            rb.commands.extend(commands_in(code, lineno, rb))
    without_code = _INLINE_CODE.sub("", raw)
    for match in _LINK.finditer(without_code):
        rb.links.append(Link(match.group(1), lineno))
    ref = _REF_DEF.match(without_code)
    if ref:
        rb.links.append(Link(ref.group(1), lineno))


def _title(first_line: str) -> str:
    """A step's title: its leading bold phrase when it has one, else its first line, without markup."""
    bold = _BOLD_LEAD.match(first_line.strip())
    text = bold.group(1) if bold else first_line
    return text.replace("**", "").replace("__", "").strip().rstrip(":")


def _check_numbering(rb: Runbook) -> None:
    expected = 1
    for step in rb.steps:
        if step.number not in (expected, 1):
            rb.problems.append(
                Problem(rb.path, step.line, f"step {step.number} follows step {expected - 1}", "warning")
            )
        expected = step.number + 1


def _logical_lines(lines: list[tuple[int, str]]) -> list[tuple[int, str]]:
    """Join backslash continuations; drop prompts (``$ ``), comments and blank lines."""
    out: list[tuple[int, str]] = []
    pending: tuple[int, str] | None = None
    for lineno, raw in lines:
        text = raw.strip()
        if pending is not None:
            start, acc = pending
            text = acc + " " + text
            lineno = start
            pending = None
        if text.endswith("\\"):
            pending = (lineno, text[:-1].rstrip())
            continue
        for prompt in ("$ ", "% "):
            if text.startswith(prompt):
                text = text[len(prompt) :]
        if text and not text.startswith("#"):
            out.append((lineno, text))
    if pending is not None:
        out.append(pending)
    return out


def commands_in(text: str, lineno: int, rb: Runbook | None = None) -> list[Command]:
    """The drillbook commands on one shell line (``A=1 inv x.y --z && inv a.b`` gives two)."""
    try:
        words = shlex.split(text, comments=True)
    except ValueError as exc:
        if rb is not None:
            rb.problems.append(Problem(rb.path, lineno, f"cannot parse shell line {text!r}: {exc}"))
        return []
    commands: list[Command] = []
    current: list[str] = []
    for word in [*words, ";"]:
        if word in SHELL_SEPARATORS or (word.endswith(";") and word != ";"):
            if word.endswith(";") and word != ";":
                current.append(word[:-1])
            cmd = _as_command(current, text, lineno)
            if cmd is not None:
                commands.append(cmd)
            current = []
        else:
            current.append(word)
    return commands


def _as_command(words: list[str], text: str, lineno: int) -> Command | None:
    while words and re.match(r"^[A-Za-z_][A-Za-z0-9_]*=", words[0]):
        words = words[1:]
    if not words or words[0] not in COMMAND_WORDS:
        return None
    return Command(argv=tuple(words[1:]), text=text, line=lineno, word=words[0])


def is_placeholder(word: str) -> bool:
    """A value left for the operator (``<VERSION>``, ``$VERSION``): valid wherever a value goes."""
    return bool(word) and bool(_PLACEHOLDER.match(word))


# -- finding runbooks ---------------------------------------------------------

INDEX_NAME = "README.md"


def runbook_files(directory: Path) -> list[Path]:
    """Every runbook in ``directory`` (the index README.md is not a runbook)."""
    if not directory.is_dir():
        return []
    return sorted(p for p in directory.glob("*.md") if p.name != INDEX_NAME)


def load_all(directory: Path) -> list[Runbook]:
    """Every runbook of ``directory``, parsed (the index is not one)."""
    return [parse_file(p) for p in runbook_files(directory)]


def find(name: str, directory: Path) -> Path:
    """Resolve ``redis-outage``, ``redis-outage.md``, ``runbooks/redis-outage.md`` or a path."""
    as_path = Path(name)
    candidates = [as_path, directory / as_path.name, directory / f"{as_path.name}.md"]
    for candidate in candidates:
        if candidate.is_file() and candidate.suffix == ".md":
            return candidate
    known = ", ".join(p.stem for p in runbook_files(directory)) or "none"
    raise RunbookError(f"no runbook {name!r} in {_relative(directory, None)} (known: {known})")


def load(name: str, directory: Path) -> Runbook:
    """A runbook that must be valid (for showing or walking it)."""
    rb = parse_file(find(name, directory))
    rb.raise_on_errors()
    return rb


def _relative(path: Path, root: Path | None) -> str:
    for base in (root, Path.cwd()):
        if base is None:
            continue
        try:
            return str(path.resolve().relative_to(base.resolve()))
        except ValueError:
            continue
    return str(path)
