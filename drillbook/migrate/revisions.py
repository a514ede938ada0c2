"""The revision graph as the migration tool itself reports it, and plans over it.

The graph comes from ``<migrate_cmd> history --verbose`` (run where migrations
run), so it is exactly what ``upgrade`` will walk, whatever version locations or
drill sets the tool's configuration selects. Whether a revision can be undone is
read from its script's source (``Path:`` in that output) when the script is
readable here: a ``downgrade()`` that is missing, empty, or only raises is no
downgrade. The current revision is read from the version table itself.

Every way a requested migration can be wrong (unknown revision, several heads,
a database the code does not know, an irreversible step) is a
:class:`ConfigError` raised while planning, before anything changes.
"""

from __future__ import annotations

import ast
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal

from drillbook.core.errors import ConfigError

BASE = "base"

_REV_LINE = re.compile(r"^Rev:\s+(?P<rev>\S+)(?P<tags>.*)$")
_FIELD_LINE = re.compile(r"^(?P<key>Parent|Merges|Path):\s*(?P<value>.*)$")


@dataclass(frozen=True)
class Revision:
    """One migration script: its id, its parents, its file and whether it can be undone."""

    id: str
    parents: tuple[str, ...]
    path: str | None = None
    doc: str = ""
    #: True/False when the script was read; None when it is not readable from here.
    has_downgrade: bool | None = None


@dataclass
class RevisionGraph:
    revisions: dict[str, Revision] = field(default_factory=dict)

    @property
    def heads(self) -> list[str]:
        """Revisions nobody builds on, in the order the tool listed them (newest first)."""
        children = {p for r in self.revisions.values() for p in r.parents}
        return [rid for rid in self.revisions if rid not in children]

    def resolve(self, name: str | None) -> str | None:
        """A full revision id for ``name`` (id, unique prefix, ``head``, ``base``); None means base."""
        if name is None or name == BASE:
            return None
        if name in ("head", "heads"):
            heads = self.heads
            if len(heads) != 1:
                raise ConfigError(
                    f"the migrations have {len(heads)} heads ({', '.join(heads) or 'none'}); "
                    "merge them (alembic merge) or name the revision with --to"
                )
            return heads[0]
        if name in self.revisions:
            return name
        matches = [rid for rid in self.revisions if rid.startswith(name)]
        if len(matches) == 1:
            return matches[0]
        if matches:
            raise ConfigError(f"revision {name!r} is ambiguous: {', '.join(sorted(matches))}")
        raise ConfigError(f"unknown revision {name!r}; known: {', '.join(self.ordered()) or 'none'}")

    def ancestors(self, rev: str | None) -> set[str]:
        """``rev`` and everything it builds on."""
        seen: set[str] = set()
        todo = [rev] if rev else []
        while todo:
            rid = todo.pop()
            if rid in seen or rid not in self.revisions:
                continue
            seen.add(rid)
            todo.extend(self.revisions[rid].parents)
        return seen

    def ordered(self) -> list[str]:
        """Every revision, oldest first (parents before children)."""
        done: list[str] = []
        seen: set[str] = set()

        def visit(rid: str) -> None:
            if rid in seen or rid not in self.revisions:
                return
            seen.add(rid)
            for parent in self.revisions[rid].parents:
                visit(parent)
            done.append(rid)

        for rid in reversed(list(self.revisions)):
            visit(rid)
        return done

    def between(self, lower: str | None, upper: str | None) -> list[Revision]:
        """Revisions above ``lower`` up to and including ``upper``, oldest first."""
        wanted = self.ancestors(upper) - self.ancestors(lower)
        return [self.revisions[rid] for rid in self.ordered() if rid in wanted]

    def parent_of(self, rev: str | None) -> str | None:
        """The single parent of ``rev`` (base when it has none); a merge point must be named."""
        if rev is None:
            raise ConfigError("the database is at base: there is nothing to roll back")
        parents = self.revisions[rev].parents
        if len(parents) > 1:
            raise ConfigError(f"revision {rev} merges {', '.join(parents)}; name the target with --to")
        return parents[0] if parents else None


