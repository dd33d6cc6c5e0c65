"""Public execution sessions (seed 004) and idempotency keys: workflows may be public and
priced; sessions, their events and client tokens (hashed); organizations' payment webhook
secrets; idempotency keys under a unique constraint.

Revision ID: 0007
Revises: 0006
Create Date: 2026-12-03 09:00:00
"""

import sqlalchemy as sa
from alembic import op

from reachflow.store.types import UTCDateTime

revision = "0007"
down_revision = "0006"
branch_labels = None
depends_on = None

_EVENT_ID = sa.BigInteger().with_variant(sa.Integer(), "sqlite")


def upgrade() -> None:
    with op.batch_alter_table("workflows", schema=None) as batch_op:
        batch_op.add_column(sa.Column("public_execute", sa.Boolean(), server_default=sa.false(), nullable=False))
        batch_op.add_column(sa.Column("price_amount", sa.BigInteger(), nullable=True))
        batch_op.add_column(sa.Column("price_currency", sa.String(3), nullable=True))
    op.create_table(
        "idempotency_keys",
        sa.Column("id", sa.String(36), nullable=False),
        sa.Column("organization_id", sa.String(36), nullable=False),
        sa.Column("scope", sa.String(16), nullable=False),
        sa.Column("key", sa.String(255), nullable=False),
        sa.Column("fingerprint", sa.String(64), nullable=False),
        sa.Column("result", sa.JSON(), nullable=False),
        sa.Column("created_at", UTCDateTime(), nullable=False),
        sa.Column("expires_at", UTCDateTime(), nullable=False),
        sa.ForeignKeyConstraint(["organization_id"], ["organizations.id"], name="fk_idempotency_keys_organization_id_organizations"),
        sa.PrimaryKeyConstraint("id", name="pk_idempotency_keys"),
        sa.UniqueConstraint("organization_id", "scope", "key", name="uq_idempotency_keys_organization_id_scope_key"),
    )
    op.create_index("ix_idempotency_keys_expires_at", "idempotency_keys", ["expires_at"])
    op.create_table(
        "public_sessions",
        sa.Column("id", sa.String(36), nullable=False),
        sa.Column("organization_id", sa.String(36), nullable=False),
        sa.Column("workflow_id", sa.String(36), nullable=False),
        sa.Column("run_id", sa.String(36), nullable=True),
        sa.Column("source_system", sa.String(200), nullable=False),
        sa.Column("source_entity_type", sa.String(200), nullable=False),
        sa.Column("source_entity_id", sa.String(200), nullable=True),
        sa.Column("external_ref", sa.String(200), nullable=True),
        sa.Column("idempotency_key", sa.String(255), nullable=True),
        sa.Column("client_safe_metadata", sa.JSON(), nullable=False),
        sa.Column("request_payload", sa.JSON(), nullable=False),
        sa.Column("initiated_by_type", sa.String(32), nullable=False),
        sa.Column("initiated_by_id", sa.String(36), nullable=False),
        sa.Column("price_amount", sa.BigInteger(), nullable=True),
        sa.Column("price_currency", sa.String(3), nullable=True),
        sa.Column("payment_status", sa.String(16), nullable=False),
        sa.Column("checkout_session_id", sa.String(64), nullable=True),
        sa.Column("order_id", sa.String(200), nullable=True),
        sa.Column("payment_due_at", UTCDateTime(), nullable=True),
        sa.Column("created_at", UTCDateTime(), nullable=False),
        sa.Column("updated_at", UTCDateTime(), nullable=False),
        sa.ForeignKeyConstraint(["organization_id"], ["organizations.id"], name="fk_public_sessions_organization_id_organizations"),
        sa.ForeignKeyConstraint(["workflow_id"], ["workflows.id"], name="fk_public_sessions_workflow_id_workflows"),
        sa.PrimaryKeyConstraint("id", name="pk_public_sessions"),
        sa.UniqueConstraint("checkout_session_id", name="uq_public_sessions_checkout_session_id"),
    )
    op.create_index("ix_public_sessions_run_id", "public_sessions", ["run_id"])
    op.create_table(
        "public_session_events",
        sa.Column("id", _EVENT_ID, autoincrement=True, nullable=False),
        sa.Column("organization_id", sa.String(36), nullable=False),
        sa.Column("session_id", sa.String(36), nullable=False),
        sa.Column("kind", sa.String(32), nullable=False),
        sa.Column("at", UTCDateTime(), nullable=False),
        sa.Column("data", sa.JSON(), nullable=False),
        sa.ForeignKeyConstraint(["organization_id"], ["organizations.id"], name="fk_public_session_events_organization_id_organizations"),
        sa.ForeignKeyConstraint(["session_id"], ["public_sessions.id"], name="fk_public_session_events_session_id_public_sessions"),
        sa.PrimaryKeyConstraint("id", name="pk_public_session_events"),
    )
    op.create_index("ix_public_session_events_session_id", "public_session_events", ["session_id"])
    op.create_table(
        "client_tokens",
        sa.Column("token_hash", sa.String(64), nullable=False),
        sa.Column("organization_id", sa.String(36), nullable=False),
        sa.Column("session_id", sa.String(36), nullable=False),
        sa.Column("created_at", UTCDateTime(), nullable=False),
        sa.Column("expires_at", UTCDateTime(), nullable=False),
        sa.ForeignKeyConstraint(["organization_id"], ["organizations.id"], name="fk_client_tokens_organization_id_organizations"),
        sa.ForeignKeyConstraint(["session_id"], ["public_sessions.id"], name="fk_client_tokens_session_id_public_sessions"),
        sa.PrimaryKeyConstraint("token_hash", name="pk_client_tokens"),
    )
    op.create_index("ix_client_tokens_session_id", "client_tokens", ["session_id"])
    op.create_table(
        "payment_secrets",
        sa.Column("organization_id", sa.String(36), nullable=False),
        sa.Column("secret", sa.String(120), nullable=False),
        sa.Column("created_at", UTCDateTime(), nullable=False),
        sa.ForeignKeyConstraint(["organization_id"], ["organizations.id"], name="fk_payment_secrets_organization_id_organizations"),
        sa.PrimaryKeyConstraint("organization_id", name="pk_payment_secrets"),
    )


def downgrade() -> None:
    op.drop_table("payment_secrets")
    op.drop_index("ix_client_tokens_session_id", table_name="client_tokens")
    op.drop_table("client_tokens")
    op.drop_index("ix_public_session_events_session_id", table_name="public_session_events")
    op.drop_table("public_session_events")
    op.drop_index("ix_public_sessions_run_id", table_name="public_sessions")
    op.drop_table("public_sessions")
    op.drop_index("ix_idempotency_keys_expires_at", table_name="idempotency_keys")
    op.drop_table("idempotency_keys")
    with op.batch_alter_table("workflows", schema=None) as batch_op:
        batch_op.drop_column("price_currency")
        batch_op.drop_column("price_amount")
        batch_op.drop_column("public_execute")
