"""One HTTP client shared by every dispatch of an agent: made on first use (a process that
never dispatches to the agent opens nothing), a pool of kept-alive connections, redirects not
followed (an agent's answer is the endpoint's own). Thread-safe: the dispatcher calls agents
from its pool."""

from __future__ import annotations

import threading

import httpx

from reachflow import __version__

USER_AGENT = f"reachflow/{__version__}"
#: Connections one agent keeps to all its endpoints, and how many of them stay open idle.
LIMITS = httpx.Limits(max_connections=200, max_keepalive_connections=50)


class SharedHttpClient:
    """The ``client`` property and ``close()`` of an agent that talks HTTP: the client given
    (tests), else one made on first use and kept until ``close``."""

    def __init__(self, client: httpx.Client | None = None) -> None:
        self._client = client
        self._client_lock = threading.Lock()

    @property
    def client(self) -> httpx.Client:
        with self._client_lock:
            if self._client is None:
                self._client = httpx.Client(
                    follow_redirects=False, headers={"User-Agent": USER_AGENT}, limits=LIMITS
                )
            return self._client

    def close(self) -> None:
        with self._client_lock:
            client, self._client = self._client, None
        if client is not None:
            client.close()
