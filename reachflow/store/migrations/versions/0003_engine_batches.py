"""Engine batches: per-item fenced outbox leases, priority order, the simulator's ledger.

Revision ID: 0003
Revises: 0002
Create Date: 2026-12-02 01:40:00
"""

import sqlalchemy as sa
from alembic import op

from reachflow.store.types import UTCDateTime

revision = "0003"
down_revision = "0002"
branch_labels = None
depends_on = None

OPEN = "status IN ('pending', 'in_flight')"


def upgrade() -> None:
    with op.batch_alter_table("executions", schema=None) as batch_op:
        batch_op.add_column(sa.Column("priority_key", UTCDateTime(), nullable=True))
    op.execute("UPDATE executions SET priority_key = COALESCE(priority_date, created_at)")
    with op.batch_alter_table("executions", schema=None) as batch_op:
        batch_op.alter_column("priority_key", existing_type=UTCDateTime(), nullable=False)
    with op.batch_alter_table("outbox", schema=None) as batch_op:
        batch_op.add_column(sa.Column("agent_id", sa.String(length=36), nullable=True))
        batch_op.add_column(sa.Column("fence", sa.Integer(), server_default="0", nullable=False))
        batch_op.drop_index(
            "ix_outbox_pending",
            sqlite_where=sa.text("status = 'pending'"),
            postgresql_where=sa.text("status = 'pending'"),
        )
        batch_op.create_index(
            "ix_outbox_open",
            ["available_at"],
            unique=False,
            sqlite_where=sa.text(OPEN),
            postgresql_where=sa.text(OPEN),
        )
    op.execute(
        "UPDATE outbox SET agent_id = "
        + (
            "payload->>'agentId'"
            if op.get_bind().dialect.name == "postgresql"
            else "json_extract(payload, '$.agentId')"
        )
        + " WHERE kind = 'dispatch'"
    )
    with op.batch_alter_table("contact_attempts", schema=None) as batch_op:
        batch_op.drop_index("ix_contact_attempts_phone_at")
        batch_op.create_index(
            "ix_contact_attempts_phone_org_at", ["phone", "organization_id", "at"], unique=False
        )
    op.create_table(
        "simulator_calls",
        sa.Column("idempotency_key", sa.String(length=120), nullable=False),
        sa.Column("receipt", sa.JSON(), nullable=False),
        sa.Column("requests", sa.Integer(), nullable=False),
        sa.Column("placed_at", UTCDateTime(), nullable=False),
        sa.PrimaryKeyConstraint("idempotency_key", name=op.f("pk_simulator_calls")),
    )


def downgrade() -> None:
    op.drop_table("simulator_calls")
    with op.batch_alter_table("contact_attempts", schema=None) as batch_op:
        batch_op.drop_index("ix_contact_attempts_phone_org_at")
        batch_op.create_index(
            "ix_contact_attempts_phone_at", ["organization_id", "phone", "at"], unique=False
        )
    with op.batch_alter_table("outbox", schema=None) as batch_op:
        batch_op.drop_index(
            "ix_outbox_open", sqlite_where=sa.text(OPEN), postgresql_where=sa.text(OPEN)
        )
        batch_op.create_index(
            "ix_outbox_pending",
            ["available_at"],
            unique=False,
            sqlite_where=sa.text("status = 'pending'"),
            postgresql_where=sa.text("status = 'pending'"),
        )
        batch_op.drop_column("fence")
        batch_op.drop_column("agent_id")
    with op.batch_alter_table("executions", schema=None) as batch_op:
        batch_op.drop_column("priority_key")
