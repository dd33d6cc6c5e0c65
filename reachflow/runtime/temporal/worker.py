"""``reachflow temporal-worker``: a Temporal worker for the execution workflows and their
activity. Several can run at once, on many machines, against one cluster and one database."""

from __future__ import annotations

import asyncio
from concurrent.futures import ThreadPoolExecutor

from temporalio.client import Client
from temporalio.worker import Worker
from temporalio.worker.workflow_sandbox import SandboxedWorkflowRunner, SandboxRestrictions

from reachflow.runtime.embedded.engine import Engine
from reachflow.runtime.temporal.activities import ExecutionActivities
from reachflow.runtime.temporal.webhook_pump import WebhookPump
from reachflow.runtime.temporal.workflow import ExecutionWorkflow

#: The workflow sandbox re-imports a workflow's module, and every module it imports that is
#: not passed through, for each workflow run it creates. Our workflow module is deterministic
#: and keeps no state at module level, so ``reachflow`` is passed through: a profile of one
#: worker at 300 executions found 38 % of the interpreter lock spent re-importing it
#: (docs/scaling.md). The sandbox still guards the workflow's own code.
SANDBOX = SandboxedWorkflowRunner(
    restrictions=SandboxRestrictions.default.with_passthrough_modules("reachflow")
)


def build_worker(
    client: Client, engine: Engine, task_queue: str, executor: ThreadPoolExecutor
) -> Worker:
    activities = ExecutionActivities(engine)
    return Worker(
        client,
        task_queue=task_queue,
        workflows=[ExecutionWorkflow],
        activities=[activities.sync],
        activity_executor=executor,
        max_concurrent_activities=executor._max_workers,
        workflow_runner=SANDBOX,
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
    pump = WebhookPump(engine.webhooks, engine.clock)
    pump.start()
    try:
        with ThreadPoolExecutor(threads, thread_name_prefix="reachflow-activity") as executor:
            worker = build_worker(client, engine, task_queue, executor)
            if stop is None:
                await worker.run()
                return
            async with worker:
                await stop.wait()
    finally:
        pump.stop()
