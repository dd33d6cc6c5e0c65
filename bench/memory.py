"""Worker memory with many executions waiting on far-future timers: RSS must stay flat.

Not a test. Run it from the repository root::

    python -m bench.memory --db both                # 10,000, 100,000, 1,000,000 on SQLite
    python -m bench.memory --max 20000 --db sqlite  # a quick run

For each backend (a temporary SQLite file; a fresh PostgreSQL database on loopback, dropped at
the end, also on SIGTERM or Ctrl-C) the embedded worker runs in a child process of its own
(``multiprocessing``, spawned; ``bootstrap`` then ``services.worker.start()``), so its resident
set is the worker's alone, not the loader's. This process inserts executions of a one-step CALL
workflow whose ``startAt`` is a day ahead, up to each level (10,000, 100,000, 1,000,000, ... up
to ``--max``); at each level the worker is nudged and runs at least ``--ticks`` ticks, then
reads its VmRSS from ``/proc/self/status``. It also times ``engine.next_work_at()`` (the query
every idle tick makes). Target: RSS flat within 50 MB from the first level to the last.

Inserting: ``--insert direct`` (the default) builds the rows as ``create_bulk`` would and
inserts them with ``store.executions.insert_executions`` in chunks of 1,000, skipping only the
per-lead validation and suppression look-up (``create_bulk`` is too slow for a million rows);
``--insert bulk`` uses ``services.executions.create_bulk``. If the direct path fails (the store
is being rewritten) the script says so and falls back to ``create_bulk``.

``--max`` defaults to 1,000,000 (100,000 when the rows go through ``create_bulk``, unless
``--max`` is given).
"""

from __future__ import annotations

import argparse
import contextlib
import dataclasses
import logging
import multiprocessing
import statistics
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from multiprocessing.connection import Connection
from typing import Any

from bench.timers import build_workflow, database, exit_on_sigterm, print_header, verdict
from reachflow.bootstrap import Services, bootstrap
from reachflow.settings import Settings

CHUNK = 1_000
TARGET_MB = 50.0
DEFAULT_MAX = 1_000_000
#: The default maximum when the rows must go through create_bulk (a few thousand a second).
DEFAULT_MAX_BULK = 100_000
CHILD_TIMEOUT = 120.0


# -- the worker process ------------------------------------------------------------------------


def vm_rss_kb() -> int:
    with open("/proc/self/status", encoding="ascii") as status:
        for line in status:
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
    raise RuntimeError("no VmRSS in /proc/self/status")


def worker_main(url: str, pipe: Connection) -> None:
    """The child: the embedded worker; answers ``("measure", ticks)`` with its RSS."""
    logging.basicConfig(level=logging.WARNING)
    services = bootstrap(Settings(database_url=url), migrate=False)
    try:
        services.worker.start()
        pipe.send(("ready", vm_rss_kb()))
        while True:
            command, ticks = pipe.recv()
            if command == "stop":
                break
            stats = services.engine.stats
            target = stats.ticks + ticks
            deadline = time.monotonic() + CHILD_TIMEOUT
            while stats.ticks < target and time.monotonic() < deadline:
                services.engine.wakeup.set()
                time.sleep(0.05)
            probes = []
            for _ in range(5):
                started = time.perf_counter()
                services.engine.next_work_at()
                probes.append((time.perf_counter() - started) * 1000)
            pipe.send(
                {
                    "rss_kb": vm_rss_kb(),
                    "ticks": stats.ticks,
                    "ticked": stats.ticks >= target,
                    "next_work_ms": statistics.median(probes),
                }
            )
    finally:
        services.close()


class WorkerProcess:
    def __init__(self, url: str) -> None:
        context = multiprocessing.get_context("spawn")
        self.pipe, child_end = context.Pipe()
        self.process = context.Process(
            target=worker_main, args=(url, child_end), name="reachflow-bench-worker", daemon=True
        )
        self.process.start()
        child_end.close()
        self.started_kb = self._receive()[1]

    def _receive(self) -> Any:
        if not self.pipe.poll(CHILD_TIMEOUT):
            raise RuntimeError("the worker process did not answer")
        return self.pipe.recv()

    def measure(self, ticks: int) -> dict[str, Any]:
        self.pipe.send(("measure", ticks))
        answer: dict[str, Any] = self._receive()
        return answer

    def stop(self) -> None:
        with contextlib.suppress(OSError):
            self.pipe.send(("stop", 0))
        self.process.join(20)
        if self.process.is_alive():
            self.process.terminate()
            self.process.join(5)


