"""The composition root: ``bootstrap(settings) -> Services``. No module-level state anywhere."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import timedelta

from reachflow.agents.port import Agent
from reachflow.agents.retell import RetellAgent
from reachflow.agents.simulator import SimulatorAgent
from reachflow.agents.twilio import TwilioAgent
from reachflow.agents.webhook import WebhookAgent
from reachflow.domain.compliance import NoEvidencePolicy
from reachflow.domain.events import DeliveryPolicy
from reachflow.runtime.clock import Clock, SystemClock
from reachflow.runtime.compliance import ContactCompliance
from reachflow.runtime.embedded.dispatcher import DispatchLimits
from reachflow.runtime.embedded.engine import Engine, EngineConfig
from reachflow.runtime.embedded.webhooks import WebhookLimits
from reachflow.runtime.embedded.worker import EmbeddedWorker
from reachflow.runtime.temporal.client import TemporalRuntime
from reachflow.services.accounts import AccountService, AgentService
from reachflow.services.agent_calls import AgentCallService
from reachflow.services.agent_health import AgentHealthService
from reachflow.services.contacts import ContactService
from reachflow.services.executions import ExecutionService
from reachflow.services.graph_workflows import GraphWorkflowService
from reachflow.services.idempotency import IdempotencyService
from reachflow.services.leads import LeadService
from reachflow.services.public_sessions import PublicSessionService, PublicSettings
from reachflow.services.validation import FieldLimits
from reachflow.services.webhooks import WebhookService
from reachflow.services.workflows import WorkflowService
from reachflow.settings import Settings
from reachflow.store.database import Database
from reachflow.store.simulator_ledger import SimulatorLedger
from reachflow.store.store import Store


@dataclass
class Services:
    settings: Settings
    db: Database
    store: Store
    clock: Clock
    simulator: SimulatorAgent
    ledger: SimulatorLedger
    engine: Engine
    compliance: ContactCompliance
    worker: EmbeddedWorker
    accounts: AccountService
    agents: AgentService
    workflows: WorkflowService
    executions: ExecutionService
    contacts: ContactService
    graph_workflows: GraphWorkflowService
    leads: LeadService
    agent_calls: AgentCallService
    agent_health: AgentHealthService
    idempotency: IdempotencyService
    public_sessions: PublicSessionService
    webhooks: WebhookService
    #: The Temporal client when ``REACHFLOW_RUNTIME=temporal``.
    temporal: TemporalRuntime | None = None

    def close(self) -> None:
        self.worker.stop()
        if self.temporal is not None:
            self.temporal.close()
        self.engine.close()
        for agent in self.engine.agents.values():
            getattr(agent, "close", lambda: None)()  # the webhook agent's HTTP client
        self.ledger.close()
        self.db.dispose()


def bootstrap(
    settings: Settings,
    *,
    clock: Clock | None = None,
    migrate: bool = True,
    extra_agents: dict[str, Agent] | None = None,
) -> Services:
    clock = clock or SystemClock()
    db = Database(settings.database_url)
    if migrate:
        db.migrate()
    store = Store(db)
    ledger = SimulatorLedger(db)
    simulator = SimulatorAgent(ledger)
    agents: dict[str, Agent] = {
        "simulator": simulator,
        "webhook": WebhookAgent(),
        "twilio": TwilioAgent(base_url=settings.twilio_base_url),
        "retell": RetellAgent(base_url=settings.retell_base_url),
        **(extra_agents or {}),
    }
    margin = timedelta(seconds=settings.closing_margin_seconds)
    horizon = timedelta(days=settings.window_horizon_days)
    compliance = ContactCompliance(
        store,
        no_evidence=NoEvidencePolicy(settings.no_location_policy),
        stop_revokes_all=settings.stop_revokes_all,
        margin=margin,
        horizon=horizon,
    )
    engine = Engine(
        store,
        agents,
        clock,
        EngineConfig(
            batch_size=settings.worker_batch_size,
            lease=timedelta(seconds=settings.lease_seconds),
            report_timeout=timedelta(seconds=settings.report_timeout_seconds),
            org_dispatches_per_second=settings.org_dispatches_per_second,
            breaker_threshold=settings.breaker_threshold,
            breaker_cooldown=timedelta(seconds=settings.breaker_cooldown_seconds),
            callback_base=settings.public_url or f"http://{settings.host}:{settings.port}",
            limits=DispatchLimits(
                max_in_flight=settings.dispatch_max_in_flight,
                per_agent=settings.dispatch_per_agent,
                threads=settings.dispatch_threads,
            ),
            webhooks=WebhookLimits(
                max_in_flight=settings.webhook_max_in_flight,
                per_subscription=settings.webhook_per_subscription,
                lease=timedelta(seconds=max(60.0, settings.webhook_timeout_seconds * 3)),
                retention=(
                    timedelta(days=settings.webhook_retention_days)
                    if settings.webhook_retention_days > 0
                    else None
                ),
            ),
            delivery_policy=DeliveryPolicy(
                max_backoff=timedelta(seconds=settings.webhook_max_backoff_seconds),
                horizon=timedelta(seconds=settings.webhook_retry_horizon_seconds),
                disable_after_failures=settings.webhook_disable_after_failures,
                disable_after=timedelta(seconds=settings.webhook_disable_after_seconds),
            ),
            webhook_timeout=timedelta(seconds=settings.webhook_timeout_seconds),
        ),
        compliance=compliance,
    )
    limits = FieldLimits(
        metadata_bytes=settings.max_metadata_bytes,
        variables_bytes=settings.max_variables_bytes,
        agent_config_bytes=settings.max_agent_config_bytes,
    )
    executions = ExecutionService(
        store,
        engine,
        clock,
        bulk_limit=settings.bulk_limit,
        insert_batch=settings.bulk_insert_batch,
        limits=limits,
    )
    workflows = WorkflowService(store, clock, executions)
    idempotency = IdempotencyService(
        store, clock, timedelta(hours=settings.idempotency_key_hours)
    )
    public_sessions = PublicSessionService(
        store,
        executions,
        idempotency,
        clock,
        PublicSettings(
            token_ttl=timedelta(hours=settings.client_token_ttl_hours),
            payment_timeout=timedelta(minutes=settings.payment_timeout_minutes),
            payment_secret=settings.payment_webhook_secret,
            limits=limits,
        ),
    )
    services = Services(
        settings=settings,
        db=db,
        store=store,
        clock=clock,
        simulator=simulator,
        ledger=ledger,
        engine=engine,
        compliance=compliance,
        worker=EmbeddedWorker(
            engine,
            clock,
            poll_seconds=settings.worker_poll_seconds,
            switch_interval=settings.worker_switch_interval_ms / 1000
            if settings.worker_switch_interval_ms > 0
            else None,
        ),
        accounts=AccountService(store, clock),
        agents=AgentService(store, clock, limits),
        workflows=workflows,
        executions=executions,
        contacts=ContactService(store, engine, compliance, clock),
        graph_workflows=GraphWorkflowService(store, engine, clock, workflows),
        leads=LeadService(store, engine, clock, limits),
        agent_calls=AgentCallService(store, engine, clock),
        agent_health=AgentHealthService(
            store, clock, timedelta(seconds=settings.report_timeout_seconds)
        ),
        idempotency=idempotency,
        public_sessions=public_sessions,
        webhooks=WebhookService(store, engine, clock),
    )
    if settings.runtime == "temporal":
        services.temporal = TemporalRuntime(
            settings.temporal_address, settings.temporal_namespace, settings.temporal_task_queue
        )
        services.temporal.install(engine)
    return services
