"""The embedded worker: a thread that ticks the engine until stopped."""

from __future__ import annotations

import logging
import sys
import threading

from reachflow.runtime.clock import Clock
from reachflow.runtime.embedded.engine import Engine

log = logging.getLogger(__name__)


class EmbeddedWorker:
    def __init__(
        self,
        engine: Engine,
        clock: Clock,
        *,
        poll_seconds: float = 1.0,
        switch_interval: float | None = None,
    ) -> None:
        self.engine = engine
        self.switch_interval = switch_interval
        self.clock = clock
        self.poll_seconds = poll_seconds
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def start(self) -> None:
        if self._thread is not None:
            return
        if self.switch_interval is not None:
            # The worker is CPU-bound Python; a request thread of the same process waits for
            # the interpreter lock at every step it takes, up to one switch interval each time
            # (5 ms by default). A shorter interval keeps the API answering while it drains.
            sys.setswitchinterval(self.switch_interval)
        self._stop.clear()
        self._thread = threading.Thread(target=self._run, name="reachflow-worker", daemon=True)
        self._thread.start()

    def stop(self, timeout: float = 10.0) -> None:
        self._stop.set()
        self.engine.wakeup.set()
        if self._thread is not None:
            self._thread.join(timeout)
            self._thread = None

    def _run(self) -> None:
        while not self._stop.is_set():
            try:
                self.engine.tick(self._stop)  # a backlog does not keep it from stopping
                upcoming = self.engine.next_work_at()
            except Exception:
                log.exception("worker tick failed; retrying")
                upcoming = None
            wait = self.poll_seconds
            if self.engine.dispatcher.in_flight:
                # Calls in flight: wake in time to renew their leases.
                wait = min(wait, self.engine.config.lease.total_seconds() / 3)
            if upcoming is not None:
                wait = min(wait, max(0.0, (upcoming - self.clock.now()).total_seconds()))
            self.engine.wakeup.wait(wait)
            self.engine.wakeup.clear()
