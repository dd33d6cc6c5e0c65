"""The schema. Every table carries ``organization_id``; Alembic migrations must equal it."""

from __future__ import annotations

import sqlalchemy as sa

from reachflow.store.types import UTCDateTime

metadata = sa.MetaData(
    naming_convention={
        "ix": "ix_%(table_name)s_%(column_0_N_name)s",
        "uq": "uq_%(table_name)s_%(column_0_N_name)s",
        "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
        "pk": "pk_%(table_name)s",
    }
)

ID = sa.String(36)

organizations = sa.Table(
    "organizations",
    metadata,
    sa.Column("id", ID, primary_key=True),
    sa.Column("name", sa.String(200), nullable=False, unique=True),
    sa.Column("created_at", UTCDateTime(), nullable=False),
)

api_keys = sa.Table(
    "api_keys",
    metadata,
    sa.Column("id", ID, primary_key=True),
    sa.Column("organization_id", ID, sa.ForeignKey("organizations.id"), nullable=False),
    sa.Column("key_hash", sa.String(64), nullable=False, unique=True),
    sa.Column("prefix", sa.String(16), nullable=False),
    sa.Column("created_at", UTCDateTime(), nullable=False),
    #: Set once the key is revoked: from then on it authenticates nothing.
    sa.Column("revoked_at", UTCDateTime(), nullable=True),
    #: ``organization`` (its organization's API) or ``admin`` (that, plus ``/metrics``).
    sa.Column("scope", sa.String(16), nullable=False, server_default="organization"),
)

agents = sa.Table(
    "agents",
    metadata,
    sa.Column("id", ID, primary_key=True),
    sa.Column("organization_id", ID, sa.ForeignKey("organizations.id"), nullable=False, index=True),
    sa.Column("name", sa.String(200), nullable=False),
    sa.Column("channel", sa.String(8), nullable=False),
    sa.Column("provider", sa.String(32), nullable=False),
    sa.Column("config", sa.JSON(), nullable=False),
    sa.Column("created_at", UTCDateTime(), nullable=False),
    sa.Column("updated_at", UTCDateTime(), nullable=False),
)

workflows = sa.Table(
    "workflows",
    metadata,
    sa.Column("id", ID, primary_key=True),
    sa.Column("organization_id", ID, sa.ForeignKey("organizations.id"), nullable=False, index=True),
    sa.Column("name", sa.String(200), nullable=False),
    sa.Column("description", sa.Text(), nullable=True),
    sa.Column("active", sa.Boolean(), nullable=False),
    sa.Column("status", sa.String(16), nullable=False),
    sa.Column("version", sa.Integer(), nullable=False),
    sa.Column("created_at", UTCDateTime(), nullable=False),
    sa.Column("updated_at", UTCDateTime(), nullable=False),
    sa.Column("deleted_at", UTCDateTime(), nullable=True),
    #: Outsiders may start it (``POST /v1/public/workflows/{id}/executions``), at this price.
    sa.Column("public_execute", sa.Boolean(), nullable=False, server_default=sa.false()),
    sa.Column("price_amount", sa.BigInteger(), nullable=True),
    sa.Column("price_currency", sa.String(3), nullable=True),
)

workflow_versions = sa.Table(
    "workflow_versions",
    metadata,
    sa.Column("id", ID, primary_key=True),
    sa.Column("organization_id", ID, sa.ForeignKey("organizations.id"), nullable=False),
    sa.Column("workflow_id", ID, sa.ForeignKey("workflows.id"), nullable=False),
    sa.Column("version", sa.Integer(), nullable=False),
    sa.Column("timezone", sa.String(64), nullable=False),
    sa.Column("workflow_schedule", sa.JSON(), nullable=True),
    sa.Column("tcpa_schedule", sa.JSON(), nullable=True),
    sa.Column("definition", sa.JSON(), nullable=False),
    sa.Column("created_at", UTCDateTime(), nullable=False),
    sa.UniqueConstraint("workflow_id", "version"),
)

