"""Rate limits per API key and per client address, kept by the ``limits`` library (moving
window, in this process's memory).

- A request with a key counts against that key, known only by its SHA-256 (the raw key is
  never stored): ``rate_limit_per_key``.
- A request with no key, and every answer 401 (a wrong, revoked or missing key), counts against
  the client address: ``rate_limit_unauthenticated``. An address that used that budget up gets
  429 for keyed requests too until it frees, so guessing keys from one address is slow.

The limiter belongs to one application (``app.state.rate_limiter``); nothing is global. With
several API processes each keeps its own counts.
"""

from __future__ import annotations

import hashlib
import math
import time

from limits import RateLimitItem, parse_many
from limits.storage import MemoryStorage
from limits.strategies import MovingWindowRateLimiter

from reachflow.settings import Settings


def key_id(key: str) -> str:
    """What the limiter knows of a key: its SHA-256, hex."""
    return hashlib.sha256(key.encode("utf-8", "surrogateescape")).hexdigest()


class RateLimiter:
    """Hits and verdicts. Each check answers ``None`` (go on) or the seconds until the window
    lets the next request through (``Retry-After``)."""

    def __init__(self, per_key: str, per_address: str) -> None:
        self._storage = MemoryStorage()
        self._window = MovingWindowRateLimiter(self._storage)
        self.per_key: list[RateLimitItem] = parse_many(per_key)
        self.per_address: list[RateLimitItem] = parse_many(per_address)

    @classmethod
    def from_settings(cls, settings: Settings) -> RateLimiter | None:
        """The limiter the settings ask for, or ``None`` when rate limiting is off."""
        if not settings.rate_limit_enabled:
            return None
        return cls(settings.rate_limit_per_key, settings.rate_limit_unauthenticated)

    def hit_key(self, key: str) -> int | None:
        """Count one request of ``key`` (raw; only its hash is kept) unless it is over."""
        return self._hit(self.per_key, "key", key_id(key))

    def hit_address(self, address: str) -> int | None:
        """Count one unauthenticated request of ``address`` unless it is over."""
        return self._hit(self.per_address, "address", address)

    def address_blocked(self, address: str) -> int | None:
        """Has ``address`` used up its unauthenticated budget? (Counts nothing.)"""
        return self._over(self.per_address, "address", address)

    def count_failure(self, address: str) -> None:
        """Count a failed authentication (a 401) against ``address``."""
        for item in self.per_address:
            self._window.hit(item, "address", address)

    def _hit(self, items: list[RateLimitItem], *identity: str) -> int | None:
        # Test every limit first, so a request refused by one does not use up another.
        over = self._over(items, *identity)
        if over is not None:
            return over
        for item in items:
            if not self._window.hit(item, *identity):
                return self._retry_after(item, *identity)  # lost a race for the last slot
        return None

    def _over(self, items: list[RateLimitItem], *identity: str) -> int | None:
        waits = [
            self._retry_after(item, *identity)
            for item in items
            if not self._window.test(item, *identity)
        ]
        return max(waits) if waits else None

    def _retry_after(self, item: RateLimitItem, *identity: str) -> int:
        reset = self._window.get_window_stats(item, *identity).reset_time
        return max(1, math.ceil(reset - time.time()))
