"""Pacing and protection for the dispatch stage, on the engine's clock (a virtual clock runs it
in milliseconds):

- ``TokenBucket``: at most ``rate`` dispatches per second, evenly spaced; per agent
  (config ``dispatchesPerSecond``) and per organization (setting
  ``org_dispatches_per_second``).
- ``Breaker``: a circuit breaker per agent. ``threshold`` transient failures in a row open it
  for a cooldown (doubling up to ``max_cooldown``); then one probe call is let through
  (half open): its success closes the breaker, its failure opens it again.
- ``RetryPolicy``: an agent's ``retry`` config: attempts and exponential backoff with jitter.

State is per worker process; the breaker's state is also written to ``agent_health`` so the
API can show it.
"""

from __future__ import annotations

import math
import random
from collections import deque
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from enum import StrEnum
from typing import Any

#: Float error in refills: 0.9999999999 tokens is one token.
_EPSILON = 1e-9


#: The window an agent's error rate is measured over.
WINDOW = timedelta(minutes=15)


class TokenBucket:
    def __init__(self, rate: float, burst: float = 1.0) -> None:
        """``burst`` 1: calls are spaced ``1/rate`` apart, so no second ever holds more
        than ``rate`` of them."""
        self.rate = rate
        self.burst = max(1.0, burst)
        self.tokens = self.burst
        self.at: datetime | None = None

    def _refill(self, now: datetime) -> None:
        if self.at is not None and now > self.at:
            elapsed = (now - self.at).total_seconds()
            self.tokens = min(self.burst, self.tokens + elapsed * self.rate)
        if self.at is None or now > self.at:
            self.at = now

    def available(self, now: datetime) -> int:
        self._refill(now)
        return int(self.tokens + _EPSILON)

    def take(self, now: datetime) -> bool:
        if self.available(now) < 1:
            return False
        self.tokens = max(0.0, self.tokens - 1)
        return True

    def next_at(self, now: datetime) -> datetime:
        """When the next token is there (rounded up to the microsecond, so a caller that
        waits until then finds it)."""
        if self.available(now) >= 1:
            return now
        micros = math.ceil((1 - self.tokens) / self.rate * 1_000_000)
        return now + timedelta(microseconds=max(1, micros))


class BreakerState(StrEnum):
    CLOSED = "closed"
    OPEN = "open"
    HALF_OPEN = "half_open"


@dataclass
class Breaker:
    threshold: int = 5
    cooldown: timedelta = timedelta(seconds=30)
    max_cooldown: timedelta = timedelta(minutes=10)
    state: BreakerState = BreakerState.CLOSED
    failures: int = 0
    open_until: datetime | None = None
    reason: str | None = None
    _next_cooldown: timedelta | None = None

    def allows(self, now: datetime) -> bool:
        """Whether calls may go out now (an open breaker past its cooldown turns half open)."""
        if self.state is BreakerState.OPEN and self.open_until and now >= self.open_until:
            self.state = BreakerState.HALF_OPEN
        return self.state is not BreakerState.OPEN

    def succeeded(self) -> bool:
        """Record a success; True when the state changed."""
        changed = self.state is not BreakerState.CLOSED
        self.state = BreakerState.CLOSED
        self.failures = 0
        self.open_until = None
        self.reason = None
        self._next_cooldown = None
        return changed

    def failed(self, reason: str, now: datetime) -> bool:
        """Record a transient failure; True when the breaker opened."""
        self.failures += 1
        if self.state is BreakerState.HALF_OPEN or self.failures >= self.threshold:
            cooldown = self._next_cooldown or self.cooldown
            self.state = BreakerState.OPEN
            self.open_until = now + cooldown
            self.reason = reason
            self._next_cooldown = min(self.max_cooldown, cooldown * 2)
            return True
        return False


