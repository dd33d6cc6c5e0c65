"""Request dependencies: the services, the caller's key and organization, path parameters."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import Depends, Path, Request, Security
from fastapi.security import APIKeyHeader, HTTPAuthorizationCredentials, HTTPBearer

from reachflow.api.json_body import check_text, parse_json_object
from reachflow.bootstrap import Services


def get_services(request: Request) -> Services:
    services: Services = request.app.state.services
    return services


ServicesDep = Annotated[Services, Depends(get_services)]

#: The two ways to send a key; declared as the OpenAPI security schemes. Neither answers by
#: itself (``auto_error=False``): a missing or unknown key is our 401 JSON error body.
api_key_header = APIKeyHeader(
    name="X-API-Key", scheme_name="ApiKeyAuth", auto_error=False, description="An API key"
)
bearer_header = HTTPBearer(
    scheme_name="BearerAuth", auto_error=False, description="The API key as a bearer token"
)


def api_key(
    x_api_key: Annotated[str | None, Security(api_key_header)] = None,
    bearer: Annotated[HTTPAuthorizationCredentials | None, Security(bearer_header)] = None,
) -> str | None:
    """The key the request carries: ``X-API-Key``, else ``Authorization: Bearer <key>``."""
    if x_api_key:
        return x_api_key
    return bearer.credentials.strip() if bearer is not None else None


ApiKeyDep = Annotated[str | None, Depends(api_key)]


def get_organization(services: ServicesDep, key: ApiKeyDep) -> str:
    return services.accounts.authenticate(key)


OrgDep = Annotated[str, Depends(get_organization)]


async def json_object(request: Request) -> dict[str, Any]:
    """The body as a JSON object, parsed defensively (``json_body``): malformed JSON, another
    type, excessive nesting, NUL or lone surrogates are a 400 naming the field."""
    return parse_json_object(await request.body(), request.headers.get("content-type", ""))


BodyDep = Annotated[dict[str, Any], Depends(json_object)]


def clean_parameters(request: Request) -> None:
    """A NUL in a path or query parameter (PostgreSQL stores none) is a 400 naming it, before
    any parameter reaches a query."""
    for name, value in request.path_params.items():
        if isinstance(value, str):
            check_text(value, name)
    for name, value in request.query_params.multi_items():
        check_text(name, name)
        check_text(value, name)


#: Every router's dependency: its parameters are text a database can store.
CleanParameters = Depends(clean_parameters)

# -- path parameters (named as the seeds name them) -------------------------------------------

#: Ids are uuids, or (graph nodes and edges) 1-100 letters, digits or ``_ . : -``.
ID_PATTERN = r"^[A-Za-z0-9_.:\-]{1,100}$"


def _id(name: str, what: str) -> Any:
    return Path(alias=name, pattern=ID_PATTERN, description=f"The {what}'s id")


AgentId = Annotated[str, _id("agentId", "agent")]
WorkflowId = Annotated[str, _id("workflowId", "workflow")]
ExecutionId = Annotated[str, _id("executionId", "execution")]
SuppressionId = Annotated[str, _id("suppressionId", "suppression")]
NodeId = Annotated[str, _id("nodeId", "node")]
EdgeId = Annotated[str, _id("edgeId", "edge")]
LeadId = Annotated[str, _id("leadId", "lead (its execution)")]