executions = sa.Table(
    "executions",
    metadata,
    sa.Column("id", ID, primary_key=True),
    sa.Column("organization_id", ID, sa.ForeignKey("organizations.id"), nullable=False),
    sa.Column("workflow_id", ID, sa.ForeignKey("workflows.id"), nullable=False),
    sa.Column("version_id", ID, sa.ForeignKey("workflow_versions.id"), nullable=False),
    sa.Column("status", sa.String(16), nullable=False),
    sa.Column("customer_lead_id", sa.String(200), nullable=True),
    sa.Column("primary_phone", sa.String(20), nullable=False),
    sa.Column("zipcode", sa.String(10), nullable=True),
    sa.Column("state", sa.String(2), nullable=True),
    sa.Column("forwarding_phone_number", sa.String(20), nullable=True),
    sa.Column("variables", sa.JSON(), nullable=False),
    sa.Column("metadata", sa.JSON(), nullable=False),
    sa.Column("priority_date", UTCDateTime(), nullable=True),
    #: ``priorityDate`` or else ``created_at``: due work is taken in this order, then by due time
    #: (among the most overdue: ``store.executions.PRIORITY_WINDOW``).
    sa.Column("priority_key", UTCDateTime(), nullable=False),
    sa.Column("start_at", UTCDateTime(), nullable=True),
    sa.Column("due_at", UTCDateTime(), nullable=True),
    sa.Column("node_id", sa.String(100), nullable=True),
    sa.Column("disposition", sa.String(32), nullable=True),
    sa.Column("engine_state", sa.JSON(), nullable=False),
    sa.Column("temporal_workflow_id", sa.String(100), nullable=True),
    sa.Column("started_at", UTCDateTime(), nullable=True),
    sa.Column("completed_at", UTCDateTime(), nullable=True),
    sa.Column("created_at", UTCDateTime(), nullable=False),
    sa.Column("updated_at", UTCDateTime(), nullable=False),
    sa.Index(
        "ix_executions_due",
        "due_at",
        sqlite_where=sa.text("due_at IS NOT NULL"),
        postgresql_where=sa.text("due_at IS NOT NULL"),
    ),
    sa.Index(
        "ix_executions_workflow_created", "organization_id", "workflow_id", "created_at", "id"
    ),
    #: An organization's executions by creation, either way (keyset paging across workflows).
    sa.Index("ix_executions_org_created", "organization_id", "created_at", "id"),
    sa.Index("ix_executions_phone", "organization_id", "primary_phone"),
    sa.Index("ix_executions_lead", "organization_id", "customer_lead_id"),
)

step_executions = sa.Table(
    "step_executions",
    metadata,
    sa.Column("id", ID, primary_key=True),
    sa.Column("organization_id", ID, sa.ForeignKey("organizations.id"), nullable=False),
    sa.Column("execution_id", ID, sa.ForeignKey("executions.id"), nullable=False, index=True),
    sa.Column("node_id", sa.String(100), nullable=False),
    sa.Column("visit", sa.Integer(), nullable=False),
    sa.Column("kind", sa.String(16), nullable=False),
    sa.Column("type", sa.String(8), nullable=True),
    sa.Column("step_order", sa.Integer(), nullable=False),
    sa.Column("delay_in_secs", sa.Integer(), nullable=False),
    sa.Column("needs_tcpa", sa.Boolean(), nullable=False),
    sa.Column("finish_on", sa.JSON(), nullable=False),
    sa.Column("leave_voicemail", sa.Boolean(), nullable=False),
    sa.Column("agent_id", ID, nullable=True),
    sa.Column("status", sa.String(16), nullable=False),
    sa.Column("scheduled_at", UTCDateTime(), nullable=True),
    sa.Column("next_allowed_at", UTCDateTime(), nullable=True),
    sa.Column("started_at", UTCDateTime(), nullable=True),
    sa.Column("completed_at", UTCDateTime(), nullable=True),
    sa.Column("disposition", sa.String(32), nullable=True),
    sa.Column("agent_call", sa.JSON(), nullable=True),
    sa.Column("created_at", UTCDateTime(), nullable=False),
    #: The contact's reply to a step that waits for one (``waitForReply``, ``WAIT_FOR_REPLY``).
    sa.Column("reply", sa.Text(), nullable=True),
    sa.Column("replied_at", UTCDateTime(), nullable=True),
)

