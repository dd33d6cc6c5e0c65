"""Event-webhook delivery on the Temporal runtime: one thread per worker process.

The embedded worker delivers event webhooks between its engine stages; on Temporal nothing
ticks, so each ``reachflow temporal-worker`` runs this loop beside its activities. Deliveries
are leased rows of our SQL store (``store/webhooks.py``), so several workers share them and a
dead worker's leases lapse to another. It never runs inside a workflow's ``sync`` activity: a
dead or slow subscriber must not slow an execution."""

from __future__ import annotations

import logging
import threading

from reachflow.runtime.clock import Clock
from reachflow.runtime.embedded.webhooks import WebhookDeliverer

log = logging.getLogger(__name__)


class WebhookPump:
    def __init__(
        self, deliverer: WebhookDeliverer, clock: Clock, *, poll_seconds: float = 1.0
    ) -> None:
        self.deliverer = deliverer
        self.clock = clock
        self.poll_seconds = poll_seconds
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def start(self) -> None:
        if self._thread is None:
            self._stop.clear()
            self._thread = threading.Thread(
                target=self._run, name="reachflow-webhooks", daemon=True
            )
            self._thread.start()

    def stop(self, timeout: float = 10.0) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout)
            self._thread = None

    def _run(self) -> None:
        while not self._stop.is_set():
            wait = self.poll_seconds
            try:
                done = self.deliverer.record_results() + self.deliverer.claim()
                if done:
                    wait = 0.0
                elif self.deliverer.busy:
                    wait = min(wait, 0.05)  # answers are coming: record them soon
                else:
                    upcoming = self.deliverer.next_at()
                    if upcoming is not None:
                        wait = min(wait, (upcoming - self.clock.now()).total_seconds())
            except Exception:
                log.exception("event webhook delivery failed; retrying")
            self._stop.wait(max(wait, 0.0))
