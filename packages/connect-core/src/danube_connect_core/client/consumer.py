"""Consumer: partition discovery, one stream per partition, endless reconnection, ack/nack, backpressure.

Delivery semantics
------------------
On a reliable topic the broker delivers each message at least once: a message is redelivered when it is
not acknowledged within the broker's ack timeout, when it is nacked, or when the consumer goes away before
acking it (including across a broker restart). So acknowledge a message only after its effect is durable
(invariant 1) and make the effect idempotent, keyed by (partition_topic, offset) (invariant
2). A lost ack is harmless: the broker redelivers. :meth:`Consumer.ack` therefore never raises for broker
trouble; it retries transient failures a bounded number of times and reports the outcome as a bool.
On a non-reliable topic delivery is at-most-once and acks are ignored by the broker.

Resilience: after the initial subscription (which fails with a clear error if the broker is absent or
refuses), each partition's stream is re-opened and re-subscribed with backoff for as long as the consumer
is open, however long the broker is away, and a health check every ``health_interval_s`` makes the consumer
re-subscribe when the broker no longer knows it. While the broker is away the client logs a few lines per
second at most.

Backpressure: received messages go through one bounded queue (``queue_size``). When the application stops
calling :meth:`receive`, the stream readers stop reading, gRPC flow control stops the broker, and memory
stays bounded (invariant 3). The broker also caps unacked messages per subscription.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Sequence

import grpc

from danube_connect_core.subscription import SubscriptionType

from ..proto import DanubeApi_pb2 as pb
from .context import ClientContext
from .errors import ClientClosed, DanubeError, describe_rpc_error
from .health import CONSUMER, health_loop, is_closed_by_broker
from .lookup import BrokerAddress
from .messages import ReceivedMessage
from .options import RetryPolicy
from .retry import call_with_retry
from .routing import partition_index

_STABLE_STREAM_S = 5.0
"""A stream that lived this long (or delivered a message) resets the reconnect backoff."""


class _MovedError(Exception):
    """An ack or nack for a broker the partition's consumer has left (it re-subscribed elsewhere)."""


class _Closed:
    """Queue sentinel: the consumer was closed."""


_CLOSED = _Closed()


