"""An in-memory sink: collects what the runtime wrote (tests, benchmarks)."""

from __future__ import annotations

import asyncio
from typing import Any

from danube_connect_core.config import ConnectorConfig
from danube_connect_core.connector import SinkConnector
from danube_connect_core.consumer_config import ConsumerConfig
from danube_connect_core.records import SinkRecord
from danube_connect_core.sink_batch import SinkBatch

__all__ = ["MemorySink"]


class MemorySink(SinkConnector):
    """Keeps every written record in :attr:`records`; :meth:`wait_for` waits for a count."""

    name = "memory"

    def __init__(self, consumers: list[ConsumerConfig]) -> None:
        self.consumers = consumers
        self.records: list[SinkRecord] = []
        self.batches: list[int] = []
        self._changed = asyncio.Event()

    async def initialize(self, config: ConnectorConfig) -> None:
        pass

    async def consumer_configs(self) -> list[ConsumerConfig]:
        return list(self.consumers)

    async def write(self, batch: SinkBatch[Any]) -> None:
        self.records.extend(batch.records)
        self.batches.append(len(batch.records))
        self._changed.set()

    async def wait_for(self, count: int, within: float = 30.0) -> list[SinkRecord]:
        """Wait until at least ``count`` records were written (TimeoutError after ``within`` seconds)."""
        async with asyncio.timeout(within):
            while len(self.records) < count:
                self._changed.clear()
                await self._changed.wait()
        return self.records
