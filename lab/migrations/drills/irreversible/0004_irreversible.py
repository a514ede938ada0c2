"""DRILL (irreversible): a valid upgrade without a downgrade.

Upgrade adds items.slug (filled from name) and keeps the service working.
Downgrade raises NotImplementedError, Alembic's convention for "this revision
cannot be undone"; a migration drill should report the revision irreversible
before anyone relies on rolling it back.

Revision ID: 0004_irreversible
Revises: 0003
"""

from __future__ import annotations

from alembic import op

revision = "0004_irreversible"
down_revision = "0003"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.execute("ALTER TABLE items ADD COLUMN slug text")
    op.execute("UPDATE items SET slug = lower(regexp_replace(name, '[^A-Za-z0-9]+', '-', 'g'))")


def downgrade() -> None:
    raise NotImplementedError("0004_irreversible has no downgrade: restore from the pre-migration backup")
