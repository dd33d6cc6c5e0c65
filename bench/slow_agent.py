"""Isolation between agents: a slow agent must not slow a fast one down.

Not a test. Run it from the repository root::

    python -m bench.slow_agent --db both               # M = 5,000 fast executions, 200 slow
    python -m bench.slow_agent --n 500 --db sqlite     # a quick run

Two CALL agents on two providers, registered with ``bootstrap(..., extra_agents=...)``:

* fast: provider ``simulator`` (the services' own simulator), answers at once;
* slow: provider ``webhook`` (the only other name an agent may give), sleeps 2 s (real time)
  per dispatch, then answers like the simulator (``reachflow.agents.simulator.simulate``);
  agent config ``{"maxConcurrent": 10}`` (the engine bounds the concurrent dispatches per agent
  by this key).

Each runs a one-step workflow (``needsTCPACompliance: false``, no schedule) in an organization of
its own, on the real clock, with the embedded worker. For each backend, on a fresh database each:

1. alone: M fast executions, all with the same ``startAt`` a lead-in ahead (long enough for the
   import), and 100 more due at once to warm the worker up; the fast agent's throughput is
   M / (time from that instant until the simulator has placed the M calls);
2. mixed: the same, plus ``--slow`` slow executions due at once, so when the fast ones fall due
   the slow agent is already busy (its calls in flight then are reported); the slow ones keep
   running meanwhile and need not finish.

Both run ``--repeat`` times (default 3), alternated; the drop is 1 - median(mixed) /
median(alone). Target: < 10 %. A phase that does not finish within
``--timeout`` seconds counts what it did (and MISSes). Also reported: the slow agent's largest
number of calls in flight at once, which must not exceed its ``maxConcurrent``.
"""

from __future__ import annotations

import argparse
import logging
import threading
import time
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

from bench.timers import (
    database,
    exit_on_sigterm,
    print_header,
    quiet_teardown,
    stop_worker,
    verdict,
)
from reachflow.agents.port import DispatchReceipt, DispatchRequest
from reachflow.agents.simulator import simulate
from reachflow.bootstrap import Services, bootstrap
from reachflow.settings import Settings

#: Agents may name only the providers ``simulator`` and ``webhook``; bootstrap registers no
#: ``webhook`` adapter of its own, so ``extra_agents`` supplies the slow one under that name.
SLOW_PROVIDER = "webhook"
SLOW_SECONDS = 2.0
SLOW_MAX_CONCURRENT = 10
TARGET_DROP = 0.10
#: Fast executions due at once (not measured), so the worker is warm in both phases.
WARM_UP = 100
CHUNK = 1_000


class SlowAgent:
    """Sleeps, then answers like the simulator; counts its concurrency."""

    def __init__(self, seconds: float) -> None:
        self.seconds = seconds
        self.released = threading.Event()
        self._lock = threading.Lock()
        self.in_flight = 0
        self.max_in_flight = 0
        self.started = 0
        self.finished = 0

    def dispatch(self, request: DispatchRequest) -> DispatchReceipt:
        with self._lock:
            self.started += 1
            self.in_flight += 1
            self.max_in_flight = max(self.max_in_flight, self.in_flight)
        try:
            self.released.wait(self.seconds)  # set at teardown: no sleeper outlives the run
            return simulate(request)
        finally:
            with self._lock:
                self.in_flight -= 1
                self.finished += 1


def one_step_workflow(
    services: Services, organization: str, provider: str, config: dict[str, Any]
) -> tuple[str, str]:
    org_id, _key = services.accounts.create_api_key(organization)
    agent = services.agents.create(
        org_id,
        {
            "name": f"bench {organization}",
            "channel": "CALL",
            "provider": provider,
            "config": {"defaultDisposition": "NO_ANSWER", "ringDurationSecs": 1, **config},
        },
    )
    workflow = services.workflows.create(
        org_id,
        {
            "name": f"bench: one {organization} call",
            "active": True,
            "timezone": "America/New_York",
            "definition": {
                "steps": [
                    {
                        "type": "CALL",
                        "order": 1,
                        "agentId": agent.id,
                        "delayInSecs": 0,
                        "needsTCPACompliance": False,
                        "finishOn": ["DNC"],
                    }
                ]
            },
        },
    )
    return org_id, workflow.id


