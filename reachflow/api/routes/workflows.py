"""Feather workflows: ``/api/v1/workflow``."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Depends, Query, Request, Response

from reachflow.api.bodies import body_of
from reachflow.api.deps import CleanParameters, OrgDep, ServicesDep, WorkflowId
from reachflow.api.feather_json import workflow_json
from reachflow.api.idempotency import IdempotencyKey, idempotent
from reachflow.api.openapi import errors
from reachflow.api.schemas import WorkflowCreate, WorkflowUpdate
from reachflow.api.validate import answer, raw_body

router = APIRouter(prefix="/api/v1/workflow", tags=["workflows"], dependencies=[CleanParameters])

#: Offsets beyond this find nothing anyway; the bound keeps them a 400, not a database error.
MAX_OFFSET = 1_000_000_000


@router.post("", status_code=201, responses=errors(409, body=True))
def create_workflow(
    request: Request,
    response: Response,
    services: ServicesDep,
    org: OrgDep,
    body: Annotated[dict[str, Any], Depends(body_of(WorkflowCreate))],
    key: IdempotencyKey = None,
) -> dict[str, Any]:
    workflows = services.workflows
    return idempotent(
        services,
        org,
        request,
        response,
        body,
        key,
        lambda claim: workflow_json(workflows.create(org, body, claim=claim)),
        lambda done: workflow_json(workflows.get(org, done["workflowId"])),
    )


@router.get("", responses=errors())
def list_workflows(
    services: ServicesDep,
    org: OrgDep,
    limit: Annotated[int, Query(ge=1, le=100)] = 25,
    offset: Annotated[int, Query(ge=0, le=MAX_OFFSET)] = 0,
    active: bool | None = None,
) -> dict[str, Any]:
    records, total = services.workflows.list(org, limit=limit, offset=offset, active=active)
    return {
        "workflows": [workflow_json(w) for w in records],
        "pagination": {"limit": limit, "offset": offset, "total": total},
    }


@router.get("/{workflowId}", responses=errors(404))
def get_workflow(services: ServicesDep, org: OrgDep, workflow_id: WorkflowId) -> dict[str, Any]:
    return workflow_json(services.workflows.get(org, workflow_id))


@router.patch("/{workflowId}", responses=errors(404, 409, body=True))
def update_workflow(
    services: ServicesDep,
    org: OrgDep,
    workflow_id: WorkflowId,
    body: Annotated[dict[str, Any], Depends(body_of(WorkflowUpdate))],
) -> dict[str, Any]:
    return workflow_json(services.workflows.update(org, workflow_id, body))


@router.delete("/{workflowId}", responses=errors(404, 409))
def delete_workflow(services: ServicesDep, org: OrgDep, workflow_id: WorkflowId) -> dict[str, Any]:
    services.workflows.delete(org, workflow_id)
    return {"message": "Workflow deleted", "success": True}


@router.post("/validate", responses=errors(body=True))
def validate_workflow(
    services: ServicesDep,
    org: OrgDep,
    body: Annotated[dict[str, Any], Depends(raw_body(WorkflowCreate))],
) -> dict[str, Any]:
    """A create body, checked as ``POST /api/v1/workflow`` checks it; nothing is stored.
    ``{valid, errors, warnings}``: ``errors`` as the create's 400 would list them."""
    return answer(WorkflowCreate, body, lambda: services.workflows.validate(org, body))
