"""``reachflow temporal-worker``: a Temporal worker for the execution workflows and their
activity. Several can run at once, on many machines, against one cluster and one database."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor

from temporalio.client import Client
from temporalio.service import RPCError
from temporalio.worker import Worker

from reachflow.runtime.embedded.engine import Engine
from reachflow.runtime.temporal.activities import ExecutionActivities
from reachflow.runtime.temporal.client import workflow_id_of
from reachflow.runtime.temporal.workflow import ExecutionWorkflow


def poker(client: Client, loop: asyncio.AbstractEventLoop) -> Callable[[list[str]], None]:
    """Poke executions' workflows from an activity thread (fire and forget, on the worker's
    loop): a workflow already finished is no error."""

    async def poke(execution_ids: list[str]) -> None:
        for execution_id in execution_ids:
            with contextlib.suppress(RPCError):
                await client.get_workflow_handle(workflow_id_of(execution_id)).signal(
                    ExecutionWorkflow.poke
                )

    def send(execution_ids: list[str]) -> None:
        asyncio.run_coroutine_threadsafe(poke(execution_ids), loop)

    return send


def build_worker(
    client: Client, engine: Engine, task_queue: str, executor: ThreadPoolExecutor
) -> Worker:
    activities = ExecutionActivities(engine, poker(client, asyncio.get_running_loop()))
    return Worker(
        client,
        task_queue=task_queue,
        workflows=[ExecutionWorkflow],
        activities=[activities.sync],
        activity_executor=executor,
        max_concurrent_activities=executor._max_workers,
    )


async def run_worker(
    engine: Engine,
    address: str,
    namespace: str,
    task_queue: str,
    *,
    threads: int = 32,
    stop: asyncio.Event | None = None,
) -> None:
    client = await Client.connect(address, namespace=namespace)
    with ThreadPoolExecutor(threads, thread_name_prefix="reachflow-activity") as executor:
        worker = build_worker(client, engine, task_queue, executor)
        if stop is None:
            await worker.run()
            return
        async with worker:
            await stop.wait()
