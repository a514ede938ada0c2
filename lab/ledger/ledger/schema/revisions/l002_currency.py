"""Entries get a currency (ISO 4217, default EUR) and an index by account.

A second, reversible revision so the migration drills have a way up and back
down on the ledger (the code does not read the column yet: expand first).

Revision ID: l002
Revises: l001
"""

import sqlalchemy as sa
from alembic import op

revision = "l002"
down_revision = "l001"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.add_column("entries", sa.Column("currency", sa.String(3), nullable=False, server_default="EUR"))
    op.create_index("entries_account", "entries", ["account"])


def downgrade() -> None:
    op.drop_index("entries_account", table_name="entries")
    op.drop_column("entries", "currency")
