"""API latency over real HTTP while the worker drains a backlog; bulk create through the API.

Not a test. Run it from the repository root::

    python -m bench.api_latency --db both                 # a 10,000-execution backlog
    python -m bench.api_latency --n 2000 --db sqlite      # a quick run

For each backend (a temporary SQLite file; a fresh PostgreSQL database on loopback, dropped at
the end, also on SIGTERM or Ctrl-C), with ``Settings(bulk_limit=1000)`` and the real clock:

1. ``--n`` executions of the CALL, CALL, TEXT simulator workflow of ``bench.throughput`` are bulk
   created through the service (the backlog), the embedded worker is started, and the API runs
   with uvicorn in this process on 127.0.0.1 (a free port, ``uvicorn.Server`` in a thread). While
   the worker drains the backlog, ``--creates`` single ``POST /api/v1/workflow/{id}/execution``
   requests are sent one after another over one keep-alive httpx connection and timed (after
   5 untimed warm-up requests). Target: p99 < 100 ms.
2. The worker is stopped; then ``--bulk-requests`` requests of ``--bulk-size`` leads each
   (``POST /api/v1/workflow/{id}/execution/bulk``, body ``{"leads": [...]}``) are sent one after
   another and timed in total. Target: 10,000 leads in < 2 s.
"""

from __future__ import annotations

import argparse
import logging
import socket
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any

import httpx
import uvicorn

from bench.throughput import build_workflow, bulk_create, percentile
from bench.timers import (
    database,
    exit_on_sigterm,
    print_header,
    quiet_teardown,
    stop_worker,
    verdict,
)
from reachflow.api.app import create_app
from reachflow.bootstrap import Services, bootstrap
from reachflow.settings import Settings

TARGET_CREATE_P99_MS = 100.0
TARGET_BULK_SECONDS = 2.0
WARM_UP = 5
ACTIVE = ("CREATED", "RUNNING", "PAUSED")


@contextmanager
def serve(services: Services) -> Iterator[str]:
    """The API on 127.0.0.1 at a free port, in a thread; yields its base URL."""
    # proto IPPROTO_TCP, not 0: asyncio sets TCP_NODELAY only on connections of such sockets;
    # without it every response's body waits ~40 ms (Nagle against the client's delayed ACK).
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM, socket.IPPROTO_TCP)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind(("127.0.0.1", 0))
    port = sock.getsockname()[1]
    config = uvicorn.Config(
        create_app(services), log_level="warning", access_log=False, lifespan="on"
    )
    server = uvicorn.Server(config)
    thread = threading.Thread(target=server.run, kwargs={"sockets": [sock]}, daemon=True)
    thread.start()
    try:
        deadline = time.monotonic() + 30
        while not server.started:
            if not thread.is_alive() or time.monotonic() > deadline:
                raise RuntimeError("uvicorn did not start")
            time.sleep(0.02)
        yield f"http://127.0.0.1:{port}"
    finally:
        server.should_exit = True
        thread.join(30)
        sock.close()


def counts(services: Services, org_id: str) -> dict[str, int]:
    with services.db.begin() as conn:
        return services.store.executions.count_by_status(conn, org_id)


def api_lead(i: int) -> dict[str, Any]:
    return {
        "customerLeadId": f"api-{i}",
        "primaryPhone": f"+1628{2_000_000 + i:07d}",
        "variables": {"firstName": f"Api{i}"},
    }


@dataclass(slots=True)
class Result:
    backend: str
    backlog: int
    idle_ms: list[float]
    create_ms: list[float]
    create_errors: int
    create_seconds: float
    dispatches_during: int
    completed_during: int
    active_after: int
    worker_stopped: bool
    bulk_leads: int
    bulk_seconds: float
    bulk_request_ms: list[float]
    bulk_failed: int
    bulk_errors: list[str]

    @property
    def create_ok(self) -> bool:
        return self.create_errors == 0 and percentile(self.create_ms, 99) < TARGET_CREATE_P99_MS

    @property
    def bulk_ok(self) -> bool:
        return (
            not self.bulk_errors
            and self.bulk_failed == 0
            and self.worker_stopped
            and self.bulk_seconds < TARGET_BULK_SECONDS
        )


