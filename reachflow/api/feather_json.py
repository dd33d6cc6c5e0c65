"""Feather's wire shapes (seeds 000-002): camelCase, UPPER_SNAKE enums, bare objects."""

from __future__ import annotations

import re
from datetime import UTC, datetime
from typing import Any

from reachflow.domain.decider import Phase
from reachflow.domain.enums import ExecutionStatus
from reachflow.services.executions import BulkRow, ExecutionView
from reachflow.services.public_workflows import price_json
from reachflow.store.records import (
    AgentRecord,
    EventRecord,
    ExecutionRecord,
    StepRecord,
    WorkflowRecord,
)

ACTIVE = ("CREATED", "RUNNING", "PAUSED")
#: Phases that wait on someone else (an agent's report, an action's result), not on a timer:
#: their wake-up is a deadline, not a planned run.
WAITING_ON_OTHERS = frozenset({Phase.DISPATCHED, Phase.APPLYING})


def iso(value: datetime | None) -> str | None:
    """The one way an instant goes on the wire: UTC, ISO 8601, ``Z``."""
    if value is None:
        return None
    if value.tzinfo is not None:
        value = value.astimezone(UTC)
    return value.isoformat().replace("+00:00", "Z")


_UTC_TEXT = re.compile(r"^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}(\.\d+)?(\+00:00|Z)$")


def wire_times(value: Any) -> Any:
    """``value`` with every instant inside written by ``iso``: datetimes, and UTC instants
    stored as text (an agent's ``callStartedAt``, an event's ``until``)."""
    if isinstance(value, datetime):
        return iso(value)
    if isinstance(value, str) and _UTC_TEXT.match(value):
        return value.replace("+00:00", "Z")
    if isinstance(value, dict):
        return {k: wire_times(v) for k, v in value.items()}
    if isinstance(value, list):
        return [wire_times(v) for v in value]
    return value


def next_run_at(r: ExecutionRecord) -> str | None:
    """When the engine next acts on its own: a delay's end, a deferral's opening, a start.
    None while it waits on an agent or an action (the wake-up then is a report deadline),
    and once finished."""
    if r.status not in ACTIVE or r.engine.phase in WAITING_ON_OTHERS:
        return None
    return iso(r.due_at)


def started_at(r: ExecutionRecord) -> datetime:
    """Seed 000's required ``startedAt``, the same from the create response on: when the
    execution was accepted, or its ``startAt`` if that is later."""
    if r.start_at is not None and r.start_at > r.created_at:
        return r.start_at
    return r.created_at


def final_disposition(r: ExecutionRecord) -> str | None:
    """Seed 000's "Final execution disposition": null until the execution has ended."""
    return r.disposition if ExecutionStatus(r.status).is_terminal else None


#: Agent config keys that hold credentials: shown in full only in the create response.
SECRET_CONFIG_KEYS = frozenset({"secret", "authToken", "apiKey", "apiKeySecret"})


def masked(value: object) -> object:
    """A credential as ``****`` and its last four characters."""
    if not isinstance(value, str) or not value:
        return value
    return "****" + value[-4:] if len(value) > 8 else "****"


def unmasked(config: dict[str, Any], current: dict[str, Any]) -> dict[str, Any]:
    """A config sent back as it was shown: a masked credential keeps its stored value."""
    return {
        k: current[k]
        if k in SECRET_CONFIG_KEYS and k in current and v == masked(current[k]) != current[k]
        else v
        for k, v in config.items()
    }


def agent_json(a: AgentRecord, *, reveal_secrets: bool = False) -> dict[str, Any]:
    config = a.config
    if not reveal_secrets:
        config = {k: masked(v) if k in SECRET_CONFIG_KEYS else v for k, v in config.items()}
    return {
        "id": a.id,
        "organizationId": a.organization_id,
        "name": a.name,
        "channel": a.channel,
        "provider": a.provider,
        "config": config,
        "createdAt": iso(a.created_at),
        "updatedAt": iso(a.updated_at),
    }


