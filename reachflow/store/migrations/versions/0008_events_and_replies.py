"""Outbound event webhooks (subscriptions, recorded events, deliveries and their attempts);
the reply a step waited for, on its step execution.

Revision ID: 0008
Revises: 0007
Create Date: 2026-12-03 09:00:00
"""

import sqlalchemy as sa
from alembic import op

from reachflow.store.types import UTCDateTime

revision = "0008"
down_revision = "0007"
branch_labels = None
depends_on = None

_OPEN = "status IN ('pending', 'in_flight')"
_BIGINT = sa.BigInteger().with_variant(sa.Integer(), "sqlite")


def upgrade() -> None:
    with op.batch_alter_table("step_executions", schema=None) as batch_op:
        batch_op.add_column(sa.Column("reply", sa.Text(), nullable=True))
        batch_op.add_column(sa.Column("replied_at", UTCDateTime(), nullable=True))
    op.create_table(
        "webhook_subscriptions",
        sa.Column("id", sa.String(36), nullable=False),
        sa.Column("organization_id", sa.String(36), nullable=False),
        sa.Column("url", sa.Text(), nullable=False),
        sa.Column("description", sa.Text(), nullable=True),
        sa.Column("event_types", sa.JSON(), nullable=False),
        sa.Column("secret", sa.String(120), nullable=False),
        sa.Column("previous_secret", sa.String(120), nullable=True),
        sa.Column("previous_secret_until", UTCDateTime(), nullable=True),
        sa.Column("status", sa.String(16), nullable=False),
        sa.Column("disabled_reason", sa.Text(), nullable=True),
        sa.Column("disabled_at", UTCDateTime(), nullable=True),
        sa.Column("consecutive_failures", sa.Integer(), server_default="0", nullable=False),
        sa.Column("failing_since", UTCDateTime(), nullable=True),
        sa.Column("last_success_at", UTCDateTime(), nullable=True),
        sa.Column("last_failure_at", UTCDateTime(), nullable=True),
        sa.Column("created_at", UTCDateTime(), nullable=False),
        sa.Column("updated_at", UTCDateTime(), nullable=False),
        sa.Column("deleted_at", UTCDateTime(), nullable=True),
        sa.ForeignKeyConstraint(["organization_id"], ["organizations.id"], name="fk_webhook_subscriptions_organization_id_organizations"),
        sa.PrimaryKeyConstraint("id", name="pk_webhook_subscriptions"),
    )
    op.create_index("ix_webhook_subscriptions_org", "webhook_subscriptions", ["organization_id", "created_at"])
    op.create_table(
        "webhook_events",
        sa.Column("seq", _BIGINT, autoincrement=True, nullable=False),
        sa.Column("id", sa.String(40), nullable=False),
        sa.Column("organization_id", sa.String(36), nullable=False),
        sa.Column("type", sa.String(40), nullable=False),
        sa.Column("execution_id", sa.String(36), nullable=True),
        sa.Column("order_key", sa.String(80), nullable=False),
        sa.Column("payload", sa.JSON(), nullable=False),
        sa.Column("occurred_at", UTCDateTime(), nullable=False),
        sa.ForeignKeyConstraint(["organization_id"], ["organizations.id"], name="fk_webhook_events_organization_id_organizations"),
        sa.PrimaryKeyConstraint("seq", name="pk_webhook_events"),
        sa.UniqueConstraint("id", name="uq_webhook_events_id"),
    )
    op.create_index("ix_webhook_events_org_occurred", "webhook_events", ["organization_id", "occurred_at"])
    op.create_table(
        "webhook_deliveries",
        sa.Column("id", _BIGINT, autoincrement=True, nullable=False),
        sa.Column("organization_id", sa.String(36), nullable=False),
        sa.Column("subscription_id", sa.String(36), nullable=False),
        sa.Column("event_id", sa.String(40), nullable=False),
        sa.Column("order_key", sa.String(80), nullable=False),
        sa.Column("status", sa.String(16), nullable=False),
        sa.Column("attempts", sa.Integer(), server_default="0", nullable=False),
        sa.Column("fence", sa.Integer(), server_default="0", nullable=False),
        sa.Column("available_at", UTCDateTime(), nullable=False),
        sa.Column("first_attempt_at", UTCDateTime(), nullable=True),
        sa.Column("last_status_code", sa.Integer(), nullable=True),
        sa.Column("last_error", sa.Text(), nullable=True),
        sa.Column("created_at", UTCDateTime(), nullable=False),
        sa.Column("done_at", UTCDateTime(), nullable=True),
        sa.ForeignKeyConstraint(["organization_id"], ["organizations.id"], name="fk_webhook_deliveries_organization_id_organizations"),
        sa.ForeignKeyConstraint(["subscription_id"], ["webhook_subscriptions.id"], name="fk_webhook_deliveries_subscription_id_webhook_subscriptions"),
        sa.ForeignKeyConstraint(["event_id"], ["webhook_events.id"], name="fk_webhook_deliveries_event_id_webhook_events"),
        sa.PrimaryKeyConstraint("id", name="pk_webhook_deliveries"),
    )
    op.create_index("ix_webhook_deliveries_open", "webhook_deliveries", ["available_at"], sqlite_where=sa.text(_OPEN), postgresql_where=sa.text(_OPEN))
    op.create_index("ix_webhook_deliveries_chain", "webhook_deliveries", ["subscription_id", "order_key", "id"], sqlite_where=sa.text(_OPEN), postgresql_where=sa.text(_OPEN))
    op.create_index("ix_webhook_deliveries_event", "webhook_deliveries", ["subscription_id", "event_id"])
    op.create_table(
        "webhook_attempts",
        sa.Column("id", _BIGINT, autoincrement=True, nullable=False),
        sa.Column("organization_id", sa.String(36), nullable=False),
        sa.Column("subscription_id", sa.String(36), nullable=False),
        sa.Column("delivery_id", _BIGINT, nullable=False),
        sa.Column("event_id", sa.String(40), nullable=False),
        sa.Column("event_type", sa.String(40), nullable=False),
        sa.Column("attempt", sa.Integer(), nullable=False),
        sa.Column("at", UTCDateTime(), nullable=False),
        sa.Column("status_code", sa.Integer(), nullable=True),
        sa.Column("latency_ms", sa.Integer(), nullable=False),
        sa.Column("ok", sa.Boolean(), nullable=False),
        sa.Column("error", sa.Text(), nullable=True),
        sa.ForeignKeyConstraint(["organization_id"], ["organizations.id"], name="fk_webhook_attempts_organization_id_organizations"),
        sa.PrimaryKeyConstraint("id", name="pk_webhook_attempts"),
    )
    op.create_index("ix_webhook_attempts_subscription", "webhook_attempts", ["subscription_id", "id"])


def downgrade() -> None:
    op.drop_table("webhook_attempts")
    op.drop_table("webhook_deliveries")
    op.drop_table("webhook_events")
    op.drop_table("webhook_subscriptions")
    with op.batch_alter_table("step_executions", schema=None) as batch_op:
        batch_op.drop_column("replied_at")
        batch_op.drop_column("reply")
