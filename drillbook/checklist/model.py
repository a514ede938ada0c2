"""checklist.yml: items, sections and the evidence that proves each one.

The file is validated as a whole before anything is judged: an unknown section,
an item with two kinds of evidence or none, a duplicate id, a drill that is not a
drillbook task or an audit check no audit performs are each reported as a
:class:`ConfigError` naming the item (exit 2), never as a wrong status.
"""

from __future__ import annotations

from collections.abc import Iterable
from pathlib import Path
from typing import Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator

from drillbook.core.errors import ConfigError
from drillbook.core.paths import checklist_file

Section = Literal["security", "data", "api", "observability", "reliability", "deployment", "testing"]
SECTIONS: tuple[str, ...] = Section.__args__  # type: ignore[attr-defined]


class Evidence(BaseModel):
    """Exactly one of: a drill task that must have passed, an audit check, or a manual sign-off."""

    model_config = ConfigDict(extra="forbid")

    drill: str | None = None
    audit: str | None = None  # "<audit>.<check>", e.g. "http.security_headers"
    manual: bool = False
    max_age_days: float | None = Field(default=None, gt=0)

    @model_validator(mode="after")
    def _one_kind(self) -> Evidence:
        kinds = [k for k in ("drill", "audit") if getattr(self, k)] + (["manual"] if self.manual else [])
        if len(kinds) != 1:
            raise ValueError(f"evidence needs exactly one of drill, audit, manual (got {kinds or 'none'})")
        if self.audit and self.audit.count(".") != 1:
            raise ValueError(f"audit evidence is '<audit>.<check>', got {self.audit!r}")
        return self

    @property
    def kind(self) -> str:
        """``drill``, ``audit`` or ``manual``: how the item is proven."""
        return "drill" if self.drill else "audit" if self.audit else "manual"

    @property
    def audit_drill(self) -> str:
        """The drill whose journal holds an audit check: ``http.cors`` -> ``audit.http``."""
        return f"audit.{(self.audit or '').split('.', 1)[0]}"

    @property
    def audit_check(self) -> str:
        """The check inside the audit's journal: ``http.cors`` -> ``cors``."""
        return (self.audit or "").split(".", 1)[1]

    def describe(self) -> str:
        """The evidence in a few words, for tables and error messages."""
        if self.drill:
            return f"drill {self.drill}"
        if self.audit:
            return f"audit {self.audit_drill}: {self.audit_check}"
        return "manual sign-off"


class Item(BaseModel):
    """One checklist line: a statement about the service and the evidence that proves it."""

    model_config = ConfigDict(extra="forbid")

    id: str = Field(pattern=r"^[a-z0-9][a-z0-9-]*$")
    section: Section
    statement: str = Field(min_length=5)
    evidence: Evidence
    required: bool | None = None


class Defaults(BaseModel):
    """What an item that says nothing gets: how old its evidence may be, whether it blocks a release."""

    model_config = ConfigDict(extra="forbid")

    max_age_days: float = Field(default=7, gt=0)
    required: bool = True


class Checklist(BaseModel):
    """The whole checklist.yml, validated: items with unique ids, defaults applied on read."""

    model_config = ConfigDict(extra="forbid")

    version: int = 1
    defaults: Defaults = Defaults()
    items: list[Item]

    def max_age_days(self, item: Item) -> float:
        """How many days ``item``'s evidence stays valid (its own limit, else the default)."""
        return item.evidence.max_age_days or self.defaults.max_age_days

    def required(self, item: Item) -> bool:
        """Whether ``item`` blocks a release when not proven (its own flag, else the default)."""
        return self.defaults.required if item.required is None else item.required

    def item(self, item_id: str) -> Item:
        """The item with id ``item_id``; a ConfigError naming it when there is none."""
        for it in self.items:
            if it.id == item_id:
                return it
        raise ConfigError(f"checklist has no item {item_id!r} (see inv checklist)")


def load_checklist(path: Path | None = None) -> Checklist:
    """Parse and validate the checklist file (default: checklist.yml at the repository root)."""
    path = path or checklist_file()
    try:
        data = yaml.safe_load(path.read_text())
    except OSError as exc:
        raise ConfigError(f"checklist {path}: {exc.strerror}") from exc
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f":{mark.line + 1}" if mark else ""
        raise ConfigError(
            f"checklist {path}{where} is not valid YAML: {getattr(exc, 'problem', exc)}"
        ) from exc
    try:
        checklist = Checklist.model_validate(data)
    except ValidationError as exc:
        first = exc.errors()[0]
        loc = first["loc"]
        where = ".".join(str(p) for p in loc)
        if len(loc) > 1 and loc[0] == "items" and isinstance(loc[1], int) and isinstance(data, dict):
            item_id = (data.get("items") or [{}])[loc[1]].get("id", f"#{loc[1] + 1}")
            where = f"item {item_id}: " + ".".join(str(p) for p in loc[2:])
        raise ConfigError(f"checklist {path}: {where}: {first['msg']}") from exc
    _check_unique(checklist.items, path)
    return checklist


def _check_unique(items: Iterable[Item], path: Path) -> None:
    seen: set[str] = set()
    for item in items:
        if item.id in seen:
            raise ConfigError(f"checklist {path}: item id {item.id!r} appears twice")
        seen.add(item.id)


def validate_references(
    checklist: Checklist, known_drills: set[str], known_audits: dict[str, set[str]]
) -> None:
    """Every drill named is a drillbook drill task; every audit check is one an audit performs."""
    for item in checklist.items:
        ev = item.evidence
        if ev.drill and ev.drill not in known_drills:
            known = ", ".join(sorted(known_drills))
            raise ConfigError(f"checklist item {item.id}: unknown drill {ev.drill!r} (known: {known})")
        if ev.audit:
            checks = known_audits.get(ev.audit_drill)
            if checks is None:
                raise ConfigError(f"checklist item {item.id}: unknown audit {ev.audit_drill!r}")
            if ev.audit_check not in checks:
                raise ConfigError(
                    f"checklist item {item.id}: {ev.audit_drill} has no check {ev.audit_check!r} "
                    f"(known: {', '.join(sorted(checks))})"
                )
