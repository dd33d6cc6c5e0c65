"""Request dependencies: the services and the caller's organization."""

from __future__ import annotations

import json
from typing import Annotated, Any

from fastapi import Depends, Header, Request

from reachflow.bootstrap import Services
from reachflow.domain.errors import FieldError, ValidationFailed


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
    """The body as a JSON object; malformed JSON or another type is a 400 naming ``body``."""
    raw = await request.body()
    if not raw.strip():
        raise ValidationFailed(FieldError("body", "a JSON object is required"))
    try:
        value = json.loads(raw)
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise ValidationFailed(FieldError("body", f"malformed JSON: {exc}")) from exc
    if not isinstance(value, dict):
        raise ValidationFailed(FieldError("body", "must be a JSON object"))
    return value


BodyDep = Annotated[dict[str, Any], Depends(json_object)]
