"""Add items.tags and an index on items.created_at.

The service does not read or write tags yet (it keeps working on 0002), so
downgrading drops only the default '{}' values and loses nothing written.

Revision ID: 0003
Revises: 0002
"""

from __future__ import annotations

from alembic import op

revision = "0003"
down_revision = "0002"
branch_labels = None
depends_on = None


def upgrade() -> None:
    # A constant default: PostgreSQL 11+ adds the column without rewriting the table.
    op.execute("ALTER TABLE items ADD COLUMN tags text[] NOT NULL DEFAULT '{}'")
    op.execute("CREATE INDEX ix_items_created_at ON items (created_at)")


def downgrade() -> None:
    op.execute("DROP INDEX ix_items_created_at")
    op.execute("ALTER TABLE items DROP COLUMN tags")
