"""DialNexa leads of a workflow: upload (CSV or JSON), list, remove, history, variable keys."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Annotated, Any

from fastapi import APIRouter, Depends, Query, Request, Response

from reachflow.api.bodies import check_body
from reachflow.api.deps import CleanParameters, LeadId, OrgDep, ServicesDep, WorkflowId
from reachflow.api.dialnexa_json import lead_json, page_meta, timed
from reachflow.api.idempotency import IdempotencyKey, idempotent
from reachflow.api.json_body import check_text, parse_json
from reachflow.api.openapi import OPENAPI_BODY_ATTR, errors
from reachflow.api.schemas import LeadCsv, LeadRow, LeadUpload
from reachflow.domain.errors import FieldError, ValidationFailed
from reachflow.services.leads import (
    MAX_LEADS,
    Enrolled,
    read_lead_csv,
    regrouped,
    rows_problems,
)

router = APIRouter(
    prefix="/v1/workflows/{workflowId}/leads", tags=["graph leads"], dependencies=[CleanParameters]
)
#: Pages beyond this find nothing anyway; the bound keeps them a 400, not a database error.
MAX_PAGE = 1_000_000


@dataclass(frozen=True, slots=True)
class Upload:
    rows: list[Any]
    #: The CSV line each row starts on; None for JSON.
    lines: list[int] | None


async def lead_rows(request: Request) -> Upload:
    """multipart ``file`` (CSV), a ``text/csv`` body, or JSON (``{leads: [...]}``, a list, one),
    each read as ``LeadUpload``'s rows. Row problems are grouped by reason, naming CSV lines
    (the header is line 1) or ``leads`` indexes."""
    kind = request.headers.get("content-type", "").split(";")[0].strip().lower()
    lines: list[int] | None = None
    if kind == "multipart/form-data":
        form = await request.form()
        upload = form.get("file")
        if upload is None or isinstance(upload, str):
            raise ValidationFailed(FieldError("file", "a CSV file is required"))
        rows, lines = _csv_rows(await upload.read())
    elif kind in ("text/csv", "application/csv"):
        rows, lines = _csv_rows(await request.body())
    else:
        rows = parse_json(await request.body(), content_type=kind)
        if isinstance(rows, dict) and "leads" in rows:
            rows = rows["leads"]
        elif isinstance(rows, dict):
            rows = [rows]
        if not isinstance(rows, list):
            raise ValidationFailed(FieldError("leads", "send a CSV file or a JSON list of leads"))
    try:
        check_body(LeadUpload, {"leads": rows})
    except ValidationFailed as exc:
        # Every bad row at once: the model's problems, then the rows' own (a bad phone
        # number beside a bad ZIP), each field named once.
        named = {p.field for p in exc.problems}
        more = [p for p in rows_problems(rows) if p.field not in named] if _rows(rows) else []
        raise regrouped(ValidationFailed([*exc.problems, *more]), lines) from None
    return Upload(rows, lines)


def _rows(rows: object) -> bool:
    return isinstance(rows, list) and len(rows) <= MAX_LEADS


def _csv_rows(raw: bytes) -> tuple[list[Any], list[int]]:
    """The CSV's rows and their lines; a NUL in a cell is a 400 naming it (JSON bodies are
    checked so by ``json_body``)."""
    rows, lines = read_lead_csv(raw)
    problems = []
    for i, row in enumerate(rows):
        for key, value in row.items():
            for text in (key, value):
                try:
                    check_text(text, f"leads[{i}].{key}")
                except ValidationFailed as exc:
                    problems.extend(exc.problems)
    if problems:
        raise regrouped(ValidationFailed(problems), lines)
    return rows, lines


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
LeadRows = Annotated[Upload, Depends(lead_rows)]


@router.post("", status_code=201, responses=errors(404, 409, 422, body=True))
async def enroll(
    request: Request,
    response: Response,
    services: ServicesDep,
    org: OrgDep,
    workflow_id: WorkflowId,
    rows: LeadRows,
    key: IdempotencyKey = None,
) -> dict[str, Any]:
    try:
        enrolled = idempotent(
            services,
            org,
            request,
            response,
            rows.rows,
            key,
            lambda claim: services.leads.enroll(org, workflow_id, rows.rows, claim=claim),
            lambda done: Enrolled(workflow_id, int(done["enrolled"])),
        )
    except ValidationFailed as exc:
        raise regrouped(exc, rows.lines) from None
    noun = "lead" if enrolled.count == 1 else "leads"
    return {
        "workflow_id": workflow_id,
        "leads_enrolled": enrolled.count,
        "message": f"{enrolled.count} {noun} enrolled",
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