class _PartitionConsumer:
    """Subscription and stream of one topic or partition; reconnects forever until closed."""

    def __init__(
        self,
        ctx: ClientContext,
        owner: Consumer,
        topic: str,
        partition: int | None,
        queue: asyncio.Queue[ReceivedMessage | _Closed],
    ) -> None:
        self._ctx = ctx
        self._owner = owner
        self.topic = topic
        self.partition = partition
        self._queue = queue
        self.consumer_id: int | None = None
        self.address: BrokerAddress | None = None
        self._call: grpc.aio.UnaryStreamCall[pb.ReceiveRequest, pb.StreamMessage] | None = None
        self._resubscribe_requested = False
        self._request_id = 0
        self.task: asyncio.Task[None] | None = None

    def _next_id(self) -> int:
        self._request_id += 1
        return self._request_id

    async def subscribe(self, *, wait_for_ready: bool = False) -> None:
        """One lookup + Subscribe round. Raises AioRpcError on failure."""
        owner = self._owner
        address = await self._ctx.lookup.lookup(self.topic)
        stubs = self._ctx.pool.get(address.connect_url).broker
        request = pb.ConsumerRequest(
            request_id=self._next_id(),
            topic_name=self.topic,
            consumer_name=owner.consumer_name,
            subscription=owner.subscription,
            subscription_type=owner.subscription_type.wire,  # type: ignore[arg-type]
            key_filters=list(owner.key_filters),
        )
        response = await stubs.subscribe(
            request,
            metadata=await self._ctx.auth.metadata(address.proxy_header),
            timeout=self._ctx.options.rpc_timeout_s,
            wait_for_ready=wait_for_ready,
        )
        self.address = address
        self.consumer_id = response.consumer_id

    def start(self) -> None:
        self.task = asyncio.create_task(self._run(), name=f"danube-consumer:{self.topic}")

    def request_resubscribe(self) -> None:
        """Called by the health check on CLOSE: end the current stream and subscribe again."""
        self._resubscribe_requested = True
        call = self._call
        if call is not None:
            call.cancel()

    async def _run(self) -> None:
        """Stream until closed; on any end or error, back off and subscribe again (forever)."""
        attempt = 0
        need_subscribe = False
        owner = self._owner
        log = self._ctx.log
        policy = owner.retry
        while True:
            started = time.monotonic()
            delivered = False
            try:
                if need_subscribe:
                    await self.subscribe(wait_for_ready=True)
                    log.info("consumer %s re-subscribed to %s", owner.consumer_name, self.topic)
                need_subscribe = True
                assert self.address is not None and self.consumer_id is not None
                stubs = self._ctx.pool.get(self.address.connect_url).broker
                call = stubs.receive_messages(
                    pb.ReceiveRequest(request_id=self._next_id(), consumer_id=self.consumer_id),
                    metadata=await self._ctx.auth.metadata(self.address.proxy_header),
                )
                self._call = call
                broker_url = self.address.connect_url
                async for message in call:
                    delivered = True
                    received = ReceivedMessage.from_proto(
                        message, owner.topic, self.topic, self.partition, owner.subscription
                    )
                    received.broker_url = broker_url
                    await self._queue.put(received)
                log.info("consumer %s: stream of %s ended; re-subscribing", owner.consumer_name, self.topic)
            except asyncio.CancelledError:
                task = asyncio.current_task()
                if (task is not None and task.cancelling()) or not self._resubscribe_requested:
                    raise
                log.info(
                    "consumer %s: re-subscribing to %s on broker request", owner.consumer_name, self.topic
                )
            except grpc.aio.AioRpcError as err:
                if self._ctx.pool_closed():
                    return
                log.warning(
                    "consumer %s on %s: %s; reconnecting",
                    owner.consumer_name,
                    self.topic,
                    describe_rpc_error(err),
                )
            except Exception as err:  # never let one partition's reader die silently
                log.warning(
                    "consumer %s on %s: unexpected error %r; reconnecting",
                    owner.consumer_name,
                    self.topic,
                    err,
                )
            finally:
                self._call = None
            self._resubscribe_requested = False
            if delivered or time.monotonic() - started >= _STABLE_STREAM_S:
                attempt = 0
            await asyncio.sleep(policy.backoff_s(attempt))
            attempt += 1

    async def check_health(self) -> None:
        address, consumer_id = self.address, self.consumer_id
        if address is None or consumer_id is None or self._call is None:
            return  # not streaming: the run loop is already reconnecting
        if await is_closed_by_broker(self._ctx, address, CONSUMER, consumer_id):
            self._ctx.log.info("consumer %s on %s: broker says CLOSE", self._owner.consumer_name, self.topic)
            self.request_resubscribe()

    async def _send_settle(self, request: pb.AckRequest | pb.NackRequest, broker_url: str) -> object:
        """One Ack or Nack RPC to the partition's broker; raises _MovedError when it moved since."""
        address = self.address
        if address is None or (broker_url and address.connect_url != broker_url):
            # Re-subscribed on another broker (the topic moved in a cluster). Its log offsets are not
            # the old broker's, so the ack must not go there; the old broker is gone or no longer
            # serves the topic. Whatever was not acked is redelivered by the topic's owner.
            raise _MovedError(f"{self.topic} is now served by {address.connect_url if address else '-'}")
        stubs = self._ctx.pool.get(address.connect_url).broker
        metadata = await self._ctx.auth.metadata(address.proxy_header)
        timeout = self._ctx.options.rpc_timeout_s
        if isinstance(request, pb.AckRequest):
            return await stubs.ack(request, metadata=metadata, timeout=timeout)
        return await stubs.nack(request, metadata=metadata, timeout=timeout)

    async def settle(self, request: pb.AckRequest | pb.NackRequest, what: str, broker_url: str) -> bool:
        """Ack or nack a message received from ``broker_url``; False when it could not be delivered.

        The first attempt is one plain RPC (a sink acks every message: no retry machinery on the common
        path); after any gRPC failure the request goes through :func:`call_with_retry` (acks and nacks are
        idempotent, so sending one again is safe; the retry policy bounds the attempts).
        """
        try:
            try:
                await self._send_settle(request, broker_url)
                return True
            except grpc.aio.AioRpcError:
                pass  # sorted (transient, closing, permanent) and sent again by the bounded retry below
            await call_with_retry(
                lambda: self._send_settle(request, broker_url),
                self._owner.retry,
                f"{what} on {self.topic}",
                self._ctx.log,
                closing=self._ctx.pool_closed,
            )
            return True
        except _MovedError as err:
            self._ctx.log.info("%s on %s dropped (the broker will redeliver): %s", what, self.topic, err)
            return False
        except DanubeError as err:
            self._ctx.log.warning(
                "%s on %s not delivered (the broker will redeliver): %s", what, self.topic, err
            )
            return False