def workflow_json(w: WorkflowRecord) -> dict[str, Any]:
    return {
        "id": w.id,
        "organizationId": w.organization_id,
        "name": w.name,
        "description": w.description,
        "active": w.active,
        "timezone": w.timezone,
        "workflowSchedule": w.workflow_schedule,
        "tcpaSchedule": w.tcpa_schedule,
        "definition": w.definition,
        "version": w.version,
        "publicExecute": w.public_execute,
        "price": price_json(w.price_amount, w.price_currency),
        "createdAt": iso(w.created_at),
        "updatedAt": iso(w.updated_at),
    }


def step_json(s: StepRecord) -> dict[str, Any]:
    return {
        "id": s.id,
        "workflowExecutionId": s.execution_id,
        "status": s.status,
        "type": s.type,
        "order": s.order,
        "delayInSecs": s.delay_in_secs,
        "needsTCPACompliance": s.needs_tcpa,
        "finishOn": s.finish_on,
        "startedAt": iso(s.started_at),
        "completedAt": iso(s.completed_at),
        "leaveVoicemail": s.leave_voicemail,
        "disposition": s.disposition,
        "agentId": s.agent_id,
        "agentCall": wire_times(s.agent_call),
        "nodeId": s.node_id,
        "scheduledAt": iso(s.scheduled_at),
        "nextAllowedAt": iso(s.next_allowed_at),
        # A step that waited for a reply (waitForReply, WAIT_FOR_REPLY) shows what came.
        **({"reply": s.reply, "repliedAt": iso(s.replied_at)} if s.reply is not None else {}),
    }


def execution_json(view: ExecutionView) -> dict[str, Any]:
    """Seed 000's response shape (``execution_detail_json`` adds to it)."""
    r = view.record
    return {
        "id": r.id,
        "workflowId": r.workflow_id,
        "status": r.status,
        "temporalWorkflowId": r.temporal_workflow_id,
        "startedAt": iso(started_at(r)),
        "completedAt": iso(r.completed_at),
        "customerLeadId": r.customer_lead_id,
        "metadata": r.metadata,
        "disposition": final_disposition(r),
        "definition": view.definition,
        "stepExecutions": [step_json(s) for s in view.steps if s.kind == "ACTION"],
        "createdAt": iso(r.created_at),
    }


def step_index(view: ExecutionView) -> int | None:
    steps = view.definition.get("steps") if view.definition else None
    node = view.record.node_id
    if not steps or node is None:
        return None
    step_id = node.split("#", 1)[0]
    for i, step in enumerate(steps):
        if step.get("id") == step_id:
            return i
    return None


def execution_detail_json(view: ExecutionView) -> dict[str, Any]:
    """Seed 000's shape plus the list fields, the contact and the engine's reason: the one
    execution every endpoint answers (create, get, list, update, cancel)."""
    r = view.record
    return {
        **execution_json(view),
        "primaryPhone": r.primary_phone,
        "zipcode": r.zipcode,
        "state": r.state,
        "forwardingPhoneNumber": r.forwarding_phone_number,
        "variables": r.variables,
        "stepIndex": step_index(view),
        "nextRunAt": next_run_at(r),
        "priorityDate": iso(r.priority_date),
        "startAt": iso(r.start_at),
        "reason": r.engine.reason,
    }


def execution_list_item(view: ExecutionView, *, enriched: bool) -> dict[str, Any]:
    item = execution_detail_json(view)
    if not enriched:
        for heavy in ("metadata", "definition", "variables", "stepExecutions"):
            item.pop(heavy, None)
    return item


def event_json(e: EventRecord) -> dict[str, Any]:
    return {"id": e.id, "type": e.kind, "at": iso(e.at), "data": wire_times(e.data)}


def bulk_json(rows: list[BulkRow]) -> dict[str, Any]:
    ok = sum(1 for r in rows if r.success)
    return {
        "total": len(rows),
        "successful": ok,
        "failed": len(rows) - ok,
        "results": [
            {
                "success": r.success,
                "executionId": r.execution_id,
                "customerLeadId": r.customer_lead_id,
                "error": r.error,
            }
            for r in rows
        ],
    }
