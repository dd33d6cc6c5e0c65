"""An index for an organization's executions newest first (the console's unfiltered list and
``GET`` lists across workflows): keyset paging stays one index range at any table size.

Revision ID: 0009
Revises: 0008
Create Date: 2026-12-02 07:10:00
"""

from alembic import op

revision = "0009"
down_revision = "0008"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_index(
        "ix_executions_org_created", "executions", ["organization_id", "created_at", "id"]
    )


def downgrade() -> None:
    op.drop_index("ix_executions_org_created", table_name="executions")