class Consumer:
    """Receives from a topic: every partition of a partitioned topic, merged into one bounded queue.

    Created with :meth:`DanubeClient.subscribe`. See the module docstring for delivery semantics.
    ``receive()`` or ``async for message in consumer``; then :meth:`ack` or :meth:`nack` each message.
    """

    def __init__(
        self,
        ctx: ClientContext,
        topic: str,
        subscription: str,
        consumer_name: str,
        subscription_type: SubscriptionType,
        key_filters: Sequence[str],
        queue_size: int,
        retry: RetryPolicy,
    ) -> None:
        if queue_size < 1:
            raise ValueError("queue_size must be >= 1")
        self._ctx = ctx
        self.topic = topic
        self.subscription = subscription
        self.consumer_name = consumer_name
        self.subscription_type = subscription_type
        self.key_filters = tuple(key_filters)
        self.retry = retry
        self._queue: asyncio.Queue[ReceivedMessage | _Closed] = asyncio.Queue(maxsize=queue_size)
        self._parts: dict[str, _PartitionConsumer] = {}
        self._health_task: asyncio.Task[None] | None = None
        self._closed = False
        self._ack_id = 0

    @property
    def partition_topics(self) -> list[str]:
        return list(self._parts)

    async def _start(self) -> None:
        """Discover partitions and subscribe to each, within the retry policy; then start the readers."""
        ctx = self._ctx
        what = f"subscribe {self.consumer_name!r} to {self.topic}"
        names = await call_with_retry(lambda: ctx.lookup.partitions(self.topic), self.retry, what, ctx.log)
        for name in names:
            index = None if name == self.topic else partition_index(self.topic, name)
            self._parts[name] = _PartitionConsumer(ctx, self, name, index, self._queue)
        try:
            await asyncio.gather(
                *(
                    call_with_retry(p.subscribe, self.retry, f"{what} ({p.topic})", ctx.log)
                    for p in self._parts.values()
                )
            )
        except BaseException:
            self._closed = True
            raise
        for part in self._parts.values():
            part.start()
        self._health_task = asyncio.create_task(
            health_loop(ctx, f"consumer {self.consumer_name} on {self.topic}", self._check_health),
            name=f"danube-consumer-health:{self.topic}",
        )

    async def _check_health(self) -> None:
        # one partition's failure must not skip the others
        results = await asyncio.gather(
            *(p.check_health() for p in self._parts.values()), return_exceptions=True
        )
        for result in results:
            if isinstance(result, BaseException):
                raise result

    async def receive(self) -> ReceivedMessage:
        """The next message (waits). Raises :class:`ClientClosed` once the consumer is closed."""
        item = await self._queue.get()
        if isinstance(item, _Closed):
            self._queue.put_nowait(item)  # wake the next waiter too
            raise ClientClosed(f"consumer {self.consumer_name} is closed")
        return item

    def receive_nowait(self) -> ReceivedMessage | None:
        """The next message if one is already queued, else None (never waits). Raises
        :class:`ClientClosed` once the consumer is closed. Lets a caller take a burst of queued messages
        without one wait (and its futures) per message."""
        try:
            item = self._queue.get_nowait()
        except asyncio.QueueEmpty:
            return None
        if isinstance(item, _Closed):
            self._queue.put_nowait(item)  # wake the next waiter too
            raise ClientClosed(f"consumer {self.consumer_name} is closed")
        return item

    def __aiter__(self) -> Consumer:
        return self

    async def __anext__(self) -> ReceivedMessage:
        try:
            return await self.receive()
        except ClientClosed:
            raise StopAsyncIteration from None

    def _part_of(self, message: ReceivedMessage) -> _PartitionConsumer:
        part = self._parts.get(message.partition_topic)
        if part is None:
            raise DanubeError(f"message from {message.partition_topic} does not belong to this consumer")
        return part

    async def ack(self, message: ReceivedMessage) -> bool:
        """Acknowledge ``message``; True when the broker confirmed it.

        Transient failures are retried within the retry policy; if the ack still cannot be delivered it is
        logged and False returned: the broker redelivers the message later, so this never raises for
        broker trouble.
        """
        self._ack_id += 1
        request = pb.AckRequest(
            request_id=self._ack_id, msg_id=message.msg_id, subscription_name=self.subscription
        )
        return await self._part_of(message).settle(request, "ack", message.broker_url)

    async def nack(
        self, message: ReceivedMessage, delay_ms: int | None = None, reason: str | None = None
    ) -> bool:
        """Negatively acknowledge ``message``: the broker redelivers it after ``delay_ms`` (at least 1 s).

        Same failure handling as :meth:`ack`.
        """
        self._ack_id += 1
        request = pb.NackRequest(
            request_id=self._ack_id,
            msg_id=message.msg_id,
            subscription_name=self.subscription,
            delay_ms=delay_ms,
            reason=reason,
        )
        return await self._part_of(message).settle(request, "nack", message.broker_url)

    async def close(self) -> None:
        """Stop every stream and the health loop; pending :meth:`receive` calls raise ClientClosed.

        Messages received but not acknowledged are redelivered by the broker (to another consumer of a
        shared subscription at once, otherwise when this consumer subscribes again or after the ack timeout).
        """
        if self._closed and self._health_task is None:
            return
        self._closed = True
        tasks = [p.task for p in self._parts.values() if p.task is not None]
        if self._health_task is not None:
            tasks.append(self._health_task)
            self._health_task = None
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        for part in self._parts.values():
            part.task = None
        while not self._queue.empty():
            self._queue.get_nowait()
        self._queue.put_nowait(_CLOSED)

    async def __aenter__(self) -> Consumer:
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.close()
