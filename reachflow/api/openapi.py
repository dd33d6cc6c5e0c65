"""The OpenAPI document: FastAPI's, plus what our own body handling hides from it.

Routes take their bodies from dependencies (``api/bodies.py``), not from FastAPI's body
parameters, so FastAPI describes none. ``install_openapi`` builds the document once: each
operation whose dependencies carry a body model (``body_of(Model)``) or a declared request
body (``OPENAPI_BODY_ATTR``) gets its ``requestBody``, and the models' JSON schemas (the very
models that validate the bodies) join ``components.schemas``. FastAPI's default 422
``HTTPValidationError`` goes: our handler answers a parameter error with 400 and ``ErrorBody``.

``errors(...)`` builds a route's ``responses=``: the error statuses it really answers, each
with ``ErrorBody``.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from typing import Any

import fastapi.routing
from fastapi import FastAPI
from fastapi.dependencies.models import Dependant
from fastapi.openapi.utils import get_openapi
from fastapi.routing import APIRoute
from pydantic import BaseModel
from pydantic.json_schema import models_json_schema

from reachflow.api.bodies import BODY_MODEL_ATTR
from reachflow.api.schemas import ErrorBody

#: A dependency may declare its request body itself: ``(content, models)``, where content is
#: the OpenAPI ``content`` map with ``{"$model": Model}`` standing for a model's reference.
OPENAPI_BODY_ATTR = "__openapi_body__"
REF_PREFIX = "#/components/schemas/"

ERROR_DESCRIPTIONS = {
    400: "The request is invalid: every problem is listed under its field",
    401: "No API key, or an unknown or revoked one",
    403: "The key's scope does not reach this",
    404: "No such resource in this organization",
    409: "The resource's state does not allow this",
    413: "The request body is too large",
    422: "A rule refuses it (an inactive workflow, a suppressed number)",
    429: "Too many requests: retry after Retry-After seconds",
    503: "The database is busy: retry after Retry-After seconds",
}


def errors(
    *statuses: int, auth: bool = True, body: bool = False
) -> dict[int | str, dict[str, Any]]:
    """``responses=`` for a route: 400 and 503 always, 401 and 429 if it needs a key, 413 if it
    takes a body, and ``statuses``; each answers ``ErrorBody``."""
    codes = {400, 503, *statuses}
    if auth:
        codes |= {401, 429}
    if body:
        codes.add(413)
    out: dict[int | str, dict[str, Any]] = {}
    for code in sorted(codes):
        entry: dict[str, Any] = {"model": ErrorBody, "description": ERROR_DESCRIPTIONS[code]}
        if code in (429, 503):
            entry["headers"] = {
                "Retry-After": {
                    "description": "Seconds until a request may succeed",
                    "schema": {"type": "integer"},
                }
            }
        out[code] = entry
    return out


def install_openapi(app: FastAPI) -> None:
    """Replace ``app.openapi`` with one that builds the full document once."""

    def openapi() -> dict[str, Any]:
        if app.openapi_schema is None:
            app.openapi_schema = build_openapi(app)
        return app.openapi_schema

    app.openapi = openapi  # type: ignore[method-assign]


def build_openapi(app: FastAPI) -> dict[str, Any]:
    document = get_openapi(
        title=app.title,
        version=app.version,
        openapi_version=app.openapi_version,
        description=app.description,
        routes=app.routes,
        servers=app.servers,
    )
    bodies = [
        (path, methods, body)
        for path, methods, dependant in _api_routes(app)
        if (body := _body_of(dependant))
    ]
    models = {m for _, _, (_, ms) in bodies for m in ms}
    refs = _add_model_schemas(document, models)
    for path, methods, (content, _) in bodies:
        for method in methods:
            operation = document["paths"][path][method.lower()]
            operation["requestBody"] = {"required": True, "content": _resolve(content, refs)}
    _drop_default_422(document)
    _errors_as_json(document)
    return document


def _api_routes(app: FastAPI) -> Iterator[tuple[str, set[str], Dependant]]:
    """(path, methods, dependant) of each documented route, through included routers."""
    iterate = getattr(fastapi.routing, "iter_route_contexts", None)
    routes: Iterable[Any] = iterate(app.routes) if iterate is not None else app.routes
    for route in routes:
        original = getattr(route, "original_route", route)
        if isinstance(original, APIRoute) and original.include_in_schema:
            yield route.path_format, set(route.methods or ()), original.dependant


def _calls(dependant: Dependant) -> Iterator[Any]:
    for dep in dependant.dependencies:
        yield dep.call
        yield from _calls(dep)


def _body_of(dependant: Dependant) -> tuple[dict[str, Any], list[type[BaseModel]]] | None:
    for call in _calls(dependant):
        declared = getattr(call, OPENAPI_BODY_ATTR, None)
        if declared is not None:
            content, models = declared
            return content, list(models)
        model = getattr(call, BODY_MODEL_ATTR, None)
        if model is not None:
            return {"application/json": {"schema": {"$model": model}}}, [model]
    return None


def _add_model_schemas(
    document: dict[str, Any], models: Iterable[type[BaseModel]]
) -> dict[type[BaseModel], dict[str, str]]:
    """The models' validation schemas in ``components.schemas``; returns each one's $ref."""
    ordered = sorted(models, key=lambda m: m.__name__)
    keys, defs = models_json_schema(
        [(m, "validation") for m in ordered], ref_template=REF_PREFIX + "{model}"
    )
    schemas = document.setdefault("components", {}).setdefault("schemas", {})
    for name, schema in _without_null_defaults(defs.get("$defs", {})).items():
        if name in schemas and schemas[name] != schema:
            raise RuntimeError(f"two different schemas are named {name}")
        schemas[name] = schema
    return {m: keys[(m, "validation")] for m in ordered}  # type: ignore[misc]


def _without_null_defaults(value: Any) -> Any:
    """``"default": null`` of a field that may only be left out (not sent as null) would
    contradict its own schema; drop them all (null is never a meaningful default here)."""
    if isinstance(value, dict):
        return {
            k: _without_null_defaults(v)
            for k, v in value.items()
            if not (k == "default" and v is None)
        }
    if isinstance(value, list):
        return [_without_null_defaults(v) for v in value]
    return value


def _resolve(value: Any, refs: dict[type[BaseModel], dict[str, str]]) -> Any:
    if isinstance(value, dict):
        if set(value) == {"$model"}:
            return dict(refs[value["$model"]])
        return {k: _resolve(v, refs) for k, v in value.items()}
    if isinstance(value, list):
        return [_resolve(v, refs) for v in value]
    return value


def _errors_as_json(document: dict[str, Any]) -> None:
    """An error is JSON even where the success is not (``/metrics`` is text): FastAPI files
    extra responses under the route's media type."""
    error_body = {"$ref": REF_PREFIX + "ErrorBody"}
    for operations in document.get("paths", {}).values():
        for operation in operations.values():
            for response in operation.get("responses", {}).values():
                content = response.get("content", {})
                if any(media.get("schema") == error_body for media in content.values()):
                    response["content"] = {"application/json": {"schema": error_body}}


def _drop_default_422(document: dict[str, Any]) -> None:
    """FastAPI documents a 422 ``HTTPValidationError`` for parameters; we answer 400."""
    default = {"$ref": REF_PREFIX + "HTTPValidationError"}
    for operations in document.get("paths", {}).values():
        for operation in operations.values():
            responses = operation.get("responses", {})
            found = responses.get("422", {}).get("content", {}).get("application/json", {})
            if found.get("schema") == default:
                del responses["422"]
    schemas = document.get("components", {}).get("schemas", {})
    for name in ("HTTPValidationError", "ValidationError"):
        schemas.pop(name, None)
