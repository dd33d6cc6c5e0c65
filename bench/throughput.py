"""Throughput of the embedded engine: N executions of a 3-step simulator workflow.

Not a test. Run it from the repository root::

    python bench/throughput.py --n 10000 --db both

For each backend (a temporary SQLite file; a fresh PostgreSQL database on loopback that is
dropped at the end) it runs two modes, each on its own empty database:

* ``virtual``: a ``VirtualClock``; the leads are bulk created in chunks of 1,000 and the engine is
  driven with ``run_until_idle``, which jumps the clock to the next due instant. Nothing waits on
  the wall clock, so this is the engine's raw speed; lateness is 0 by construction.
* ``real``: the ``SystemClock``; bulk create, then ``engine.tick()`` in a loop until every
  execution is COMPLETED. Lateness is measured: for each timer the engine claims, claim time
  minus due time. Each execution's start timer is due when it is created, so all N fall due
  within the bulk import: lateness shows how long the last of a burst of N waits to be started
  while the engine also carries the earlier ones through their steps (plus the rest of the
  import, about a second).

The workflow is CALL, CALL, TEXT with no delays, no ``workflowSchedule`` and
``needsTCPACompliance: false`` so no window ever holds a step (the benchmark measures the
engine, not the calendar). The simulator answers NO_ANSWER to calls and TEXT_CONSENT to texts
after 1 second, so every execution completes after 3 dispatches with TEXT_CONSENT.
"""

from __future__ import annotations

import argparse
import contextlib
import logging
import math
import os
import signal
import sys
import tempfile
import time
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

import sqlalchemy as sa

from reachflow.bootstrap import Services, bootstrap
from reachflow.runtime.clock import VirtualClock
from reachflow.settings import Settings

PG_SERVER = "postgresql://postgres@127.0.0.1:5432"
CHUNK = 1_000
STEPS = 3
#: Monday 9 March 2026, 10:00 in New York: the virtual clock's start.
VIRTUAL_START = datetime(2026, 3, 9, 14, 0, tzinfo=UTC)
SLOW_SECONDS = 300.0
REAL_TIMEOUT_SECONDS = 3_600.0


@dataclass(frozen=True, slots=True)
class Result:
    backend: str
    mode: str
    n: int
    bulk_seconds: float
    drive_seconds: float
    dispatches: int
    completed: int
    duplicates: int
    lateness: list[float]
    statements: int = 0
    transactions: int = 0
    checkouts: int = 0
    cpu_seconds: float = 0.0

    @property
    def statements_per_step(self) -> float:
        return self.statements / self.dispatches if self.dispatches else 0.0

    @property
    def round_trips_per_step(self) -> float:
        """Estimated: one per statement (an executemany is pipelined), plus BEGIN and COMMIT
        per transaction, plus the pool's pre-ping per checkout."""
        trips = self.statements + 2 * self.transactions + self.checkouts
        return trips / self.dispatches if self.dispatches else 0.0

    @property
    def cpu_ms_per_execution(self) -> float:
        return 1000 * self.cpu_seconds / self.completed if self.completed else 0.0

    @property
    def leads_per_second(self) -> float:
        return self.n / self.bulk_seconds if self.bulk_seconds else 0.0

    @property
    def executions_per_second(self) -> float:
        return self.completed / self.drive_seconds if self.drive_seconds else 0.0

    @property
    def steps_per_second(self) -> float:
        return self.dispatches / self.drive_seconds if self.drive_seconds else 0.0

    @property
    def ok(self) -> bool:
        return (
            self.completed == self.n and self.dispatches == STEPS * self.n and self.duplicates == 0
        )


def percentile(values: list[float], p: float) -> float:
    """Nearest-rank percentile; 0 for no values."""
    if not values:
        return 0.0
    ordered = sorted(values)
    rank = max(1, math.ceil(p / 100 * len(ordered)))
    return ordered[min(rank, len(ordered)) - 1]


# -- databases -------------------------------------------------------------------------------


