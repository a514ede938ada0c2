"""DRILL (lossy): a migration whose downgrade silently destroys data.

Upgrade adds two columns and stays compatible with the running service:
  * items.summary = the first 32 characters of value (a "list view" column);
  * items.note, nullable, empty (nothing in the service writes it).
Downgrade has the kind of bug a rehearsal exists to catch: it "restores"
items.value from items.summary before dropping the new columns, so every value
longer than 32 characters comes back truncated, and any note is dropped.
A rehearsal on a restored copy sees it without writing anything: compare the
items rows (e.g. md5 of id, name, value) before upgrade and after downgrade.

Revision ID: 0004_lossy
Revises: 0003
"""

from __future__ import annotations

from alembic import op

revision = "0004_lossy"
down_revision = "0003"
branch_labels = None
depends_on = None

SUMMARY_CHARS = 32


def upgrade() -> None:
    op.execute("ALTER TABLE items ADD COLUMN summary text")
    op.execute("ALTER TABLE items ADD COLUMN note text")
    op.execute(f"UPDATE items SET summary = left(value, {SUMMARY_CHARS})")


def downgrade() -> None:
    # The bug: value is rebuilt from the truncated summary.
    op.execute("UPDATE items SET value = summary WHERE summary IS NOT NULL")
    op.execute("ALTER TABLE items DROP COLUMN note")
    op.execute("ALTER TABLE items DROP COLUMN summary")
