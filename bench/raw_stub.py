"""The sink benchmarks' end-to-end floor: a raw-stub consumer that receives, writes directly and acks.

Not a test, not part of any connector. P3 compares a sink's runtime end to end with *the same pipeline built
from raw parts*: the generated gRPC stubs (no client library, no runtime), one ``Subscribe`` and one
``ReceiveMessages`` stream per partition on the same broker, batches of the same size cut the same way (as
the runtime's batcher cuts them: full, the broker's unacked window full on every partition seen, the same
maximum age, the same idle time), each batch written directly to the same target by the benchmark's own code
(decode the JSON, build the rows, one bulk write), then every message of the batch acked (acks in flight
together, the next batch read meanwhile). The ratio therefore scores what the sink runtime adds over the
broker transport and the target's own write, not the transport itself.


    drain(broker_url, topic, subscription, partitions, n, batch, write) -> messages/s

    runtime_settled(runtime, topic)   # the end of the runtime's clock: every message it took in acked

``write(messages)`` gets the batch's ``StreamMessage``s (payload bytes, ``msg_id.topic_offset``,
``msg_id.topic_name``, ``publish_time``...) and must have stored them when it returns.
"""

from __future__ import annotations

import asyncio
import itertools
import time
from collections import Counter
from collections.abc import Awaitable, Callable, Sequence
from typing import Any

import grpc
from danube_connect_core.proto import DanubeApi_pb2 as api
from danube_connect_core.proto import DanubeApi_pb2_grpc as _api_grpc

api_grpc: Any = _api_grpc

Write = Callable[[Sequence[Any]], Awaitable[None]]
#: Acks in flight at once (the runtime's consumer keeps its acks in flight too, within its window).
ACKS_IN_FLIGHT = 256


def partition_of(topic_name: str) -> int | None:
    """The partition number of ``/ns/topic-part-N`` (None for a topic without partitions)."""
    _head, sep, tail = topic_name.rpartition("-part-")
    return int(tail) if sep and tail.isdigit() else None


async def drain(
    broker_url: str,
    topic: str,
    subscription: str,
    partitions: int,
    n: int,
    batch: int,
    write: Write,
    *,
    idle_s: float = 0.02,
    max_age_s: float = 1.0,
    window: int | None = None,
) -> float:
    """Receive ``n`` messages of an existing subscription, write them in batches, ack each batch after
    its write (the acks of a batch in flight together, not awaited before the next batch is read); returns
    messages/s from the first subscribe to the last ack."""
    ids = itertools.count(1)
    channel = grpc.aio.insecure_channel(broker_url.removeprefix("http://"))
    consumers = api_grpc.ConsumerServiceStub(channel)
    names = [f"{topic}-part-{i}" for i in range(partitions)] if partitions else [topic]
    queue: asyncio.Queue[Any] = asyncio.Queue()
    streams: list[Any] = []
    acks: set[asyncio.Future[Any]] = set()

    async def pump(name: str, index: int) -> None:
        response = await consumers.Subscribe(
            api.ConsumerRequest(
                request_id=next(ids),
                topic_name=name,
                consumer_name=f"raw-floor-{index}",
                subscription=subscription,
                subscription_type=api.ConsumerRequest.Shared,
            )
        )
        call = consumers.ReceiveMessages(
            api.ReceiveRequest(request_id=next(ids), consumer_id=response.consumer_id)
        )
        streams.append(call)
        async for message in call:
            queue.put_nowait(message)

    in_flight = asyncio.Semaphore(ACKS_IN_FLIGHT)

    async def acknowledge(m: Any) -> None:
        # At most ACKS_IN_FLIGHT acks at once: the embedded broker answers some of thousands of
        # simultaneous Ack calls CANCELLED. Such an ack is sent again (acks are idempotent), as our
        # client retries it.
        async with in_flight:
            for attempt in itertools.count():
                try:
                    await consumers.Ack(
                        api.AckRequest(
                            request_id=m.request_id, msg_id=m.msg_id, subscription_name=subscription
                        )
                    )
                    return
                except grpc.aio.AioRpcError as exc:
                    retriable = exc.code() in (grpc.StatusCode.CANCELLED, grpc.StatusCode.UNAVAILABLE)
                    if not retriable or attempt >= 20:
                        raise
                    await asyncio.sleep(min(0.05 * (attempt + 1), 0.5))

    start = time.perf_counter()
    pumps = [asyncio.create_task(pump(name, i)) for i, name in enumerate(names)]
    done = 0
    try:
        while done < n:
            messages = [await queue.get()]
            first = last = time.monotonic()
            per_partition = Counter([messages[0].msg_id.topic_name])
            # cut like the runtime's batcher: size, the broker's window full on every partition seen,
            # age since the first message, idle since the last
            while len(messages) < batch:
                if window is not None and min(per_partition.values()) >= window:
                    break
                left = min(first + max_age_s, last + idle_s) - time.monotonic()
                try:
                    message = queue.get_nowait()
                except asyncio.QueueEmpty:
                    if left <= 0:
                        break
                    try:
                        message = await asyncio.wait_for(queue.get(), left)
                    except TimeoutError:
                        break
                messages.append(message)
                per_partition[message.msg_id.topic_name] += 1
                last = time.monotonic()
            await write(messages)
            for m in messages:  # acks go out together and stay in flight while the next batch is read
                ack = asyncio.ensure_future(acknowledge(m))
                acks.add(ack)
                ack.add_done_callback(acks.discard)
            done += len(messages)
        await asyncio.gather(*acks)
        return done / (time.perf_counter() - start)
    finally:
        for call in streams:
            call.cancel()
        for task in pumps:
            task.cancel()
        await asyncio.gather(*pumps, return_exceptions=True)
        await channel.close()


async def runtime_settled(runtime: Any, topic: str, *, poll_s: float = 0.01) -> None:
    """Wait until a SinkRuntime has acknowledged every message of ``topic`` it took in (its in-flight gauge
    is back at 0), so that the runtime's clock ends as the floor's does, at the last ack, not at the last
    write (the last batch's acks take a few hundred ms on the embedded broker). Polls every ``poll_s`` (each
    poll collects the runtime's metrics registry, so not much more often)."""
    metrics = runtime.metrics
    labels = {"connector": metrics.connector, "topic": topic}
    inflight = "danube_connector_inflight_messages"
    while (metrics.registry.get_sample_value(inflight, labels) or 0) > 0:  # noqa: ASYNC110 - a gauge, no event
        await asyncio.sleep(poll_s)
