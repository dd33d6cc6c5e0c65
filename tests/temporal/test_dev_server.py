from __future__ import annotations

import asyncio

from temporalio.client import Client

from reachflow.runtime.temporal.devserver import DevServer


def test_the_dev_server_answers(temporal_server: DevServer) -> None:
    async def probe() -> bool:
        client = await Client.connect(temporal_server.address, namespace="default")
        return await client.service_client.check_health()

    assert asyncio.run(probe())