execution_events = sa.Table(
    "execution_events",
    metadata,
    sa.Column(
        "id",
        sa.BigInteger().with_variant(sa.Integer(), "sqlite"),
        primary_key=True,
        autoincrement=True,
    ),
    sa.Column("organization_id", ID, sa.ForeignKey("organizations.id"), nullable=False),
    sa.Column("execution_id", ID, sa.ForeignKey("executions.id"), nullable=False, index=True),
    sa.Column("kind", sa.String(32), nullable=False),
    sa.Column("at", UTCDateTime(), nullable=False),
    sa.Column("data", sa.JSON(), nullable=False),
)

#: Commands to perform outside the transaction that decided them (transactional outbox).
outbox = sa.Table(
    "outbox",
    metadata,
    sa.Column(
        "id",
        sa.BigInteger().with_variant(sa.Integer(), "sqlite"),
        primary_key=True,
        autoincrement=True,
    ),
    sa.Column("organization_id", ID, sa.ForeignKey("organizations.id"), nullable=False),
    sa.Column("execution_id", ID, sa.ForeignKey("executions.id"), nullable=False, index=True),
    sa.Column("step_execution_id", ID, nullable=False),
    sa.Column("idempotency_key", sa.String(120), nullable=False, unique=True),
    sa.Column("kind", sa.String(16), nullable=False),
    #: The agent a dispatch goes to (per-agent concurrency bounds filter on it); None for effects.
    sa.Column("agent_id", ID, nullable=True),
    sa.Column("payload", sa.JSON(), nullable=False),
    #: pending -> in_flight -> done | failed; in_flight rows carry a lease in ``available_at``.
    sa.Column("status", sa.String(16), nullable=False),
    #: When a pending row may be taken, or when an in-flight row's lease ends.
    sa.Column("available_at", UTCDateTime(), nullable=False),
    sa.Column("attempts", sa.Integer(), nullable=False),
    #: The fencing token: raised by every claim; only the holder of the current token finishes.
    sa.Column("fence", sa.Integer(), nullable=False, server_default="0"),
    sa.Column("last_error", sa.Text(), nullable=True),
    sa.Column("created_at", UTCDateTime(), nullable=False),
    sa.Column("done_at", UTCDateTime(), nullable=True),
    #: The execution's ``priorityDate`` (else its creation): due commands go out in this order.
    sa.Column("priority_key", UTCDateTime(), nullable=True),
    sa.Index(
        "ix_outbox_open",
        "available_at",
        sqlite_where=sa.text("status IN ('pending', 'in_flight')"),
        postgresql_where=sa.text("status IN ('pending', 'in_flight')"),
    ),
)

#: Events waiting to be fed to ``decide`` (agent results, due at the call's end).
inbox = sa.Table(
    "inbox",
    metadata,
    sa.Column(
        "id",
        sa.BigInteger().with_variant(sa.Integer(), "sqlite"),
        primary_key=True,
        autoincrement=True,
    ),
    sa.Column("organization_id", ID, sa.ForeignKey("organizations.id"), nullable=False),
    sa.Column("execution_id", ID, sa.ForeignKey("executions.id"), nullable=False, index=True),
    sa.Column("kind", sa.String(32), nullable=False),
    sa.Column("payload", sa.JSON(), nullable=False),
    sa.Column("dedupe_key", sa.String(160), nullable=False, unique=True),
    sa.Column("due_at", UTCDateTime(), nullable=False, index=True),
    sa.Column("created_at", UTCDateTime(), nullable=False),
)

#: The organization's suppression list. Rows are never deleted: removal is recorded (audit).
suppressions = sa.Table(
    "suppressions",
    metadata,
    sa.Column("id", ID, primary_key=True),
    sa.Column("organization_id", ID, sa.ForeignKey("organizations.id"), nullable=False),
    sa.Column("phone", sa.String(20), nullable=False),
    sa.Column("channel", sa.String(8), nullable=False),  # ALL | CALL | TEXT
    sa.Column("reason", sa.Text(), nullable=False),
    sa.Column("source", sa.String(32), nullable=False),  # api | disposition | inbound_text | ...
    sa.Column("execution_id", ID, nullable=True),
    sa.Column("created_at", UTCDateTime(), nullable=False),
    sa.Column("removed_at", UTCDateTime(), nullable=True),
    sa.Column("removed_reason", sa.Text(), nullable=True),
    sa.Index("ix_suppressions_phone", "organization_id", "phone"),
)

