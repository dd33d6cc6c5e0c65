"""DialNexa leads of a workflow: upload (CSV or JSON), list, remove, history, variable keys."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Depends, Query, Request

from reachflow.api.bodies import check_body
from reachflow.api.deps import CleanParameters, LeadId, OrgDep, ServicesDep, WorkflowId
from reachflow.api.dialnexa_json import lead_json, page_meta, timed
from reachflow.api.json_body import check_text, parse_json
from reachflow.api.openapi import OPENAPI_BODY_ATTR, errors
from reachflow.api.schemas import LeadCsv, LeadRow, LeadUpload
from reachflow.domain.errors import FieldError, ValidationFailed
from reachflow.services.leads import parse_lead_csv

router = APIRouter(
    prefix="/v1/workflows/{workflowId}/leads", tags=["graph leads"], dependencies=[CleanParameters]
)
#: Pages beyond this find nothing anyway; the bound keeps them a 400, not a database error.
MAX_PAGE = 1_000_000


async def lead_rows(request: Request) -> list[Any]:
    """multipart ``file`` (CSV), a ``text/csv`` body, or JSON (``{leads: [...]}``, a list, one),
    each read as ``LeadUpload``'s rows."""
    kind = request.headers.get("content-type", "").split(";")[0].strip().lower()
    if kind == "multipart/form-data":
        form = await request.form()
        upload = form.get("file")
        if upload is None or isinstance(upload, str):
            raise ValidationFailed(FieldError("file", "a CSV file is required"))
        rows: Any = _csv_rows(await upload.read())
    elif kind in ("text/csv", "application/csv"):
        rows = _csv_rows(await request.body())
    else:
        rows = parse_json(await request.body())
        if isinstance(rows, dict) and "leads" in rows:
            rows = rows["leads"]
        elif isinstance(rows, dict):
            rows = [rows]
        if not isinstance(rows, list):
            raise ValidationFailed(FieldError("leads", "send a CSV file or a JSON list of leads"))
    check_body(LeadUpload, {"leads": rows})
    return rows


def _csv_rows(raw: bytes) -> list[dict[str, Any]]:
    """The CSV's rows; a NUL in a cell is a 400 naming it (JSON bodies are checked so by
    ``json_body``)."""
    rows = parse_lead_csv(raw)
    for i, row in enumerate(rows):
        for key, value in row.items():
            check_text(key, f"leads[{i}].{key}")
            check_text(value, f"leads[{i}].{key}")
    return rows


#: The body as the OpenAPI document shows it (``api/openapi.py`` reads it).
setattr(
    lead_rows,
    OPENAPI_BODY_ATTR,
    (
        {
            "application/json": {
                "schema": {
                    "oneOf": [
                        {"$model": LeadUpload},
                        {"type": "array", "items": {"$model": LeadRow}, "minItems": 1},
                        {"$model": LeadRow},
                    ]
                }
            },
            "multipart/form-data": {"schema": {"$model": LeadCsv}},
            "text/csv": {"schema": {"type": "string", "description": "A CSV with a header row"}},
        },
        [LeadUpload, LeadRow, LeadCsv],
    ),
)
LeadRows = Annotated[list[Any], Depends(lead_rows)]


@router.post("", status_code=201, responses=errors(404, 409, 422, body=True))
async def enroll(
    services: ServicesDep, org: OrgDep, workflow_id: WorkflowId, rows: LeadRows
) -> dict[str, Any]:
    enrolled = services.leads.enroll(org, workflow_id, rows)
    return {
        "workflow_id": workflow_id,
        "leads_enrolled": enrolled.count,
        "message": f"{enrolled.count} leads enrolled",
    }


@router.get("", responses=errors(404))
def list_leads(
    services: ServicesDep,
    org: OrgDep,
    workflow_id: WorkflowId,
    page: Annotated[int, Query(ge=1, le=MAX_PAGE)] = 1,
    limit: Annotated[int, Query(ge=1, le=100)] = 20,
    status: str | None = None,
    current_node_id: str | None = None,
) -> dict[str, Any]:
    records, total = services.leads.list(
        org, workflow_id, page=page, limit=limit, status=status, current_node_id=current_node_id
    )
    return {"data": [lead_json(r) for r in records], "meta": page_meta(page, limit, total)}


@router.get("/variable-keys", responses=errors(404))
def variable_keys(services: ServicesDep, org: OrgDep, workflow_id: WorkflowId) -> dict[str, Any]:
    return {"keys": services.leads.variable_keys(org, workflow_id)}


@router.get("/{leadId}", responses=errors(404))
def get_lead(
    services: ServicesDep, org: OrgDep, workflow_id: WorkflowId, lead_id: LeadId
) -> dict[str, Any]:
    return lead_json(services.leads.get(org, workflow_id, lead_id))


@router.delete("/{leadId}", responses=errors(404, 409))
def remove_lead(
    services: ServicesDep, org: OrgDep, workflow_id: WorkflowId, lead_id: LeadId
) -> dict[str, Any]:
    return lead_json(services.leads.remove(org, workflow_id, lead_id))


@router.get("/{leadId}/history", responses=errors(404))
def history(
    services: ServicesDep, org: OrgDep, workflow_id: WorkflowId, lead_id: LeadId
) -> dict[str, Any]:
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
