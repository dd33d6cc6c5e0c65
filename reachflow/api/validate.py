"""``POST /api/v1/workflow/validate`` and ``POST /v1/workflows/validate``: a workflow body
checked as its create (and, for a graph, its activation) would check it, and nothing stored.

The answer is ``200 {valid, errors, warnings}``: ``errors`` are exactly the ``errors`` the save
(or the activation) would answer in its 400, each problem under the same field with the same
``code``; ``warnings`` (``domain/definition_warnings.py``) say what a valid definition will not
do as it seems to. A body that is not a JSON object is a 400, as everywhere.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from fastapi import Request
from pydantic import BaseModel

from reachflow.api.bodies import check_body
from reachflow.api.deps import json_object
from reachflow.api.errors import error_items
from reachflow.api.openapi import OPENAPI_BODY_ATTR
from reachflow.domain.definition_warnings import Warning
from reachflow.domain.errors import ValidationFailed


def raw_body(model: type[BaseModel]) -> Callable[[Request], Any]:
    """A dependency: the request's JSON object, not yet checked (the answer reports its
    problems); the OpenAPI document shows ``model`` as the body."""

    async def body(request: Request) -> dict[str, Any]:
        return await json_object(request)

    body.__name__ = f"raw_{model.__name__}"
    setattr(body, OPENAPI_BODY_ATTR, ({"application/json": {"schema": {"$model": model}}}, [model]))
    return body


def answer(
    model: type[BaseModel], raw: dict[str, Any], run: Callable[[], list[Warning]]
) -> dict[str, Any]:
    try:
        check_body(model, raw)
        warnings = run()
    except ValidationFailed as exc:
        return {"valid": False, "errors": error_items(exc), "warnings": []}
    return {"valid": True, "errors": [], "warnings": [w.to_json() for w in warnings]}