#: Consent per contact and channel (TEXT_CONSENT); revocation is recorded, not deleted.
consents = sa.Table(
    "consents",
    metadata,
    sa.Column("id", ID, primary_key=True),
    sa.Column("organization_id", ID, sa.ForeignKey("organizations.id"), nullable=False),
    sa.Column("phone", sa.String(20), nullable=False),
    sa.Column("channel", sa.String(8), nullable=False),
    sa.Column("source", sa.String(32), nullable=False),
    sa.Column("execution_id", ID, nullable=True),
    sa.Column("granted_at", UTCDateTime(), nullable=False),
    sa.Column("revoked_at", UTCDateTime(), nullable=True),
    sa.Column("revoked_reason", sa.Text(), nullable=True),
    sa.Index("ix_consents_phone", "organization_id", "phone"),
)

#: Every attempt made to a contact, in every workflow: what the rolling frequency caps count.
#: Written under the contact's lock just before the agent is asked, keyed like the dispatch.
contact_attempts = sa.Table(
    "contact_attempts",
    metadata,
    sa.Column(
        "id",
        sa.BigInteger().with_variant(sa.Integer(), "sqlite"),
        primary_key=True,
        autoincrement=True,
    ),
    sa.Column("organization_id", ID, sa.ForeignKey("organizations.id"), nullable=False),
    sa.Column("phone", sa.String(20), nullable=False),
    sa.Column("channel", sa.String(8), nullable=False),
    sa.Column("execution_id", ID, nullable=True),
    sa.Column("idempotency_key", sa.String(120), nullable=False, unique=True),
    sa.Column("at", UTCDateTime(), nullable=False),
    #: Led by the number: a batch reads its numbers' attempts by ``phone = ANY(...)``, and an
    #: index led by the organization let PostgreSQL scan every attempt of the organization.
    sa.Index("ix_contact_attempts_phone_org_at", "phone", "organization_id", "at"),
)

#: The simulator's durable ledger: the agent's own record of every call it placed, one row per
#: idempotency key, so a key is placed once across processes and restarts. ``requests`` counts
#: how often the key was sent (a re-send after a crash raises it; it never places again).
simulator_calls = sa.Table(
    "simulator_calls",
    metadata,
    sa.Column("idempotency_key", sa.String(120), primary_key=True),
    sa.Column("receipt", sa.JSON(), nullable=False),
    sa.Column("requests", sa.Integer(), nullable=False),
    sa.Column("placed_at", UTCDateTime(), nullable=False),
)

#: Every call handed to an agent, by our call id (derived from the idempotency key, so every
#: retry of a step attempt carries the same one): how an agent's later report finds its step.
agent_calls = sa.Table(
    "agent_calls",
    metadata,
    sa.Column("id", ID, primary_key=True),
    sa.Column("organization_id", ID, sa.ForeignKey("organizations.id"), nullable=False),
    sa.Column("execution_id", ID, sa.ForeignKey("executions.id"), nullable=False, index=True),
    sa.Column("step_execution_id", ID, nullable=False),
    sa.Column("agent_id", ID, nullable=False),
    sa.Column("provider", sa.String(32), nullable=False),
    sa.Column("channel", sa.String(8), nullable=False),
    sa.Column("idempotency_key", sa.String(120), nullable=False, unique=True),
    #: The provider's own id for the call (a Twilio message SID, a voice-AI call id).
    sa.Column("provider_call_id", sa.String(200), nullable=True),
    #: dispatched -> accepted (the agent will report later) -> reported
    sa.Column("status", sa.String(16), nullable=False),
    sa.Column("result", sa.JSON(), nullable=True),
    sa.Column("created_at", UTCDateTime(), nullable=False),
    sa.Column("reported_at", UTCDateTime(), nullable=True),
    sa.Index("ix_agent_calls_provider_call", "provider", "provider_call_id"),
    sa.Index("ix_agent_calls_agent_created", "agent_id", "created_at"),
)

#: Signed webhook messages already accepted, by their ``webhook-id``: a replay is refused.
webhook_messages = sa.Table(
    "webhook_messages",
    metadata,
    sa.Column("id", sa.String(200), primary_key=True),
    sa.Column("organization_id", ID, sa.ForeignKey("organizations.id"), nullable=False),
    sa.Column("received_at", UTCDateTime(), nullable=False),
)

