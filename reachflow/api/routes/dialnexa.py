"""DialNexa graph workflows on ``/v1/workflows``: CRUD, lifecycle verbs, nodes, edges, versions."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Query, Response

from reachflow.api.deps import BodyDep, OrgDep, ServicesDep
from reachflow.api.dialnexa_json import (
    edge_json,
    node_json,
    page_meta,
    version_json,
    workflow_json,
)
from reachflow.bootstrap import Services
from reachflow.services.graph_workflows import read_status
from reachflow.store.executions import ExecutionFilter
from reachflow.store.records import WorkflowRecord

router = APIRouter(prefix="/v1/workflows", tags=["graph workflows"])


def present(services: Services, record: WorkflowRecord) -> dict[str, Any]:
    with services.store.db.begin() as conn:
        flt = ExecutionFilter(organization_id=record.organization_id, workflow_id=record.id)
        _, enrolled = services.store.executions.page(conn, flt, limit=1, offset=0)
    return workflow_json(record, enrolled_leads=enrolled)


@router.post("", status_code=201)
def create_workflow(services: ServicesDep, org: OrgDep, body: BodyDep) -> dict[str, Any]:
    return present(services, services.graph_workflows.create(org, body))


@router.get("")
def list_workflows(
    services: ServicesDep,
    org: OrgDep,
    page: Annotated[int, Query(ge=1)] = 1,
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


@router.get("/{workflow_id}")
def get_workflow(services: ServicesDep, org: OrgDep, workflow_id: str) -> dict[str, Any]:
    return present(services, services.workflows.get(org, workflow_id))


@router.patch("/{workflow_id}")
def update_workflow(
    services: ServicesDep, org: OrgDep, workflow_id: str, body: BodyDep
) -> dict[str, Any]:
    return present(services, services.graph_workflows.update(org, workflow_id, body))


@router.delete("/{workflow_id}", status_code=204)
def delete_workflow(services: ServicesDep, org: OrgDep, workflow_id: str) -> Response:
    services.graph_workflows.delete(org, workflow_id)
    return Response(status_code=204)


@router.post("/{workflow_id}/activate")
def activate(services: ServicesDep, org: OrgDep, workflow_id: str) -> dict[str, Any]:
    return present(services, services.graph_workflows.activate(org, workflow_id))


@router.post("/{workflow_id}/pause")
def pause(services: ServicesDep, org: OrgDep, workflow_id: str) -> dict[str, Any]:
    return present(services, services.graph_workflows.pause(org, workflow_id))


@router.post("/{workflow_id}/resume")
def resume(services: ServicesDep, org: OrgDep, workflow_id: str) -> dict[str, Any]:
    return present(services, services.graph_workflows.resume(org, workflow_id))


@router.post("/{workflow_id}/cancel")
def cancel(services: ServicesDep, org: OrgDep, workflow_id: str) -> dict[str, Any]:
    return present(services, services.graph_workflows.cancel(org, workflow_id))


@router.post("/{workflow_id}/duplicate", status_code=201)
def duplicate(services: ServicesDep, org: OrgDep, workflow_id: str) -> dict[str, Any]:
    return present(services, services.graph_workflows.duplicate(org, workflow_id))


@router.get("/{workflow_id}/versions")
def versions(services: ServicesDep, org: OrgDep, workflow_id: str) -> dict[str, Any]:
    rows = services.graph_workflows.versions(org, workflow_id)
    return {"data": [version_json(v, at) for v, at in rows]}


# -- nodes ---------------------------------------------------------------------------------


@router.post("/{workflow_id}/nodes", status_code=201)
def create_node(
    services: ServicesDep, org: OrgDep, workflow_id: str, body: BodyDep
) -> dict[str, Any]:
    return node_json(workflow_id, services.graph_workflows.add_node(org, workflow_id, body))


@router.get("/{workflow_id}/nodes")
def list_nodes(services: ServicesDep, org: OrgDep, workflow_id: str) -> dict[str, Any]:
    nodes = services.graph_workflows.nodes(org, workflow_id)
    return {"data": [node_json(workflow_id, n) for n in nodes]}


@router.get("/{workflow_id}/nodes/{node_id}")
def get_node(services: ServicesDep, org: OrgDep, workflow_id: str, node_id: str) -> dict[str, Any]:
    return node_json(workflow_id, services.graph_workflows.node(org, workflow_id, node_id))


@router.patch("/{workflow_id}/nodes/{node_id}")
def update_node(
    services: ServicesDep, org: OrgDep, workflow_id: str, node_id: str, body: BodyDep
) -> dict[str, Any]:
    node = services.graph_workflows.update_node(org, workflow_id, node_id, body)
    return node_json(workflow_id, node)


@router.delete("/{workflow_id}/nodes/{node_id}", status_code=204)
def delete_node(services: ServicesDep, org: OrgDep, workflow_id: str, node_id: str) -> Response:
    services.graph_workflows.remove_node(org, workflow_id, node_id)
    return Response(status_code=204)


# -- edges ---------------------------------------------------------------------------------


@router.post("/{workflow_id}/edges", status_code=201)
def create_edge(
    services: ServicesDep, org: OrgDep, workflow_id: str, body: BodyDep
) -> dict[str, Any]:
    return edge_json(workflow_id, services.graph_workflows.add_edge(org, workflow_id, body))


@router.get("/{workflow_id}/edges")
def list_edges(services: ServicesDep, org: OrgDep, workflow_id: str) -> dict[str, Any]:
    edges = services.graph_workflows.edges(org, workflow_id)
    return {"data": [edge_json(workflow_id, e) for e in edges]}


@router.delete("/{workflow_id}/edges/{edge_id}", status_code=204)
def delete_edge(services: ServicesDep, org: OrgDep, workflow_id: str, edge_id: str) -> Response:
    services.graph_workflows.remove_edge(org, workflow_id, edge_id)
    return Response(status_code=204)
