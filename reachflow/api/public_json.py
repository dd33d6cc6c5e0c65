"""Seed 004's wire shapes: the ``{code, data, message, requestId}`` envelope, the execution
session (every field the seed lists) and its client-safe view (no payloads, no organization,
no phone number)."""

from __future__ import annotations

from typing import Any

from reachflow.api.feather_json import iso
from reachflow.domain.public_sessions import PublicEvent, StatusChange
from reachflow.logs import request_id_var
from reachflow.services.public_sessions import SessionView


def envelope(data: Any, *, code: int = 200, message: str = "success") -> dict[str, Any]:
    return {"code": code, "data": data, "message": message, "requestId": request_id_var.get()}


def error_envelope(feather: dict[str, Any]) -> dict[str, Any]:
    """Our error body (``api.errors.error_body``) as the seed's envelope."""
    status = int(feather.get("status") or 500)
    data = {
        "error": feather.get("code"),
        "field": feather.get("field"),
        "errors": feather.get("errors") or [],
    }
    return {
        "code": status,
        "data": data,
        "message": str(feather.get("message") or ""),
        "requestId": feather.get("requestId"),
    }


def execution_json(view: SessionView) -> dict[str, Any]:
    """The session as its creator sees it: every field of seed 004."""
    s = view.session
    return {
        "checkoutSessionId": s.checkout_session_id,
        "clientSafeMetadata": s.client_safe_metadata,
        "createdAt": iso(s.created_at),
        "externalRef": s.external_ref,
        "finishedAt": iso(view.finished_at),
        "id": s.id,
        "idempotencyKey": s.idempotency_key,
        "initiatedById": s.initiated_by_id,
        "initiatedByType": s.initiated_by_type,
        "orderId": s.order_id,
        "organizationId": s.organization_id,
        "paymentStatus": view.payment_status,
        "requestPayload": s.request_payload,
        "responsePayload": view.response_payload,
        "runId": s.run_id,
        "sourceEntityId": s.source_entity_id,
        "sourceEntityType": s.source_entity_type,
        "sourceSystem": s.source_system,
        "startedAt": iso(view.started_at),
        "status": view.status.value,
        "statusReason": view.status_reason,
        "updatedAt": iso(view.updated_at),
        "workflowId": s.workflow_id,
    }


def client_json(view: SessionView) -> dict[str, Any]:
    """What a client token reads: the status and the event timeline."""
    s = view.session
    return {
        "checkoutSessionId": s.checkout_session_id,
        "clientSafeMetadata": s.client_safe_metadata,
        "createdAt": iso(s.created_at),
        "events": [event_json(e, s.run_id) for e in view.events],
        "finishedAt": iso(view.finished_at),
        "id": s.id,
        "message": view.status_reason,
        "orderId": s.order_id,
        "paymentStatus": view.payment_status,
        "runId": s.run_id,
        "startedAt": iso(view.started_at),
        "status": view.status.value,
        "statusReason": view.status_reason,
        "updatedAt": iso(view.updated_at),
        "workflowId": s.workflow_id,
    }


def event_json(event: PublicEvent, run_id: str | None) -> dict[str, Any]:
    return {
        "createdAt": iso(event.at),
        "eventType": event.event_type,
        "id": event.id,
        "level": event.level,
        "message": event.message,
        "nodeId": event.node_id,
        "runId": run_id if event.id.startswith("ev_") else None,
        "title": event.title,
    }


def change_json(change: StatusChange, view: SessionView) -> dict[str, Any]:
    """One status change as a server-sent event's data."""
    return {
        "id": view.session.id,
        "sequence": change.sequence,
        "status": change.status.value,
        "statusReason": change.reason,
        "at": iso(change.at),
        "paymentStatus": view.payment_status,
        "runId": view.session.run_id,
    }
