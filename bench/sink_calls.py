"""How the sink benchmarks hand records to a sink's write path and count what the runtime wrote.

One place for the sink contract as the benchmarks use it: ``write(SinkBatch)``, the batch built the way
the runtime builds it (from the consumer config the sink declared for the records' topic).
"""

from __future__ import annotations

import asyncio
from collections.abc import Sequence
from typing import Any

from danube_connect_core import SinkBatch, SinkRecord


async def prepared_batch(sink: Any, records: Sequence[SinkRecord]) -> SinkBatch[Any]:
    """What the runtime hands ``sink.write`` for ``records`` (all of one consumer config). Built outside
    the timed write: it is the runtime's work (measured end to end), not the sink's."""
    config = next(c for c in await sink.consumer_configs() if c.topic == records[0].topic)
    return SinkBatch(config.mapping, config.topic, config.subscription, list(records))


async def write_prepared(sink: Any, batch: SinkBatch[Any]) -> None:
    """The sink's write path on a batch from :func:`prepared_batch` (every record must be written)."""
    await sink.write(batch)
    if batch.rejected or batch.retried:
        raise RuntimeError(f"benchmark batch not fully written: {batch.rejected or batch.retried}")


def counting(sink_class: type[Any]) -> type[Any]:
    """A subclass of ``sink_class`` counting written records; ``done`` is set at ``target``."""

    class Counting(sink_class):  # type: ignore[misc,valid-type]
        def __init__(self, target: int) -> None:
            super().__init__()
            self.written = 0
            self.target = target
            self.done = asyncio.Event()

        async def write(self, batch: SinkBatch[Any]) -> None:
            await super().write(batch)
            self.written += len(batch.records)
            if self.written >= self.target:
                self.done.set()

    return Counting
