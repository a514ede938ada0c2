"""Every role entry point a playbook uses is validated by an argument spec of the same name.

Ansible validates ``include_role``/``import_role`` against the entry point named
exactly as ``tasks_from`` is written: ``tasks_from: kill.yml`` would look for an
entry ``kill.yml`` and, finding none, validate nothing. So the playbooks name
entry points without the extension, and each has an entry in
``roles/<role>/meta/argument_specs.yml``.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml

from drillbook.core.paths import REPO_ROOT

ROLE_ACTIONS = ("include_role", "import_role", "ansible.builtin.include_role", "ansible.builtin.import_role")


def _role_calls(node: Any) -> Iterator[dict[str, Any]]:
    """Every include_role/import_role argument mapping anywhere in a parsed YAML document."""
    if isinstance(node, dict):
        for key, value in node.items():
            if key in ROLE_ACTIONS and isinstance(value, dict):
                yield value
            else:
                yield from _role_calls(value)
    elif isinstance(node, list):
        for item in node:
            yield from _role_calls(item)


def role_entry_points(paths: list[Path]) -> list[tuple[Path, str, str]]:
    """(file, role, tasks_from) of every role call with ``tasks_from`` in ``paths``."""
    found = []
    for path in paths:
        for call in _role_calls(yaml.safe_load(path.read_text())):
            if "tasks_from" in call:
                found.append((path, str(call["name"]), str(call["tasks_from"])))
    return found


def _playbooks() -> list[Path]:
    return sorted(
        [*(REPO_ROOT / "playbooks").glob("*.yml"), *(REPO_ROOT / "roles").glob("*/molecule/*/*.yml")]
    )


def _spec_entries(role: str) -> set[str]:
    spec = yaml.safe_load((REPO_ROOT / "roles" / role / "meta" / "argument_specs.yml").read_text())
    return set(spec["argument_specs"])


CALLS = role_entry_points(_playbooks())


def test_the_playbooks_call_roles_through_entry_points() -> None:
    assert len(CALLS) > 20  # the search reads the playbooks, not nothing


@pytest.mark.parametrize(("path", "role", "entry"), CALLS, ids=[f"{p.name}:{r}:{e}" for p, r, e in CALLS])
def test_entry_point_has_an_argument_spec(path: Path, role: str, entry: str) -> None:
    assert not entry.endswith((".yml", ".yaml")), (
        f"{path}: tasks_from {entry!r}: name the entry point without the extension, "
        "or Ansible validates nothing"
    )
    if "{{" in role or "{{" in entry:
        return  # templated (playbooks/chaos.yml): its roles and actions are listed in the play
    assert entry in _spec_entries(role), (
        f"{path}: roles/{role}/meta/argument_specs.yml has no entry {entry!r}"
    )


def test_chaos_playbook_entry_points_have_specs() -> None:
    """playbooks/chaos.yml picks role and action from lists in the play; each pair must be validated."""
    play = yaml.safe_load((REPO_ROOT / "playbooks" / "chaos.yml").read_text())[0]
    for role in play["vars"]["chaos_roles"]:
        missing = {*play["vars"]["chaos_actions"], "wait_ready"} - _spec_entries(role)
        assert not missing, f"roles/{role}: no argument spec for {sorted(missing)}"


def test_the_check_sees_a_call_with_an_extension(tmp_path: Path) -> None:
    book = tmp_path / "play.yml"
    book.write_text(
        "- hosts: db\n  tasks:\n    - ansible.builtin.include_role:\n        name: postgres\n"
        "        tasks_from: kill.yml\n"
    )
    assert role_entry_points([book]) == [(book, "postgres", "kill.yml")]
