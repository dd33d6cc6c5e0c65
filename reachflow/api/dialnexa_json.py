"""DialNexa wire shapes (snake_case): workflows, nodes, edges, leads, history."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from reachflow.api.feather_json import iso, next_run_at, wire_times
from reachflow.domain.graph_definition import condition_warnings, node_path
from reachflow.services.leads import LEAD_STATUS
from reachflow.store.records import ExecutionRecord, VersionRecord, WorkflowRecord


def entry_node_id(definition: dict[str, Any]) -> str | None:
    """Where leads start: ``entry_node_id`` if set, else the first node (as the engine reads
    it)."""
    entry = definition.get("entry_node_id")
    if isinstance(entry, str):
        return entry
    nodes = definition.get("nodes")
    first = nodes[0] if isinstance(nodes, list) and nodes else None
    return first.get("id") if isinstance(first, dict) else None


def warnings_json(definition: dict[str, Any], node_id: str | None = None) -> list[dict[str, str]]:
    """What a draft may save but activation will refuse (``condition_warnings``), for the
    whole graph or for one node."""
    found = condition_warnings(definition, root="definition")
    if node_id is not None:
        found = [p for p in found if p.field.startswith(f"definition.{node_path(node_id)}")]
    return [p.to_json() for p in found]


def workflow_json(w: WorkflowRecord, *, enrolled_leads: int) -> dict[str, Any]:
    graph = w.definition if isinstance(w.definition.get("nodes"), list) else None
    return {
        "id": w.id,
        "organization_id": w.organization_id,
        "title": w.name,
        "name": w.name,
        "description": w.description,
        "status": w.status,
        "version": w.version,
        "timezone": w.timezone,
        "workflow_schedule": w.workflow_schedule,
        "tcpa_schedule": w.tcpa_schedule,
        "entry_node_id": entry_node_id(graph) if graph else None,
        "node_count": len(graph["nodes"]) if graph else 0,
        "edge_count": len(graph.get("edges") or []) if graph else 0,
        "enrolled_leads": enrolled_leads,
        "created_at": iso(w.created_at),
        "updated_at": iso(w.updated_at),
        "warnings": warnings_json(graph) if graph else [],
    }


def node_json(workflow_id: str, node: dict[str, Any]) -> dict[str, Any]:
    return {
        "id": node.get("id"),
        "workflow_id": workflow_id,
        "node_type": node.get("node_type"),
        "label": node.get("label"),
        "position_x": node.get("position_x", 0),
        "position_y": node.get("position_y", 0),
        "config": node.get("config") or {},
    }


def edge_json(workflow_id: str, edge: dict[str, Any]) -> dict[str, Any]:
    return {
        "id": edge.get("id"),
        "workflow_id": workflow_id,
        "from_node_id": edge.get("from_node_id"),
        "to_node_id": edge.get("to_node_id"),
        "label": edge.get("label"),
    }


def lead_json(r: ExecutionRecord) -> dict[str, Any]:
    return {
        "id": r.id,
        "workflow_id": r.workflow_id,
        "phone_number": r.primary_phone,
        "customer_lead_id": r.customer_lead_id,
        "current_node_id": r.engine.node_id,
        "status": LEAD_STATUS[r.status],
        "outcome": r.engine.outcome,
        "disposition": r.engine.disposition.value if r.engine.disposition else None,
        "variables": r.variables,
        "next_run_at": next_run_at(r),
        "enrolled_at": iso(r.created_at),
        "created_at": iso(r.created_at),
        "started_at": iso(r.engine.started_at),
        "completed_at": iso(r.engine.completed_at),
    }


def version_json(version: VersionRecord, created_at: datetime) -> dict[str, Any]:
    definition = version.definition
    nodes = definition.get("nodes") if isinstance(definition.get("nodes"), list) else None
    return {
        "id": version.id,
        "workflow_id": version.workflow_id,
        "version": version.version,
        "timezone": version.timezone,
        "node_count": len(nodes) if nodes is not None else None,
        "definition": definition,
        "created_at": iso(created_at),
    }


def page_meta(page: int, limit: int, total: int) -> dict[str, int]:
    return {"page": page, "limit": limit, "total": total, "totalPages": -(-total // limit)}


def timed(value: Any) -> Any:
    """Instants inside nested history rows, written as every instant is (``wire_times``)."""
    return wire_times(value)
