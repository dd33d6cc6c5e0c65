"""Indexes for pruning the webhook tables (``REACHFLOW_WEBHOOK_RETENTION_DAYS``): finished
deliveries by when they finished, a delivery's attempts, and an event's deliveries (the
"no delivery left" test and the foreign key check when an event is deleted).

Revision ID: 0010
Revises: 0009
Create Date: 2026-12-02 09:30:00
"""

import sqlalchemy as sa
from alembic import op

revision = "0010"
down_revision = "0009"
branch_labels = None
depends_on = None

_DONE = "done_at IS NOT NULL"


def upgrade() -> None:
    op.create_index(
        "ix_webhook_deliveries_done",
        "webhook_deliveries",
        ["done_at"],
        sqlite_where=sa.text(_DONE),
        postgresql_where=sa.text(_DONE),
    )
    op.create_index("ix_webhook_deliveries_event_id", "webhook_deliveries", ["event_id"])
    op.create_index("ix_webhook_attempts_delivery", "webhook_attempts", ["delivery_id"])


def downgrade() -> None:
    op.drop_index("ix_webhook_attempts_delivery", table_name="webhook_attempts")
    op.drop_index("ix_webhook_deliveries_event_id", table_name="webhook_deliveries")
    op.drop_index("ix_webhook_deliveries_done", table_name="webhook_deliveries")
