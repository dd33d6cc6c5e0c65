"""Our engine against a plain DBOS Transact implementation of the same job, in one run.

Not a test: a script that prints figures. Run it from the repository root, with the ``bench``
extra installed (``pip install -e '.[bench]'``)::

    python -m bench.compare --n 2000 --db both

The job: N executions, each a 3-step workflow CALL, CALL, TEXT with no delays. A simulated agent
answers each step as a deterministic function of the idempotency key ``execution_id:step`` and
records the placement once in a durable table; each step's result is recorded durably.

* ``reachflow``: ``bench.throughput.run_virtual``: the leads are bulk created (``setup s``),
  then ``engine.run_until_idle`` under a ``VirtualClock`` (``run s``). The engine's simulator
  agent answers and records each placement in its durable ledger (``simulator_calls``, keyed by
  the idempotency key, ``requests`` counting every ask); the engine records each step's result
  in its own tables.
* ``dbos``: a ``@DBOS.workflow`` that calls a ``@DBOS.step`` three times; the step is the
  simulated agent, which upserts its placement row (``agent_placements``, keyed by the
  idempotency key, ``requests`` counting every ask) in the same database and returns its answer,
  which DBOS records as the step's output. The N workflows are enqueued on a paused DBOS queue
  (``setup s``), then the queue is opened and ``run s`` runs until every workflow has its result.
  DBOS's system database is the same kind of database: the same SQLite file or PostgreSQL database
  as its ledger, on loopback.

Each backend and system gets its own empty database, dropped at the end (also on SIGTERM or a
timeout). The ratio is ours / DBOS of executions per second over ``run s``, then over setup +
run. The exit status is non-zero if any check fails: N completed, 3N steps recorded, 3N
placements in the durable ledger, no key placed or sent twice.
"""

from __future__ import annotations

import argparse
import contextlib
import logging
import os
import platform
import signal
import sqlite3
import subprocess
import sys
import tempfile
import time
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime
from importlib import metadata
from pathlib import Path
from typing import Any

import sqlalchemy as sa
from sqlalchemy.dialects import postgresql
from sqlalchemy.dialects import sqlite as sqlite_dialect

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:  # also runnable as ``python bench/compare.py``
    sys.path.insert(0, str(ROOT))

#: The steps of the workflow, in order (``bench.throughput.build_workflow``'s too).
PLAN = ("CALL", "CALL", "TEXT")
STEPS = len(PLAN)
PG_SERVER = "postgresql://postgres@127.0.0.1:5432"
QUEUE = "bench_outreach"
DEFAULT_TIMEOUT_SECONDS = 900.0
_CALL_NAMESPACE = uuid.UUID("6f1c2a9e-8d3b-4e57-a0c4-1b2d3e4f5a6b")


class RunTimeout(Exception):
    """A run went past ``--timeout``."""


@dataclass(slots=True)
class Run:
    backend: str
    system: str
    n: int
    setup_seconds: float = 0.0
    run_seconds: float = 0.0
    completed: int = 0
    steps: int = 0
    placements: int | None = None
    duplicates: int = 0
    problems: list[str] = field(default_factory=list)

    @property
    def executions_per_second(self) -> float:
        return self.completed / self.run_seconds if self.run_seconds else 0.0

    @property
    def steps_per_second(self) -> float:
        return self.steps / self.run_seconds if self.run_seconds else 0.0

    @property
    def e2e_executions_per_second(self) -> float:
        total = self.setup_seconds + self.run_seconds
        return self.completed / total if total else 0.0

    def check(self) -> None:
        """Record every failed check in ``problems``."""
        if self.completed != self.n:
            self.problems.append(f"completed {self.completed}/{self.n}")
        if self.steps != STEPS * self.n:
            self.problems.append(f"steps recorded {self.steps}/{STEPS * self.n}")
        if self.placements is not None and self.placements != STEPS * self.n:
            self.problems.append(f"ledger placements {self.placements}/{STEPS * self.n}")
        if self.duplicates:
            self.problems.append(f"{self.duplicates} keys placed or sent more than once")

    @property
    def ok(self) -> bool:
        return not self.problems


