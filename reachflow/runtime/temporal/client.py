"""The Temporal runtime's client side: one workflow per execution, started when the execution
is created and signalled (``changed``, carrying what changed) whenever a decision or an inbox
event changes it outside its workflow.

The application services are unchanged: they decide and persist commands (pause, resume,
cancel one, by lead, by phone; metadata) in their own transaction exactly as on the embedded
runtime, so the API answers the same; after the transaction commits, this client starts or
signals the executions' workflows, which re-read the execution and re-plan their timers.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import threading
from collections.abc import Callable, Mapping, Sequence
from concurrent.futures import Future
from contextvars import ContextVar
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from sqlalchemy import event
from sqlalchemy.engine import Connection
from temporalio.client import Client
from temporalio.common import WorkflowIDConflictPolicy
from temporalio.service import RPCError

from reachflow.domain.decider import Decision
from reachflow.runtime.embedded.engine import Engine
from reachflow.runtime.temporal.workflow import Change, ExecutionWorkflow, RunInput
from reachflow.store.executions import NewExecution
from reachflow.store.queue import NewEvent
from reachflow.store.records import ExecutionRecord
from reachflow.store.temporal_runs import set_workflow_ids

log = logging.getLogger(__name__)


@dataclass
class SyncScope:
    """The changes one ``sync`` activity makes. Its own execution's need no signal: its
    workflow re-plans from the sync's answer (a signal would cost each step a needless
    workflow task and sync). The other executions it advanced (a sync performs every due
    dispatch and feeds every due result, in batches) get one ``changed`` signal each when the
    sync ends, with the kinds merged, instead of one per transaction (profiled,
    docs/scaling.md)."""

    execution_id: str
    pending: dict[str, list[str]] = field(default_factory=dict)
    send: Callable[[dict[str, list[str]]], None] | None = None

    def flush(self) -> int:
        """Send the pending signals; how many executions they go to."""
        pending, self.pending = self.pending, {}
        if pending and self.send is not None:
            self.send(pending)
        return len(pending)


#: The sync running in this context, if any (set by the activity, read by the hooks).
SYNCING: ContextVar[SyncScope | None] = ContextVar("reachflow_syncing", default=None)


def workflow_id_of(execution_id: str) -> str:
    """An execution's ``temporalWorkflowId``."""
    return f"reachflow-execution-{execution_id}"


class TemporalRuntime:
    def __init__(self, address: str, namespace: str, task_queue: str) -> None:
        self.address = address
        self.namespace = namespace
        self.task_queue = task_queue
        self.loop = asyncio.new_event_loop()
        self._thread = threading.Thread(
            target=self.loop.run_forever, name="reachflow-temporal-client", daemon=True
        )
        self._thread.start()
        self._client: Client | None = None
        self._pending: set[Future[Any]] = set()
        self._pending_lock = threading.Lock()

    # -- the client ---------------------------------------------------------------------------

    async def client(self) -> Client:
        if self._client is None:
            self._client = await Client.connect(self.address, namespace=self.namespace)
        return self._client

    def call(self, coro: Any) -> Any:
        """Run a coroutine on the client's loop and wait for it (from any thread)."""
        return asyncio.run_coroutine_threadsafe(coro, self.loop).result()

    def _submit(self, coro: Any) -> None:
        future = asyncio.run_coroutine_threadsafe(coro, self.loop)
        with self._pending_lock:
            self._pending.add(future)
        future.add_done_callback(self._done)

    def _done(self, future: Future[Any]) -> None:
        with self._pending_lock:
            self._pending.discard(future)

    def flush(self, timeout: float = 10.0) -> None:
        """Wait for the starts and signals sent so far (tests, shutdown)."""
        with self._pending_lock:
            pending = list(self._pending)
        for future in pending:
            with contextlib.suppress(Exception):  # logged where it failed
                future.result(timeout)

    async def start(self, execution_ids: Sequence[str]) -> None:
        client = await self.client()
        for execution_id in execution_ids:
            try:
                await client.start_workflow(
                    ExecutionWorkflow.run,
                    RunInput(execution_id),
                    id=workflow_id_of(execution_id),
                    task_queue=self.task_queue,
                    id_conflict_policy=WorkflowIDConflictPolicy.USE_EXISTING,
                )
            except Exception:
                log.exception("could not start the workflow of execution %s", execution_id)

    async def poke(self, changes: Mapping[str, list[str]]) -> None:
        """Signal each execution's workflow what changed it (``changed``)."""
        client = await self.client()
        for execution_id, kinds in changes.items():
            try:
                await client.get_workflow_handle(workflow_id_of(execution_id)).signal(
                    ExecutionWorkflow.changed, Change(kinds)
                )
            except RPCError as exc:  # finished, or created on the embedded runtime
                log.debug("no workflow to poke for %s: %s", execution_id, exc)
            except Exception:
                log.exception("could not poke the workflow of execution %s", execution_id)

    # -- wiring -------------------------------------------------------------------------------

    def install(self, engine: Engine) -> None:
        """Hook the store's inserts and the engine's decisions: starts and pokes go out after
        the transaction that made them commits."""
        engine.store.executions.inserted_hooks.append(self._created)
        publish = engine.events.publish_decisions

        def publish_and_poke(
            conn: Connection, decided: Sequence[tuple[ExecutionRecord, Decision]], now: datetime
        ) -> None:
            publish(conn, decided, now)
            changes: dict[str, list[str]] = {}
            for record, decision in decided:
                changes.setdefault(record.id, []).extend(
                    [h.kind for h in decision.history] or ["decided"]
                )
            self._signal(conn, changes)

        put_events = engine.store.queue.put_events

        def put_and_poke(conn: Connection, events: Sequence[NewEvent], now: datetime) -> None:
            # An agent's report, a reply, a dispatch outcome: an event in the execution's
            # inbox, fed to ``decide`` by its workflow's next sync.
            put_events(conn, events, now)
            changes: dict[str, list[str]] = {}
            for item in events:
                changes.setdefault(item.execution_id, []).append(item.kind)
            self._signal(conn, changes)

        engine.events.publish_decisions = publish_and_poke  # type: ignore[method-assign]
        engine.store.queue.put_events = put_and_poke  # type: ignore[method-assign]

    def _signal(self, conn: Connection, changes: dict[str, list[str]]) -> None:
        """Signal what changed: after the commit; within a sync, when the sync ends."""
        scope = SYNCING.get()
        if scope is None:
            if changes:
                self._after_commit(conn, lambda: self._submit(self.poke(changes)))
            return
        changes.pop(scope.execution_id, None)
        for execution_id, kinds in changes.items():
            scope.pending.setdefault(execution_id, []).extend(kinds)
        scope.send = self.send

    def send(self, changes: dict[str, list[str]]) -> None:
        """Signal these executions' workflows (from any thread; not waited for)."""
        self._submit(self.poke(changes))

    def _created(self, conn: Connection, rows: Sequence[NewExecution], now: datetime) -> None:
        ids = [row.id for row in rows]
        set_workflow_ids(conn, [(i, workflow_id_of(i)) for i in ids])
        self._after_commit(conn, lambda: self._submit(self.start(ids)))

    @staticmethod
    def _after_commit(conn: Connection, send: Any) -> None:
        event.listen(conn, "commit", lambda _conn: send(), once=True)

    def close(self) -> None:
        self.flush()
        self.loop.call_soon_threadsafe(self.loop.stop)
        self._thread.join(5)