@contextlib.contextmanager
def sqlite_database() -> Iterator[str]:
    with tempfile.TemporaryDirectory(prefix="reachflow-bench-") as folder:
        yield f"sqlite:///{Path(folder) / 'bench.db'}"


@contextlib.contextmanager
def postgres_database(name: str) -> Iterator[str]:
    admin = sa.create_engine(
        PG_SERVER.replace("postgresql://", "postgresql+psycopg://") + "/postgres",
        isolation_level="AUTOCOMMIT",
    )
    try:
        with admin.connect() as conn:
            conn.exec_driver_sql(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
            conn.exec_driver_sql(f'CREATE DATABASE "{name}"')
        yield f"{PG_SERVER}/{name}"
    finally:
        with admin.connect() as conn:
            conn.exec_driver_sql(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        admin.dispose()


def fresh_database(backend: str, mode: str) -> contextlib.AbstractContextManager[str]:
    if backend == "sqlite":
        return sqlite_database()
    return postgres_database(f"reachflow_bench_{os.getpid()}_{mode}")


# -- the workload ----------------------------------------------------------------------------


def build_workflow(services: Services) -> tuple[str, str]:
    org_id, _key = services.accounts.create_api_key("bench")
    timing = {"callDurationSecs": 1, "ringDurationSecs": 1, "textDurationSecs": 1}
    call = services.agents.create(
        org_id,
        {
            "name": "bench caller",
            "channel": "CALL",
            "provider": "simulator",
            "config": {"defaultDisposition": "NO_ANSWER", **timing},
        },
    )
    text = services.agents.create(
        org_id,
        {
            "name": "bench texter",
            "channel": "TEXT",
            "provider": "simulator",
            "config": {"defaultDisposition": "TEXT_CONSENT", **timing},
        },
    )
    step = {"delayInSecs": 0, "needsTCPACompliance": False, "finishOn": ["DNC"]}
    workflow = services.workflows.create(
        org_id,
        {
            "name": "bench: call, call, text",
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
                        "initialMessage": "Hi {{firstName}}, this is a benchmark.",
                        **step,
                    },
                ]
            },
        },
    )
    return org_id, workflow.id


def leads(start: int, count: int) -> list[dict[str, object]]:
    return [
        {
            "customerLeadId": f"lead-{i}",
            "primaryPhone": f"+1415{2_000_000 + i:07d}",
            "variables": {"firstName": f"Lead{i}"},
        }
        for i in range(start, start + count)
    ]


def bulk_create(services: Services, org_id: str, workflow_id: str, n: int) -> float:
    started = time.perf_counter()
    for start in range(0, n, CHUNK):
        rows = services.executions.create_bulk(
            org_id, workflow_id, leads(start, min(CHUNK, n - start))
        )
        failed = [r.error for r in rows if not r.success]
        if failed:
            raise RuntimeError(f"bulk create refused leads: {failed[:3]}")
    return time.perf_counter() - started


def completed_count(services: Services) -> int:
    with services.db.begin() as conn:
        return services.store.executions.count_by_status(conn).get("COMPLETED", 0)


class Counters:
    """Statements, transactions and pool checkouts on the services' engine during the drive."""

    def __init__(self, services: Services) -> None:
        self.statements = self.transactions = self.checkouts = 0
        self.counting = False
        engine = services.db.engine
        sa.event.listen(engine, "before_cursor_execute", self._statement)
        sa.event.listen(engine, "commit", self._commit)
        sa.event.listen(engine, "checkout", self._checkout)
        self.cpu_started = 0.0
        self.cpu_seconds = 0.0

    def start(self) -> None:
        self.counting = True
        self.cpu_started = time.process_time()

    def stop(self) -> None:
        self.counting = False
        self.cpu_seconds = time.process_time() - self.cpu_started

    def _statement(self, *_: object) -> None:
        if self.counting:
            self.statements += 1

    def _commit(self, *_: object) -> None:
        if self.counting:
            self.transactions += 1

    def _checkout(self, *_: object) -> None:
        if self.counting:
            self.checkouts += 1


