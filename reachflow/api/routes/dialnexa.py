"""DialNexa graph workflows on ``/v1/workflows``: CRUD, lifecycle verbs, nodes, edges, versions."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Depends, Query, Request, Response

from reachflow.api.bodies import body_of
from reachflow.api.deps import CleanParameters, EdgeId, NodeId, OrgDep, ServicesDep, WorkflowId
from reachflow.api.dialnexa_json import (
    edge_json,
    node_json,
    page_meta,
    version_json,
    warnings_json,
    workflow_json,
)
from reachflow.api.idempotency import IdempotencyKey, idempotent
from reachflow.api.openapi import errors
from reachflow.api.schemas import (
    EdgeCreate,
    GraphWorkflowCreate,
    GraphWorkflowUpdate,
    NodeCreate,
    NodeUpdate,
)
from reachflow.api.validate import answer, raw_body
from reachflow.bootstrap import Services
from reachflow.services.graph_workflows import read_status
from reachflow.store.executions import ExecutionFilter
from reachflow.store.records import WorkflowRecord

router = APIRouter(prefix="/v1/workflows", tags=["graph workflows"], dependencies=[CleanParameters])

CreateBody = Annotated[dict[str, Any], Depends(body_of(GraphWorkflowCreate))]
UpdateBody = Annotated[dict[str, Any], Depends(body_of(GraphWorkflowUpdate))]
NodeBody = Annotated[dict[str, Any], Depends(body_of(NodeCreate))]
NodeChanges = Annotated[dict[str, Any], Depends(body_of(NodeUpdate))]
EdgeBody = Annotated[dict[str, Any], Depends(body_of(EdgeCreate))]
#: Pages beyond this find nothing anyway; the bound keeps them a 400, not a database error.
MAX_PAGE = 1_000_000


def present(services: Services, record: WorkflowRecord) -> dict[str, Any]:
    with services.store.db.begin() as conn:
        flt = ExecutionFilter(organization_id=record.organization_id, workflow_id=record.id)
        _, enrolled = services.store.executions.page(conn, flt, limit=1, offset=0)
    return workflow_json(record, enrolled_leads=enrolled)


@router.post("", status_code=201, responses=errors(409, body=True))
def create_workflow(
    request: Request,
    response: Response,
    services: ServicesDep,
    org: OrgDep,
    body: CreateBody,
    key: IdempotencyKey = None,
) -> dict[str, Any]:
    return idempotent(
        services,
        org,
        request,
        response,
        body,
        key,
        lambda claim: present(services, services.graph_workflows.create(org, body, claim=claim)),
        lambda done: present(services, services.workflows.get(org, done["workflowId"])),
    )


@router.get("", responses=errors())
def list_workflows(
    services: ServicesDep,
    org: OrgDep,
    page: Annotated[int, Query(ge=1, le=MAX_PAGE)] = 1,
    limit: Annotated[int, Query(ge=1, le=100)] = 20,
    status: str | None = None,
) -> dict[str, Any]:
    wanted = read_status(status) if status is not None else None
    with services.store.db.begin() as conn:
        records, total = services.store.workflows.list_workflows(
            conn, org, limit=limit, offset=(page - 1) * limit, status=wanted
        )
    return {
        "data": [present(services, r) for r in records],
        "meta": page_meta(page, limit, total),
    }


@router.get("/{workflowId}", responses=errors(404))
def get_workflow(services: ServicesDep, org: OrgDep, workflow_id: WorkflowId) -> dict[str, Any]:
    return present(services, services.workflows.get(org, workflow_id))


@router.patch("/{workflowId}", responses=errors(404, 409, body=True))
def update_workflow(
    services: ServicesDep, org: OrgDep, workflow_id: WorkflowId, body: UpdateBody
) -> dict[str, Any]:
    return present(services, services.graph_workflows.update(org, workflow_id, body))


@router.delete("/{workflowId}", status_code=204, responses=errors(404, 409))
def delete_workflow(services: ServicesDep, org: OrgDep, workflow_id: WorkflowId) -> Response:
    services.graph_workflows.delete(org, workflow_id)
    return Response(status_code=204)


@router.post("/{workflowId}/activate", responses=errors(404, 409))
def activate(services: ServicesDep, org: OrgDep, workflow_id: WorkflowId) -> dict[str, Any]:
    return present(services, services.graph_workflows.activate(org, workflow_id))


@router.post("/{workflowId}/pause", responses=errors(404, 409))
def pause(services: ServicesDep, org: OrgDep, workflow_id: WorkflowId) -> dict[str, Any]:
    return present(services, services.graph_workflows.pause(org, workflow_id))


@router.post("/{workflowId}/resume", responses=errors(404, 409))
def resume(services: ServicesDep, org: OrgDep, workflow_id: WorkflowId) -> dict[str, Any]:
    return present(services, services.graph_workflows.resume(org, workflow_id))


@router.post("/{workflowId}/cancel", responses=errors(404, 409))
def cancel(services: ServicesDep, org: OrgDep, workflow_id: WorkflowId) -> dict[str, Any]:
    return present(services, services.graph_workflows.cancel(org, workflow_id))


@router.post("/{workflowId}/duplicate", status_code=201, responses=errors(404, 409))
def duplicate(
    request: Request,
    response: Response,
    services: ServicesDep,
    org: OrgDep,
    workflow_id: WorkflowId,
    key: IdempotencyKey = None,
) -> dict[str, Any]:
    graphs = services.graph_workflows
    return idempotent(
        services,
        org,
        request,
        response,
        {},
        key,
        lambda claim: present(services, graphs.duplicate(org, workflow_id, claim=claim)),
        lambda done: present(services, services.workflows.get(org, done["workflowId"])),
    )


@router.get("/{workflowId}/versions", responses=errors(404))
def versions(services: ServicesDep, org: OrgDep, workflow_id: WorkflowId) -> dict[str, Any]:
    rows = services.graph_workflows.versions(org, workflow_id)
    return {"data": [version_json(v, at) for v, at in rows]}


# -- nodes ---------------------------------------------------------------------------------


@router.post("/{workflowId}/nodes", status_code=201, responses=errors(404, 409, body=True))
def create_node(
    request: Request,
    response: Response,
    services: ServicesDep,
    org: OrgDep,
    workflow_id: WorkflowId,
    body: NodeBody,
    key: IdempotencyKey = None,
) -> dict[str, Any]:
    graphs = services.graph_workflows
    node = idempotent(
        services,
        org,
        request,
        response,
        body,
        key,
        lambda claim: graphs.add_node(org, workflow_id, body, claim=claim),
        lambda done: graphs.node(org, workflow_id, str(done["nodeId"])),
    )
    return saved_node_json(services, org, workflow_id, node)


def saved_node_json(
    services: Services, org: str, workflow_id: str, node: dict[str, Any]
) -> dict[str, Any]:
    """A node as saved, with the warnings on it (an ``attempts.<id>`` naming no node yet)."""
    definition = services.workflows.get(org, workflow_id).definition
    return {**node_json(workflow_id, node), "warnings": warnings_json(definition, node["id"])}


@router.get("/{workflowId}/nodes", responses=errors(404, 409))
def list_nodes(services: ServicesDep, org: OrgDep, workflow_id: WorkflowId) -> dict[str, Any]:
    nodes = services.graph_workflows.nodes(org, workflow_id)
    return {"data": [node_json(workflow_id, n) for n in nodes]}


@router.get("/{workflowId}/nodes/{nodeId}", responses=errors(404, 409))
def get_node(
    services: ServicesDep, org: OrgDep, workflow_id: WorkflowId, node_id: NodeId
) -> dict[str, Any]:
    return node_json(workflow_id, services.graph_workflows.node(org, workflow_id, node_id))


@router.patch("/{workflowId}/nodes/{nodeId}", responses=errors(404, 409, body=True))
def update_node(
    services: ServicesDep,
    org: OrgDep,
    workflow_id: WorkflowId,
    node_id: NodeId,
    body: NodeChanges,
) -> dict[str, Any]:
    node = services.graph_workflows.update_node(org, workflow_id, node_id, body)
    return saved_node_json(services, org, workflow_id, node)


@router.delete("/{workflowId}/nodes/{nodeId}", status_code=204, responses=errors(404, 409))
def delete_node(
    services: ServicesDep, org: OrgDep, workflow_id: WorkflowId, node_id: NodeId
) -> Response:
    services.graph_workflows.remove_node(org, workflow_id, node_id)
    return Response(status_code=204)


# -- edges ---------------------------------------------------------------------------------


@router.post("/{workflowId}/edges", status_code=201, responses=errors(404, 409, body=True))
def create_edge(
    request: Request,
    response: Response,
    services: ServicesDep,
    org: OrgDep,
    workflow_id: WorkflowId,
    body: EdgeBody,
    key: IdempotencyKey = None,
) -> dict[str, Any]:
    graphs = services.graph_workflows
    edge = idempotent(
        services,
        org,
        request,
        response,
        body,
        key,
        lambda claim: graphs.add_edge(org, workflow_id, body, claim=claim),
        lambda done: graphs.edge(org, workflow_id, str(done["edgeId"])),
    )
    return edge_json(workflow_id, edge)


@router.get("/{workflowId}/edges", responses=errors(404, 409))
def list_edges(services: ServicesDep, org: OrgDep, workflow_id: WorkflowId) -> dict[str, Any]:
    edges = services.graph_workflows.edges(org, workflow_id)
    return {"data": [edge_json(workflow_id, e) for e in edges]}


@router.delete("/{workflowId}/edges/{edgeId}", status_code=204, responses=errors(404, 409))
def delete_edge(
    services: ServicesDep, org: OrgDep, workflow_id: WorkflowId, edge_id: EdgeId
) -> Response:
    services.graph_workflows.remove_edge(org, workflow_id, edge_id)
    return Response(status_code=204)


@router.post("/validate", responses=errors(body=True))
def validate_graph_workflow(
    services: ServicesDep,
    org: OrgDep,
    body: Annotated[dict[str, Any], Depends(raw_body(GraphWorkflowCreate))],
) -> dict[str, Any]:
    """A create body, checked as ``POST /v1/workflows`` and then activation check it; nothing
    is stored. ``{valid, errors, warnings}``: ``errors`` as those 400s would list them."""
    return answer(GraphWorkflowCreate, body, lambda: services.graph_workflows.validate(org, body))