def create(
    services: Services,
    org_id: str,
    workflow_id: str,
    area: str,
    n: int,
    start_at: datetime | None = None,
) -> None:
    extra = {"startAt": start_at.isoformat()} if start_at else {}
    for start in range(0, n, CHUNK):
        leads = [
            {
                "customerLeadId": f"{area}-{i}",
                "primaryPhone": f"+1{area}{2_000_000 + i:07d}",
                **extra,
            }
            for i in range(start, min(n, start + CHUNK))
        ]
        rows = services.executions.create_bulk(org_id, workflow_id, leads)
        failed = [r.error for r in rows if not r.success]
        if failed:
            raise RuntimeError(f"bulk create refused {len(failed)} leads: {failed[:3]}")


@dataclass(slots=True)
class Phase:
    name: str
    fast: int
    placed: int
    seconds: float
    #: Seconds between the import's end and the fast executions' startAt (< 0: overran).
    margin: float = 0.0
    slow_in_flight_at_start: int = 0
    slow_started: int = 0
    slow_finished: int = 0
    slow_max_in_flight: int = 0
    worker_stopped: bool = True

    @property
    def done(self) -> bool:
        return self.placed >= self.fast

    @property
    def throughput(self) -> float:
        return self.placed / self.seconds if self.seconds else 0.0


def run_phase(backend: str, name: str, args: argparse.Namespace, slow_n: int) -> Phase:
    slow = SlowAgent(SLOW_SECONDS)
    with database(backend, f"slow_{name}") as url:
        services = bootstrap(Settings(database_url=url), extra_agents={SLOW_PROVIDER: slow})
        try:
            fast_org, fast_workflow = one_step_workflow(services, "fast", "simulator", {})
            lead_in = args.lead_in if args.lead_in is not None else 4.0 + args.n / 500
            fast_at = datetime.now(UTC) + timedelta(seconds=lead_in)
            create(services, fast_org, fast_workflow, "415", args.n, fast_at)
            # Due at once in both phases, so the worker is warm when the measured calls fall
            # due, whether or not the slow executions ran first.
            create(services, fast_org, fast_workflow, "510", WARM_UP)
            if slow_n:
                slow_org, slow_workflow = one_step_workflow(
                    services, "slow", SLOW_PROVIDER, {"maxConcurrent": SLOW_MAX_CONCURRENT}
                )
                create(services, slow_org, slow_workflow, "628", slow_n)  # due now
            placed = services.simulator.calls_placed
            services.worker.start()
            margin = fast_at.timestamp() - time.time()
            if margin > 0:
                time.sleep(margin)
            started = time.time()
            warm = len(placed)
            in_flight_at_start = slow.in_flight
            started_before, finished_before = slow.started, slow.finished
            deadline = started + args.timeout
            while len(placed) - WARM_UP < args.n and time.time() < deadline:
                time.sleep(0.01)
            seconds = time.time() - started
            if warm < WARM_UP:
                print(f"  !!! only {warm} of {WARM_UP} warm-up calls were placed in the lead-in")
            phase = Phase(
                name=name,
                fast=args.n,
                placed=len(placed) - WARM_UP,
                seconds=seconds,
                margin=margin,
                slow_in_flight_at_start=in_flight_at_start,
                slow_started=slow.started - started_before,
                slow_finished=slow.finished - finished_before,
                slow_max_in_flight=slow.max_in_flight,
            )
            slow.released.set()
            phase.worker_stopped = stop_worker(services, timeout=30)
            print(
                f"  {backend} / {name}: {phase.placed}/{args.n} fast calls in {seconds:.2f} s "
                f"({phase.throughput:.0f}/s); slow calls in flight at the start "
                f"{in_flight_at_start}, started meanwhile {phase.slow_started}, most in "
                f"flight {phase.slow_max_in_flight}",
                flush=True,
            )
            if margin < 0:
                print(f"  !!! the import overran the lead-in by {-margin:.1f} s")
            return phase
        finally:
            slow.released.set()
            if not stop_worker(services, timeout=10):
                quiet_teardown()
            services.close()


@dataclass(slots=True)
class Result:
    backend: str
    alones: list[Phase]
    mixeds: list[Phase]

    @property
    def alone(self) -> Phase:
        return median_phase(self.alones)

    @property
    def mixed(self) -> Phase:
        return median_phase(self.mixeds)

    @property
    def drop(self) -> float:
        if not self.alone.throughput:
            return 1.0
        return 1.0 - self.mixed.throughput / self.alone.throughput

    @property
    def ok(self) -> bool:
        every = self.alones + self.mixeds
        return all(p.done for p in every) and self.drop < TARGET_DROP

    @property
    def bounded(self) -> bool:
        return all(p.slow_max_in_flight <= SLOW_MAX_CONCURRENT for p in self.mixeds)


