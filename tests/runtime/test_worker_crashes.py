"""Two worker processes on PostgreSQL, killed with SIGKILL at random moments and restarted,
while 2,000 executions run: every execution completes, and the simulator's durable ledger
(the agent's own record) shows each step attempt's key placed once, and never sent except
under a committed claim."""

from __future__ import annotations

import os
import random
import shutil
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
import sqlalchemy as sa

from reachflow.bootstrap import Services, bootstrap
from reachflow.settings import Settings
from reachflow.store.simulator_ledger import SimulatorLedger
from reachflow.store.tables import contact_attempts, outbox, step_executions
from tests.conftest import empty_postgres

pytestmark = [pytest.mark.postgres, pytest.mark.slow]

N = 2_000
KILLS = 10
#: Kills that must land while executions are still running, for the run to count.
KILLS_MID_RUN = 6
DEADLINE_SECONDS = 300


def worker_command() -> list[str]:
    found = shutil.which("reachflow", path=str(Path(sys.executable).parent))
    return [found] if found else [sys.executable, "-m", "reachflow.cli"]


@pytest.fixture
def crash_services(pg_url: str) -> Iterator[Services]:
    empty_postgres(pg_url)
    services = bootstrap(Settings(database_url=pg_url, bulk_limit=1000), migrate=False)
    yield services
    services.close()


def start_worker(pg_url: str) -> subprocess.Popen[bytes]:
    env = {
        **os.environ,
        "REACHFLOW_DATABASE_URL": pg_url,
        "REACHFLOW_LEASE_SECONDS": "2",
        "REACHFLOW_WORKER_POLL_SECONDS": "0.2",
        "REACHFLOW_LOG_LEVEL": "WARNING",
    }
    return subprocess.Popen(
        [*worker_command(), "worker"],
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )


def build(services: Services) -> str:
    org, _ = services.accounts.create_api_key("crash")
    # Each step's report arrives 2 s after the call: an execution takes at least 6 s.
    timing = {"callDurationSecs": 2, "ringDurationSecs": 2, "textDurationSecs": 2}
    call = services.agents.create(
        org,
        {
            "name": "caller",
            "channel": "CALL",
            "config": {"defaultDisposition": "NO_ANSWER", **timing},
        },
    )
    text = services.agents.create(
        org,
        {"name": "texter", "channel": "TEXT", "config": {"defaultDisposition": "ENDED", **timing}},
    )
    step = {"delayInSecs": 0, "needsTCPACompliance": False}
    workflow = services.workflows.create(
        org,
        {
            "name": "call, call, text",
            "active": True,
            "timezone": "America/New_York",
            "definition": {
                "steps": [
                    {"type": "CALL", "order": 1, "agentId": call.id, **step},
                    {"type": "CALL", "order": 2, "agentId": call.id, **step},
                    {
                        "type": "TEXT",
                        "order": 3,
                        "agentId": text.id,
                        "initialMessage": "Hi",
                        **step,
                    },
                ]
            },
        },
    )
    for start in range(0, N, 1000):
        rows = services.executions.create_bulk(
            org,
            workflow.id,
            [
                {"customerLeadId": f"lead-{i}", "primaryPhone": f"+1415{3_000_000 + i:07d}"}
                for i in range(start, start + 1000)
            ],
        )
        assert all(r.success for r in rows)
    return org


def completed(services: Services, org: str) -> int:
    with services.db.begin() as conn:
        return services.store.executions.count_by_status(conn, org).get("COMPLETED", 0)


def test_killed_workers_lose_nothing_and_place_each_key_once(
    crash_services: Services, pg_url: str
) -> None:
    services = crash_services
    org = build(services)
    rng = random.Random(20261202)
    workers = [start_worker(pg_url), start_worker(pg_url)]
    kills = 0
    deadline = time.monotonic() + DEADLINE_SECONDS
    try:
        while completed(services, org) < N and time.monotonic() < deadline:
            if kills < KILLS:
                time.sleep(rng.uniform(0.3, 1.2))
                if completed(services, org) >= N:
                    break
                victim = rng.randrange(len(workers))
                workers[victim].send_signal(signal.SIGKILL)
                workers[victim].wait()
                kills += 1
                workers[victim] = start_worker(pg_url)
            else:
                time.sleep(0.2)  # polling for completion, bounded by the deadline
    finally:
        for process in workers:
            process.terminate()
        for process in workers:
            try:
                process.wait(timeout=20)
            except subprocess.TimeoutExpired:
                process.kill()
    assert kills >= KILLS_MID_RUN  # each kill happened before the last execution completed
    assert completed(services, org) == N

    with services.db.begin() as conn:
        steps = dict(
            conn.execute(
                sa.select(step_executions.c.status, sa.func.count()).group_by(
                    step_executions.c.status
                )
            ).all()
        )
        commands = {
            r.idempotency_key: (r.status, r.attempts)
            for r in conn.execute(
                sa.select(outbox.c.idempotency_key, outbox.c.status, outbox.c.attempts)
            )
        }
        attempts = conn.execute(
            sa.select(
                sa.func.count(), sa.func.count(sa.distinct(contact_attempts.c.idempotency_key))
            )
        ).one()
    assert steps == {"COMPLETED": 3 * N}
    assert len(commands) == 3 * N
    assert {status for status, _ in commands.values()} == {"done"}
    assert tuple(attempts) == (3 * N, 3 * N)

    ledger = SimulatorLedger(services.db).placements()
    # One placement per step attempt: the agent's ledger holds exactly the outbox's keys ...
    assert set(ledger) == set(commands)
    # ... and every request it received was made under a claim: a key is sent again only
    # when a claim that sent it was lost with its worker.
    assert all(ledger[key] <= commands[key][1] for key in ledger)
