"""Producer: partitions, routing, schema stamping, a bounded in-flight window, retries, re-creation.

Delivery semantics
------------------
:meth:`Producer.send` returns only after the broker acknowledged the message. On a *reliable* producer the
broker acknowledges after appending to its durable log, so a returned :class:`MessageId` means the message
is stored (invariant 1: callers may acknowledge upstream then). On a non-reliable producer
the broker keeps messages in memory only and may drop them (at-most-once end to end).

Failures are retried at most ``RetryPolicy.max_retries`` times with exponential backoff and jitter:
DEADLINE_EXCEEDED and RESOURCE_EXHAUSTED are retried as they are; NOT_FOUND (the broker lost the producer,
e.g. after a restart), UNAVAILABLE (the broker is gone: in a cluster its topics move to another broker) and a
CLOSE health status re-create the producer first, looking the topic up again. A retried
message whose first attempt reached the broker before the connection broke can be stored twice:
delivery is at-least-once, never at-most-once, for reliable topics. When retries run out, ``send`` raises
:class:`RetriesExhausted` and the producer stays usable: a later ``send`` tries again. Other statuses
(PERMISSION_DENIED, INVALID_ARGUMENT, FAILED_PRECONDITION, ALREADY_EXISTS, UNAUTHENTICATED, ...) raise
:class:`NonRetryableError` at once.

Ordering: each partition has a window of ``max_in_flight`` unacknowledged sends. With 1 (the default)
messages of a partition are written strictly in the order ``send`` was called, retries included. A larger
window keeps up to that many sends on the wire at once, which hides the round trip (one unary RPC per
message) and multiplies throughput, but a retried message can then land after messages sent later.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Mapping
from dataclasses import dataclass

import grpc

from ..proto import DanubeApi_pb2 as pb
from .auth import Metadata
from .context import ClientContext
from .errors import (
    Action,
    ClientClosed,
    DanubeError,
    NonRetryableError,
    RetriesExhausted,
    classify,
    describe_rpc_error,
)
from .health import PRODUCER, health_loop, is_closed_by_broker
from .lookup import BrokerAddress
from .messages import MessageId, SchemaReference
from .options import RetryPolicy
from .routing import PartitionRouter, partition_topic
from .rpc import BrokerStubs


@dataclass(slots=True)
class _Attachment:
    """A producer as the broker knows it; replaced whole when the producer is re-created."""

    producer_id: int
    address: BrokerAddress
    stubs: BrokerStubs
    metadata: Metadata | None
    """Precomputed metadata when it does not change per RPC (no token callable)."""
    stale: bool = False


class _PartitionProducer:
    """The producer of one topic or partition: its window, retry loop and health polling."""

    def __init__(
        self,
        ctx: ClientContext,
        topic: str,
        partition: int | None,
        name: str,
        reliable: bool,
        schema: pb.SchemaReference | None,
        schema_ids: tuple[int, int] | None,
        max_in_flight: int,
        retry: RetryPolicy,
    ) -> None:
        self._ctx = ctx
        self.topic = topic
        self.partition = partition
        self.name = name
        self._reliable = reliable
        self._schema = schema
        self._schema_ids = schema_ids
        self._retry = retry
        self._window_size = max_in_flight
        self._window = asyncio.Semaphore(max_in_flight)
        self._attachment: _Attachment | None = None
        self._attach_lock = asyncio.Lock()
        self._request_id = 0
        self._closing = False
        self._health_task: asyncio.Task[None] | None = None

    @property
    def producer_id(self) -> int | None:
        return self._attachment.producer_id if self._attachment else None

    async def create(self) -> None:
        """Attach to the broker, retrying transient failures within the policy."""
        attempt = 0
        while True:
            try:
                await self._attach()
                break
            except grpc.aio.AioRpcError as err:
                code = err.code()
                action = classify(code)
                if action is Action.FAIL:
                    raise NonRetryableError(
                        f"create producer {self.name!r} on {self.topic} failed: {describe_rpc_error(err)}",
                        code=code,
                    ) from err
                if attempt >= self._retry.max_retries:
                    raise RetriesExhausted(
                        f"create producer {self.name!r} on {self.topic} failed after {attempt + 1} attempts: "
                        f"{describe_rpc_error(err)} (is the broker at {self._ctx.service_url} running?)",
                        attempts=attempt + 1,
                        code=code,
                    ) from err
                delay = self._retry.backoff_s(attempt)
                self._ctx.log.warning(
                    "create producer %s on %s: %s; retry %d/%d in %.2fs",
                    self.name,
                    self.topic,
                    describe_rpc_error(err),
                    attempt + 1,
                    self._retry.max_retries,
                    delay,
                )
                attempt += 1
                await asyncio.sleep(delay)
        self._health_task = asyncio.create_task(
            health_loop(self._ctx, f"producer {self.name} on {self.topic}", self._check_health),
            name=f"danube-producer-health:{self.topic}",
        )

    async def _attach(self) -> _Attachment:
        """One CreateProducer round (lookup included). Raises AioRpcError on failure."""
        address = await self._ctx.lookup.lookup(self.topic)
        stubs = self._ctx.pool.get(address.connect_url).broker
        request = pb.ProducerRequest(
            request_id=0,
            producer_name=self.name,
            topic_name=self.topic,
            schema_ref=self._schema,
            producer_access_mode=pb.Shared,
            dispatch_strategy=pb.Reliable if self._reliable else pb.NonReliable,
        )
        response = await stubs.create_producer(
            request,
            metadata=await self._ctx.auth.metadata(address.proxy_header),
            timeout=self._ctx.options.rpc_timeout_s,
        )
        auth = self._ctx.auth
        static = auth.static_metadata(address.proxy_header) if auth.is_static else None
        self._attachment = _Attachment(response.producer_id, address, stubs, static)
        return self._attachment

    async def _current(self) -> _Attachment:
        attachment = self._attachment
        if attachment is not None and not attachment.stale:
            return attachment
        async with self._attach_lock:
            attachment = self._attachment
            if attachment is not None and not attachment.stale:
                return attachment  # another send re-created it while we waited
            self._ctx.log.info("re-creating producer %s on %s", self.name, self.topic)
            return await self._attach()

    async def _check_health(self) -> None:
        attachment = self._attachment
        if attachment is None or attachment.stale:
            return
        if await is_closed_by_broker(self._ctx, attachment.address, PRODUCER, attachment.producer_id):
            self._ctx.log.info("producer %s on %s: broker says CLOSE; will re-create", self.name, self.topic)
            attachment.stale = True

    async def send(self, payload: bytes, attributes: Mapping[str, str] | None, key: str | None) -> MessageId:
        if self._closing:
            raise ClientClosed(f"producer {self.name} is closed")
        async with self._window:
            self._request_id += 1
            request_id = self._request_id
            message = pb.StreamMessage(
                request_id=request_id,
                payload=payload,
                publish_time=int(time.time() * 1000),
                producer_name=self.name,
                attributes=attributes,
                routing_key=key,
            )
            if self._schema_ids is not None:
                message.schema_id, message.schema_version = self._schema_ids
            attempt = 0
            timeout = self._ctx.options.rpc_timeout_s
            while True:
                try:
                    attachment = await self._current()
                    msg_id = message.msg_id
                    msg_id.producer_id = attachment.producer_id
                    msg_id.topic_name = self.topic
                    msg_id.broker_addr = attachment.address.broker_url
                    metadata = attachment.metadata
                    if metadata is None:
                        metadata = await self._ctx.auth.metadata(attachment.address.proxy_header)
                    await attachment.stubs.send_message(message, metadata=metadata, timeout=timeout)
                    return MessageId(self.topic, self.partition, request_id, attachment.producer_id)
                except grpc.aio.AioRpcError as err:
                    code = err.code()
                    action = classify(code)
                    if code == grpc.StatusCode.CANCELLED:
                        if self._ctx.pool_closed():
                            raise ClientClosed("send cancelled: the client was closed", code=code) from err
                        # Cancelled by the server or the transport while the client is open (seen: a
                        # broker shedding ~1,000+ concurrent calls). Its outcome is as unknown as after
                        # UNAVAILABLE, so it is retried the same way (at-least-once).
                        action = Action.RETRY
                    if action is Action.FAIL:
                        raise NonRetryableError(
                            f"send to {self.topic} failed: {describe_rpc_error(err)}", code=code
                        ) from err
                    # UNAVAILABLE re-creates too: in a Danube cluster the topic of a stopped broker moves
                    # to a live one, and only a new lookup finds it (retrying the dead broker's channel
                    # never succeeds). On a single broker the re-creation just waits for it to return.
                    if (action is Action.RECREATE or code == grpc.StatusCode.UNAVAILABLE) and (
                        self._attachment is not None
                    ):
                        self._attachment.stale = True
                    if attempt >= self._retry.max_retries:
                        raise RetriesExhausted(
                            f"send to {self.topic} failed after {attempt + 1} attempts: "
                            f"{describe_rpc_error(err)}",
                            attempts=attempt + 1,
                            code=code,
                        ) from err
                    delay = self._retry.backoff_s(attempt)
                    self._ctx.log.warning(
                        "send to %s: %s; retry %d/%d in %.2fs",
                        self.topic,
                        describe_rpc_error(err),
                        attempt + 1,
                        self._retry.max_retries,
                        delay,
                    )
                    attempt += 1
                    await asyncio.sleep(delay)

    async def close(self) -> None:
        """Refuse new sends, wait for the ones already called, stop health polling."""
        self._closing = True
        for _ in range(self._window_size):
            await self._window.acquire()
        if self._health_task is not None:
            self._health_task.cancel()
            await asyncio.gather(self._health_task, return_exceptions=True)
            self._health_task = None


class Producer:
    """Publishes to a topic, or to the partitions ``<topic>-part-0 .. -part-{N-1}`` of a partitioned one.

    Created with :meth:`DanubeClient.create_producer`. See the module docstring for delivery semantics,
    retries and ordering. Partition choice: FNV-1a 64-bit hash of ``key`` modulo N when a key is given
    (identical to the official clients, so keyed data lands on the same partition from any client),
    round-robin otherwise. The key is also sent as the message's ``routing_key`` (used by Key-Shared
    subscriptions).
    """

    def __init__(
        self, topic: str, name: str, partitions: int | None, parts: list[_PartitionProducer]
    ) -> None:
        self.topic = topic
        self.name = name
        self.partitions = partitions
        self._parts = parts
        self._router = PartitionRouter(partitions) if partitions else None
        self._closed = False

    @classmethod
    async def _create(
        cls,
        ctx: ClientContext,
        topic: str,
        name: str,
        *,
        partitions: int | None,
        reliable: bool,
        schema: SchemaReference | None,
        max_in_flight: int,
        retry: RetryPolicy,
    ) -> Producer:
        if max_in_flight < 1:
            raise ValueError("max_in_flight must be >= 1")
        if partitions is not None and partitions < 0:
            raise ValueError("partitions must be >= 0")
        schema_proto = schema.to_proto() if schema is not None else None
        schema_ids = await resolve_schema(ctx, schema) if schema is not None else None
        targets: list[tuple[str, int | None, str]]
        if partitions:
            targets = [(partition_topic(topic, i), i, f"{name}-{i}") for i in range(partitions)]
        else:
            targets = [(topic, None, name)]
        parts = [
            _PartitionProducer(ctx, t, i, n, reliable, schema_proto, schema_ids, max_in_flight, retry)
            for t, i, n in targets
        ]
        results = await asyncio.gather(*(p.create() for p in parts), return_exceptions=True)
        errors = [r for r in results if isinstance(r, BaseException)]
        if errors:
            await asyncio.gather(*(p.close() for p in parts), return_exceptions=True)
            raise errors[0]
        return cls(topic, name, partitions or None, parts)

    async def send(
        self,
        payload: bytes,
        *,
        attributes: Mapping[str, str] | None = None,
        key: str | None = None,
    ) -> MessageId:
        """Publish ``payload``; resolves once the broker acknowledged it.

        Raises :class:`RetriesExhausted` (transient failure outlasted the retry policy; calling again is
        safe), :class:`NonRetryableError` (the broker refused it) or :class:`ClientClosed`.
        """
        if self._closed:
            raise ClientClosed(f"producer {self.name} is closed")
        if self._router is None:
            return await self._parts[0].send(payload, attributes, key)
        return await self._parts[self._router.route(key)].send(payload, attributes, key)

    @property
    def partition_topics(self) -> list[str]:
        return [p.topic for p in self._parts]

    async def close(self) -> None:
        """Stop accepting sends and wait until every send already called has resolved. Idempotent."""
        if self._closed:
            return
        self._closed = True
        await asyncio.gather(*(p.close() for p in self._parts))

    async def __aenter__(self) -> Producer:
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.close()


async def resolve_schema(ctx: ClientContext, ref: SchemaReference) -> tuple[int, int]:
    """(schema_id, version) a producer stamps on its messages for ``ref``."""
    registry = ctx.registry
    latest = await registry.get_latest(ref.subject)
    if ref.pinned_version is not None:
        if ref.pinned_version == latest.version:
            return latest.schema_id, latest.version
        if ref.pinned_version > latest.version:
            raise DanubeError(
                f"schema subject {ref.subject!r} has no version {ref.pinned_version} "
                f"(latest {latest.version})"
            )
        pinned = await registry.get_schema(latest.schema_id, ref.pinned_version)
        return pinned.schema_id, pinned.version
    if ref.min_version is not None and latest.version < ref.min_version:
        raise DanubeError(
            f"schema subject {ref.subject!r} is at version {latest.version}, "
            f"below the minimum {ref.min_version}"
        )
    return latest.schema_id, latest.version