def run_backend(backend: str, args: argparse.Namespace) -> Result:
    with database(backend, "api") as url:
        services = bootstrap(Settings(database_url=url, bulk_limit=args.bulk_size))
        try:
            org_id, workflow_id = build_workflow(services)
            key_org, key = services.accounts.create_api_key("bench")
            if key_org != org_id:
                raise RuntimeError("the API key's organization is not the workflow's")
            seconds = bulk_create(services, org_id, workflow_id, args.n)
            print(f"  {backend}: backlog of {args.n} created in {seconds:.1f} s", flush=True)
            with (
                serve(services) as base_url,
                httpx.Client(
                    base_url=base_url,
                    headers={"X-API-Key": key},
                    timeout=60.0,
                    trust_env=False,
                ) as client,
            ):
                single = f"/api/v1/workflow/{workflow_id}/execution"
                for i in range(WARM_UP):
                    client.post(single, json=api_lead(1_000_000 + i)).raise_for_status()
                idle_ms = []  # a reference: the same request with the worker off
                for i in range(args.idle_creates):
                    started = time.perf_counter()
                    client.post(single, json=api_lead(1_100_000 + i)).raise_for_status()
                    idle_ms.append((time.perf_counter() - started) * 1000)
                services.worker.start()
                completed_before = counts(services, org_id).get("COMPLETED", 0)
                dispatches_before = services.engine.stats.dispatches
                create_ms: list[float] = []
                errors = 0
                creates_started = time.perf_counter()
                for i in range(args.creates):
                    if time.perf_counter() - creates_started > args.timeout:
                        errors += args.creates - i
                        print(
                            f"  !!! {args.timeout:g} s passed: {args.creates - i} creates not sent"
                        )
                        break
                    started = time.perf_counter()
                    response = client.post(single, json=api_lead(i))
                    create_ms.append((time.perf_counter() - started) * 1000)
                    if response.status_code != 201:
                        errors += 1
                        if errors <= 3:
                            print(f"  !!! create: {response.status_code} {response.text[:200]}")
                create_seconds = time.perf_counter() - creates_started
                dispatches_during = services.engine.stats.dispatches - dispatches_before
                after = counts(services, org_id)
                completed_during = after.get("COMPLETED", 0) - completed_before
                active_after = sum(after.get(s, 0) for s in ACTIVE)
                print(
                    f"  {backend}: {args.creates} creates in {create_seconds:.1f} s, p99 "
                    f"{percentile(create_ms, 99):.1f} ms; meanwhile the worker dispatched "
                    f"{dispatches_during} steps and completed {completed_during} executions",
                    flush=True,
                )
                worker_stopped = stop_worker(services, timeout=60)
                if not worker_stopped:
                    print(f"  !!! {backend}: the worker did not stop within 60 s", flush=True)

                bulk = f"/api/v1/workflow/{workflow_id}/execution/bulk"
                bodies = [
                    {
                        "leads": [
                            api_lead(2_000_000 + r * args.bulk_size + j)
                            for j in range(args.bulk_size)
                        ]
                    }
                    for r in range(args.bulk_requests)
                ]
                request_ms: list[float] = []
                failed = 0
                bulk_errors: list[str] = []
                started = time.perf_counter()
                for body in bodies:
                    one = time.perf_counter()
                    response = client.post(bulk, json=body)
                    request_ms.append((time.perf_counter() - one) * 1000)
                    if response.status_code != 201:
                        bulk_errors.append(f"{response.status_code} {response.text[:200]}")
                        continue
                    failed += int(response.json().get("failed", 0))
                bulk_seconds = time.perf_counter() - started
            return Result(
                backend=backend,
                backlog=args.n,
                idle_ms=idle_ms,
                create_ms=create_ms,
                create_errors=errors,
                create_seconds=create_seconds,
                dispatches_during=dispatches_during,
                completed_during=completed_during,
                active_after=active_after,
                worker_stopped=worker_stopped,
                bulk_leads=args.bulk_requests * args.bulk_size,
                bulk_seconds=bulk_seconds,
                bulk_request_ms=request_ms,
                bulk_failed=failed,
                bulk_errors=bulk_errors,
            )
        finally:
            if not stop_worker(services, timeout=10):
                quiet_teardown()
            services.close()


