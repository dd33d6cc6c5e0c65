"""``/api/v1/webhooks``: event webhook subscriptions, their delivery log and redelivery
(``docs/webhooks.md``)."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Depends, Path, Query

from reachflow.api.bodies import body_of
from reachflow.api.deps import ID_PATTERN, CleanParameters, OrgDep, ServicesDep
from reachflow.api.feather_json import iso
from reachflow.api.openapi import errors
from reachflow.api.schemas.webhooks import (
    WebhookCreate,
    WebhookRedeliver,
    WebhookSecretRotate,
    WebhookUpdate,
)
from reachflow.store.webhooks import AttemptRecord, SubscriptionRecord

router = APIRouter(prefix="/api/v1/webhooks", tags=["webhooks"], dependencies=[CleanParameters])
WebhookId = Annotated[
    str, Path(alias="webhookId", pattern=ID_PATTERN, description="The subscription's id")
]


def masked_secret(secret: str) -> str:
    return f"whsec_...{secret[-4:]}"


def webhook_json(r: SubscriptionRecord, *, reveal_secret: bool = False) -> dict[str, Any]:
    return {
        "id": r.id,
        "url": r.url,
        "description": r.description,
        "events": r.event_types,
        "enabled": r.enabled,
        "status": r.status,
        "disabledReason": r.disabled_reason,
        "disabledAt": iso(r.disabled_at),
        "consecutiveFailures": r.consecutive_failures,
        "failingSince": iso(r.failing_since),
        "lastSuccessAt": iso(r.last_success_at),
        "lastFailureAt": iso(r.last_failure_at),
        "secret": r.secret if reveal_secret else masked_secret(r.secret),
        "previousSecretValidUntil": iso(r.previous_secret_until),
        "createdAt": iso(r.created_at),
        "updatedAt": iso(r.updated_at),
    }


def attempt_json(a: AttemptRecord) -> dict[str, Any]:
    return {
        "id": str(a.id),
        "deliveryId": str(a.delivery_id),
        "eventId": a.event_id,
        "eventType": a.event_type,
        "attempt": a.attempt,
        "at": iso(a.at),
        "statusCode": a.status_code,
        "latencyMs": a.latency_ms,
        "ok": a.ok,
        "error": a.error,
        "deliveryStatus": a.delivery_status,
    }


@router.post("", status_code=201, responses=errors(409, body=True))
def create_webhook(
    services: ServicesDep,
    org: OrgDep,
    body: Annotated[dict[str, Any], Depends(body_of(WebhookCreate))],
) -> dict[str, Any]:
    # The one answer that shows the secret (and a rotation's).
    return webhook_json(services.webhooks.create(org, body), reveal_secret=True)


@router.get("", responses=errors())
def list_webhooks(
    services: ServicesDep,
    org: OrgDep,
    limit: Annotated[int, Query(ge=1, le=100)] = 50,
    offset: Annotated[int, Query(ge=0, le=1_000_000)] = 0,
) -> dict[str, Any]:
    rows, total = services.webhooks.list(org, limit=limit, offset=offset)
    return {
        "webhooks": [webhook_json(r) for r in rows],
        "pagination": {"limit": limit, "offset": offset, "total": total},
    }


@router.get("/{webhookId}", responses=errors(404))
def get_webhook(services: ServicesDep, org: OrgDep, webhook_id: WebhookId) -> dict[str, Any]:
    record = services.webhooks.get(org, webhook_id)
    return {**webhook_json(record), "openDeliveries": services.webhooks.open_deliveries(record.id)}


@router.patch("/{webhookId}", responses=errors(404, body=True))
def update_webhook(
    services: ServicesDep,
    org: OrgDep,
    webhook_id: WebhookId,
    body: Annotated[dict[str, Any], Depends(body_of(WebhookUpdate))],
) -> dict[str, Any]:
    return webhook_json(services.webhooks.update(org, webhook_id, body))


@router.delete("/{webhookId}", responses=errors(404))
def delete_webhook(services: ServicesDep, org: OrgDep, webhook_id: WebhookId) -> dict[str, Any]:
    services.webhooks.delete(org, webhook_id)
    return {"message": "Webhook deleted", "success": True}


@router.post("/{webhookId}/rotate-secret", responses=errors(404, body=True))
def rotate_webhook_secret(
    services: ServicesDep,
    org: OrgDep,
    webhook_id: WebhookId,
    body: Annotated[dict[str, Any], Depends(body_of(WebhookSecretRotate))],
) -> dict[str, Any]:
    return webhook_json(services.webhooks.rotate_secret(org, webhook_id, body), reveal_secret=True)


@router.get("/{webhookId}/deliveries", responses=errors(404))
def webhook_deliveries(
    services: ServicesDep,
    org: OrgDep,
    webhook_id: WebhookId,
    limit: Annotated[int, Query(ge=1, le=200)] = 50,
    cursor: Annotated[str | None, Query(pattern=r"^[0-9]{1,19}$")] = None,
    event_id: Annotated[str | None, Query(alias="eventId", pattern=ID_PATTERN)] = None,
) -> dict[str, Any]:
    rows, next_cursor = services.webhooks.deliveries(
        org, webhook_id, limit=limit, cursor=cursor, event_id=event_id
    )
    return {
        "deliveries": [attempt_json(a) for a in rows],
        "pagination": {"limit": limit, "nextCursor": next_cursor},
    }


@router.post("/{webhookId}/redeliver", status_code=202, responses=errors(404, 409, body=True))
def redeliver(
    services: ServicesDep,
    org: OrgDep,
    webhook_id: WebhookId,
    body: Annotated[dict[str, Any], Depends(body_of(WebhookRedeliver))],
) -> dict[str, Any]:
    done = services.webhooks.redeliver(org, webhook_id, body)
    return {"queued": done.queued, "eventIds": done.event_ids[:100], "success": True}
