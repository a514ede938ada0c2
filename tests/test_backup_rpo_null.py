"""``backup_rpo_query`` unset or null means drillbook's heartbeat; a query overrides it.

The RPO's witness is drillbook's own heartbeat table unless the inventory names a
query on the service's own table (inventory/lab/group_vars/all/backup.yml). Real
inventories, loaded by Ansible's own inventory code.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from drillbook.backup.settings import load_settings
from drillbook.core.inventory import Inventory


def _inventory(tmp_path: Path, backup_vars: str) -> Inventory:
    (tmp_path / "group_vars" / "all").mkdir(parents=True)
    (tmp_path / "hosts.yml").write_text("all:\n  hosts:\n    db-1:\n      ansible_connection: local\n")
    (tmp_path / "group_vars" / "all" / "backup.yml").write_text(backup_vars)
    return Inventory(tmp_path)


@pytest.mark.parametrize(
    ("backup_vars", "expected"),
    [
        ("backup_rpo_query: null\n", None),
        ("backup_rpo_query: ~\nbackup_rto_s: 60\n", None),
        ("backup_rto_s: 60\n", None),  # unset: the heartbeat, the documented default
        ("backup_rpo_query: SELECT max(at) FROM beat\n", "SELECT max(at) FROM beat"),
    ],
)
def test_unset_or_null_rpo_query_means_the_heartbeat(
    tmp_path: Path, backup_vars: str, expected: str | None
) -> None:
    assert load_settings(_inventory(tmp_path, backup_vars)).rpo_query == expected


def test_overrides_still_apply_on_top(tmp_path: Path) -> None:
    inv = _inventory(tmp_path, "backup_rpo_query: null\n")
    assert load_settings(inv, rpo_query="SELECT now()").rpo_query == "SELECT now()"
    assert load_settings(inv, rto_s=5).rpo_query is None
