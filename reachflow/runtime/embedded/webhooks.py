"""The webhook stage: deliveries claimed under a fenced lease, sent concurrently, their
attempts recorded in batches. It mirrors the dispatch stage (``dispatcher.py``):

1. *Claim* (one transaction per batch): take due deliveries of enabled subscriptions, each
   the head of its chain (one execution's, or one contact's, events to one subscription), so
   a chain is sent one event after another, in order. At most ``per_subscription`` are in
   flight per subscription and ``max_in_flight`` overall: a slow subscriber fills only its
   own slots.
2. *Send*: the signed POSTs go out on the subscriber client's own event loop
   (``agents/subscribers.py``), outside any transaction; nothing the engine does waits for
   them.
3. *Record* (one transaction per batch of answers): every attempt goes to the delivery log;
   a 2xx delivers; a failure is retried with exponential backoff and jitter until its horizon
   (``domain.events.DeliveryPolicy``), then given up. A subscription whose attempts keep
   failing past both thresholds is disabled, with the reason, and its open deliveries are
   given up. An answer whose delivery was taken over (a stale token) is discarded.

4. *Prune* (one bounded transaction on the way into a claim, at most every
   ``limits.prune_every``, or in every round of the engine's tick while a backlog lasts):
   finished deliveries older than ``limits.retention``, their attempts, and their events
   once no delivery refers to them (``store.webhooks.Webhooks.prune``). An open delivery,
   and so its event, is never pruned. On PostgreSQL rows another worker holds are skipped,
   never waited for; a failed prune is logged and tried again later, and never stops the
   claim.

Delivery is at least once: a worker that stops after sending and before recording leaves the
lease to lapse, and the delivery is sent again with the same ``webhook-id``.
"""

from __future__ import annotations

import json
import logging
import random
import threading
from collections import Counter, deque
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import TYPE_CHECKING, Any

from reachflow.agents.subscribers import SendResult, SubscriberClient
from reachflow.domain.events import DeliveryPolicy, transient_status
from reachflow.store.webhooks import DISABLED, AttemptRow, ClaimedDelivery

if TYPE_CHECKING:
    from reachflow.runtime.embedded.engine import Engine

log = logging.getLogger(__name__)


@dataclass(frozen=True, slots=True)
class WebhookLimits:
    #: Deliveries in flight in this worker, over all subscriptions.
    max_in_flight: int = 500
    #: Deliveries in flight per subscription (different executions' events; one execution's
    #: events are always sent one at a time).
    per_subscription: int = 8
    #: How long a claimed delivery is held; longer than the client's timeout.
    lease: timedelta = timedelta(seconds=60)
    #: Finished deliveries (and their attempts and events) are kept this long after they
    #: finished (``REACHFLOW_WEBHOOK_RETENTION_DAYS``); None keeps them forever.
    retention: timedelta | None = timedelta(days=30)
    #: How often the worker looks for rows to prune, and how many deliveries one prune
    #: transaction deletes at most (a full batch is followed by another at once).
    prune_every: timedelta = timedelta(minutes=1)
    prune_batch: int = 500


@dataclass(slots=True)
class _Sent:
    item: ClaimedDelivery
    at: datetime
    result: SendResult


