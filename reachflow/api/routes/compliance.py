"""The suppression list, consent, inbound texts and the compliance explain endpoint."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Depends, Query, Response

from reachflow.api.bodies import body_of
from reachflow.api.deps import ID_PATTERN, CleanParameters, OrgDep, ServicesDep, SuppressionId
from reachflow.api.feather_json import iso
from reachflow.api.openapi import errors
from reachflow.api.schemas import ConsentCreate, InboundText, SuppressionCreate
from reachflow.store.contacts import SuppressionRecord

router = APIRouter(prefix="/api/v1", tags=["compliance"], dependencies=[CleanParameters])


def suppression_json(r: SuppressionRecord) -> dict[str, Any]:
    return {
        "id": r.id,
        "phoneNumber": r.phone,
        "channel": r.channel,
        "reason": r.reason,
        "source": r.source,
        "workflowExecutionId": r.execution_id,
        "active": r.active,
        "createdAt": iso(r.created_at),
        "removedAt": iso(r.removed_at),
        "removedReason": r.removed_reason,
    }


@router.post(
    "/suppressions",
    status_code=201,
    responses={200: {"description": "The number was already suppressed"}, **errors(body=True)},
)
def add_suppression(
    services: ServicesDep,
    org: OrgDep,
    body: Annotated[dict[str, Any], Depends(body_of(SuppressionCreate))],
    response: Response,
) -> dict[str, Any]:
    added = services.contacts.suppress(org, body)
    if not added.created:
        response.status_code = 200
    return {**suppression_json(added.record), "cancelledCount": added.cancelled_count}


@router.get("/suppressions", responses=errors())
def list_suppressions(
    services: ServicesDep,
    org: OrgDep,
    phone: Annotated[str | None, Query(alias="phoneNumber")] = None,
    include_removed: Annotated[bool, Query(alias="includeRemoved")] = False,
    cursor: Annotated[str | None, Query(pattern=ID_PATTERN)] = None,
    limit: Annotated[int, Query(ge=1, le=100)] = 50,
) -> dict[str, Any]:
    rows, next_cursor = services.contacts.list_suppressions(
        org, phone=phone, include_removed=include_removed, limit=limit, cursor=cursor
    )
    return {
        "suppressions": [suppression_json(r) for r in rows],
        "pagination": {"limit": limit, "nextCursor": next_cursor},
    }


@router.get("/suppressions/check", responses=errors())
def check_suppression(
    services: ServicesDep,
    org: OrgDep,
    phone: Annotated[str | None, Query(alias="phoneNumber")] = None,
) -> dict[str, Any]:
    answer = services.contacts.check(org, phone)
    answer["entries"] = [suppression_json(r) for r in answer["entries"]]
    return answer


@router.get("/suppressions/{suppressionId}", responses=errors(404))
def get_suppression(
    services: ServicesDep, org: OrgDep, suppression_id: SuppressionId
) -> dict[str, Any]:
    return suppression_json(services.contacts.get_suppression(org, suppression_id))


@router.delete("/suppressions/{suppressionId}", responses=errors(404, 409))
def remove_suppression(
    services: ServicesDep, org: OrgDep, suppression_id: SuppressionId, reason: str | None = None
) -> dict[str, Any]:
    return suppression_json(services.contacts.unsuppress(org, suppression_id, reason))


@router.post("/consents", status_code=201, responses=errors(body=True))
def grant_consent(
    services: ServicesDep,
    org: OrgDep,
    body: Annotated[dict[str, Any], Depends(body_of(ConsentCreate))],
) -> dict[str, Any]:
    answer = services.contacts.grant_consent(org, body)
    answer["entries"] = [suppression_json(r) for r in answer["entries"]]
    return answer


@router.post("/inbound-texts", responses=errors(body=True))
def inbound_text(
    services: ServicesDep,
    org: OrgDep,
    body: Annotated[dict[str, Any], Depends(body_of(InboundText))],
) -> dict[str, Any]:
    return services.contacts.inbound_text(org, body)


@router.get("/compliance/window", responses=errors(404))
def compliance_window(
    services: ServicesDep,
    org: OrgDep,
    phone: str | None = None,
    zipcode: str | None = None,
    state: str | None = None,
    channel: str = "CALL",
    at: str | None = None,
    workflow_id: Annotated[str | None, Query(alias="workflowId", pattern=ID_PATTERN)] = None,
    needs_tcpa: Annotated[bool, Query(alias="needsTCPACompliance")] = True,
) -> dict[str, Any]:
    return services.contacts.explain(
        org,
        phone=phone,
        zipcode=zipcode,
        state=state,
        channel=channel.upper(),
        at=at,
        workflow_id=workflow_id,
        needs_tcpa=needs_tcpa,
    )
