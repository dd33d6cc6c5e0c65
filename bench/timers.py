"""Timer precision: N start timers spread over the next minutes, the embedded worker firing them.

Not a test. Run it from the repository root::

    python -m bench.timers --db both                     # 100,000 timers over 10 minutes
    python -m bench.timers --n 2000 --minutes 1 --db sqlite   # a quick run

For each backend (a temporary SQLite file; a fresh PostgreSQL database on loopback, dropped at
the end, also on SIGTERM or Ctrl-C) it bulk creates N executions of a one-step workflow (a CALL
on the simulator, ``needsTCPACompliance: false``, no schedule) whose ``startAt`` values are drawn
uniformly (seeded) over ``--minutes`` minutes, on the real ``SystemClock``, with the embedded
worker running (``services.worker.start()``).

The spread begins after a lead-in long enough for the whole import to finish first, so the
figures are the engine's timer precision under a steady load, not the import's: the lead-in is
estimated from a calibration chunk of 1,000 leads parked a day ahead (they stay in the database,
never due), unless ``--lead-in`` sets it.

Lateness is claim time minus due time of each start timer, as the engine records it
(``engine.stats.lateness``). The run stops when all N timers are claimed or ``--grace`` seconds
after the last one fell due; a timer still unclaimed then counts with its lateness so far (a lower
bound, marked ``>=``; the engine claims the oldest due first, so those are the latest-due ones).

Targets: p99 < 250 ms on SQLite, < 500 ms on PostgreSQL.
"""

from __future__ import annotations

import argparse
import bisect
import contextlib
import logging
import os
import random
import signal
import subprocess
import sys
import threading
import time
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

from bench.throughput import percentile, postgres_database, sqlite_database
from reachflow.bootstrap import Services, bootstrap
from reachflow.settings import Settings

CHUNK = 1_000
CALIBRATION = 1_000
TARGET_P99_MS = {"sqlite": 250.0, "postgres": 500.0}
PROGRESS_SECONDS = 60.0


# -- plumbing (bench.api_latency, bench.memory and bench.slow_agent import it) ----------------


def print_header(title: str) -> None:
    def run(*cmd: str) -> str:
        try:
            return subprocess.run(cmd, capture_output=True, text=True, check=False).stdout.strip()
        except OSError as exc:
            return f"({cmd[0]}: {exc})"

    changed = run("git", "status", "--porcelain", "--untracked-files=no")
    dirty = " (uncommitted changes in the working tree)" if changed else ""
    print(f"== {title}")
    print(f"uptime: {run('uptime')}")
    print(f"commit: {run('git', 'rev-parse', '--short', 'HEAD')}{dirty}")
    print(flush=True)


def exit_on_sigterm() -> None:
    """A SIGTERM unwinds like Ctrl-C (so databases are dropped); a second one is ignored."""

    def handler(*_: object) -> None:
        signal.signal(signal.SIGTERM, signal.SIG_IGN)
        sys.exit(143)

    signal.signal(signal.SIGTERM, handler)


def database(backend: str, label: str) -> contextlib.AbstractContextManager[str]:
    if backend == "sqlite":
        return sqlite_database()
    return postgres_database(f"reachflow_bench_{label}_{os.getpid()}")


def verdict(ok: bool) -> str:
    return "PASS" if ok else "MISS"


def stop_worker(services: Services, timeout: float = 30.0) -> bool:
    """Stop the embedded worker; False when it is still working afterwards (a tick that does
    not return while work keeps coming due cannot see the stop request)."""
    services.worker.stop(timeout=timeout)
    stats = services.engine.stats

    def progress() -> tuple[int, ...]:
        return tuple(getattr(stats, name, 0) for name in ("ticks", "decisions", "dispatches"))

    before = progress()
    time.sleep(0.5)
    still = progress() != before or any(
        t.name == "reachflow-worker" and t.is_alive() for t in threading.enumerate()
    )
    return not still


def quiet_teardown() -> None:
    """A worker that would not stop logs every failed tick once its database is dropped."""
    logging.getLogger("reachflow").setLevel(logging.CRITICAL)


# -- the workload ------------------------------------------------------------------------------


