"""Health (open) and metrics (an admin key only: they count every organization's executions)."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Depends
from fastapi.responses import PlainTextResponse

from reachflow.api.deps import ApiKeyDep, CleanParameters, ServicesDep
from reachflow.api.openapi import errors

router = APIRouter(tags=["operations"], dependencies=[CleanParameters])


def require_admin(services: ServicesDep, key: ApiKeyDep) -> None:
    """An unrevoked key of the admin scope (``X-API-Key`` or ``Authorization: Bearer``): 401
    without one, 403 ``FORBIDDEN`` for an organization's key."""
    services.accounts.authorize_admin(key)


@router.get("/healthz", responses=errors(auth=False))
def healthz(services: ServicesDep) -> dict[str, Any]:
    with services.db.begin() as conn:
        conn.exec_driver_sql("SELECT 1")
    return {"status": "ok"}


@router.get(
    "/metrics",
    response_class=PlainTextResponse,
    dependencies=[Depends(require_admin)],
    responses=errors(403),
)
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
