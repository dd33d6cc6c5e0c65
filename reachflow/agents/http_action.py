"""The APPLICATION ``http`` action: call a customer's endpoint with a signed request.

Signature: ``X-Reachflow-Signature: sha256=<hex>``, an HMAC-SHA256 with the node's ``secret``
over ``<X-Reachflow-Timestamp>.<raw body>``, so the receiver can check origin and freshness.
``X-Reachflow-Idempotency-Key`` repeats on a retried request. A 2xx answer is ``success``;
anything else (another status, a timeout, a refused connection) is ``failure``.
"""

from __future__ import annotations

import hashlib
import hmac
import json
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import httpx


@dataclass(frozen=True, slots=True)
class HttpOutcome:
    ok: bool
    detail: str


def signature(secret: str, timestamp: str, body: bytes) -> str:
    digest = hmac.new(secret.encode(), timestamp.encode() + b"." + body, hashlib.sha256)
    return "sha256=" + digest.hexdigest()


class HttpAction:
    def __init__(self, *, timeout_seconds: float = 10.0) -> None:
        self.timeout = timeout_seconds

    def perform(
        self, params: dict[str, Any], *, idempotency_key: str, now: datetime
    ) -> HttpOutcome:
        url = str(params.get("url", ""))
        method = str(params.get("method") or "POST").upper()
        body = {"body": params.get("body"), **dict(params.get("context") or {})}
        raw = json.dumps(body, sort_keys=True, default=str).encode()
        timestamp = str(int(now.timestamp()))
        headers = {
            "Content-Type": "application/json",
            "X-Reachflow-Timestamp": timestamp,
            "X-Reachflow-Idempotency-Key": idempotency_key,
        }
        secret = params.get("secret")
        if isinstance(secret, str) and secret:
            headers["X-Reachflow-Signature"] = signature(secret, timestamp, raw)
        try:
            response = httpx.request(
                method, url, content=raw, headers=headers, timeout=self.timeout
            )
        except httpx.HTTPError as exc:
            return HttpOutcome(False, f"{method} {url}: {type(exc).__name__}")
        ok = 200 <= response.status_code < 300
        return HttpOutcome(ok, f"{method} {url}: HTTP {response.status_code}")
