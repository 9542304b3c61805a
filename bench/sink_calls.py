"""How the sink benchmarks hand records to a sink's write path and count what the runtime wrote.

One place for the sink contract as the benchmarks use it: ``write(SinkBatch)`` (the batch built from the
consumer config the sink declared for the records' topic, as the runtime builds it) where the sink has it,
else the earlier ``process_batch(records)``.
"""

from __future__ import annotations

import asyncio
from collections.abc import Sequence
from typing import Any

from danube_connect_core.records import SinkRecord


async def prepared_batch(sink: Any, records: Sequence[SinkRecord]) -> Any:
    """What the runtime hands ``sink.write`` for ``records`` (all of one consumer config), or the records
    themselves for a sink without ``write``. Built outside the timed write: it is the runtime's work."""
    if not hasattr(sink, "write"):
        return list(records)
    from danube_connect_core.sink_batch import SinkBatch

    config = next(c for c in await sink.consumer_configs() if c.topic == records[0].topic)
    return SinkBatch(config.mapping, config.topic, config.subscription, list(records))


async def write_prepared(sink: Any, batch: Any) -> None:
    """The sink's write path on a batch from :func:`prepared_batch`."""
    if hasattr(sink, "write"):
        await sink.write(batch)
        if batch.rejected or batch.retried:
            raise RuntimeError(f"benchmark batch not fully written: {batch.rejected or batch.retried}")
    else:
        await sink.process_batch(batch)


def counting(sink_class: type[Any]) -> type[Any]:
    """A subclass of ``sink_class`` counting written records; ``done`` is set at ``target``."""

    class Counting(sink_class):  # type: ignore[misc,valid-type]
        def __init__(self, target: int) -> None:
            super().__init__()
            self.written = 0
            self.target = target
            self.done = asyncio.Event()

        def _count(self, n: int) -> None:
            self.written += n
            if self.written >= self.target:
                self.done.set()

        async def write(self, batch: Any) -> None:
            await super().write(batch)
            self._count(len(batch.records))

        async def process_batch(self, records: list[SinkRecord]) -> None:
            await super().process_batch(records)
            self._count(len(records))

    return Counting