# -- bounds ----------------------------------------------------------------------------------


@contextlib.contextmanager
def deadline(seconds: float, expired: list[str]) -> Iterator[None]:
    """Raise ``RunTimeout`` in the main thread once ``seconds`` have passed (noted in
    ``expired``, as the clean-up it interrupts may raise something else)."""

    def expire(_signum: int, _frame: object) -> None:
        expired.append(f"timed out after {seconds:g} s")
        raise RunTimeout(expired[0])

    previous = signal.signal(signal.SIGALRM, expire)
    signal.setitimer(signal.ITIMER_REAL, seconds)
    try:
        yield
    finally:
        signal.setitimer(signal.ITIMER_REAL, 0)
        signal.signal(signal.SIGALRM, previous)


def sqlalchemy_url(url: str) -> str:
    """The URL for a SQLAlchemy engine of ours: PostgreSQL through psycopg 3."""
    return url.replace("postgresql://", "postgresql+psycopg://", 1)


def sqlite_path(url: str) -> str:
    return url.removeprefix("sqlite:///")


# -- reachflow -------------------------------------------------------------------------------


def count_placements(url: str) -> tuple[int | None, int]:
    """Placements in the engine's durable ledger and re-sends (requests past the first).

    The simulator's own ledger (``simulator_calls``) if the engine has it, else the engine's
    ``contact_attempts`` (one row per dispatch key); ``(None, 0)`` if neither is there.
    """
    engine = sa.create_engine(sqlalchemy_url(url), poolclass=sa.NullPool)
    try:
        with engine.connect() as conn:
            tables = set(sa.inspect(conn).get_table_names())
            if "simulator_calls" in tables:
                rows, extra = conn.exec_driver_sql(
                    "SELECT count(*), coalesce(sum(requests - 1), 0) FROM simulator_calls"
                ).one()
                return int(rows), int(extra)
            if "contact_attempts" in tables:
                rows = conn.exec_driver_sql("SELECT count(*) FROM contact_attempts").scalar_one()
                return int(rows), 0
            return None, 0
    finally:
        engine.dispose()


def run_ours(url: str, backend: str, n: int) -> Run:
    # Imported here, so the DBOS side still runs while the engine does not import.
    from bench.throughput import run_virtual

    result = run_virtual(url, backend, n)
    run = Run(
        backend=backend,
        system="reachflow",
        n=n,
        setup_seconds=result.bulk_seconds,
        run_seconds=result.drive_seconds,
        completed=result.completed,
        steps=result.dispatches,
        duplicates=result.duplicates,
    )
    from reachflow.store.simulator_ledger import ledger_url

    # On SQLite the simulator keeps its ledger in a file of its own beside the database.
    run.placements, resent = count_placements(ledger_url(url) or url)
    run.duplicates += resent
    return run


# -- DBOS ------------------------------------------------------------------------------------

_ledger_metadata = sa.MetaData()
placements = sa.Table(
    "agent_placements",
    _ledger_metadata,
    sa.Column("idempotency_key", sa.String(120), primary_key=True),
    sa.Column("execution_id", sa.String(64), nullable=False),
    sa.Column("step", sa.Integer(), nullable=False),
    sa.Column("channel", sa.String(8), nullable=False),
    sa.Column("disposition", sa.String(32), nullable=False),
    sa.Column("call_id", sa.String(36), nullable=False),
    #: How many times this key was asked for: 1 unless a step ran twice.
    sa.Column("requests", sa.Integer(), nullable=False),
    sa.Column("placed_at", sa.DateTime(timezone=True), nullable=False),
)


