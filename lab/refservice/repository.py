"""Item rows in PostgreSQL, and their JSON form.

Only the columns of the first migration are read or written, so the service
works on every schema revision of the main chain (0001..0003) and on the drill
revisions that keep `items.value` (see lab/README.md).
"""

from __future__ import annotations

import base64
import binascii
import json
from datetime import datetime
from typing import Any

from .db import Database

_COLUMNS = "id, name, value, created_at, updated_at"
MAX_ID = 2**63 - 1


def to_json(row: tuple[Any, ...]) -> bytes:
    """Serialise an item row; the same bytes are cached and served."""
    return json.dumps(_as_dict(row), separators=(",", ":"), ensure_ascii=False).encode()


def _as_dict(row: tuple[Any, ...]) -> dict[str, Any]:
    item_id, name, value, created_at, updated_at = row
    return {
        "id": item_id,
        "name": name,
        "value": value,
        "created_at": _iso(created_at),
        "updated_at": _iso(updated_at),
    }


def _iso(moment: datetime) -> str:
    """Fixed width (always microseconds), so timestamps also sort as strings."""
    return moment.isoformat(timespec="microseconds").replace("+00:00", "Z")


def encode_cursor(last_id: int) -> str:
    """Opaque to clients: base64url of the last id seen, without padding."""
    return base64.urlsafe_b64encode(str(last_id).encode()).rstrip(b"=").decode()


def decode_cursor(cursor: str) -> int:
    """The last id of the previous page; ValueError when the cursor is not ours."""
    try:
        raw = base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4))
        last_id = int(raw.decode("ascii"))
    except (binascii.Error, UnicodeDecodeError, ValueError):
        raise ValueError("invalid cursor") from None
    if not 0 <= last_id <= MAX_ID:
        raise ValueError("invalid cursor")
    return last_id


class Items:
    """CRUD and keyset pagination over the items table."""

    def __init__(self, db: Database) -> None:
        self._db = db

    async def create(self, name: str, value: str) -> tuple[Any, ...]:
        row = await self._db.fetchone(
            f"INSERT INTO items (name, value) VALUES (%s, %s) RETURNING {_COLUMNS}", (name, value)
        )
        assert row is not None
        return row

    async def get(self, item_id: int) -> tuple[Any, ...] | None:
        return await self._db.fetchone(f"SELECT {_COLUMNS} FROM items WHERE id = %s", (item_id,))

    async def update(self, item_id: int, name: str, value: str) -> tuple[Any, ...] | None:
        return await self._db.fetchone(
            f"UPDATE items SET name = %s, value = %s, updated_at = now() WHERE id = %s RETURNING {_COLUMNS}",
            (name, value, item_id),
        )

    async def delete(self, item_id: int) -> bool:
        return await self._db.execute("DELETE FROM items WHERE id = %s", (item_id,)) > 0

    async def page(self, after_id: int, limit: int) -> tuple[list[dict[str, Any]], int | None]:
        """Up to `limit` items with id > after_id in id order, and the next page's start.

        Keyset pagination: a page starts after the last id seen, not at an
        offset, so rows inserted or deleted while a client pages never make it
        see an existing row twice or miss one.
        """
        rows = await self._db.fetchall(
            f"SELECT {_COLUMNS} FROM items WHERE id > %s ORDER BY id LIMIT %s", (after_id, limit + 1)
        )
        more = len(rows) > limit
        rows = rows[:limit]
        next_after = rows[-1][0] if more and rows else None
        return [_as_dict(row) for row in rows], next_after
