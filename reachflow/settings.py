"""Settings from ``REACHFLOW_*`` environment variables (documented in docs/configuration.md)."""

from __future__ import annotations

from typing import Literal

from limits import parse_many
from pydantic import Field, field_validator
from pydantic_settings import BaseSettings, SettingsConfigDict


class Settings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="REACHFLOW_", extra="ignore")

    database_url: str = "sqlite:///./reachflow.db"
    host: str = "127.0.0.1"
    port: int = 8000
    #: This server's address as agents and providers reach it (their callbacks go here);
    #: empty: http://{host}:{port}.
    public_url: str = ""
    #: Twilio's REST API base URL, for tests only (empty: the real https://api.twilio.com).
    twilio_base_url: str = ""
    #: Retell's API base URL (agents.retell; change it only to test against a fake Retell).
    retell_base_url: str = "https://api.retellai.com"
    #: Run the embedded worker inside ``reachflow serve``.
    embedded_worker: bool = True
    worker_poll_seconds: float = 1.0
    #: The interpreter's thread switch interval while a worker runs in the process, in ms
    #: (0: leave Python's default of 5 ms). Short, so API requests beside a busy worker answer.
    worker_switch_interval_ms: float = 0.5
    worker_batch_size: int = 200
    lease_seconds: int = 60
    #: Agent calls in flight in one worker process, over all agents.
    dispatch_max_in_flight: int = 1000
    #: Agent calls in flight per agent whose config sets no ``maxConcurrent`` (the in-process
    #: simulator has no bound unless it sets one).
    dispatch_per_agent: int = 50
    #: Dispatches per second per organization over all its agents (0: no bound); per agent,
    #: its config's ``dispatchesPerSecond``.
    org_dispatches_per_second: float = 0.0
    #: Transient agent failures in a row that open its circuit breaker, and the first
    #: cooldown before one probe call is let through (doubling up to 10 minutes).
    breaker_threshold: int = 5
    breaker_cooldown_seconds: float = 30.0
    #: Threads calling agents that take one request at a time.
    dispatch_threads: int = 32
    #: A dispatched step with no agent report after this long fails as COULD_NOT_CONNECT.
    report_timeout_seconds: int = 7200
    #: No step starts this close to the end of an open window.
    closing_margin_seconds: int = 0
    #: How far ahead to look for an open window before an execution fails.
    window_horizon_days: int = 14
    #: A contact with no usable ZIP, phone or state: REFUSE (never contact) or ALL_US_ZONES.
    no_location_policy: Literal["REFUSE", "ALL_US_ZONES"] = "REFUSE"

    @field_validator("no_location_policy", mode="before")
    @classmethod
    def _upper(cls, value: object) -> object:
        return value.upper() if isinstance(value, str) else value

    #: An opt-out reply to a text stops calls too (FCC "revoke-all"), not just texts.
    stop_revokes_all: bool = False

    # --- Event webhooks (docs/webhooks.md) ---
    #: How long a subscriber may take to answer one delivery attempt.
    webhook_timeout_seconds: float = Field(default=10.0, gt=0, le=60)
    #: Deliveries in flight per subscription, and overall in one worker process.
    webhook_per_subscription: int = Field(default=8, ge=1)
    webhook_max_in_flight: int = Field(default=500, ge=1)
    #: A failed attempt waits 5 s, doubling up to this, plus up to 20 % jitter ...
    webhook_max_backoff_seconds: float = Field(default=3600.0, gt=0)
    #: ... and a delivery is given up once its next attempt would start this long after its
    #: first.
    webhook_retry_horizon_seconds: float = Field(default=86400.0, gt=0)
    #: A subscription is disabled after this many failed attempts in a row, spanning at least
    #: this long.
    webhook_disable_after_failures: int = Field(default=20, ge=1)
    webhook_disable_after_seconds: float = Field(default=86400.0, ge=0)
    #: Finished deliveries, their attempts (the delivery log) and their events are deleted
    #: this many days after they finished; 0 keeps them forever.
    webhook_retention_days: float = Field(default=30.0, ge=0)
    #: Bounds on stored free-form JSON (compact JSON text, bytes): an execution's or lead's
    #: ``metadata`` (also after a PUT merges into it), its ``variables`` (a graph lead's extra
    #: columns), an agent's ``config``.
    max_metadata_bytes: int = 65_536
    max_variables_bytes: int = 65_536
    max_agent_config_bytes: int = 65_536
    bulk_limit: int = 1000
    bulk_insert_batch: int = 500
    default_organization: str = "default"
    log_level: str = "INFO"

    # --- Runtime (docs/scaling.md) ---
    #: ``embedded`` (worker threads or ``reachflow worker`` processes over the SQL store) or
    #: ``temporal`` (one Temporal workflow per execution; run ``reachflow temporal-worker``).
    runtime: Literal["embedded", "temporal"] = "embedded"
    #: The Temporal frontend (host:port), namespace and task queue of the temporal runtime.
    temporal_address: str = "127.0.0.1:7233"
    temporal_namespace: str = "default"
    temporal_task_queue: str = "reachflow"
    #: Activity threads in one ``reachflow temporal-worker``.
    temporal_activity_threads: int = Field(default=32, ge=1)

    # --- Public execution sessions and idempotency keys (docs/public-sessions.md) ---
    #: How long an idempotency key holds its result (the secret API's ``Idempotency-Key``
    #: header and the public endpoint's ``idempotencyKey``); after it, the key is new again.
    idempotency_key_hours: float = Field(default=24.0, gt=0)
    #: How long a client token reads its execution.
    client_token_ttl_hours: float = Field(default=168.0, gt=0)
    #: A priced session not paid within this is cancelled (``workflow_cancelled``).
    payment_timeout_minutes: float = Field(default=60.0, gt=0)
    #: The Standard Webhooks secret (``whsec_...``) that signs payment webhooks of
    #: organizations without their own (``reachflow payment-secret create``); empty: none.
    payment_webhook_secret: str = ""
    #: The status stream: how often it looks for changes, how long one connection lasts
    #: (the client reconnects with Last-Event-ID), its keep-alive comments, the client's
    #: reconnection delay it announces.
    public_stream_poll_seconds: float = Field(default=1.0, gt=0)
    public_stream_max_seconds: float = Field(default=300.0, gt=0)
    public_stream_keepalive_seconds: float = Field(default=15.0, gt=0)
    public_stream_retry_ms: int = Field(default=2000, ge=0)
    #: Origins whose pages may call ``/v1/public`` from a browser (CORS), comma-separated;
    #: ``*``: any; empty: none.
    public_cors_origins: str = "*"

    # --- Request limits: body sizes and rate limits (docs/configuration.md, docs/security.md) ---
    #: The largest request body accepted, in bytes; a larger one is a 413 (PAYLOAD_TOO_LARGE).
    max_body_bytes: int = Field(default=1024 * 1024, ge=1)
    #: The largest lead upload (``POST /v1/workflows/{id}/leads``, CSV or JSON), in bytes.
    max_upload_bytes: int = Field(default=10 * 1024 * 1024, ge=1)
    #: Rate limiting on or off (off: no 429 at all).
    rate_limit_enabled: bool = True
    #: Requests per API key (the ``limits`` notation: "600/minute", "10/second;600/minute").
    rate_limit_per_key: str = "600/minute"
    #: Requests per client address without a key, and failed-auth (401) answers per address.
    rate_limit_unauthenticated: str = "60/minute"

    @field_validator("rate_limit_per_key", "rate_limit_unauthenticated")
    @classmethod
    def _rate(cls, value: str) -> str:
        try:
            if not parse_many(value):
                raise ValueError("no limit given")
        except ValueError as exc:
            raise ValueError(f"not a rate limit such as '600/minute': {value!r}") from exc
        return value