def answer(idempotency_key: str, channel: str) -> dict[str, Any]:
    """The agent's answer: a deterministic function of the idempotency key (and the channel)."""
    call_id = str(uuid.uuid5(_CALL_NAMESPACE, idempotency_key))
    if channel == "TEXT":
        return {"callId": call_id, "disposition": "TEXT_CONSENT", "status": "delivered"}
    return {"callId": call_id, "disposition": "NO_ANSWER", "status": "no-answer"}


class LedgerAgent:
    """A simulated agent that records each placement once, durably, under its idempotency key."""

    def __init__(self, url: str, pool_size: int) -> None:
        self.engine = sa.create_engine(
            sqlalchemy_url(url), pool_size=pool_size, max_overflow=0, pool_timeout=60
        )
        if self.engine.dialect.name == "sqlite":
            sa.event.listen(self.engine, "connect", _sqlite_busy_timeout)
            self._insert: Callable[..., Any] = sqlite_dialect.insert
        else:
            self._insert = postgresql.insert
        _ledger_metadata.create_all(self.engine)

    def place(self, execution_id: str, step: int, channel: str) -> dict[str, Any]:
        key = f"{execution_id}:{step}"
        reply = answer(key, channel)
        statement = self._insert(placements).values(
            idempotency_key=key,
            execution_id=execution_id,
            step=step,
            channel=channel,
            disposition=reply["disposition"],
            call_id=reply["callId"],
            requests=1,
            placed_at=datetime.now(UTC),
        )
        statement = statement.on_conflict_do_update(
            index_elements=[placements.c.idempotency_key],
            set_={"requests": placements.c.requests + 1},
        )
        with self.engine.begin() as conn:
            conn.execute(statement)
        return reply

    def tally(self) -> tuple[int, int, int]:
        """Rows, distinct executions, and extra asks (duplicates) in the ledger."""
        with self.engine.connect() as conn:
            rows, executions, extra = conn.execute(
                sa.select(
                    sa.func.count(),
                    sa.func.count(sa.distinct(placements.c.execution_id)),
                    sa.func.coalesce(sa.func.sum(placements.c.requests - 1), 0),
                )
            ).one()
        return int(rows), int(executions), int(extra)

    def close(self) -> None:
        self.engine.dispose()


def _sqlite_busy_timeout(dbapi_conn: Any, _record: object) -> None:
    dbapi_conn.execute("PRAGMA busy_timeout=30000")


#: The agent the DBOS step asks; set for the length of one DBOS run.
_agent: LedgerAgent | None = None
_dbos_workflow: Callable[[], str] | None = None


def dbos_workflow() -> Callable[[], str]:
    """Register the DBOS workflow and step once per process (DBOS keeps a global registry)."""
    global _dbos_workflow
    if _dbos_workflow is not None:
        return _dbos_workflow
    from dbos import DBOS

    @DBOS.step(name="bench_agent_place")
    def place(execution_id: str, step: int, channel: str) -> dict[str, Any]:
        assert _agent is not None
        return _agent.place(execution_id, step, channel)

    @DBOS.workflow(name="bench_call_call_text")
    def outreach() -> str:
        execution_id = DBOS.workflow_id
        assert execution_id is not None
        disposition = ""
        for step, channel in enumerate(PLAN, start=1):
            disposition = place(execution_id, step, channel)["disposition"]
        return disposition

    _dbos_workflow = outreach
    return outreach


def sqlite_connector(path: str, pragmas: tuple[str, ...]) -> Callable[[], sqlite3.Connection]:
    def connect() -> sqlite3.Connection:
        conn = sqlite3.connect(path, check_same_thread=False)
        for pragma in pragmas:
            conn.execute(pragma)
        return conn

    return connect


