"""Scale-out on PostgreSQL: the same backlog drained by one, then two ``reachflow worker``
processes. Not a test. Run it from the repository root::

    python -m bench.workers --n 10000

For each worker count K it creates a fresh database, bulk creates N executions of the
throughput benchmark's workflow (CALL, CALL, TEXT on the simulator, no delays, no windows; each
report arrives 1 s after its call), starts K worker processes with the real clock, and times
from their start to every execution COMPLETED. It prints executions/s per K and the ratio of two
workers to one (target >= 1.6), and checks that every execution completed with three steps and
the simulator's ledger holds 3 x N keys.
"""

from __future__ import annotations

import argparse
import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

from bench.throughput import (
    build_workflow,
    bulk_create,
    completed_count,
    git_commit,
    load_average,
    postgres_database,
)
from reachflow.bootstrap import bootstrap
from reachflow.settings import Settings

TIMEOUT_SECONDS = 900.0


def worker_command() -> list[str]:
    found = shutil.which("reachflow", path=str(Path(sys.executable).parent))
    return [found, "worker"] if found else [sys.executable, "-m", "reachflow.cli", "worker"]


def run(n: int, workers: int) -> tuple[float, bool]:
    with postgres_database(f"reachflow_bench_workers_{os.getpid()}_{workers}") as url:
        services = bootstrap(Settings(database_url=url, bulk_limit=1000))
        processes: list[subprocess.Popen[bytes]] = []
        try:
            org_id, workflow_id = build_workflow(services)
            bulk_create(services, org_id, workflow_id, n)
            env = {**os.environ, "REACHFLOW_DATABASE_URL": url, "REACHFLOW_LOG_LEVEL": "WARNING"}
            started = time.perf_counter()
            processes = [
                subprocess.Popen(worker_command(), env=env, stderr=subprocess.DEVNULL)
                for _ in range(workers)
            ]
            while time.perf_counter() - started < TIMEOUT_SECONDS:
                if completed_count(services) >= n:
                    break
                time.sleep(0.1)  # polling for the end; the figure's resolution is 0.1 s
            took = time.perf_counter() - started
            placed = len(services.ledger.placements())
            ok = completed_count(services) == n and placed == 3 * n
            return took, ok
        finally:
            for process in processes:
                process.send_signal(signal.SIGTERM)
            for process in processes:
                try:
                    process.wait(timeout=30)
                except subprocess.TimeoutExpired:
                    process.kill()
            services.close()


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--n", type=int, default=10_000)
    parser.add_argument("--workers", default="1,2", help="worker counts to run, in order")
    args = parser.parse_args(argv)
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))
    print(f"commit {git_commit()}; load: {load_average()}", flush=True)
    rates: dict[int, float] = {}
    ok = True
    for workers in [int(w) for w in args.workers.split(",")]:
        took, passed = run(args.n, workers)
        rates[workers] = args.n / took
        ok = ok and passed
        print(
            f"postgres  workers {workers}  n {args.n}  drive {took:7.2f} s  "
            f"{rates[workers]:7.0f} exec/s  {3 * rates[workers]:7.0f} steps/s  "
            f"{'ok' if passed else 'FAIL'}",
            flush=True,
        )
    if 1 in rates and 2 in rates:
        ratio = rates[2] / rates[1]
        verdict = "PASS" if ratio >= 1.6 else "MISS"
        print(f"two workers / one: {ratio:.2f}x (target >= 1.6x: {verdict})")
    print(f"load after: {load_average()}")
    return 0 if ok else 1


if __name__ == "__main__":
    raise SystemExit(main())