def finish(
    services: Services,
    backend: str,
    mode: str,
    n: int,
    bulk: float,
    drive: float,
    counters: Counters,
) -> Result:
    placed = services.simulator.calls_placed
    return Result(
        backend=backend,
        mode=mode,
        n=n,
        bulk_seconds=bulk,
        drive_seconds=drive,
        dispatches=services.engine.stats.dispatches,
        completed=completed_count(services),
        duplicates=sum(count - 1 for count in placed.values() if count > 1),
        lateness=list(services.engine.stats.lateness),
        statements=counters.statements,
        transactions=counters.transactions,
        checkouts=counters.checkouts,
        cpu_seconds=counters.cpu_seconds,
    )


def run_virtual(url: str, backend: str, n: int) -> Result:
    clock = VirtualClock(VIRTUAL_START)
    services = bootstrap(Settings(database_url=url), clock=clock)
    try:
        org_id, workflow_id = build_workflow(services)
        bulk = bulk_create(services, org_id, workflow_id, n)
        counters = Counters(services)
        started = time.perf_counter()
        counters.start()
        services.engine.run_until_idle(clock)
        counters.stop()
        drive = time.perf_counter() - started
        return finish(services, backend, "virtual", n, bulk, drive, counters)
    finally:
        services.close()


def run_real(url: str, backend: str, n: int) -> Result:
    services = bootstrap(Settings(database_url=url))
    try:
        org_id, workflow_id = build_workflow(services)
        bulk = bulk_create(services, org_id, workflow_id, n)
        engine = services.engine
        counters = Counters(services)
        started = time.perf_counter()
        counters.start()
        while time.perf_counter() - started < REAL_TIMEOUT_SECONDS:
            if engine.tick() > 0:
                continue
            if engine.dispatcher.busy:
                engine.wakeup.wait(0.05)  # set when an agent call finishes
                engine.wakeup.clear()
                continue
            if completed_count(services) >= n:
                break
            upcoming = engine.next_work_at()
            if upcoming is None:
                break  # nothing left to do: the check below reports the shortfall
            wait = (upcoming - services.clock.now()).total_seconds()
            time.sleep(min(0.05, max(0.0, wait)))
        counters.stop()
        drive = time.perf_counter() - started
        return finish(services, backend, "real", n, bulk, drive, counters)
    finally:
        services.close()


def run_backend(backend: str, n: int, modes: list[str]) -> list[Result]:
    results = []
    started = time.perf_counter()
    runners = {"virtual": run_virtual, "real": run_real}
    for mode, runner in ((m, runners[m]) for m in modes):
        print(f"... {backend} / {mode}: {n} executions", flush=True)
        mode_started = time.perf_counter()
        with fresh_database(backend, mode) as url:
            result = runner(url, backend, n)
        took = time.perf_counter() - mode_started
        print(f"... {backend} / {mode}: {took:.0f} s", flush=True)
        if took > SLOW_SECONDS:
            print(f"!!! {backend} / {mode} took {took:.0f} s (> {SLOW_SECONDS:.0f} s)", flush=True)
        results.append(result)
    took = time.perf_counter() - started
    if took > SLOW_SECONDS:
        print(f"!!! {backend}: both modes took {took:.0f} s (> {SLOW_SECONDS:.0f} s)", flush=True)
    return results