def parse_history(text: str) -> RevisionGraph:
    """Parse ``history --verbose`` output (blocks starting with ``Rev:``) into a graph."""
    graph = RevisionGraph()
    block: _Block | None = None
    for line in text.splitlines():
        rev = _REV_LINE.match(line)
        if rev:
            if block:
                graph.revisions[block.id] = block.revision()
            block = _Block(rev.group("rev"))
            continue
        if block is None:
            continue
        fld = _FIELD_LINE.match(line)
        if fld and not block.doc:
            value = fld.group("value").strip()
            if fld.group("key") == "Path":
                block.path = value
            else:
                block.parents = [p.strip() for p in value.split(",") if p.strip() and p.strip() != "<base>"]
        elif line.strip():
            block.doc.append(line.strip())
    if block:
        graph.revisions[block.id] = block.revision()
    return graph


@dataclass
class _Block:
    id: str
    parents: list[str] = field(default_factory=list)
    path: str | None = None
    doc: list[str] = field(default_factory=list)

    def revision(self) -> Revision:
        return Revision(self.id, tuple(self.parents), self.path, self.doc[0] if self.doc else "")


def with_downgrades(graph: RevisionGraph) -> RevisionGraph:
    """The same graph with ``has_downgrade`` filled in from each readable script."""
    out = RevisionGraph()
    for rid, rev in graph.revisions.items():
        known: bool | None = None
        if rev.path and Path(rev.path).is_file():
            known = script_has_downgrade(Path(rev.path).read_text(encoding="utf-8"))
        out.revisions[rid] = Revision(rev.id, rev.parents, rev.path, rev.doc, known)
    return out


def script_has_downgrade(source: str) -> bool:
    """True when the script's ``downgrade()`` does something other than pass or raise."""
    try:
        tree = ast.parse(source)
    except SyntaxError:
        return False
    for node in tree.body:
        if isinstance(node, ast.FunctionDef) and node.name == "downgrade":
            body = list(node.body)
            if body and _is_docstring(body[0]):
                body = body[1:]
            return any(not _is_noop(stmt) for stmt in body)
    return False


def _is_docstring(stmt: ast.stmt) -> bool:
    return (
        isinstance(stmt, ast.Expr)
        and isinstance(stmt.value, ast.Constant)
        and isinstance(stmt.value.value, str)
    )


def _is_noop(stmt: ast.stmt) -> bool:
    """``pass``, ``...``, a bare string or a ``raise``: statements that undo nothing."""
    if isinstance(stmt, ast.Pass | ast.Raise):
        return True
    return isinstance(stmt, ast.Expr) and isinstance(stmt.value, ast.Constant)


Direction = Literal["up", "down", "none"]


@dataclass(frozen=True)
class Plan:
    """What a migration from ``current`` to ``target`` will run, validated before anything runs."""

    current: str | None
    target: str | None
    direction: Direction
    #: up: the revisions applied, oldest first; down: the revisions undone, newest first.
    steps: tuple[Revision, ...]

    @property
    def irreversible(self) -> list[str]:
        """Steps whose downgrade is missing (None: unknown counts as reversible, said in notes)."""
        return [r.id for r in self.steps if r.has_downgrade is False]

    @property
    def unknown_downgrade(self) -> list[str]:
        return [r.id for r in self.steps if r.has_downgrade is None]

    def describe(self) -> str:
        names = " -> ".join(label(r.id) for r in self.steps)
        if self.direction == "none":
            return f"nothing to do: the database is at {label(self.current)}"
        arrow = "upgrade" if self.direction == "up" else "downgrade"
        return f"{arrow} {label(self.current)} -> {label(self.target)} ({len(self.steps)} step(s): {names})"


def label(rev: str | None) -> str:
    return rev or BASE


def plan(graph: RevisionGraph, current: list[str], target_name: str | None) -> Plan:
    """Validate the database's revision and the target against the code's graph and plan the way."""
    if len(current) > 1:
        raise ConfigError(
            f"the database records several revisions ({', '.join(current)}): branched histories are "
            "not supported; merge them first"
        )
    cur = current[0] if current else None
    if cur is not None and cur not in graph.revisions:
        heads = ", ".join(graph.heads) or "none"
        raise ConfigError(
            f"the database is at revision {cur}, which these migrations do not know (their head: {heads}); "
            "it is newer than the code, or from another branch: deploy the matching release first"
        )
    target = graph.resolve(target_name)
    if target == cur:
        return Plan(cur, target, "none", ())
    if cur in graph.ancestors(target) or cur is None:
        return Plan(cur, target, "up", tuple(graph.between(cur, target)))
    if target is None or target in graph.ancestors(cur):
        return Plan(cur, target, "down", tuple(reversed(graph.between(target, cur))))
    raise ConfigError(
        f"revision {target} is on another branch than the database's {cur}: no straight way between them"
    )
