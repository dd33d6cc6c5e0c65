"""Pacing and agent health: outbox commands carry their execution's priority, so due commands
go out in ``priorityDate`` order across the whole queue; each agent's circuit breaker state;
an index for an agent's calls in flight.

Revision ID: 0006
Revises: 0005
Create Date: 2026-12-02 06:10:00
"""

import sqlalchemy as sa
from alembic import op

from reachflow.store.types import UTCDateTime

revision = "0006"
down_revision = "0005"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("outbox", schema=None) as batch_op:
        batch_op.add_column(sa.Column("priority_key", UTCDateTime(), nullable=True))
    op.execute(
        "UPDATE outbox SET priority_key = (SELECT priority_key FROM executions"
        " WHERE executions.id = outbox.execution_id)"
    )
    op.create_index("ix_agent_calls_agent_created", "agent_calls", ["agent_id", "created_at"])
    op.create_table(
        "agent_health",
        sa.Column("agent_id", sa.String(36), nullable=False),
        sa.Column("organization_id", sa.String(36), nullable=False),
        sa.Column("breaker", sa.String(16), nullable=False),
        sa.Column("reason", sa.Text(), nullable=True),
        sa.Column("open_until", UTCDateTime(), nullable=True),
        sa.Column("recent_ok", sa.Integer(), server_default="0", nullable=False),
        sa.Column("recent_failed", sa.Integer(), server_default="0", nullable=False),
        sa.Column("updated_at", UTCDateTime(), nullable=False),
        sa.ForeignKeyConstraint(["organization_id"], ["organizations.id"], name="fk_agent_health_organization_id_organizations"),
        sa.PrimaryKeyConstraint("agent_id", name="pk_agent_health"),
    )


def downgrade() -> None:
    op.drop_table("agent_health")
    op.drop_index("ix_agent_calls_agent_created", table_name="agent_calls")
    with op.batch_alter_table("outbox", schema=None) as batch_op:
        batch_op.drop_column("priority_key")
