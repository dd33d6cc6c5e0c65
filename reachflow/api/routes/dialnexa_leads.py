"""DialNexa leads of a workflow: upload (CSV or JSON), list, remove, history, variable keys."""

from __future__ import annotations

import json
from typing import Annotated, Any

from fastapi import APIRouter, Query, Request

from reachflow.api.deps import OrgDep, ServicesDep
from reachflow.api.dialnexa_json import lead_json, page_meta, timed
from reachflow.domain.errors import FieldError, ValidationFailed
from reachflow.services.leads import parse_lead_csv

router = APIRouter(prefix="/v1/workflows/{workflow_id}/leads", tags=["graph leads"])


async def lead_rows(request: Request) -> list[Any]:
    """multipart ``file`` (CSV), a ``text/csv`` body, or JSON (``{leads: [...]}``, a list, one)."""
    kind = request.headers.get("content-type", "").split(";")[0].strip().lower()
    if kind == "multipart/form-data":
        form = await request.form()
        upload = form.get("file")
        if upload is None or isinstance(upload, str):
            raise ValidationFailed(FieldError("file", "a CSV file is required"))
        return parse_lead_csv(await upload.read())
    raw = await request.body()
    if kind in ("text/csv", "application/csv"):
        return parse_lead_csv(raw)
    try:
        value = json.loads(raw) if raw.strip() else None
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise ValidationFailed(FieldError("body", f"malformed JSON: {exc}")) from exc
    if isinstance(value, dict) and "leads" in value:
        value = value["leads"]
    elif isinstance(value, dict):
        value = [value]
    if not isinstance(value, list):
        raise ValidationFailed(FieldError("leads", "send a CSV file or a JSON list of leads"))
    return value


@router.post("", status_code=201)
async def enroll(
    services: ServicesDep, org: OrgDep, workflow_id: str, request: Request
) -> dict[str, Any]:
    rows = await lead_rows(request)
    enrolled = services.leads.enroll(org, workflow_id, rows)
    return {
        "workflow_id": workflow_id,
        "leads_enrolled": enrolled.count,
        "message": f"{enrolled.count} leads enrolled",
    }


@router.get("")
def list_leads(
    services: ServicesDep,
    org: OrgDep,
    workflow_id: str,
    page: Annotated[int, Query(ge=1)] = 1,
    limit: Annotated[int, Query(ge=1, le=100)] = 20,
    status: str | None = None,
    current_node_id: str | None = None,
) -> dict[str, Any]:
    records, total = services.leads.list(
        org, workflow_id, page=page, limit=limit, status=status, current_node_id=current_node_id
    )
    return {"data": [lead_json(r) for r in records], "meta": page_meta(page, limit, total)}


@router.get("/variable-keys")
def variable_keys(services: ServicesDep, org: OrgDep, workflow_id: str) -> dict[str, Any]:
    return {"keys": services.leads.variable_keys(org, workflow_id)}


@router.get("/{lead_id}")
def get_lead(services: ServicesDep, org: OrgDep, workflow_id: str, lead_id: str) -> dict[str, Any]:
    return lead_json(services.leads.get(org, workflow_id, lead_id))


@router.delete("/{lead_id}")
def remove_lead(
    services: ServicesDep, org: OrgDep, workflow_id: str, lead_id: str
) -> dict[str, Any]:
    return lead_json(services.leads.remove(org, workflow_id, lead_id))


@router.get("/{lead_id}/history")
def history(services: ServicesDep, org: OrgDep, workflow_id: str, lead_id: str) -> dict[str, Any]:
    found = services.leads.history(org, workflow_id, lead_id)
    record = found["record"]
    definition = found["definition"]
    return timed(
        {
            "id": record.id,
            "workflow_id": workflow_id,
            "lead": lead_json(record),
            "execution": {
                "current_node_id": record.engine.node_id,
                "status": lead_json(record)["status"],
                "version_id": record.version_id,
            },
            "history": found["history"],
            "transitions": found["transitions"],
            "all_nodes": definition.get("nodes", []),
            "all_edges": definition.get("edges", []),
        }
    )
