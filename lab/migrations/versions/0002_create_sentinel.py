"""Create the sentinel table the background writer fills (restore RPO witness).

Revision ID: 0002
Revises: 0001
"""

from __future__ import annotations

from alembic import op

revision = "0002"
down_revision = "0001"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.execute(
        """
        CREATE TABLE sentinel (
            id         bigserial PRIMARY KEY,
            instance   text NOT NULL,
            written_at timestamptz NOT NULL DEFAULT now()
        )
        """
    )
    op.execute("CREATE INDEX ix_sentinel_written_at ON sentinel (written_at)")


def downgrade() -> None:
    op.execute("DROP TABLE sentinel")