# -- inserting ---------------------------------------------------------------------------------


def lead(i: int, start_at: str) -> dict[str, Any]:
    return {
        "customerLeadId": f"lead-{i}",
        "primaryPhone": f"+1415{2_000_000 + i:07d}",
        "startAt": start_at,
    }


Inserter = Callable[[int, int], None]


def bulk_inserter(services: Services, org_id: str, workflow_id: str, start_at: str) -> Inserter:
    def insert(start: int, count: int) -> None:
        rows = services.executions.create_bulk(
            org_id, workflow_id, [lead(i, start_at) for i in range(start, start + count)]
        )
        failed = [r.error for r in rows if not r.success]
        if failed:
            raise RuntimeError(f"bulk create refused {len(failed)} leads: {failed[:3]}")

    return insert


def direct_inserter(services: Services, org_id: str, workflow_id: str, start_at: str) -> Inserter:
    """Rows built as ``create_bulk`` builds them (one template through the service), varied per
    lead, inserted by the store: no per-lead validation or suppression look-up."""
    executions = services.executions
    store = services.store

    def insert(start: int, count: int) -> None:
        now = services.clock.now()
        with services.db.begin() as conn:
            workflow = executions._runnable_workflow(conn, org_id, workflow_id)
            template = executions._new_row(org_id, workflow, lead(start, start_at), now, "")
            rows = []
            for i in range(start, start + count):
                execution_id = str(uuid.uuid4())
                rows.append(
                    dataclasses.replace(
                        template,
                        id=execution_id,
                        customer_lead_id=f"lead-{i}",
                        primary_phone=f"+1415{2_000_000 + i:07d}",
                        engine=dataclasses.replace(template.engine, execution_id=execution_id),
                    )
                )
            store.executions.insert_executions(conn, rows, now)

    return insert


# -- the run -----------------------------------------------------------------------------------


@dataclass(slots=True)
class Level:
    executions: int
    rss_mb: float
    insert_seconds: float
    next_work_ms: float
    ticked: bool


@dataclass(slots=True)
class Result:
    backend: str
    insert_mode: str
    started_mb: float
    baseline_mb: float
    levels: list[Level]

    @property
    def growth_mb(self) -> float:
        rss = [level.rss_mb for level in self.levels]
        return max(rss) - min(rss) if rss else 0.0

    @property
    def ok(self) -> bool:
        return bool(self.levels) and self.growth_mb < TARGET_MB


def levels_up_to(maximum: int) -> list[int]:
    out = [level for level in (10_000, 100_000, 1_000_000, 10_000_000) if level <= maximum]
    if not out or out[-1] != maximum:
        out.append(maximum)
    return out


