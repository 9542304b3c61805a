"""DanubeClient: the entry point. Owns the channel pool and every producer and consumer it created."""

from __future__ import annotations

from collections.abc import Sequence

from danube_connect_core.subscription import SubscriptionType

from .consumer import Consumer
from .context import ClientContext
from .errors import ClientClosed
from .lookup import check_topic_name
from .messages import SchemaReference
from .options import ClientOptions, RetryPolicy
from .producer import Producer
from .schema_registry import SchemaRegistryClient


class DanubeClient:
    """Async client of a Danube broker (or cluster) at ``service_url`` (``http://host:6650``).

    Channels are pooled per broker URL; topics are looked up first and the owning broker's URL is dialled
    (with the ``x-danube-broker-url`` header when the lookup answers through a proxy). TLS/mTLS and a JWT
    bearer token (fixed or from a sync/async callable, called before every RPC) come from ``options``.

    Use as ``async with DanubeClient(url) as client:`` or call :meth:`close`, which closes every producer
    (waiting for their in-flight sends) and consumer, then every channel, leaving no task behind.
    """

    def __init__(self, service_url: str, options: ClientOptions | None = None) -> None:
        self.service_url = service_url.rstrip("/")
        self.options = options or ClientOptions()
        self._ctx = ClientContext.create(self.service_url, self.options)
        self._producers: list[Producer] = []
        self._consumers: list[Consumer] = []
        self._closed = False

    @property
    def schema_registry(self) -> SchemaRegistryClient:
        """Client of the broker's schema registry (same connection and credentials)."""
        return self._ctx.registry

    def _check_open(self) -> None:
        if self._closed:
            raise ClientClosed("the Danube client is closed")

    async def create_producer(
        self,
        topic: str,
        producer_name: str,
        *,
        partitions: int | None = None,
        reliable: bool = False,
        schema: SchemaReference | None = None,
        max_in_flight: int = 1,
        retry: RetryPolicy | None = None,
    ) -> Producer:
        """Create a producer on ``topic`` (``/namespace/topic``; the broker auto-creates it).

        ``partitions=N`` publishes to ``<topic>-part-0 .. -part-{N-1}``. ``reliable=True`` selects the
        Reliable dispatch strategy (durable, at-least-once); the default NonReliable may drop messages.
        ``schema`` is resolved to (schema_id, version) now and stamped on every message. ``max_in_flight``
        is the per-partition window (1 keeps strict order). ``retry`` overrides the client's policy.

        Raises :class:`RetriesExhausted` when the broker stays unreachable through the retry policy and
        :class:`NonRetryableError` when it refuses (bad name, strategy mismatch, permissions, ...).
        """
        self._check_open()
        check_topic_name(topic)
        producer = await Producer._create(
            self._ctx,
            topic,
            producer_name,
            partitions=partitions,
            reliable=reliable,
            schema=schema,
            max_in_flight=max_in_flight,
            retry=retry or self.options.retry,
        )
        self._producers.append(producer)
        return producer

    async def subscribe(
        self,
        topic: str,
        subscription: str,
        *,
        consumer_name: str,
        subscription_type: SubscriptionType = SubscriptionType.SHARED,
        key_filters: Sequence[str] = (),
        queue_size: int = 1000,
    ) -> Consumer:
        """Subscribe to ``topic`` (all its partitions when partitioned) and start receiving.

        A new subscription on a reliable topic starts at the latest offset: subscribe before producing.
        Raises :class:`NonRetryableError` when the topic does not exist or the broker refuses (e.g. an
        Exclusive subscription held by another consumer), :class:`RetriesExhausted` when the broker stays
        unreachable. Once subscribed, the consumer reconnects by itself forever.
        """
        self._check_open()
        check_topic_name(topic)
        consumer = Consumer(
            self._ctx,
            topic,
            subscription,
            consumer_name,
            SubscriptionType(subscription_type),
            key_filters,
            queue_size,
            self.options.retry,
        )
        try:
            await consumer._start()
        except BaseException:
            await consumer.close()
            raise
        self._consumers.append(consumer)
        return consumer

    async def close(self) -> None:
        """Close consumers, producers (waiting for in-flight sends), then the channels. Idempotent."""
        if self._closed:
            return
        self._closed = True
        producers, consumers = self._producers, self._consumers
        self._producers, self._consumers = [], []
        for consumer in consumers:
            await consumer.close()
        for producer in producers:
            await producer.close()
        await self._ctx.pool.close()

    async def __aenter__(self) -> DanubeClient:
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.close()