@dataclass(frozen=True)
class RetryPolicy:
    max_attempts: int = 5
    initial_backoff: timedelta = timedelta(seconds=5)
    max_backoff: timedelta = timedelta(seconds=300)
    jitter: float = 0.2

    @classmethod
    def of(cls, config: dict[str, Any], default_attempts: int) -> RetryPolicy:
        """An agent's ``retry`` config (validated at the API), else the defaults."""
        raw = config.get("retry")
        retry: dict[str, Any] = raw if isinstance(raw, dict) else {}

        def number(key: str, default: float, low: float, high: float) -> float:
            value = retry.get(key)
            if isinstance(value, bool) or not isinstance(value, int | float):
                return default
            return min(high, max(low, float(value)))

        return cls(
            max_attempts=int(number("maxAttempts", default_attempts, 1, 10)),
            initial_backoff=timedelta(seconds=number("initialBackoffSecs", 5, 0.1, 3600)),
            max_backoff=timedelta(seconds=number("maxBackoffSecs", 300, 0.1, 86_400)),
        )

    def backoff(self, attempts: int, rng: random.Random) -> timedelta:
        """After the ``attempts``-th failure: initial * 2^(attempts-1), at most max, + jitter."""
        base = min(
            self.max_backoff.total_seconds(),
            self.initial_backoff.total_seconds() * 2 ** (attempts - 1),
        )
        return timedelta(seconds=base * (1 + self.jitter * rng.random()))


@dataclass
class Pacing:
    """Every agent's and organization's bucket and every agent's breaker, in one worker."""

    org_rate: float = 0.0
    breaker_threshold: int = 5
    breaker_cooldown: timedelta = timedelta(seconds=30)
    agent_buckets: dict[str, TokenBucket] = field(default_factory=dict)
    org_buckets: dict[str, TokenBucket] = field(default_factory=dict)
    breakers: dict[str, Breaker] = field(default_factory=dict)
    #: Each agent's call attempts over the last ``WINDOW``: (when, succeeded).
    outcomes: dict[str, deque[tuple[datetime, bool]]] = field(default_factory=dict)

    def record(self, agent_id: str, ok: bool, now: datetime) -> None:
        self.outcomes.setdefault(agent_id, deque()).append((now, ok))

    def recent(self, agent_id: str, now: datetime) -> tuple[int, int]:
        """``(succeeded, failed)`` call attempts over the last ``WINDOW``."""
        window = self.outcomes.get(agent_id)
        if window is None:
            return 0, 0
        while window and window[0][0] < now - WINDOW:
            window.popleft()
        failed = sum(1 for _, ok in window if not ok)
        return len(window) - failed, failed

    def agent_bucket(self, agent_id: str, config: dict[str, Any]) -> TokenBucket | None:
        rate = config.get("dispatchesPerSecond")
        if isinstance(rate, bool) or not isinstance(rate, int | float) or rate <= 0:
            self.agent_buckets.pop(agent_id, None)
            return None
        bucket = self.agent_buckets.get(agent_id)
        if bucket is None or bucket.rate != rate:
            bucket = self.agent_buckets[agent_id] = TokenBucket(float(rate))
        return bucket

    def org_bucket(self, organization_id: str) -> TokenBucket | None:
        if self.org_rate <= 0:
            return None
        bucket = self.org_buckets.get(organization_id)
        if bucket is None:
            bucket = self.org_buckets[organization_id] = TokenBucket(self.org_rate)
        return bucket

    def breaker(self, agent_id: str) -> Breaker:
        breaker = self.breakers.get(agent_id)
        if breaker is None:
            breaker = self.breakers[agent_id] = Breaker(
                threshold=self.breaker_threshold, cooldown=self.breaker_cooldown
            )
        return breaker

    def blocked_agents(self, now: datetime) -> list[str]:
        """Agents not to claim for now: an open breaker, or an empty bucket."""
        blocked = [a for a, b in self.breakers.items() if not b.allows(now)]
        blocked += [a for a, b in self.agent_buckets.items() if b.available(now) < 1]
        return blocked

    def next_capacity_at(self, now: datetime) -> datetime | None:
        """When a blocked agent may take a call again."""
        times = [b.open_until for b in self.breakers.values() if not b.allows(now)]
        times += [b.next_at(now) for b in self.agent_buckets.values() if b.available(now) < 1]
        present = [t for t in times if t is not None]
        return min(present) if present else None
