"""Feather executions: create, bulk, list, get, update, cancel, delete, events."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Depends, Query, Request, Response

from reachflow.api.bodies import body_of
from reachflow.api.deps import (
    ID_PATTERN,
    CleanParameters,
    ExecutionId,
    OrgDep,
    ServicesDep,
    WorkflowId,
)
from reachflow.api.feather_json import (
    bulk_json,
    event_json,
    execution_detail_json,
    execution_list_item,
)
from reachflow.api.idempotency import IdempotencyKey, idempotent
from reachflow.api.openapi import errors
from reachflow.api.schemas import (
    CancelTarget,
    ExecutionBulkCreate,
    ExecutionCreate,
    ExecutionUpdate,
)
from reachflow.domain.enums import ExecutionStatus
from reachflow.domain.errors import FieldError, ValidationFailed
from reachflow.services.executions import bulk_row_of
from reachflow.services.phones import to_e164
from reachflow.store.executions import ExecutionFilter

router = APIRouter(prefix="/api/v1", tags=["executions"], dependencies=[CleanParameters])

LeadBody = Annotated[dict[str, Any], Depends(body_of(ExecutionCreate))]
BulkBody = Annotated[dict[str, Any], Depends(body_of(ExecutionBulkCreate))]
UpdateBody = Annotated[dict[str, Any], Depends(body_of(ExecutionUpdate))]
TargetBody = Annotated[dict[str, Any], Depends(body_of(CancelTarget))]


@router.post(
    "/workflow/{workflowId}/execution", status_code=201, responses=errors(404, 409, 422, body=True)
)
def create_execution(
    request: Request,
    response: Response,
    services: ServicesDep,
    org: OrgDep,
    workflow_id: WorkflowId,
    body: LeadBody,
    key: IdempotencyKey = None,
) -> dict[str, Any]:
    executions = services.executions
    return idempotent(
        services,
        org,
        request,
        response,
        body,
        key,
        lambda claim: execution_detail_json(executions.create(org, workflow_id, body, claim=claim)),
        lambda done: execution_detail_json(executions.get(org, workflow_id, done["executionId"])),
    )


@router.post(
    "/workflow/{workflowId}/execution/bulk",
    status_code=201,
    responses=errors(404, 409, 422, body=True),
)
def bulk_create(
    request: Request,
    response: Response,
    services: ServicesDep,
    org: OrgDep,
    workflow_id: WorkflowId,
    body: BulkBody,
    key: IdempotencyKey = None,
) -> dict[str, Any]:
    leads = body.get("leads")
    return idempotent(
        services,
        org,
        request,
        response,
        body,
        key,
        lambda claim: bulk_json(
            services.executions.create_bulk(org, workflow_id, leads, claim=claim)
        ),
        lambda done: bulk_json([bulk_row_of(r) for r in done["rows"]]),
    )


@router.get("/workflow/{workflowId}/executions", responses=errors(404))
def list_executions(
    services: ServicesDep,
    org: OrgDep,
    workflow_id: WorkflowId,
    status: ExecutionStatus | None = None,
    customer_lead_id: Annotated[str | None, Query(alias="customerLeadId")] = None,
    phone: Annotated[str | None, Query(alias="phoneNumber")] = None,
    primary_phone: Annotated[str | None, Query(alias="primaryPhone")] = None,
    enriched: bool = False,
    cursor: Annotated[str | None, Query(pattern=ID_PATTERN)] = None,
    limit: Annotated[int, Query(ge=1, le=100)] = 10,
) -> dict[str, Any]:
    services.workflows.get(org, workflow_id)
    raw_phone = phone or primary_phone
    flt = ExecutionFilter(
        organization_id=org,
        workflow_id=workflow_id,
        status=status.value if status else None,
        customer_lead_id=customer_lead_id,
        phone=to_e164(raw_phone, "phoneNumber") if raw_phone else None,
    )
    views, next_cursor = services.executions.list(
        flt, limit=limit, cursor=cursor, enriched=enriched
    )
    return {
        "executions": [execution_list_item(v, enriched=enriched) for v in views],
        "pagination": {"limit": limit, "nextCursor": next_cursor},
    }


@router.get("/workflow/{workflowId}/execution/{executionId}", responses=errors(404))
def get_execution(
    services: ServicesDep, org: OrgDep, workflow_id: WorkflowId, execution_id: ExecutionId
) -> dict[str, Any]:
    return execution_detail_json(services.executions.get(org, workflow_id, execution_id))


@router.put("/workflow/{workflowId}/execution/{executionId}", responses=errors(404, 409, body=True))
def update_execution(
    services: ServicesDep,
    org: OrgDep,
    workflow_id: WorkflowId,
    execution_id: ExecutionId,
    body: UpdateBody,
) -> dict[str, Any]:
    return execution_detail_json(services.executions.update(org, workflow_id, execution_id, body))


@router.delete("/workflow/{workflowId}/execution/{executionId}", responses=errors(404))
def delete_execution(
    services: ServicesDep, org: OrgDep, workflow_id: WorkflowId, execution_id: ExecutionId
) -> dict[str, Any]:
    services.executions.delete(org, workflow_id, execution_id)
    return {"message": "Execution deleted"}


@router.get("/workflow/{workflowId}/execution/{executionId}/events", responses=errors(404))
def execution_events(
    services: ServicesDep, org: OrgDep, workflow_id: WorkflowId, execution_id: ExecutionId
) -> dict[str, Any]:
    events = services.executions.events(org, workflow_id, execution_id)
    return {"events": [event_json(e) for e in events]}


@router.post("/workflow/{workflowId}/executions/{executionId}/cancel", responses=errors(404, 409))
def cancel_execution(
    services: ServicesDep, org: OrgDep, workflow_id: WorkflowId, execution_id: ExecutionId
) -> dict[str, Any]:
    return execution_detail_json(services.executions.cancel(org, workflow_id, execution_id))


def _cancel_target(body: dict[str, Any]) -> dict[str, str]:
    phone, lead = body.get("phoneNumber"), body.get("customerLeadId")
    if phone is None and lead is None:
        raise ValidationFailed(FieldError("phoneNumber", "give phoneNumber or customerLeadId"))
    out: dict[str, str] = {}
    if phone is not None:
        out["phone"] = to_e164(phone, "phoneNumber")
    if lead is not None:
        if not isinstance(lead, str) or not lead:
            raise ValidationFailed(FieldError("customerLeadId", "must be a non-empty string"))
        out["customer_lead_id"] = lead
    return out


@router.post("/workflow/{workflowId}/executions/cancel", responses=errors(404, body=True))
def cancel_in_workflow(
    services: ServicesDep, org: OrgDep, workflow_id: WorkflowId, body: TargetBody
) -> dict[str, Any]:
    services.workflows.get(org, workflow_id)
    count = services.executions.cancel_matching(
        org, workflow_id=workflow_id, **_cancel_target(body)
    )
    return {"cancelledCount": count}


@router.post("/executions/cancel", responses=errors(body=True))
def cancel_everywhere(services: ServicesDep, org: OrgDep, body: TargetBody) -> dict[str, Any]:
    return {"cancelledCount": services.executions.cancel_matching(org, **_cancel_target(body))}
