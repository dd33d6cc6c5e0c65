"""Standard Webhooks signatures (``webhook-id``, ``webhook-timestamp``, ``webhook-signature``):
what we put on every request to a webhook agent, and check on every signed report back.

The secret is the agent's ``config.secret`` (``whsec_`` + base64, as Standard Webhooks
defines it). A signature is refused when it does not match, or when its timestamp is more than
``TOLERANCE`` away from now (a replay of an old message); a replay within the tolerance is
refused by the ``webhook-id`` the API remembers.
"""

from __future__ import annotations

import base64
import secrets
import uuid
from collections.abc import Mapping
from datetime import datetime

from standardwebhooks.webhooks import Webhook, WebhookVerificationError

TOLERANCE_SECONDS = 300


class BadSignature(Exception):
    """Why a signed message was refused."""


def new_secret() -> str:
    return "whsec_" + base64.b64encode(secrets.token_bytes(32)).decode()


def sign(secret: str, body: str, now: datetime, message_id: str | None = None) -> dict[str, str]:
    """The three headers for ``body`` sent at ``now``."""
    message_id = message_id or f"msg_{uuid.uuid4().hex}"
    return {
        "webhook-id": message_id,
        "webhook-timestamp": str(int(now.timestamp())),
        "webhook-signature": _webhook(secret).sign(message_id, now, body),
    }


def verify(secret: str, headers: Mapping[str, str], body: bytes) -> str:
    """Check a signed message (its timestamp against the real clock); returns its id."""
    try:
        _webhook(secret).verify(body, dict(headers), json_parse=False)
    except (WebhookVerificationError, ValueError) as exc:
        raise BadSignature(str(exc) or "signature refused") from exc
    return str({k.lower(): v for k, v in headers.items()}["webhook-id"])


def _webhook(secret: str) -> Webhook:
    try:
        return Webhook(secret)
    except Exception as exc:  # an empty or malformed secret
        raise BadSignature(f"the agent's secret is unusable: {type(exc).__name__}") from exc