#: Each agent's circuit breaker as the workers last saw it (shown in the agent's health).
agent_health = sa.Table(
    "agent_health",
    metadata,
    sa.Column("agent_id", ID, primary_key=True),
    sa.Column("organization_id", ID, sa.ForeignKey("organizations.id"), nullable=False),
    #: closed | open | half_open
    sa.Column("breaker", sa.String(16), nullable=False),
    sa.Column("reason", sa.Text(), nullable=True),
    sa.Column("open_until", UTCDateTime(), nullable=True),
    #: Call attempts that succeeded and failed over the last 15 minutes, as of ``updated_at``.
    sa.Column("recent_ok", sa.Integer(), nullable=False, server_default="0"),
    sa.Column("recent_failed", sa.Integer(), nullable=False, server_default="0"),
    sa.Column("updated_at", UTCDateTime(), nullable=False),
)

#: Where an organization's systems want to hear about events (``docs/webhooks.md``).
webhook_subscriptions = sa.Table(
    "webhook_subscriptions",
    metadata,
    sa.Column("id", ID, primary_key=True),
    sa.Column("organization_id", ID, sa.ForeignKey("organizations.id"), nullable=False),
    sa.Column("url", sa.Text(), nullable=False),
    sa.Column("description", sa.Text(), nullable=True),
    #: The event types taken (``["*"]``: every type).
    sa.Column("event_types", sa.JSON(), nullable=False),
    #: The Standard Webhooks secret (``whsec_...``); after a rotation the previous one also
    #: signs until ``previous_secret_until``.
    sa.Column("secret", sa.String(120), nullable=False),
    sa.Column("previous_secret", sa.String(120), nullable=True),
    sa.Column("previous_secret_until", UTCDateTime(), nullable=True),
    #: enabled | disabled (by request, or after its deliveries kept failing: ``disabled_reason``)
    sa.Column("status", sa.String(16), nullable=False),
    sa.Column("disabled_reason", sa.Text(), nullable=True),
    sa.Column("disabled_at", UTCDateTime(), nullable=True),
    #: The current streak of failed attempts, and when it began.
    sa.Column("consecutive_failures", sa.Integer(), nullable=False, server_default="0"),
    sa.Column("failing_since", UTCDateTime(), nullable=True),
    sa.Column("last_success_at", UTCDateTime(), nullable=True),
    sa.Column("last_failure_at", UTCDateTime(), nullable=True),
    sa.Column("created_at", UTCDateTime(), nullable=False),
    sa.Column("updated_at", UTCDateTime(), nullable=False),
    sa.Column("deleted_at", UTCDateTime(), nullable=True),
    sa.Index("ix_webhook_subscriptions_org", "organization_id", "created_at"),
)

#: Events some subscription of the organization takes, as they happened; the body is fixed
#: when the event is recorded, so every delivery and redelivery of it sends the same bytes.
webhook_events = sa.Table(
    "webhook_events",
    metadata,
    #: Recording order (a redelivered range is queued in it).
    sa.Column(
        "seq",
        sa.BigInteger().with_variant(sa.Integer(), "sqlite"),
        primary_key=True,
        autoincrement=True,
    ),
    sa.Column("id", sa.String(40), nullable=False, unique=True),
    sa.Column("organization_id", ID, sa.ForeignKey("organizations.id"), nullable=False),
    sa.Column("type", sa.String(40), nullable=False),
    sa.Column("execution_id", ID, nullable=True),
    #: Deliveries of events with the same key go out one after another, in order.
    sa.Column("order_key", sa.String(80), nullable=False),
    sa.Column("payload", sa.JSON(), nullable=False),
    sa.Column("occurred_at", UTCDateTime(), nullable=False),
    sa.Index("ix_webhook_events_org_occurred", "organization_id", "occurred_at"),
)

