"""``/api/v1/agents``: who performs a step."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter

from reachflow.api.deps import BodyDep, OrgDep, ServicesDep
from reachflow.api.feather_json import agent_json

router = APIRouter(prefix="/api/v1/agents", tags=["agents"])


@router.post("", status_code=201)
def create_agent(services: ServicesDep, org: OrgDep, body: BodyDep) -> dict[str, Any]:
    return agent_json(services.agents.create(org, body))


@router.get("")
def list_agents(services: ServicesDep, org: OrgDep) -> dict[str, Any]:
    return {"agents": [agent_json(a) for a in services.agents.list(org)]}


@router.get("/{agent_id}")
def get_agent(services: ServicesDep, org: OrgDep, agent_id: str) -> dict[str, Any]:
    return agent_json(services.agents.get(org, agent_id))


@router.put("/{agent_id}")
def update_agent(
    services: ServicesDep, org: OrgDep, agent_id: str, body: BodyDep
) -> dict[str, Any]:
    return agent_json(services.agents.update(org, agent_id, body))


@router.delete("/{agent_id}")
def delete_agent(services: ServicesDep, org: OrgDep, agent_id: str) -> dict[str, Any]:
    services.agents.delete(org, agent_id)
    return {"message": "Agent deleted", "success": True}
