"""``/api/v1/agents``: who performs a step."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Depends, Request, Response

from reachflow.api.bodies import body_of
from reachflow.api.deps import AgentId, CleanParameters, OrgDep, ServicesDep
from reachflow.api.feather_json import agent_json, unmasked
from reachflow.api.idempotency import IdempotencyKey, idempotent
from reachflow.api.openapi import errors
from reachflow.api.schemas import AgentCreate, AgentUpdate

router = APIRouter(prefix="/api/v1/agents", tags=["agents"], dependencies=[CleanParameters])


@router.post("", status_code=201, responses=errors(409, body=True))
def create_agent(
    request: Request,
    response: Response,
    services: ServicesDep,
    org: OrgDep,
    body: Annotated[dict[str, Any], Depends(body_of(AgentCreate))],
    key: IdempotencyKey = None,
) -> dict[str, Any]:
    # The one response that shows the agent's credentials (a generated secret included); a
    # replay of the create (same key, same body) is that response again.
    agents = services.agents
    return idempotent(
        services,
        org,
        request,
        response,
        body,
        key,
        lambda claim: agent_json(agents.create(org, body, claim=claim), reveal_secrets=True),
        lambda done: agent_json(agents.get(org, done["agentId"]), reveal_secrets=True),
    )


@router.get("", responses=errors())
def list_agents(services: ServicesDep, org: OrgDep) -> dict[str, Any]:
    return {"agents": [agent_json(a) for a in services.agents.list(org)]}


@router.get("/{agentId}", responses=errors(404))
def get_agent(services: ServicesDep, org: OrgDep, agent_id: AgentId) -> dict[str, Any]:
    agent = services.agents.get(org, agent_id)
    return {**agent_json(agent), "health": services.agent_health.health(agent.id)}


@router.put("/{agentId}", responses=errors(404, 409, body=True))
def update_agent(
    services: ServicesDep,
    org: OrgDep,
    agent_id: AgentId,
    body: Annotated[dict[str, Any], Depends(body_of(AgentUpdate))],
) -> dict[str, Any]:
    if isinstance(body.get("config"), dict):  # a config read back keeps its credentials
        body["config"] = unmasked(body["config"], services.agents.get(org, agent_id).config)
    return agent_json(services.agents.update(org, agent_id, body))


@router.delete("/{agentId}", responses=errors(404, 409))
def delete_agent(services: ServicesDep, org: OrgDep, agent_id: AgentId) -> dict[str, Any]:
    services.agents.delete(org, agent_id)
    return {"message": "Agent deleted", "success": True}
