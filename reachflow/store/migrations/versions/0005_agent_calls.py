"""Agent calls: every call handed to an agent, found again by its call id or the provider's id
when the agent reports later; accepted signed webhook messages, so a replay is refused.

Revision ID: 0005
Revises: 0004
Create Date: 2026-12-02 06:00:00
"""

import sqlalchemy as sa
from alembic import op

from reachflow.store.types import UTCDateTime

revision = "0005"
down_revision = "0004"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "agent_calls",
        sa.Column("id", sa.String(36), nullable=False),
        sa.Column("organization_id", sa.String(36), nullable=False),
        sa.Column("execution_id", sa.String(36), nullable=False),
        sa.Column("step_execution_id", sa.String(36), nullable=False),
        sa.Column("agent_id", sa.String(36), nullable=False),
        sa.Column("provider", sa.String(32), nullable=False),
        sa.Column("channel", sa.String(8), nullable=False),
        sa.Column("idempotency_key", sa.String(120), nullable=False),
        sa.Column("provider_call_id", sa.String(200), nullable=True),
        sa.Column("status", sa.String(16), nullable=False),
        sa.Column("result", sa.JSON(), nullable=True),
        sa.Column("created_at", UTCDateTime(), nullable=False),
        sa.Column("reported_at", UTCDateTime(), nullable=True),
        sa.ForeignKeyConstraint(["organization_id"], ["organizations.id"], name="fk_agent_calls_organization_id_organizations"),
        sa.ForeignKeyConstraint(["execution_id"], ["executions.id"], name="fk_agent_calls_execution_id_executions"),
        sa.PrimaryKeyConstraint("id", name="pk_agent_calls"),
        sa.UniqueConstraint("idempotency_key", name="uq_agent_calls_idempotency_key"),
    )
    op.create_index("ix_agent_calls_execution_id", "agent_calls", ["execution_id"])
    op.create_index("ix_agent_calls_provider_call", "agent_calls", ["provider", "provider_call_id"])
    op.create_table(
        "webhook_messages",
        sa.Column("id", sa.String(200), nullable=False),
        sa.Column("organization_id", sa.String(36), nullable=False),
        sa.Column("received_at", UTCDateTime(), nullable=False),
        sa.ForeignKeyConstraint(["organization_id"], ["organizations.id"], name="fk_webhook_messages_organization_id_organizations"),
        sa.PrimaryKeyConstraint("id", name="pk_webhook_messages"),
    )


def downgrade() -> None:
    op.drop_table("webhook_messages")
    op.drop_index("ix_agent_calls_provider_call", table_name="agent_calls")
    op.drop_index("ix_agent_calls_execution_id", table_name="agent_calls")
    op.drop_table("agent_calls")