def report(results: list[Result], args: argparse.Namespace) -> bool:
    print()
    print(f"single creates ({args.creates} sequential POSTs while the worker drains the backlog)")
    header = (
        f"{'backend':<8}  {'backlog':>7}  {'p50 ms':>8}  {'p90 ms':>8}  {'p99 ms':>8}"
        f"  {'max ms':>8}  {'errors':>6}  {'target p99':>10}  check"
    )
    print(header)
    print("-" * len(header))
    for r in results:
        figures = [percentile(r.create_ms, p) for p in (50, 90, 99)] + [max(r.create_ms)]
        print(
            f"{r.backend:<8}  {r.backlog:>7}  "
            + "  ".join(f"{v:>8.1f}" for v in figures)
            + f"  {r.create_errors:>6}  {'< 100 ms':>10}  {verdict(r.create_ok)}"
        )
        if r.idle_ms:
            idle = [percentile(r.idle_ms, p) for p in (50, 90, 99)] + [max(r.idle_ms)]
            print(
                f"{r.backend:<8}  {'idle':>7}  "
                + "  ".join(f"{v:>8.1f}" for v in idle)
                + f"  {0:>6}  {'reference':>10}"
            )
    print()
    print(
        f"bulk create through the API ({args.bulk_requests} sequential requests of "
        f"{args.bulk_size} leads, worker off)"
    )
    header = (
        f"{'backend':<8}  {'leads':>7}  {'total s':>8}  {'leads/s':>8}  {'max req ms':>10}"
        f"  {'failed':>6}  {'target':>8}  check"
    )
    print(header)
    print("-" * len(header))
    for r in results:
        print(
            f"{r.backend:<8}  {r.bulk_leads:>7}  {r.bulk_seconds:>8.2f}  "
            f"{r.bulk_leads / r.bulk_seconds:>8.0f}  {max(r.bulk_request_ms, default=0):>10.0f}"
            f"  {r.bulk_failed:>6}  {'< 2 s':>8}  {verdict(r.bulk_ok)}"
        )
    print()
    print(
        "latency: client-side, request sent to response read, one keep-alive connection, "
        "uvicorn in this process"
    )
    print(
        f"idle: {args.idle_creates} single creates before the worker started (the backlog "
        "waiting), for reference"
    )
    for r in results:
        print(
            f"{r.backend}: during the {r.create_seconds:.1f} s of creates the worker dispatched "
            f"{r.dispatches_during} steps and completed {r.completed_during} executions; "
            f"{r.active_after} still active at the end"
        )
        if r.active_after == 0:
            print(
                "  the backlog was drained before the timing ended: part of the creates ran "
                "with an idle worker"
            )
        if not r.worker_stopped:
            print(
                "  the worker did not stop within 60 s: the bulk requests ran alongside it "
                "(MISS whatever the time)"
            )
        for error in r.bulk_errors[:3]:
            print(f"  bulk request failed: {error}")
    return all(r.create_ok and r.bulk_ok for r in results)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--n", type=int, default=10_000, help="backlog executions")
    parser.add_argument("--creates", type=int, default=200, help="timed single creates")
    parser.add_argument(
        "--idle-creates", type=int, default=50, help="single creates with the worker off first"
    )
    parser.add_argument(
        "--timeout", type=float, default=300.0, help="seconds for the single creates at most"
    )
    parser.add_argument("--bulk-requests", type=int, default=10)
    parser.add_argument("--bulk-size", type=int, default=1_000, help="leads per bulk request")
    parser.add_argument("--db", choices=("sqlite", "postgres", "both"), default="both")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.WARNING)
    exit_on_sigterm()
    print_header("bench.api_latency: API latency under load, bulk create through the API")
    backends = ["sqlite", "postgres"] if args.db == "both" else [args.db]
    started = time.perf_counter()
    results = []
    for backend in backends:
        print(f"... {backend}: backlog {args.n}", flush=True)
        results.append(run_backend(backend, args))
    ok = report(results, args)
    print(f"total wall time {time.perf_counter() - started:.1f} s")
    return 0 if ok else 1


if __name__ == "__main__":
    raise SystemExit(main())
