"""The drive the engine profile is taken over: N executions of the throughput workflow on
SQLite, run to completion under the virtual clock. Not a test. From the repository root::

    py-spy record -o drive.txt -f raw -r 250 -- python -m bench.profile_drive --n 3000
    python -m bench.profile_buckets drive.txt

It prints the drive's wall time and CPU milliseconds per execution.
"""

from __future__ import annotations

import argparse
import time

from bench.throughput import (
    VIRTUAL_START,
    build_workflow,
    bulk_create,
    sqlite_database,
)
from reachflow.bootstrap import bootstrap
from reachflow.runtime.clock import VirtualClock
from reachflow.settings import Settings


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--n", type=int, default=3_000)
    args = parser.parse_args(argv)
    with sqlite_database() as url:
        clock = VirtualClock(VIRTUAL_START)
        services = bootstrap(Settings(database_url=url), clock=clock)
        try:
            org_id, workflow_id = build_workflow(services)
            bulk_create(services, org_id, workflow_id, args.n)
            wall, cpu = time.perf_counter(), time.process_time()
            services.engine.run_until_idle(clock)
            wall, cpu = time.perf_counter() - wall, time.process_time() - cpu
        finally:
            services.close()
    print(f"drive {wall:.2f} s, {args.n / wall:.0f} exec/s, cpu {1000 * cpu / args.n:.2f} ms/exec")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