def build_workflow(services: Services) -> tuple[str, str]:
    org_id, _key = services.accounts.create_api_key("bench")
    caller = services.agents.create(
        org_id,
        {
            "name": "bench caller",
            "channel": "CALL",
            "provider": "simulator",
            "config": {"defaultDisposition": "NO_ANSWER", "ringDurationSecs": 1},
        },
    )
    workflow = services.workflows.create(
        org_id,
        {
            "name": "bench: one call at startAt",
            "active": True,
            "timezone": "America/New_York",
            "definition": {
                "steps": [
                    {
                        "type": "CALL",
                        "order": 1,
                        "agentId": caller.id,
                        "delayInSecs": 0,
                        "needsTCPACompliance": False,
                        "finishOn": ["DNC"],
                    }
                ]
            },
        },
    )
    return org_id, workflow.id


def lead(i: int, start_at: datetime, area: str = "415") -> dict[str, Any]:
    return {
        "customerLeadId": f"lead-{area}-{i}",
        "primaryPhone": f"+1{area}{2_000_000 + i:07d}",
        "startAt": start_at.isoformat(),
    }


def create(services: Services, org_id: str, workflow_id: str, leads: list[dict[str, Any]]) -> None:
    rows = services.executions.create_bulk(org_id, workflow_id, leads)
    failed = [r.error for r in rows if not r.success]
    if failed:
        raise RuntimeError(f"bulk create refused {len(failed)} leads: {failed[:3]}")


def calibrate(services: Services, org_id: str, workflow_id: str) -> float:
    """Leads per second of create_bulk, from 1,000 leads parked a day ahead."""
    parked = datetime.now(UTC) + timedelta(days=1)
    batch = [lead(i, parked, area="646") for i in range(CALIBRATION)]
    started = time.perf_counter()
    create(services, org_id, workflow_id, batch)
    return CALIBRATION / (time.perf_counter() - started)


@dataclass(slots=True)
class Result:
    backend: str
    n: int
    lead_in: float
    import_seconds: float
    import_overrun: float
    due_before_import_end: int
    lateness_ms: list[float]
    unclaimed: int
    dispatches: int
    completed: int

    def pct(self, p: float) -> float:
        return percentile(self.lateness_ms, p)


def run_backend(backend: str, args: argparse.Namespace) -> Result:
    n = args.n
    spread = args.minutes * 60.0
    with database(backend, "timers") as url:
        services = bootstrap(Settings(database_url=url))
        try:
            org_id, workflow_id = build_workflow(services)
            if args.lead_in is not None:
                lead_in = args.lead_in
            else:
                rate = calibrate(services, org_id, workflow_id)
                lead_in = 3.0 + 1.3 * n / rate
                print(f"  {backend}: create_bulk {rate:.0f} leads/s; lead-in {lead_in:.1f} s")
            base = datetime.now(UTC) + timedelta(seconds=lead_in)
            rng = random.Random(20260309)
            due = sorted(base + timedelta(seconds=rng.uniform(0.0, spread)) for _ in range(n))
            started = time.perf_counter()
            for start in range(0, n, CHUNK):
                batch = [lead(i, due[i]) for i in range(start, min(n, start + CHUNK))]
                create(services, org_id, workflow_id, batch)
            import_seconds = time.perf_counter() - started
            import_end = datetime.now(UTC)
            overrun = (import_end - base).total_seconds()
            due_early = bisect.bisect_right(due, import_end)
            print(
                f"  {backend}: imported {n} in {import_seconds:.1f} s; first timer due in "
                f"{-overrun:.1f} s; spread {spread:.0f} s",
                flush=True,
            )
            if overrun > 0:
                print(
                    f"  !!! the import overran the lead-in by {overrun:.1f} s: "
                    f"{due_early} timers were due before it finished"
                )

            services.worker.start()
            lateness = services.engine.stats.lateness
            deadline = due[-1] + timedelta(seconds=args.grace)
            next_progress = time.monotonic() + PROGRESS_SECONDS
            while len(lateness) < n and datetime.now(UTC) < deadline:
                time.sleep(0.25)
                if time.monotonic() >= next_progress:
                    next_progress += PROGRESS_SECONDS
                    now = datetime.now(UTC)
                    fell_due = bisect.bisect_right(due, now)
                    claimed = len(lateness)
                    recent = [s * 1000 for s in lateness[-2_000:]]
                    print(
                        f"  {backend} {now:%H:%M:%S}: due {fell_due}, claimed {claimed}, "
                        f"backlog {max(0, fell_due - claimed)}, recent p99 "
                        f"{percentile(recent, 99):.0f} ms",
                        flush=True,
                    )
            stopped_at = datetime.now(UTC)
            claimed_ms = [s * 1000 for s in list(lateness)]
            unclaimed = max(0, n - len(claimed_ms))
            # The oldest due are claimed first: the unclaimed ones are the latest due.
            censored = [
                max(0.0, (stopped_at - d).total_seconds() * 1000) for d in due[n - unclaimed :]
            ]
            time.sleep(1.5)  # let the last calls report (the simulator rings for 1 s)
            if not stop_worker(services):
                print(f"  !!! {backend}: the worker did not stop within 30 s")
                quiet_teardown()
            with services.db.begin() as conn:
                counts = services.store.executions.count_by_status(conn, org_id)
            return Result(
                backend=backend,
                n=n,
                lead_in=lead_in,
                import_seconds=import_seconds,
                import_overrun=overrun,
                due_before_import_end=due_early,
                lateness_ms=claimed_ms + censored,
                unclaimed=unclaimed,
                dispatches=services.engine.stats.dispatches,
                completed=counts.get("COMPLETED", 0),
            )
        finally:
            services.close()


