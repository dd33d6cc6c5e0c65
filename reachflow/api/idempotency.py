"""The ``Idempotency-Key`` header of the secret API's creating POSTs (executions, bulk,
workflows, lead uploads): ``idempotent`` runs a create once per key (``services.idempotency``)
and marks a replayed answer with ``Idempotent-Replayed: true``."""

from __future__ import annotations

from collections.abc import Callable
from typing import Annotated, Any, TypeVar

from fastapi import Header, Request, Response

from reachflow.bootstrap import Services
from reachflow.services.idempotency import API_SCOPE, Claim, fingerprint

T = TypeVar("T")

IdempotencyKey = Annotated[
    str | None,
    Header(
        alias="Idempotency-Key",
        description=(
            "Creates once per key: a repeat with the same body answers the original result "
            "(same ids and status); with another body it is a 409. Keys live "
            "REACHFLOW_IDEMPOTENCY_KEY_HOURS (24) hours."
        ),
    ),
]
REPLAYED_HEADER = "Idempotent-Replayed"


def idempotent(
    services: Services,
    organization_id: str,
    request: Request,
    response: Response,
    body: Any,
    key: str | None,
    create: Callable[[Claim | None], T],
    replay: Callable[[dict[str, Any]], T],
) -> T:
    request_fingerprint = fingerprint(request.method, request.url.path, body)
    answer, replayed = services.idempotency.run(
        organization_id, API_SCOPE, key, request_fingerprint, create, replay
    )
    if replayed:
        response.headers[REPLAYED_HEADER] = "true"
    return answer
