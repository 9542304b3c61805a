"""Hand records to a sink's ``write`` as the runtime would, without a broker (unit tests, benchmarks)."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from danube_connect_core.connector import SinkConnector
from danube_connect_core.records import SinkRecord
from danube_connect_core.sink_batch import SinkBatch

__all__ = ["write_batch"]


async def write_batch(sink: SinkConnector, records: Sequence[SinkRecord]) -> SinkBatch[Any]:
    """``sink.write`` of ``records`` as one batch of the consumer config they belong to; returns the batch
    with the sink's reports (``rejected``, ``retried``, ``written``). Raises what ``write`` raises.

    The consumer config is the one with the first record's topic and subscription (any subscription of
    the topic when the record has none). An initialized sink is expected.
    """
    configs = await sink.consumer_configs()
    first = records[0] if records else None
    chosen = configs[0]
    if first is not None:
        same_topic = [c for c in configs if c.topic == first.topic]
        if not same_topic:
            raise ValueError(f"{type(sink).__name__} has no consumer config for {first.topic}")
        exact = [c for c in same_topic if c.subscription == first.subscription]
        chosen = (exact or same_topic)[0]
    batch: SinkBatch[Any] = SinkBatch(chosen.mapping, chosen.topic, chosen.subscription, list(records))
    await sink.write(batch)
    return batch