class WebhookDeliverer:
    def __init__(
        self,
        engine: Engine,
        client: SubscriberClient,
        policy: DeliveryPolicy,
        limits: WebhookLimits,
    ) -> None:
        self.engine = engine
        self.store = engine.store
        self.client = client
        self.policy = policy
        self.limits = limits
        self._lock = threading.Condition()
        self._held: dict[int, tuple[ClaimedDelivery, datetime]] = {}
        self._per_subscription: Counter[str] = Counter()
        self._results: deque[_Sent] = deque()
        self._rng = random.Random()
        self.delivered = 0
        self.failed_attempts = 0
        self.pruned = 0
        #: When the next prune may run (None: at once).
        self._prune_at: datetime | None = None
        self._pruning = False

    # -- state ------------------------------------------------------------------------------

    @property
    def busy(self) -> bool:
        """Attempts are in flight, or their answers are not yet recorded."""
        with self._lock:
            return bool(self._held) or bool(self._results)

    def wait_idle(self, timeout: float | None = None) -> bool:
        """Wait until every attempt in flight has its answer (not yet recorded)."""
        with self._lock:
            return self._lock.wait_for(lambda: len(self._held) <= len(self._results), timeout)

    def saturated(self) -> list[str]:
        with self._lock:
            return [
                s for s, n in self._per_subscription.items() if n >= self.limits.per_subscription
            ]

    def next_at(self) -> datetime | None:
        with self.store.db.read() as conn:
            return self.store.webhooks.next_at(conn, exclude=self.saturated())

    def close(self) -> None:
        self.client.close()

    # -- 1. claim ---------------------------------------------------------------------------

    def claim(self) -> int:
        """Claim and send due deliveries, after a batch of retention if one is due; how many
        deliveries it claimed and pruned (work done: a backlog keeps the engine's tick going,
        one bounded batch per round, between its other stages)."""
        pruned = self.prune()
        with self._lock:
            room = self.limits.max_in_flight - len(self._held)
            per_sub = {
                s: self.limits.per_subscription - n for s, n in self._per_subscription.items() if n
            }
        if room <= 0:
            return pruned
        engine = self.engine
        now = engine.clock.now()
        db = self.store.db
        with db.begin() as conn:
            items = self.store.webhooks.claim(
                conn,
                now,
                min(engine.batch_size(), room),
                self.limits.lease,
                skip_locked=db.supports_skip_locked,
                exclude=[s for s, n in per_sub.items() if n <= 0],
                room=per_sub,
                default_room=self.limits.per_subscription,
            )
        if not items:
            return pruned
        with self._lock:
            for item in items:
                self._held[item.id] = (item, now)
                self._per_subscription[item.subscription_id] += 1
        for item in items:
            self._send(item, now)
        return pruned + len(items)

    # -- 4. prune ---------------------------------------------------------------------------

    def prune(self) -> int:
        """One bounded batch of retention, if one is due: how many deliveries it deleted."""
        retention = self.limits.retention
        if retention is None:
            return 0
        now = self.engine.clock.now()
        with self._lock:
            if self._pruning or (self._prune_at is not None and now < self._prune_at):
                return 0
            self._pruning = True
        limit = max(1, min(self.limits.prune_batch, self.engine.batch_size()))
        deleted = 0
        try:
            db = self.store.db
            with db.begin() as conn:
                pruned = self.store.webhooks.prune(
                    conn, now - retention, limit, skip_locked=db.supports_skip_locked
                )
            deleted = pruned.deliveries
            if deleted:
                log.info(
                    "pruned %d webhook deliveries, %d attempts, %d events finished before %s",
                    pruned.deliveries,
                    pruned.attempts,
                    pruned.events,
                    (now - retention).isoformat(),
                )
        except Exception:
            log.exception("pruning webhook deliveries failed; trying again later")
            deleted = 0
        with self._lock:
            self._pruning = False
            self.pruned += deleted
            self._prune_at = now if deleted >= limit else now + self.limits.prune_every
        return deleted

    def _send(self, item: ClaimedDelivery, at: datetime) -> None:
        body = json.dumps(item.payload, separators=(",", ":"), ensure_ascii=False)

        def done(result: SendResult) -> None:
            with self._lock:
                self._results.append(_Sent(item, at, result))
                self._lock.notify_all()
            self.engine.wakeup.set()

        self.client.send(item.url, item.secrets, item.event_id, body, done)

    # -- 3. record --------------------------------------------------------------------------

    def record_results(self) -> int:
        with self._lock:
            take = min(len(self._results), self.engine.batch_size())
            sent = [self._results.popleft() for _ in range(take)]
            for s in sent:
                if self._held.pop(s.item.id, None) is not None:
                    self._per_subscription[s.item.subscription_id] -= 1
            self._lock.notify_all()
        if not sent:
            return 0
        now = self.engine.clock.now()
        webhooks = self.store.webhooks
        with self.store.db.begin() as conn:
            current = webhooks.held(conn, [(s.item.id, s.item.fence) for s in sent])
            fresh = [s for s in sent if s.item.id in current]
            for stale in (s for s in sent if s.item.id not in current):
                log.warning("discarding a stale webhook answer for delivery %s", stale.item.id)
            finished: list[tuple[int, str, int | None, str | None]] = []
            retries: list[tuple[int, datetime, int | None, str | None]] = []
            attempts: list[AttemptRow] = []
            for s in fresh:
                item, result = s.item, s.result
                attempts.append(
                    AttemptRow(
                        organization_id=item.organization_id,
                        subscription_id=item.subscription_id,
                        delivery_id=item.id,
                        event_id=item.event_id,
                        event_type=item.event_type,
                        attempt=item.attempts,
                        at=s.at,
                        status_code=result.status_code,
                        latency_ms=result.latency_ms,
                        ok=result.ok,
                        error=result.error,
                    )
                )
                if result.ok:
                    self.delivered += 1
                    finished.append((item.id, "delivered", result.status_code, None))
                    continue
                self.failed_attempts += 1
                again = (
                    self.policy.next_attempt(
                        item.first_attempt_at, item.attempts, now, self._rng.random()
                    )
                    if transient_status(result.status_code)
                    else None
                )
                if again is None:
                    why = (
                        f"gave up after {item.attempts} attempts: {result.error}"
                        if transient_status(result.status_code)
                        else f"{result.error}: not retried"
                    )
                    finished.append((item.id, "failed", result.status_code, why))
                else:
                    retries.append((item.id, again, result.status_code, result.error))
            webhooks.log_attempts(conn, attempts)
            webhooks.finish(conn, finished, now)
            webhooks.retry(conn, retries)
            self._streaks(conn, fresh, now)
        return len(sent)

    def _streaks(self, conn: Any, sent: list[_Sent], now: datetime) -> None:
        """Each subscription's run of failed attempts; disable one that passed both
        thresholds (``DeliveryPolicy.should_disable``)."""
        if not sent:
            return
        webhooks = self.store.webhooks
        rows = []
        for streak in webhooks.streaks(conn, {s.item.subscription_id for s in sent}):
            failures, since = streak.consecutive_failures, streak.failing_since
            success_at: datetime | None = None
            failure_at: datetime | None = None
            last_error = ""
            for s in sent:
                if s.item.subscription_id != streak.subscription_id:
                    continue
                if s.result.ok:
                    failures, since, success_at = 0, None, s.at
                else:
                    failures, since, failure_at = failures + 1, since or s.at, s.at
                    last_error = s.result.error or "failed"
            status, reason, disabled_at = streak.status, None, None
            if status != DISABLED and self.policy.should_disable(failures, since, now):
                assert since is not None
                status, disabled_at = DISABLED, now
                reason = (
                    f"disabled after {failures} failed delivery attempts in a row since "
                    f"{since.isoformat()}; the last: {last_error}"
                )
                log.warning("webhook subscription %s %s", streak.subscription_id, reason)
                webhooks.fail_open(conn, streak.subscription_id, "subscription disabled", now)
            rows.append(
                {
                    "b_id": streak.subscription_id,
                    "b_failures": failures,
                    "b_since": since,
                    "b_success": success_at,
                    "b_failure": failure_at,
                    "b_status": status,
                    "b_reason": reason,
                    "b_disabled_at": disabled_at,
                }
            )
        webhooks.write_streaks(conn, rows)
