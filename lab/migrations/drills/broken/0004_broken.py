"""DRILL (broken): an upgrade that fails half-way.

The first statement succeeds (creates item_audit), the second references a
column that does not exist. env.py runs the upgrade in one transaction, so
PostgreSQL rolls the first statement back too: the database stays at 0003 with
no item_audit table, and `alembic upgrade head` exits non-zero.

Revision ID: 0004_broken
Revises: 0003
"""

from __future__ import annotations

from alembic import op

revision = "0004_broken"
down_revision = "0003"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.execute("CREATE TABLE item_audit (id bigserial PRIMARY KEY, item_id bigint NOT NULL)")
    op.execute("CREATE INDEX ix_items_no_such_column ON items (no_such_column)")


def downgrade() -> None:
    op.execute("DROP TABLE IF EXISTS item_audit")
    op.execute("DROP INDEX IF EXISTS ix_items_no_such_column")