#: One event to one subscription: the webhook outbox. pending -> in_flight -> delivered |
#: failed; an in-flight row's lease ends at ``available_at``, its holder has the ``fence``.
webhook_deliveries = sa.Table(
    "webhook_deliveries",
    metadata,
    sa.Column(
        "id",
        sa.BigInteger().with_variant(sa.Integer(), "sqlite"),
        primary_key=True,
        autoincrement=True,
    ),
    sa.Column("organization_id", ID, sa.ForeignKey("organizations.id"), nullable=False),
    sa.Column("subscription_id", ID, sa.ForeignKey("webhook_subscriptions.id"), nullable=False),
    sa.Column("event_id", sa.String(40), sa.ForeignKey("webhook_events.id"), nullable=False),
    sa.Column("order_key", sa.String(80), nullable=False),
    sa.Column("status", sa.String(16), nullable=False),
    sa.Column("attempts", sa.Integer(), nullable=False, server_default="0"),
    sa.Column("fence", sa.Integer(), nullable=False, server_default="0"),
    sa.Column("available_at", UTCDateTime(), nullable=False),
    sa.Column("first_attempt_at", UTCDateTime(), nullable=True),
    sa.Column("last_status_code", sa.Integer(), nullable=True),
    sa.Column("last_error", sa.Text(), nullable=True),
    sa.Column("created_at", UTCDateTime(), nullable=False),
    sa.Column("done_at", UTCDateTime(), nullable=True),
    sa.Index(
        "ix_webhook_deliveries_open",
        "available_at",
        sqlite_where=sa.text("status IN ('pending', 'in_flight')"),
        postgresql_where=sa.text("status IN ('pending', 'in_flight')"),
    ),
    #: The head of each (subscription, order key) chain: only it may be sent.
    sa.Index(
        "ix_webhook_deliveries_chain",
        "subscription_id",
        "order_key",
        "id",
        sqlite_where=sa.text("status IN ('pending', 'in_flight')"),
        postgresql_where=sa.text("status IN ('pending', 'in_flight')"),
    ),
    sa.Index("ix_webhook_deliveries_event", "subscription_id", "event_id"),
    #: Retention (migration 0010): finished deliveries by when they finished, and an event's
    #: deliveries (is any left? the foreign key check when the event is deleted).
    sa.Index(
        "ix_webhook_deliveries_done",
        "done_at",
        sqlite_where=sa.text("done_at IS NOT NULL"),
        postgresql_where=sa.text("done_at IS NOT NULL"),
    ),
    sa.Index("ix_webhook_deliveries_event_id", "event_id"),
)