def run_backend(backend: str, args: argparse.Namespace) -> Result:
    maximum = args.max or (DEFAULT_MAX if args.insert == "direct" else DEFAULT_MAX_BULK)
    start_at = (datetime.now(UTC) + timedelta(days=1)).isoformat()
    with database(backend, "memory") as url:
        services = bootstrap(Settings(database_url=url))
        worker: WorkerProcess | None = None
        try:
            org_id, workflow_id = build_workflow(services)
            worker = WorkerProcess(url)
            baseline = worker.measure(args.ticks)
            mode = args.insert
            insert = (direct_inserter if mode == "direct" else bulk_inserter)(
                services, org_id, workflow_id, start_at
            )
            inserted = 0
            levels: list[Level] = []
            for level in levels_up_to(maximum):
                if level > maximum:
                    break
                started = time.perf_counter()
                while inserted < level:
                    count = min(CHUNK, level - inserted)
                    try:
                        insert(inserted, count)
                    except Exception as exc:
                        if mode != "direct":
                            raise
                        print(f"  !!! direct insert failed ({exc!r:.300}); using create_bulk")
                        mode = "bulk"
                        insert = bulk_inserter(services, org_id, workflow_id, start_at)
                        if args.max is None:
                            maximum = DEFAULT_MAX_BULK
                        continue
                    inserted += count
                took = time.perf_counter() - started
                answer = worker.measure(args.ticks)
                levels.append(
                    Level(
                        executions=level,
                        rss_mb=answer["rss_kb"] / 1024,
                        insert_seconds=took,
                        next_work_ms=answer["next_work_ms"],
                        ticked=answer["ticked"],
                    )
                )
                print(
                    f"  {backend}: {level:>9} waiting: worker RSS {answer['rss_kb'] / 1024:.1f} MB"
                    f" (inserted in {took:.1f} s, {mode})",
                    flush=True,
                )
            return Result(
                backend=backend,
                insert_mode=mode,
                started_mb=worker.started_kb / 1024,
                baseline_mb=baseline["rss_kb"] / 1024,
                levels=levels,
            )
        finally:
            if worker is not None:
                worker.stop()
            services.close()


def report(results: list[Result], args: argparse.Namespace) -> bool:
    print()
    header = (
        f"{'backend':<8}  {'waiting':>9}  {'RSS MB':>8}  {'vs first':>8}  {'insert s':>8}"
        f"  {'rows/s':>7}  {'next_work ms':>12}"
    )
    print(header)
    print("-" * len(header))
    for r in results:
        print(f"{r.backend:<8}  {0:>9}  {r.baseline_mb:>8.1f}  {'':>8}  {'':>8}  {'':>7}  {'':>12}")
        previous = 0
        for level in r.levels:
            rows = level.executions - previous
            previous = level.executions
            print(
                f"{r.backend:<8}  {level.executions:>9}  {level.rss_mb:>8.1f}  "
                f"{level.rss_mb - r.levels[0].rss_mb:>+8.1f}  {level.insert_seconds:>8.1f}  "
                f"{rows / level.insert_seconds if level.insert_seconds else 0:>7.0f}  "
                f"{level.next_work_ms:>12.2f}"
                + ("" if level.ticked else "  (the worker did not tick in time)")
            )
    print()
    for r in results:
        print(
            f"{r.backend}: RSS spread over the levels {r.growth_mb:.1f} MB (target < "
            f"{TARGET_MB:.0f} MB)  {verdict(r.ok)}"
        )
    print()
    print(
        f"worker: a spawned process of its own (RSS {results[0].started_mb:.1f} MB right after "
        f"bootstrap); at each level nudged through >= {args.ticks} ticks, then VmRSS read"
    )
    print("executions: one-step CALL workflow, startAt a day ahead (nothing falls due)")
    print("next_work ms: median of 5 engine.next_work_at() calls in the worker process")
    return all(r.ok for r in results)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument(
        "--max",
        "--n",
        dest="max",
        type=int,
        default=None,
        help="executions at the last level (default 1,000,000; 100,000 through create_bulk)",
    )
    parser.add_argument("--db", choices=("sqlite", "postgres", "both"), default="both")
    parser.add_argument("--insert", choices=("direct", "bulk"), default="direct")
    parser.add_argument("--ticks", type=int, default=3, help="worker ticks before each reading")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.WARNING)
    exit_on_sigterm()
    print_header("bench.memory: worker RSS with executions waiting on timers")
    backends = ["sqlite", "postgres"] if args.db == "both" else [args.db]
    started = time.perf_counter()
    results = []
    for backend in backends:
        maximum = args.max or (DEFAULT_MAX if args.insert == "direct" else DEFAULT_MAX_BULK)
        print(f"... {backend}: up to {maximum} executions", flush=True)
        results.append(run_backend(backend, args))
    ok = report(results, args)
    print(f"total wall time {time.perf_counter() - started:.1f} s")
    return 0 if ok else 1


if __name__ == "__main__":
    raise SystemExit(main())
