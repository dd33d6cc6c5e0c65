"""API key administration: keys can be revoked, and carry a scope (organization or admin).

Revision ID: 0004
Revises: 0003
Create Date: 2026-12-02 05:20:00
"""

import sqlalchemy as sa
from alembic import op

from reachflow.store.types import UTCDateTime

revision = "0004"
down_revision = "0003"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("api_keys", schema=None) as batch_op:
        batch_op.add_column(sa.Column("revoked_at", UTCDateTime(), nullable=True))
        batch_op.add_column(
            sa.Column("scope", sa.String(length=16), server_default="organization", nullable=False)
        )


def downgrade() -> None:
    with op.batch_alter_table("api_keys", schema=None) as batch_op:
        batch_op.drop_column("scope")
        batch_op.drop_column("revoked_at")