def median_of(results: tuple[Result, ...]) -> Result:
    """The run with the median executions/s (all runs must pass the check)."""
    ordered = sorted(results, key=lambda r: r.executions_per_second)
    middle = ordered[len(ordered) // 2]
    ok = all(r.ok for r in results)
    return middle if ok else next(r for r in results if not r.ok)


def git_commit() -> str:
    import subprocess

    found = subprocess.run(
        ["git", "rev-parse", "--short", "HEAD"], capture_output=True, text=True, check=False
    )
    return found.stdout.strip() or "unknown"


def load_average() -> str:
    one, five, fifteen = os.getloadavg()
    return f"{one:.2f} {five:.2f} {fifteen:.2f}"


# -- the table -------------------------------------------------------------------------------

COLUMNS = (
    ("backend", "{:<8}"),
    ("mode", "{:<7}"),
    ("n", "{:>6}"),
    ("bulk s", "{:>7.2f}"),
    ("leads/s", "{:>8.0f}"),
    ("drive s", "{:>8.2f}"),
    ("exec/s", "{:>7.0f}"),
    ("steps/s", "{:>8.0f}"),
    ("stmt/step", "{:>9.2f}"),
    ("rt/step", "{:>7.2f}"),
    ("cpu ms/exec", "{:>11.2f}"),
    ("late p50 ms", "{:>11.1f}"),
    ("late p99 ms", "{:>11.1f}"),
    ("check", "{:<5}"),
)


def row(result: Result) -> list[object]:
    return [
        result.backend,
        result.mode,
        result.n,
        result.bulk_seconds,
        result.leads_per_second,
        result.drive_seconds,
        result.executions_per_second,
        result.steps_per_second,
        result.statements_per_step,
        result.round_trips_per_step,
        result.cpu_ms_per_execution,
        percentile(result.lateness, 50) * 1000,
        percentile(result.lateness, 99) * 1000,
        "ok" if result.ok else "FAIL",
    ]


def print_table(results: list[Result], settings: Settings) -> None:
    widths = [
        len(fmt.format(value)) for (_, fmt), value in zip(COLUMNS, row(results[0]), strict=True)
    ]
    widths = [max(w, len(name)) for w, (name, _) in zip(widths, COLUMNS, strict=True)]
    header = "  ".join(name.rjust(w) for (name, _), w in zip(COLUMNS, widths, strict=True))
    print()
    print(header)
    print("-" * len(header))
    for result in results:
        cells = [fmt.format(v) for (_, fmt), v in zip(COLUMNS, row(result), strict=True)]
        print("  ".join(c.rjust(w) for c, w in zip(cells, widths, strict=True)))
    print()
    print(
        f"workflow: CALL, CALL, TEXT, no delays, no windows; simulator answers after 1 s; "
        f"bulk chunks of {CHUNK}; worker batch {settings.worker_batch_size}"
    )
    print("bulk s / leads/s: create_bulk only; drive s: from the first tick to all COMPLETED")
    print("exec/s = completed / drive s; steps/s = agent dispatches / drive s")
    print("lateness: claim time - due time of each timer (virtual clock: 0 by construction)")
    for result in results:
        if not result.ok:
            print(
                f"FAIL {result.backend}/{result.mode}: completed {result.completed}/{result.n}, "
                f"dispatches {result.dispatches}/{STEPS * result.n}, "
                f"duplicate placements {result.duplicates}"
            )


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--n", type=int, default=10_000, help="executions per run")
    parser.add_argument("--db", choices=("sqlite", "postgres", "both"), default="both")
    parser.add_argument("--modes", default="virtual,real", help="virtual, real or both")
    parser.add_argument("--repeat", type=int, default=1, help="runs of each; the median is shown")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.WARNING)
    # A SIGTERM (``timeout``, a process manager) unwinds like Ctrl-C, so the databases are dropped.
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))
    backends = ["sqlite", "postgres"] if args.db == "both" else [args.db]
    started = time.perf_counter()
    modes = [m.strip() for m in args.modes.split(",") if m.strip()]
    print(f"commit {git_commit()}; load: {load_average()}", flush=True)
    runs = [
        [r for backend in backends for r in run_backend(backend, args.n, modes)]
        for _ in range(args.repeat)
    ]
    results = [median_of(same) for same in zip(*runs, strict=True)]
    if args.repeat > 1:
        for same in zip(*runs, strict=True):
            rates = ", ".join(f"{r.executions_per_second:.0f}" for r in same)
            print(f"{same[0].backend}/{same[0].mode} exec/s per run: {rates}")
    print_table(results, Settings())
    print(f"load after: {load_average()}")
    print(f"total wall time {time.perf_counter() - started:.1f} s")
    return 0 if all(r.ok for r in results) else 1


if __name__ == "__main__":
    raise SystemExit(main())
