"""Sending event webhooks to subscribers: one signed POST per attempt, on an event loop of its
own, so a thousand slow subscribers hold a thousand sockets and not a thousand threads.

Every attempt of an event carries the same ``webhook-id`` (the event's id, for the subscriber
to de-duplicate), a fresh ``webhook-timestamp`` (the real time of sending: subscribers check
it against their own clock) and ``webhook-signature`` from each of the subscription's live
secrets (Standard Webhooks: space-separated ``v1,<base64>``; two while a rotated secret is
still honoured). A 2xx answer is a delivery; anything else, or no answer within the timeout,
is a failed attempt.
"""

from __future__ import annotations

import asyncio
import contextlib
import threading
import time
from collections.abc import Callable, Sequence
from concurrent.futures import Future
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import httpx
from standardwebhooks.webhooks import Webhook

from reachflow import __version__

USER_AGENT = f"reachflow-webhooks/{__version__}"


@dataclass(frozen=True, slots=True)
class SendResult:
    status_code: int | None
    latency_ms: int
    error: str | None

    @property
    def ok(self) -> bool:
        return self.status_code is not None and 200 <= self.status_code < 300


def signature_header(secrets: Sequence[str], message_id: str, at: datetime, body: str) -> str:
    """The ``webhook-signature`` value: one ``v1,<base64>`` per secret."""
    return " ".join(Webhook(secret).sign(message_id, at, body) for secret in secrets)


class SubscriberClient:
    """Thread-safe: ``send`` may be called from any thread; ``done`` is called on the client's
    own thread and must be quick."""

    def __init__(
        self,
        *,
        timeout_seconds: float = 10.0,
        wall_clock: Callable[[], datetime] | None = None,
    ) -> None:
        self.timeout = timeout_seconds
        self._wall_clock = wall_clock or (lambda: datetime.now(UTC))
        self._lock = threading.Lock()
        self._loop: asyncio.AbstractEventLoop | None = None
        self._thread: threading.Thread | None = None
        self._client: httpx.AsyncClient | None = None

    def _started(self) -> asyncio.AbstractEventLoop:
        with self._lock:
            if self._loop is None:
                loop = asyncio.new_event_loop()
                ready = threading.Event()

                def run() -> None:
                    asyncio.set_event_loop(loop)
                    ready.set()
                    loop.run_forever()

                self._thread = threading.Thread(target=run, name="reachflow-webhooks", daemon=True)
                self._thread.start()
                ready.wait()
                self._loop = loop
            return self._loop

    def send(
        self,
        url: str,
        secrets: Sequence[str],
        message_id: str,
        body: str,
        done: Callable[[SendResult], None],
    ) -> None:
        loop = self._started()
        future: Future[SendResult] = asyncio.run_coroutine_threadsafe(
            self._send(url, tuple(secrets), message_id, body), loop
        )

        def finished(f: Future[SendResult]) -> None:
            try:
                result = f.result()
            except BaseException as exc:  # cancelled at shutdown, or a bug: a failed attempt
                result = SendResult(None, 0, f"send error: {type(exc).__name__}")
            done(result)

        future.add_done_callback(finished)

    async def _send(
        self, url: str, secrets: tuple[str, ...], message_id: str, body: str
    ) -> SendResult:
        if self._client is None:
            self._client = httpx.AsyncClient(
                follow_redirects=False,
                limits=httpx.Limits(max_connections=1000, max_keepalive_connections=100),
            )
        headers = {
            "Content-Type": "application/json",
            "User-Agent": USER_AGENT,
            "webhook-id": message_id,
            "webhook-timestamp": "",
            "webhook-signature": "",
        }
        started = time.monotonic()
        try:
            at = self._wall_clock()
            headers["webhook-timestamp"] = str(int(at.timestamp()))
            headers["webhook-signature"] = signature_header(secrets, message_id, at, body)
            response = await self._client.post(
                url, content=body.encode(), headers=headers, timeout=self.timeout
            )
            await response.aclose()
        except httpx.TimeoutException:
            return SendResult(None, _ms(started), f"no answer within {self.timeout:g} s")
        except httpx.HTTPError as exc:
            return SendResult(None, _ms(started), f"{type(exc).__name__}: {exc}"[:500])
        except Exception as exc:  # a malformed URL or secret: the attempt fails, nothing else
            return SendResult(None, _ms(started), f"{type(exc).__name__}: {exc}"[:500])
        code = response.status_code
        error = None if 200 <= code < 300 else f"HTTP {code}"
        return SendResult(code, _ms(started), error)

    def close(self) -> None:
        with self._lock:
            loop, self._loop = self._loop, None
            thread, self._thread = self._thread, None
        if loop is None:
            return
        client = self._client
        self._client = None

        async def shutdown() -> None:
            # Attempts still waiting for a slow subscriber are abandoned: their leases lapse
            # and another worker sends them again.
            def others() -> set[asyncio.Task[Any]]:
                return {t for t in asyncio.all_tasks() if t is not asyncio.current_task()}

            # A moment for attempts that are connecting: cancelled mid-connect, the connection
            # library leaves a coroutine behind that never ran.
            if others():
                await asyncio.wait(others(), timeout=0.25)
            for _ in range(20):  # cancelling a request may start cleanup tasks of its own
                pending = others()
                if not pending:
                    break
                for task in pending:
                    task.cancel()
                await asyncio.gather(*pending, return_exceptions=True)
                await asyncio.sleep(0)
            if client is not None:
                await client.aclose()
            await asyncio.get_running_loop().shutdown_asyncgens()

        with contextlib.suppress(Exception):  # closing anyway
            asyncio.run_coroutine_threadsafe(shutdown(), loop).result(timeout=5)
        loop.call_soon_threadsafe(loop.stop)
        if thread is not None:
            thread.join(timeout=5)
        loop.close()


def _ms(started: float) -> int:
    return int((time.monotonic() - started) * 1000)
