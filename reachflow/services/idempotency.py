"""Idempotency keys for requests that create something (``docs/public-sessions.md``).

A request with a key either creates and records the key in the same transaction
(``Claim.record``), or finds the key already recorded:

- same fingerprint (method, path and body): the original result is answered again (the same
  ids, the same status code), nothing is created;
- another fingerprint: 409 ``IDEMPOTENCY_KEY_REUSED``.

Two racing requests with one key both pass the first look; the unique constraint lets one
record the key, the other's whole transaction rolls back (``KeyTaken``) and it answers from the
winner's row. Keys expire after ``ttl`` (``REACHFLOW_IDEMPOTENCY_KEY_HOURS``); an expired key
is a new key.
"""

from __future__ import annotations

import hashlib
import json
import re
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any, TypeVar

from sqlalchemy.engine import Connection

from reachflow.domain.errors import Conflict, FieldError, ValidationFailed
from reachflow.runtime.clock import Clock
from reachflow.store.idempotency import IdempotencyRecord, KeyTaken
from reachflow.store.store import Store

T = TypeVar("T")

#: ``Idempotency-Key`` (the secret API) or ``idempotencyKey`` (the public endpoint).
API_SCOPE = "api"
PUBLIC_SCOPE = "public"
#: 1-255 visible ASCII characters (a uuid4 is the usual choice).
KEY_PATTERN = re.compile(r"[\x21-\x7e]{1,255}")


def fingerprint(method: str, path: str, body: object) -> str:
    """SHA-256 of the method, the path and the body as canonical JSON (keys sorted): the same
    JSON sent with other whitespace or key order is the same request."""
    canonical = json.dumps(
        [method.upper(), path, body], sort_keys=True, separators=(",", ":"), ensure_ascii=True
    )
    return hashlib.sha256(canonical.encode()).hexdigest()


def check_key(key: object, field: str) -> str:
    if not isinstance(key, str) or not KEY_PATTERN.fullmatch(key):
        raise ValidationFailed(
            FieldError(field, "must be 1 to 255 visible ASCII characters (a uuid, say)")
        )
    return key


@dataclass(frozen=True, slots=True)
class Claim:
    """A key not yet recorded: the creating transaction records it with what it created."""

    organization_id: str
    scope: str
    key: str
    fingerprint: str
    expires_after: timedelta
    store: Store

    def record(self, conn: Connection, result: dict[str, Any], now: datetime) -> None:
        """Record the key in ``conn``'s transaction; ``KeyTaken`` if a racing request did."""
        self.store.idempotency.insert_key(
            conn,
            organization_id=self.organization_id,
            scope=self.scope,
            key=self.key,
            fingerprint=self.fingerprint,
            result=result,
            now=now,
            expires_at=now + self.expires_after,
        )


class IdempotencyService:
    def __init__(self, store: Store, clock: Clock, ttl: timedelta) -> None:
        self.store = store
        self.clock = clock
        self.ttl = ttl

    def run(
        self,
        organization_id: str,
        scope: str,
        key: str | None,
        request_fingerprint: str,
        create: Callable[[Claim | None], T],
        replay: Callable[[dict[str, Any]], T],
        *,
        field: str = "Idempotency-Key",
    ) -> tuple[T, bool]:
        """``create`` once per key, or ``replay`` the recorded result; returns the answer and
        whether it was a replay. Without a key, ``create(None)``."""
        if key is None:
            return create(None), False
        key = check_key(key, field)
        found = self._find(organization_id, scope, key)
        if found is not None:
            return replay(self._matching(found, request_fingerprint, field)), True
        claim = Claim(organization_id, scope, key, request_fingerprint, self.ttl, self.store)
        try:
            return create(claim), False
        except KeyTaken:
            found = self._find(organization_id, scope, key)
            if found is None:  # recorded and expired at once: a clock jump; let the client retry
                raise Conflict(
                    "a request with this idempotency key is in progress; retry", field=field
                ) from None
            return replay(self._matching(found, request_fingerprint, field)), True

    def _find(self, organization_id: str, scope: str, key: str) -> IdempotencyRecord | None:
        with self.store.db.read() as conn:
            return self.store.idempotency.find_key(
                conn, organization_id, scope, key, self.clock.now()
            )

    @staticmethod
    def _matching(found: IdempotencyRecord, request_fingerprint: str, field: str) -> dict[str, Any]:
        if found.fingerprint != request_fingerprint:
            raise IdempotencyKeyReused(
                "this idempotency key was used with another request (method, path or body); "
                "use a new key for a new request",
                field=field,
            )
        return found.result


class IdempotencyKeyReused(Conflict):
    code = "IDEMPOTENCY_KEY_REUSED"