#: Every HTTP attempt of a delivery: the subscription's delivery log.
webhook_attempts = sa.Table(
    "webhook_attempts",
    metadata,
    sa.Column(
        "id",
        sa.BigInteger().with_variant(sa.Integer(), "sqlite"),
        primary_key=True,
        autoincrement=True,
    ),
    sa.Column("organization_id", ID, sa.ForeignKey("organizations.id"), nullable=False),
    sa.Column("subscription_id", ID, nullable=False),
    sa.Column("delivery_id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), nullable=False),
    sa.Column("event_id", sa.String(40), nullable=False),
    sa.Column("event_type", sa.String(40), nullable=False),
    sa.Column("attempt", sa.Integer(), nullable=False),
    sa.Column("at", UTCDateTime(), nullable=False),
    sa.Column("status_code", sa.Integer(), nullable=True),
    sa.Column("latency_ms", sa.Integer(), nullable=False),
    sa.Column("ok", sa.Boolean(), nullable=False),
    sa.Column("error", sa.Text(), nullable=True),
    sa.Index("ix_webhook_attempts_subscription", "subscription_id", "id"),
    sa.Index("ix_webhook_attempts_delivery", "delivery_id"),
)

#: Idempotency keys of creating requests: the ``Idempotency-Key`` header of the secret API and
#: ``idempotencyKey`` of the public one. The unique constraint is the guard: two racing requests
#: with one key insert one row, in the transaction that creates the resource, so one of them
#: creates and the other replays (``docs/public-sessions.md``).
idempotency_keys = sa.Table(
    "idempotency_keys",
    metadata,
    sa.Column("id", ID, primary_key=True),
    sa.Column("organization_id", ID, sa.ForeignKey("organizations.id"), nullable=False),
    #: ``api`` (the header) or ``public`` (the public execution endpoint).
    sa.Column("scope", sa.String(16), nullable=False),
    sa.Column("key", sa.String(255), nullable=False),
    #: SHA-256 of the method, the path and the canonical JSON body.
    sa.Column("fingerprint", sa.String(64), nullable=False),
    #: What was created (ids; a bulk create's rows): a replay answers from it.
    sa.Column("result", sa.JSON(), nullable=False),
    sa.Column("created_at", UTCDateTime(), nullable=False),
    sa.Column("expires_at", UTCDateTime(), nullable=False),
    sa.UniqueConstraint("organization_id", "scope", "key"),
    sa.Index("ix_idempotency_keys_expires_at", "expires_at"),
)

#: Public execution sessions (seed 004): a ``public_execute`` workflow started from outside,
#: tracked by client tokens. ``run_id`` is the execution it started (none while it waits for
#: payment); no foreign key, so deleting the execution leaves the session's history.
public_sessions = sa.Table(
    "public_sessions",
    metadata,
    sa.Column("id", ID, primary_key=True),
    sa.Column("organization_id", ID, sa.ForeignKey("organizations.id"), nullable=False),
    sa.Column("workflow_id", ID, sa.ForeignKey("workflows.id"), nullable=False),
    sa.Column("run_id", ID, nullable=True, index=True),
    sa.Column("source_system", sa.String(200), nullable=False),
    sa.Column("source_entity_type", sa.String(200), nullable=False),
    sa.Column("source_entity_id", sa.String(200), nullable=True),
    sa.Column("external_ref", sa.String(200), nullable=True),
    sa.Column("idempotency_key", sa.String(255), nullable=True),
    sa.Column("client_safe_metadata", sa.JSON(), nullable=False),
    sa.Column("request_payload", sa.JSON(), nullable=False),
    #: ``publishable_key`` or ``api_key``, and that key's id (never the key).
    sa.Column("initiated_by_type", sa.String(32), nullable=False),
    sa.Column("initiated_by_id", ID, nullable=False),
    #: The workflow's price when the session began (None: free).
    sa.Column("price_amount", sa.BigInteger(), nullable=True),
    sa.Column("price_currency", sa.String(3), nullable=True),
    #: not_required | unpaid | failed | paid | canceled
    sa.Column("payment_status", sa.String(16), nullable=False),
    sa.Column("checkout_session_id", sa.String(64), nullable=True, unique=True),
    sa.Column("order_id", sa.String(200), nullable=True),
    #: An unpaid session is cancelled at this instant.
    sa.Column("payment_due_at", UTCDateTime(), nullable=True),
    sa.Column("created_at", UTCDateTime(), nullable=False),
    sa.Column("updated_at", UTCDateTime(), nullable=False),
)

#: A session's own history before its run (created, payment, run started or refused); the run's
#: history is its execution's events.
public_session_events = sa.Table(
    "public_session_events",
    metadata,
    sa.Column(
        "id",
        sa.BigInteger().with_variant(sa.Integer(), "sqlite"),
        primary_key=True,
        autoincrement=True,
    ),
    sa.Column("organization_id", ID, sa.ForeignKey("organizations.id"), nullable=False),
    sa.Column("session_id", ID, sa.ForeignKey("public_sessions.id"), nullable=False, index=True),
    sa.Column("kind", sa.String(32), nullable=False),
    sa.Column("at", UTCDateTime(), nullable=False),
    sa.Column("data", sa.JSON(), nullable=False),
)

#: Client tokens, by their SHA-256 (the token itself is shown once): each reads one session.
client_tokens = sa.Table(
    "client_tokens",
    metadata,
    sa.Column("token_hash", sa.String(64), primary_key=True),
    sa.Column("organization_id", ID, sa.ForeignKey("organizations.id"), nullable=False),
    sa.Column("session_id", ID, sa.ForeignKey("public_sessions.id"), nullable=False, index=True),
    sa.Column("created_at", UTCDateTime(), nullable=False),
    sa.Column("expires_at", UTCDateTime(), nullable=False),
)

#: An organization's own secret for signed payment webhooks (else the setting's).
payment_secrets = sa.Table(
    "payment_secrets",
    metadata,
    sa.Column("organization_id", ID, sa.ForeignKey("organizations.id"), primary_key=True),
    sa.Column("secret", sa.String(120), nullable=False),
    sa.Column("created_at", UTCDateTime(), nullable=False),
)
