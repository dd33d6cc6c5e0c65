"""Feather workflows: ``/api/v1/workflow``."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Query

from reachflow.api.deps import BodyDep, OrgDep, ServicesDep
from reachflow.api.feather_json import workflow_json

router = APIRouter(prefix="/api/v1/workflow", tags=["workflows"])


@router.post("", status_code=201)
def create_workflow(services: ServicesDep, org: OrgDep, body: BodyDep) -> dict[str, Any]:
    return workflow_json(services.workflows.create(org, body))


@router.get("")
def list_workflows(
    services: ServicesDep,
    org: OrgDep,
    limit: Annotated[int, Query(ge=1, le=100)] = 25,
    offset: Annotated[int, Query(ge=0)] = 0,
    active: bool | None = None,
) -> dict[str, Any]:
    records, total = services.workflows.list(org, limit=limit, offset=offset, active=active)
    return {
        "workflows": [workflow_json(w) for w in records],
        "pagination": {"limit": limit, "offset": offset, "total": total},
    }


@router.get("/{workflow_id}")
def get_workflow(services: ServicesDep, org: OrgDep, workflow_id: str) -> dict[str, Any]:
    return workflow_json(services.workflows.get(org, workflow_id))


@router.patch("/{workflow_id}")
def update_workflow(
    services: ServicesDep, org: OrgDep, workflow_id: str, body: BodyDep
) -> dict[str, Any]:
    return workflow_json(services.workflows.update(org, workflow_id, body))


@router.delete("/{workflow_id}")
def delete_workflow(services: ServicesDep, org: OrgDep, workflow_id: str) -> dict[str, Any]:
    services.workflows.delete(org, workflow_id)
    return {"message": "Workflow deleted", "success": True}
