"""smoke on the lab: the reference profile's flow, journaled; a profile without one is refused in one line."""

from __future__ import annotations

import shutil
from pathlib import Path
from typing import Any

import pytest

from drillbook.core.drill import DrillContext, execute
from drillbook.core.inventory import Inventory, load_inventory
from drillbook.core.paths import LAB_INVENTORY
from drillbook.smoke import Smoke, smoke_checks

pytestmark = pytest.mark.lab


def test_smoke_flow_of_the_profile_passes(lab: dict[str, Any], lab_inventory: Inventory) -> None:
    steps = {s.name: s for s in smoke_checks(lab_inventory)}
    assert all(s.ok for s in steps.values()), [(s.name, s.detail) for s in steps.values() if not s.ok]
    create = steps["create item (database write)"]
    assert create.status == 201 and "sql: 1" in create.detail and "item_id" in create.captured
    instances = [n for n in steps if n.startswith("readiness of every instance (")]
    assert len(instances) == len(lab_inventory.topology.app_instances)
    assert steps["deleted item is gone"].status == 404


def test_smoke_journal_names_each_step(
    lab: dict[str, Any], lab_inventory: Inventory, report_root: Path
) -> None:
    journal = execute(Smoke(), DrillContext(inventory=lab_inventory, report_root=report_root, quiet=True))
    assert journal.verdict == "pass", journal.failed_checks
    names = [c.name for c in journal.checks]
    assert "create item (database write)" in names and "deleted item is gone" in names
    gone = next(c for c in journal.checks if c.name == "deleted item is gone")
    assert gone.value == 404 and gone.limit == "404"


def test_profile_without_smoke_is_an_error(tmp_path: Path, report_root: Path) -> None:
    inv_dir = tmp_path / "inventory"
    shutil.copytree(LAB_INVENTORY, inv_dir)
    service = inv_dir / "group_vars" / "all" / "service.yml"
    text = service.read_text()
    start, end = text.index("service_smoke:"), text.index("# The chaos drills'")
    service.write_text(text[:start] + text[end:])
    journal = execute(
        Smoke(), DrillContext(inventory=load_inventory(inv_dir), report_root=report_root, quiet=True)
    )
    assert journal.verdict == "error" and "service_smoke is not set" in str(journal.error)
