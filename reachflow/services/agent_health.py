"""An agent's health as the API shows it: calls in flight, its recent error rate, and its
circuit breaker (``runtime/embedded/pacing.py``) as the workers last wrote it."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

from reachflow.runtime.clock import Clock
from reachflow.runtime.embedded.pacing import WINDOW
from reachflow.store.store import Store

#: The window the error rate is measured over (the dispatcher's).
ERROR_WINDOW = WINDOW


class AgentHealthService:
    def __init__(self, store: Store, clock: Clock, report_timeout: timedelta) -> None:
        self.store = store
        self.clock = clock
        self.report_timeout = report_timeout

    def health(self, agent_id: str) -> dict[str, Any]:
        """``inFlight``: calls taken and not reported (within the report timeout);
        ``recentErrorRate``: failed / all call attempts over the last 15 minutes, retries
        included (null when none); ``breaker``: ``closed | open | half_open``, why, and until
        when."""
        now = self.clock.now()
        with self.store.db.read() as conn:
            in_flight = self.store.agent_calls.in_flight(conn, agent_id, now - self.report_timeout)
            breaker = self.store.agent_health.of(conn, agent_id)
        ok = failed = 0
        if breaker is not None and breaker.updated_at >= now - ERROR_WINDOW:
            ok, failed = breaker.recent_ok, breaker.recent_failed
        attempts = ok + failed
        state = breaker.breaker if breaker else "closed"
        if state == "open" and breaker and breaker.open_until and breaker.open_until <= now:
            state = "half_open"  # its cooldown is over: the next call is the probe
        return {
            "inFlight": in_flight,
            "recentErrorRate": round(failed / attempts, 4) if attempts else None,
            "recentAttempts": attempts,
            "breaker": {
                "state": state,
                "reason": breaker.reason if breaker else None,
                "openUntil": breaker.open_until.isoformat()
                if breaker and breaker.open_until
                else None,
            },
        }