def median_phase(phases: list[Phase]) -> Phase:
    """The run with the median throughput (the lower one of the middle two for an even count)."""
    ordered = sorted(phases, key=lambda p: p.throughput)
    return ordered[(len(ordered) - 1) // 2]


def report(results: list[Result], args: argparse.Namespace) -> bool:
    print()
    header = (
        f"{'backend':<8}  {'fast':>6}  {'alone /s':>9}  {'mixed /s':>9}  {'drop':>7}"
        f"  {'target':>7}  check  {'slow in flight':>14}  {'bound':>5}  check"
    )
    print(header)
    print("-" * len(header))
    for r in results:
        most = max(p.slow_max_in_flight for p in r.mixeds)
        print(
            f"{r.backend:<8}  {r.alone.fast:>6}  {r.alone.throughput:>9.0f}  "
            f"{r.mixed.throughput:>9.0f}  {r.drop * 100:>6.1f}%  {'< 10%':>7}  "
            f"{verdict(r.ok):<5}  {most:>14}  {SLOW_MAX_CONCURRENT:>5}  {verdict(r.bounded)}"
        )
        if len(r.alones) > 1:
            runs = "; ".join(
                f"{a.throughput:.0f} / {m.throughput:.0f}"
                for a, m in zip(r.alones, r.mixeds, strict=True)
            )
            print(f"{'':<8}  runs (alone / mixed per second): {runs}")
    print()
    print(
        f"fast: {args.n} one-step CALL executions on the simulator; mixed: {args.slow} one-step "
        f"CALL executions on an agent that takes {SLOW_SECONDS:g} s per dispatch "
        f"(maxConcurrent {SLOW_MAX_CONCURRENT}), due before the fast ones"
    )
    print("throughput: fast calls placed / seconds from their startAt to the last placement")
    print(f"alone /s, mixed /s: the median of {args.repeat} alternated runs each")
    for r in results:
        for phase in r.alones + r.mixeds:
            if not phase.done:
                print(
                    f"{r.backend} / {phase.name}: only {phase.placed}/{phase.fast} fast calls "
                    f"within {args.timeout:g} s (throughput over what was placed)"
                )
            if not phase.worker_stopped:
                print(f"{r.backend} / {phase.name}: the worker did not stop within 30 s")
        print(
            f"{r.backend} / mixed: slow calls in flight when the fast ones fell due "
            f"{r.mixed.slow_in_flight_at_start}; while the fast calls ran, slow calls started "
            f"{r.mixed.slow_started} and finished {r.mixed.slow_finished}"
        )
        overran = sorted({p.name for p in r.alones + r.mixeds if p.margin < 0})
        if overran:
            print(
                f"{r.backend} / {', '.join(overran)}: the import overran the lead-in; timed "
                "from the worker's start instead"
            )
    return all(r.ok and r.bounded for r in results)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--n", type=int, default=5_000, help="fast executions (M)")
    parser.add_argument("--slow", type=int, default=200, help="slow executions in the mix")
    parser.add_argument("--timeout", type=float, default=300.0, help="seconds per phase at most")
    parser.add_argument(
        "--lead-in",
        type=float,
        default=None,
        help="seconds from the import's start to the fast startAt (default 4 + M / 500)",
    )
    parser.add_argument(
        "--repeat", type=int, default=3, help="alone/mixed pairs per backend; medians compared"
    )
    parser.add_argument("--db", choices=("sqlite", "postgres", "both"), default="both")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.WARNING)
    exit_on_sigterm()
    print_header("bench.slow_agent: a slow agent beside a fast one")
    backends = ["sqlite", "postgres"] if args.db == "both" else [args.db]
    started = time.perf_counter()
    results = []
    for backend in backends:
        print(f"... {backend}: {args.n} fast executions, then with {args.slow} slow", flush=True)
        result = Result(backend, [], [])
        for _ in range(args.repeat):  # alternated, so a drift in the machine's load hits both
            result.alones.append(run_phase(backend, "alone", args, 0))
            result.mixeds.append(run_phase(backend, "mixed", args, args.slow))
        results.append(result)
    ok = report(results, args)
    print(f"total wall time {time.perf_counter() - started:.1f} s")
    return 0 if ok else 1


if __name__ == "__main__":
    raise SystemExit(main())