def report(results: list[Result], args: argparse.Namespace) -> bool:
    print()
    header = (
        f"{'backend':<8}  {'n':>7}  {'p50 ms':>9}  {'p90 ms':>9}  {'p99 ms':>9}  {'max ms':>9}"
        f"  {'target p99':>10}  check"
    )
    print(header)
    print("-" * len(header))
    all_ok = True
    for r in results:
        mark = ">=" if r.unclaimed else ""
        cells = [f"{mark}{r.pct(p):.1f}" for p in (50, 90, 99)] + [
            f"{mark}{max(r.lateness_ms, default=0.0):.1f}"
        ]
        target = TARGET_P99_MS[r.backend]
        ok = r.unclaimed == 0 and r.pct(99) < target
        all_ok &= ok
        print(
            f"{r.backend:<8}  {r.n:>7}  "
            + "  ".join(f"{c:>9}" for c in cells)
            + f"  {'< ' + format(target, '.0f') + ' ms':>10}  {verdict(ok)}"
        )
    print()
    print(
        f"workload: {args.n} one-step CALL executions (simulator, no windows), startAt uniform "
        f"over {args.minutes:g} min, embedded worker, real clock"
    )
    print("lateness: claim time - due time of each start timer (engine.stats.lateness)")
    for r in results:
        print(
            f"{r.backend}: import {r.import_seconds:.1f} s ({r.n / r.import_seconds:.0f} leads/s), "
            f"lead-in {r.lead_in:.1f} s; dispatches {r.dispatches}; completed {r.completed}/{r.n}"
        )
        if r.unclaimed:
            print(
                f"  {r.unclaimed} timers unclaimed {args.grace:g} s after the last fell due "
                "(counted with their lateness so far: the figures are lower bounds)"
            )
        if r.import_overrun > 0:
            print(
                f"  the import overran the lead-in: {r.due_before_import_end} timers fell due "
                "before it finished (their lateness includes waiting for the import)"
            )
    return all_ok


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--n", type=int, default=100_000, help="timers (executions)")
    parser.add_argument("--minutes", type=float, default=10.0, help="spread of the startAt values")
    parser.add_argument("--db", choices=("sqlite", "postgres", "both"), default="both")
    parser.add_argument(
        "--lead-in",
        type=float,
        default=None,
        help="seconds from the import's start to the spread's start "
        "(default: estimated so the import finishes first)",
    )
    parser.add_argument(
        "--grace", type=float, default=30.0, help="seconds to wait after the last timer fell due"
    )
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.WARNING)
    exit_on_sigterm()
    print_header("bench.timers: start-timer lateness")
    backends = ["sqlite", "postgres"] if args.db == "both" else [args.db]
    started = time.perf_counter()
    results = []
    for backend in backends:
        print(f"... {backend}: {args.n} timers over {args.minutes:g} min", flush=True)
        results.append(run_backend(backend, args))
    ok = report(results, args)
    print(f"total wall time {time.perf_counter() - started:.1f} s")
    return 0 if ok else 1


if __name__ == "__main__":
    raise SystemExit(main())
