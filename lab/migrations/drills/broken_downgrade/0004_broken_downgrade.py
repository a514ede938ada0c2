"""DRILL (broken-downgrade): an upgrade that breaks the service, and a downgrade that fails.

Upgrade succeeds but renames items.value to items.val, which the running
service still queries: every items call answers 500 afterwards (readiness stays
200, since SELECT 1 still works). Post-deploy checks that exercise the items API
fail, so the drill rolls back; the downgrade then fails with an SQL error
(it renames a column that does not exist) and leaves the database at this
revision. The only way back is restoring the pre-migration backup.

Revision ID: 0004_broken_downgrade
Revises: 0003
"""

from __future__ import annotations

from alembic import op

revision = "0004_broken_downgrade"
down_revision = "0003"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.execute("ALTER TABLE items RENAME COLUMN value TO val")


def downgrade() -> None:
    # The bug: the wrong source column name, so the rename back fails.
    op.execute("ALTER TABLE items RENAME COLUMN value_renamed TO value")
