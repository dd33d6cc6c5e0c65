"""Health (open) and metrics (an admin key only: they count every organization's executions)."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Depends, Header
from fastapi.responses import PlainTextResponse

from reachflow.api.deps import ServicesDep

router = APIRouter(tags=["operations"])


def require_admin(
    services: ServicesDep,
    x_api_key: Annotated[str | None, Header()] = None,
    authorization: Annotated[str | None, Header()] = None,
) -> None:
    """An unrevoked key of the admin scope (``X-API-Key`` or ``Authorization: Bearer``): 401
    without one, 403 ``FORBIDDEN`` for an organization's key."""
    key = x_api_key
    if not key and authorization and authorization.lower().startswith("bearer "):
        key = authorization[7:].strip()
    services.accounts.authorize_admin(key)


@router.get("/healthz")
def healthz(services: ServicesDep) -> dict[str, Any]:
    with services.db.begin() as conn:
        conn.exec_driver_sql("SELECT 1")
    return {"status": "ok"}


@router.get("/metrics", response_class=PlainTextResponse, dependencies=[Depends(require_admin)])
def metrics(services: ServicesDep) -> str:
    stats = services.engine.stats
    with services.db.begin() as conn:
        counts = services.store.executions.count_by_status(conn)
    lines = [
        "# TYPE reachflow_engine_decisions_total counter",
        f"reachflow_engine_decisions_total {stats.decisions}",
        "# TYPE reachflow_engine_dispatches_total counter",
        f"reachflow_engine_dispatches_total {stats.dispatches}",
        "# TYPE reachflow_executions gauge",
    ]
    lines += [f'reachflow_executions{{status="{s}"}} {n}' for s, n in sorted(counts.items())]
    return "\n".join(lines) + "\n"
