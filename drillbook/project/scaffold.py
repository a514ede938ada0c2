"""``drillbook init``: lay out a service's ops repository, once, without touching the user's edits.

The scaffold is what a platform engineer needs to drill their own service from their
own folder: ``drillbook.toml`` (marks the project: reports and lab state stay here),
``inventory/staging/`` (the documented example fleet, named for their service),
``runbooks/`` and ``checklist.yml`` (drillbook's own, ready to edit), a ``tasks.py``
exposing drillbook's tasks next to theirs, a CI example and a README of next steps.

Every file is written only when it is absent: running ``init`` again creates what is
missing and reports the rest as kept, so a user's changes are never overwritten and a
second run changes nothing. Files are written through a temporary name and a rename,
so an interrupted ``init`` leaves no half-written file behind.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from dataclasses import dataclass
from importlib.resources import files
from pathlib import Path
from typing import Literal

from drillbook.core.errors import ConfigError
from drillbook.core.journal import write_atomic
from drillbook.core.paths import BUNDLED_CHECKLIST, BUNDLED_RUNBOOKS, EXAMPLE_INVENTORY

Outcome = Literal["created", "kept", "unchanged"]
_NAME = re.compile(r"^[a-z][a-z0-9-]{0,62}$")
#: The example inventory's placeholder for the service's name.
_EXAMPLE_SERVICE = "myservice"


@dataclass(frozen=True)
class FileOutcome:
    """What ``init`` did with one file, relative to the project folder."""

    path: str
    outcome: Outcome


def init_project(dest: Path, service_name: str | None = None) -> list[FileOutcome]:
    """Scaffold ``dest`` (created if missing); never overwrite a file that is already there."""
    name = service_name or _slug(dest.resolve().name)
    if not _NAME.match(name):
        raise ConfigError(
            f"--service-name must be lower-case letters, digits and dashes (a DNS label), got {name!r}"
        )
    try:
        dest.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise ConfigError(f"cannot create {dest}: {exc.strerror}") from None
    return [_place(dest, rel, text) for rel, text in _files(name)]


def _files(service: str) -> Iterator[tuple[str, str]]:
    """Every file of the scaffold as (relative path, text)."""
    templates = files("drillbook.project") / "templates"
    yield "drillbook.toml", templates.joinpath("drillbook.toml").read_text()
    yield ".gitignore", templates.joinpath("gitignore").read_text()
    yield "README.md", templates.joinpath("README.md").read_text().replace("{service}", service)
    yield "tasks.py", templates.joinpath("tasks.py.txt").read_text()
    yield "ci/nightly-drills.example.yml", templates.joinpath("nightly-drills.example.yml").read_text()
    yield "checklist.yml", BUNDLED_CHECKLIST.read_text()
    for path in sorted(BUNDLED_RUNBOOKS.glob("*.md")):
        yield f"runbooks/{path.name}", path.read_text()
    for path in sorted(p for p in EXAMPLE_INVENTORY.rglob("*") if p.is_file()):
        rel = path.relative_to(EXAMPLE_INVENTORY)
        yield f"inventory/staging/{rel}", path.read_text().replace(_EXAMPLE_SERVICE, service)


def _place(dest: Path, rel: str, text: str) -> FileOutcome:
    target = dest / rel
    if target.exists():
        same = target.is_file() and target.read_text(errors="replace") == text
        return FileOutcome(rel, "unchanged" if same else "kept")
    try:
        write_atomic(target, text)
        target.chmod(0o644)
    except OSError as exc:
        raise ConfigError(f"cannot write {target}: {exc.strerror}") from None
    return FileOutcome(rel, "created")


def _slug(folder: str) -> str:
    slug = re.sub(r"[^a-z0-9]+", "-", folder.lower()).strip("-")
    return slug if slug and slug[0].isalpha() else f"svc-{slug}".strip("-")