def run_dbos(url: str, system: str, backend: str, n: int, args: argparse.Namespace) -> Run:
    """The job on DBOS; ``system`` is ``dbos``, or on SQLite ``dbos/wal`` or ``dbos/shipped``."""
    global _agent
    from dbos import DBOS, DBOSConfig, SetWorkflowID

    outreach = dbos_workflow()
    run = Run(backend=backend, system=system, n=n)
    config: DBOSConfig = {
        "name": "reachflow-compare",
        "system_database_url": url,
        "sys_db_pool_size": args.dbos_concurrency + 8,
        "log_level": "WARNING",
    }
    wal = system == "dbos/wal"
    if wal:
        # As our engine sets SQLite up. The journal mode persists in the file; synchronous is
        # per connection, so DBOS's engine (and the ledger's) connect through a creator.
        with contextlib.closing(sqlite3.connect(sqlite_path(url))) as conn:
            conn.execute("PRAGMA journal_mode=WAL")
        config["db_engine_kwargs"] = {
            "creator": sqlite_connector(sqlite_path(url), ("PRAGMA synchronous=NORMAL",))
        }
    try:
        _agent = LedgerAgent(url, pool_size=args.dbos_concurrency + 2)
        if wal:
            sa.event.listen(_agent.engine, "connect", _sqlite_synchronous_normal)
        DBOS(config=config)
        DBOS.launch()
        # Paused (no worker may run any) while the N workflows are enqueued.
        queue = DBOS.register_queue(
            QUEUE, worker_concurrency=0, polling_interval_sec=args.dbos_poll
        )
        started = time.perf_counter()
        handles = []
        for i in range(n):
            with SetWorkflowID(f"exec-{i:07d}"):
                handles.append(queue.enqueue(outreach))
        run.setup_seconds = time.perf_counter() - started
        started = time.perf_counter()
        DBOS.register_queue(
            QUEUE,
            worker_concurrency=args.dbos_concurrency,
            polling_interval_sec=args.dbos_poll,
            on_conflict="always_update",
        )
        results = [handle.get_result(polling_interval_sec=0.01) for handle in handles]
        run.run_seconds = time.perf_counter() - started
        run.completed = sum(1 for r in results if r == "TEXT_CONSENT")
        # Each step's result, as DBOS recorded it.
        for handle in handles:
            recorded = DBOS.list_workflow_steps(handle.workflow_id)
            run.steps += sum(
                1
                for s in recorded
                if s["function_name"].endswith("bench_agent_place") and s["output"] is not None
            )
        rows, executions, run.duplicates = _agent.tally()
        run.placements = rows
        if executions != n:
            run.problems.append(f"ledger holds {executions}/{n} executions")
    finally:
        DBOS.destroy(destroy_registry=False)
        if _agent is not None:
            _agent.close()
        _agent = None
    return run


def _sqlite_synchronous_normal(dbapi_conn: Any, _record: object) -> None:
    dbapi_conn.execute("PRAGMA synchronous=NORMAL")


# -- the run ---------------------------------------------------------------------------------


