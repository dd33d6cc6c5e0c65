"""Console sessions: a signed cookie that names an API key by its hash, and CSRF tokens.

The raw API key is read once, by the sign-in form, and never stored or sent back. The session
cookie holds ``<payload>.<signature>``: the payload (base64url JSON) is the SHA-256 hash of the
key (as the database keeps it), an expiry and a random nonce; the signature is HMAC-SHA256 over
the payload with the console secret (``REACHFLOW_CONSOLE_SECRET``, or a random secret made when
the process starts). Every request checks the signature and the expiry, then looks the key up by
its hash: a revoked key ends its sessions at once. The CSRF token of a session is
HMAC(secret, "csrf:" + nonce): every form carries it and every POST is refused without it.
Before sign-in, the form's token is a random value also set in a short-lived cookie
(double submit), so a sign-in cannot be forged from another site either.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import json
import secrets
import time
from dataclasses import dataclass

from pydantic_settings import BaseSettings, SettingsConfigDict

SESSION_COOKIE = "reachflow_console"
LOGIN_CSRF_COOKIE = "reachflow_console_login"
#: A session lasts this long after sign-in (seconds).
SESSION_SECONDS = 12 * 3600


class ConsoleSettings(BaseSettings):
    """``REACHFLOW_CONSOLE_*`` settings (docs/console.md)."""

    model_config = SettingsConfigDict(env_prefix="REACHFLOW_CONSOLE_", extra="ignore")

    #: Signs session cookies. Empty: a random secret per process (sessions end when it stops,
    #: and each process of several has its own); set it to share sessions between processes.
    secret: str = ""
    #: Session lifetime in seconds.
    session_seconds: int = SESSION_SECONDS


@dataclass(frozen=True, slots=True)
class SessionClaims:
    key_hash: str
    expires: int
    nonce: str


def _b64(raw: bytes) -> str:
    return base64.urlsafe_b64encode(raw).rstrip(b"=").decode()


def _unb64(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


class Signer:
    def __init__(self, secret: str = "", session_seconds: int = SESSION_SECONDS) -> None:
        self._secret = secret.encode() if secret else secrets.token_bytes(32)
        self.session_seconds = session_seconds

    def _mac(self, data: str) -> str:
        return _b64(hmac.new(self._secret, data.encode(), hashlib.sha256).digest())

    def issue(self, key_hash: str, now: float | None = None) -> str:
        """A new session cookie value for the key with this hash."""
        claims = {
            "h": key_hash,
            "e": int((now if now is not None else time.time()) + self.session_seconds),
            "n": secrets.token_urlsafe(16),
        }
        payload = _b64(json.dumps(claims, separators=(",", ":")).encode())
        return f"{payload}.{self._mac(payload)}"

    def read(self, value: str | None, now: float | None = None) -> SessionClaims | None:
        """The claims of a well-signed, unexpired cookie value; None otherwise."""
        if not value or value.count(".") != 1 or len(value) > 1024:
            return None
        payload, signature = value.split(".")
        if not hmac.compare_digest(signature.encode(), self._mac(payload).encode()):
            return None
        try:
            claims = json.loads(_unb64(payload))
            found = SessionClaims(str(claims["h"]), int(claims["e"]), str(claims["n"]))
        except (ValueError, KeyError, TypeError, binascii.Error):
            return None
        if found.expires < (now if now is not None else time.time()):
            return None
        return found

    def csrf_token(self, claims: SessionClaims) -> str:
        return self._mac("csrf:" + claims.nonce)

    def csrf_ok(self, claims: SessionClaims, given: str | None) -> bool:
        return bool(given) and hmac.compare_digest(
            str(given).encode(), self.csrf_token(claims).encode()
        )


def same_token(expected: str | None, given: str | None) -> bool:
    """Constant-time equality of two tokens, both present."""
    return (
        bool(expected)
        and bool(given)
        and hmac.compare_digest(str(expected).encode(), str(given).encode())
    )
