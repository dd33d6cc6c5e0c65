"""What the store hands back: frozen values, no ORM objects, no open cursors."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any

from reachflow.domain.decider import ExecutionState


@dataclass(frozen=True, slots=True)
class AgentRecord:
    id: str
    organization_id: str
    name: str
    channel: str
    provider: str
    config: dict[str, Any]
    created_at: datetime
    updated_at: datetime


@dataclass(frozen=True, slots=True)
class WorkflowRecord:
    id: str
    organization_id: str
    name: str
    description: str | None
    active: bool
    status: str
    version: int
    version_id: str
    timezone: str
    workflow_schedule: dict[str, Any] | None
    tcpa_schedule: dict[str, Any] | None
    definition: dict[str, Any]
    created_at: datetime
    updated_at: datetime
    #: Outsiders may start it through the public endpoint (seed 004), at this price.
    public_execute: bool = False
    price_amount: int | None = None
    price_currency: str | None = None


@dataclass(frozen=True, slots=True)
class VersionRecord:
    id: str
    organization_id: str
    workflow_id: str
    version: int
    timezone: str
    workflow_schedule: dict[str, Any] | None
    tcpa_schedule: dict[str, Any] | None
    definition: dict[str, Any]


@dataclass(frozen=True, slots=True)
class ExecutionRef:
    """The few columns of an execution the dispatch stage needs (no state to decode)."""

    id: str
    organization_id: str
    version_id: str
    status: str
    primary_phone: str
    zipcode: str | None
    state: str | None


@dataclass(frozen=True, slots=True)
class ExecutionRecord:
    id: str
    organization_id: str
    workflow_id: str
    version_id: str
    status: str
    customer_lead_id: str | None
    primary_phone: str
    zipcode: str | None
    state: str | None
    forwarding_phone_number: str | None
    variables: dict[str, Any]
    metadata: dict[str, Any]
    priority_date: datetime | None
    start_at: datetime | None
    due_at: datetime | None
    node_id: str | None
    disposition: str | None
    engine: ExecutionState
    temporal_workflow_id: str | None
    started_at: datetime | None
    completed_at: datetime | None
    created_at: datetime
    updated_at: datetime


@dataclass(frozen=True, slots=True)
class StepRecord:
    id: str
    execution_id: str
    node_id: str
    visit: int
    kind: str
    type: str | None
    order: int
    delay_in_secs: int
    needs_tcpa: bool
    finish_on: list[str]
    leave_voicemail: bool
    agent_id: str | None
    status: str
    scheduled_at: datetime | None
    next_allowed_at: datetime | None
    started_at: datetime | None
    completed_at: datetime | None
    disposition: str | None
    agent_call: dict[str, Any] | None
    created_at: datetime
    #: The contact's reply, on a step that waited for one.
    reply: str | None = None
    replied_at: datetime | None = None


@dataclass(frozen=True, slots=True)
class EventRecord:
    id: int
    execution_id: str
    kind: str
    at: datetime
    data: dict[str, Any]


@dataclass(frozen=True, slots=True)
class OutboxItem:
    id: int
    organization_id: str
    execution_id: str
    step_execution_id: str
    idempotency_key: str
    kind: str
    payload: dict[str, Any]
    attempts: int
    #: The fencing token this claim holds; finishing the row requires it.
    fence: int = 0
    agent_id: str | None = None
    #: Taken over from a worker whose lease lapsed: a re-send under the same key.
    resent: bool = False
    lease_until: datetime | None = None


@dataclass(frozen=True, slots=True)
class InboxItem:
    id: int
    organization_id: str
    execution_id: str
    kind: str
    payload: dict[str, Any]
    due_at: datetime