@contextlib.contextmanager
def dbos_database(backend: str) -> Iterator[str]:
    """An empty database for the DBOS side: a temporary SQLite file, or a PostgreSQL database."""
    if backend == "sqlite":
        with tempfile.TemporaryDirectory(prefix="reachflow-compare-") as folder:
            yield f"sqlite:///{Path(folder) / 'dbos.db'}"
        return
    name = f"reachflow_compare_{os.getpid()}_dbos"
    admin = sa.create_engine(sqlalchemy_url(PG_SERVER) + "/postgres", isolation_level="AUTOCOMMIT")
    try:
        with admin.connect() as conn:
            conn.exec_driver_sql(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
            conn.exec_driver_sql(f'CREATE DATABASE "{name}"')
        yield f"{PG_SERVER}/{name}"
    finally:
        with admin.connect() as conn:
            conn.exec_driver_sql(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        admin.dispose()


def database(backend: str, system: str) -> contextlib.AbstractContextManager[str]:
    if system.startswith("dbos"):
        return dbos_database(backend)
    from bench.throughput import fresh_database

    return fresh_database(backend, "compare")


def measure(backend: str, system: str, n: int, args: argparse.Namespace) -> Run:
    print(f"... {backend} / {system}: {n} executions", flush=True)
    started = time.perf_counter()
    expired: list[str] = []
    try:
        with database(backend, system) as url, deadline(args.timeout, expired):
            if system == "reachflow":
                run = run_ours(url, backend, n)
            else:
                run = run_dbos(url, system, backend, n, args)
        run.check()
    except Exception as exc:  # one side failing must not hide the other's figures
        run = Run(backend=backend, system=system, n=n)
        if expired:
            run.problems.append(expired[0])
        else:
            logging.getLogger("bench.compare").exception("%s / %s failed", backend, system)
            run.problems.append(f"{type(exc).__name__}: {exc}".splitlines()[0])
    print(f"... {backend} / {system}: {time.perf_counter() - started:.1f} s", flush=True)
    return run


COLUMNS = (
    ("backend", "{:<8}"),
    ("system", "{:<12}"),
    ("n", "{:>6}"),
    ("setup s", "{:>7.2f}"),
    ("run s", "{:>7.2f}"),
    ("exec/s", "{:>7.1f}"),
    ("steps/s", "{:>7.1f}"),
    ("e2e exec/s", "{:>10.1f}"),
    ("placements", "{:>10}"),
    ("check", "{:<5}"),
)


def row(run: Run) -> list[object]:
    return [
        run.backend,
        run.system,
        run.n,
        run.setup_seconds,
        run.run_seconds,
        run.executions_per_second,
        run.steps_per_second,
        run.e2e_executions_per_second,
        "n/a" if run.placements is None else run.placements,
        "ok" if run.ok else "FAIL",
    ]


def print_table(runs: list[Run], notes: list[str]) -> None:
    cells = [[fmt.format(v) for (_, fmt), v in zip(COLUMNS, row(r), strict=True)] for r in runs]
    widths = [max(len(name), *(len(c[i]) for c in cells)) for i, (name, _) in enumerate(COLUMNS)]
    header = "  ".join(name.rjust(w) for (name, _), w in zip(COLUMNS, widths, strict=True))
    print()
    print(header)
    print("-" * len(header))
    for line in cells:
        print("  ".join(c.rjust(w) for c, w in zip(line, widths, strict=True)))
    print()
    for theirs in runs:
        ours = next(
            (r for r in runs if r.backend == theirs.backend and r.system == "reachflow"), None
        )
        if ours is None or not theirs.system.startswith("dbos"):
            continue
        label = f"ratio reachflow/{theirs.system} on {theirs.backend}"
        if not (ours.ok and theirs.ok):
            print(f"{label}: n/a (a check failed)")
            continue
        print(
            f"{label}: "
            f"{ours.executions_per_second / theirs.executions_per_second:.2f}x exec/s (run s), "
            f"{ours.e2e_executions_per_second / theirs.e2e_executions_per_second:.2f}x "
            f"(setup + run)"
        )
    print()
    for note in notes:
        print(note)
    for run in runs:
        for problem in run.problems:
            print(f"FAIL {run.backend}/{run.system}: {problem}")


def command_output(command: list[str]) -> str:
    try:
        done = subprocess.run(command, capture_output=True, text=True, timeout=10, cwd=ROOT)
    except (OSError, subprocess.SubprocessError) as exc:
        return f"({' '.join(command)}: {exc})"
    return (done.stdout or done.stderr).strip()


def version(package: str) -> str:
    try:
        return metadata.version(package)
    except metadata.PackageNotFoundError:
        return "not installed"


def print_header(args: argparse.Namespace) -> None:
    dirty = command_output(["git", "status", "--porcelain", "--untracked-files=no"])
    print(f"uptime: {command_output(['uptime'])}")
    print(
        f"commit: {command_output(['git', 'rev-parse', '--short', 'HEAD'])}"
        f"{' (work tree has uncommitted changes)' if dirty else ''}"
    )
    print(
        f"python {platform.python_version()}, dbos {version('dbos')}, "
        f"sqlalchemy {version('sqlalchemy')}, psycopg {version('psycopg')}, "
        f"{os.cpu_count()} cpus"
    )
    print(
        f"n={args.n} db={args.db} dbos: worker_concurrency={args.dbos_concurrency}, "
        f"polling {args.dbos_poll} s, sqlite {args.dbos_sqlite}; timeout {args.timeout:.0f} s/run"
    )
    print(flush=True)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--n", type=int, default=2_000, help="executions per run")
    parser.add_argument("--db", choices=("sqlite", "postgres", "both"), default="both")
    parser.add_argument(
        "--system", choices=("reachflow", "dbos", "both"), default="both", help="which side(s)"
    )
    parser.add_argument(
        "--dbos-concurrency", type=int, default=16, help="DBOS queue worker_concurrency"
    )
    parser.add_argument(
        "--dbos-poll", type=float, default=0.01, help="DBOS queue polling interval, seconds"
    )
    parser.add_argument(
        "--dbos-sqlite",
        choices=("wal", "shipped", "both"),
        default="both",
        help="DBOS on SQLite: 'wal' sets WAL and synchronous=NORMAL as our engine does; "
        "'shipped' keeps DBOS's defaults (rollback journal, synchronous=FULL)",
    )
    parser.add_argument(
        "--timeout",
        type=float,
        default=DEFAULT_TIMEOUT_SECONDS,
        help="seconds each run may take before it is stopped and counted as failed",
    )
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.WARNING)
    # A SIGTERM unwinds like Ctrl-C, so DBOS is shut down and the databases are dropped.
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))
    print_header(args)

    notes = [
        "workflow: CALL, CALL, TEXT, no delays; the agent answers NO_ANSWER, NO_ANSWER, "
        "TEXT_CONSENT",
        "setup s: reachflow create_bulk / DBOS enqueue on a paused queue; run s: from the first "
        "tick / opening the queue to all complete",
        "exec/s = completed / run s; steps/s = recorded step results / run s; "
        "e2e = over setup + run",
        "placements: rows in the agent's durable placement ledger (reachflow simulator_calls, "
        "DBOS agent_placements); a re-sent key counts as a duplicate",
        "DBOS: a DBOS step runs at least once, so its agent upserts the placement under "
        "execution_id:step (placed once; a second ask would count as a duplicate)",
        "DBOS runs on SQLite (its system database and the ledger in one file): dbos/wal sets WAL "
        "and synchronous=NORMAL as reachflow does; dbos/shipped keeps DBOS's defaults",
    ]
    backends = ["sqlite", "postgres"] if args.db == "both" else [args.db]
    plan = []
    for backend in backends:
        if args.system in ("reachflow", "both"):
            plan.append((backend, "reachflow"))
        if args.system in ("dbos", "both"):
            if version("dbos") == "not installed":
                notes.append("DBOS is not installed (pip install -e '.[bench]'): skipped")
            elif backend == "postgres":
                plan.append((backend, "dbos"))
            else:
                modes = ["wal", "shipped"] if args.dbos_sqlite == "both" else [args.dbos_sqlite]
                plan.extend((backend, f"dbos/{mode}") for mode in modes)
    started = time.perf_counter()
    runs = [measure(backend, system, args.n, args) for backend, system in plan]
    if not runs:
        print("nothing to run")
        return 1
    print_table(runs, notes)
    print(f"total wall time {time.perf_counter() - started:.1f} s")
    print(f"uptime after: {command_output(['uptime'])}")
    return 0 if all(r.ok for r in runs) else 1


if __name__ == "__main__":
    raise SystemExit(main())
