"""Topic lookup and partition discovery (Discovery service, docs/wire-contract.md §1-§2)."""

from __future__ import annotations

from dataclasses import dataclass

import grpc

from ..proto import DanubeApi_pb2 as pb
from .auth import MetadataProvider
from .errors import DanubeError, NonRetryableError
from .pool import ChannelPool
from .routing import filter_partitions


@dataclass(frozen=True, slots=True)
class BrokerAddress:
    """Where a topic lives.

    ``connect_url`` is the address to dial; ``broker_url`` the owning broker. When ``proxy`` is set the
    client dials ``connect_url`` (a proxy) and names ``broker_url`` in the ``x-danube-broker-url`` header.
    """

    connect_url: str
    broker_url: str
    proxy: bool = False

    @property
    def proxy_header(self) -> str | None:
        """Value of ``x-danube-broker-url`` for RPCs to this address, or None."""
        return self.broker_url if self.proxy and self.broker_url else None


class Lookup:
    """Resolves topics to brokers through the client's service URL."""

    def __init__(self, service_url: str, pool: ChannelPool, auth: MetadataProvider, timeout_s: float) -> None:
        self._service_url = service_url
        self._pool = pool
        self._auth = auth
        self._timeout_s = timeout_s
        self._request_ids = 0

    def _next_id(self) -> int:
        self._request_ids += 1
        return self._request_ids

    async def lookup(self, topic: str) -> BrokerAddress:
        """The broker owning ``topic``.

        Connect and Redirect both mean "use connect_url" for a client. A Failed answer or NOT_FOUND (topic
        not created yet: producers auto-create it) falls back to the service URL, like the official clients.
        Transport errors propagate so callers can retry them.
        """
        stubs = self._pool.get(self._service_url).broker
        request = pb.TopicLookupRequest(request_id=self._next_id(), topic=topic)
        try:
            response = await stubs.topic_lookup(
                request, metadata=await self._auth.metadata(), timeout=self._timeout_s
            )
        except grpc.aio.AioRpcError as err:
            if err.code() == grpc.StatusCode.NOT_FOUND:
                return BrokerAddress(self._service_url, self._service_url)
            raise
        if response.response_type == pb.TopicLookupResponse.Failed or not response.connect_url:
            return BrokerAddress(self._service_url, self._service_url)
        broker_url = response.broker_url or response.connect_url
        return BrokerAddress(response.connect_url, broker_url, bool(response.proxy))

    async def partitions(self, topic: str) -> list[str]:
        """The topics to read for ``topic``: ``[topic]``, or its exact ``-part-N`` partitions in order.

        Raises NonRetryableError when the topic does not exist.
        """
        stubs = self._pool.get(self._service_url).broker
        request = pb.TopicLookupRequest(request_id=self._next_id(), topic=topic)
        response = await stubs.topic_partitions(
            request, metadata=await self._auth.metadata(), timeout=self._timeout_s
        )
        names = filter_partitions(topic, list(response.partitions))
        if not names:
            raise NonRetryableError(f"topic {topic} does not exist", code=grpc.StatusCode.NOT_FOUND)
        return names


def check_topic_name(topic: str) -> None:
    """Reject names that are not ``/namespace/topic`` (the broker would answer INVALID_ARGUMENT)."""
    parts = topic.split("/")
    if len(parts) != 3 or parts[0] != "" or not parts[1] or not parts[2]:
        raise DanubeError(f"invalid topic name {topic!r}: expected /namespace/topic")
