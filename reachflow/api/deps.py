"""Request dependencies: the services and the caller's organization."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import Depends, Header, Request

from reachflow.api.json_body import parse_json_object
from reachflow.bootstrap import Services


def get_services(request: Request) -> Services:
    services: Services = request.app.state.services
    return services


ServicesDep = Annotated[Services, Depends(get_services)]


def get_organization(
    services: ServicesDep,
    x_api_key: Annotated[str | None, Header()] = None,
    authorization: Annotated[str | None, Header()] = None,
) -> str:
    key = x_api_key
    if not key and authorization and authorization.lower().startswith("bearer "):
        key = authorization[7:].strip()
    return services.accounts.authenticate(key)


OrgDep = Annotated[str, Depends(get_organization)]


async def json_object(request: Request) -> dict[str, Any]:
    """The body as a JSON object, parsed defensively (``json_body``): malformed JSON, another
    type, excessive nesting, NUL or lone surrogates are a 400 naming the field."""
    return parse_json_object(await request.body())


BodyDep = Annotated[dict[str, Any], Depends(json_object)]
