"""Health and metrics."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter
from fastapi.responses import PlainTextResponse

from reachflow.api.deps import ServicesDep

router = APIRouter(tags=["operations"])


@router.get("/healthz")
def healthz(services: ServicesDep) -> dict[str, Any]:
    with services.db.begin() as conn:
        conn.exec_driver_sql("SELECT 1")
    return {"status": "ok"}


@router.get("/metrics", response_class=PlainTextResponse)
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
