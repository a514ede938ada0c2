"""smoke on the lab: its listing check stays short however many items the service holds."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import httpx
import psycopg
import pytest

from drillbook.core.inventory import Inventory
from drillbook.core.items_api import cursor_after
from drillbook.smoke import smoke_checks

pytestmark = pytest.mark.lab

#: More rows than smoke pages through (10 pages of 100): from the first item it would fail.
BULK = 3_000


def test_cursor_after_is_the_services_own(lab: dict[str, Any]) -> None:
    """drillbook builds cursors from the documented format; the service must read them alike."""
    with httpx.Client(base_url=lab["lb_url"], timeout=10) as lb:
        ids = [
            lb.post("/items", json={"name": "cursor-test", "value": str(i)}).json()["id"] for i in range(3)
        ]
        try:
            page = lb.get("/items", params={"limit": 2, "cursor": cursor_after(ids[0])}).json()
            assert [item["id"] for item in page["items"]] == ids[1:]
        finally:
            for item_id in ids:
                lb.delete(f"/items/{item_id}")


@pytest.fixture()
def crowded_table(lab: dict[str, Any]) -> Iterator[None]:
    """BULK rows written straight into PostgreSQL, removed afterwards."""
    dsn = lab["postgres_dsn"]
    with psycopg.connect(dsn, autocommit=True) as conn:
        conn.execute(
            "INSERT INTO items (name, value) SELECT 'smoke-bulk', g::text FROM generate_series(1, %s) g",
            (BULK,),
        )
    try:
        yield
    finally:
        with psycopg.connect(dsn, autocommit=True) as conn:
            conn.execute("DELETE FROM items WHERE name = 'smoke-bulk'")


def test_smoke_lists_its_item_in_a_crowded_table(lab_inventory: Inventory, crowded_table: None) -> None:
    steps = {s.name: s for s in smoke_checks(lab_inventory.topology)}
    assert all(s.ok for s in steps.values()), [(s.name, s.detail) for s in steps.values() if not s.ok]
    listing = steps["list items with cursor"]
    assert listing.detail == "found on page 3", listing.detail
