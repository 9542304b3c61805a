"""Discovery: TopicLookup (Connect here, or Redirect when advertising another URL) and TopicPartitions."""

from __future__ import annotations

import grpc

from danube_embedded_broker.core import BrokerCore
from danube_embedded_broker.errors import BrokerError
from danube_embedded_broker.wire import pb, pb_grpc


class DiscoveryService(pb_grpc.DiscoveryServicer):  # type: ignore[misc, unused-ignore]
    def __init__(self, core: BrokerCore, redirect: bool = False) -> None:
        self.core = core
        lookup = pb.TopicLookupResponse.LookupType
        self._lookup_type = lookup.Redirect if redirect else lookup.Connect

    async def TopicLookup(
        self, request: pb.TopicLookupRequest, context: grpc.aio.ServicerContext[object, object]
    ) -> pb.TopicLookupResponse:
        """Connect with this broker's URL (Redirect when ``advertised_url`` names another broker).

        INVALID_ARGUMENT for a malformed topic name, NOT_FOUND for a topic this broker does not hold.
        """
        try:
            url = self.core.lookup(request.topic)
        except BrokerError as exc:
            await context.abort(exc.code, exc.message)
        return pb.TopicLookupResponse(
            request_id=request.request_id,
            response_type=self._lookup_type,
            connect_url=url,
            broker_url=url,
            proxy=False,
        )

    async def TopicPartitions(
        self, request: pb.TopicLookupRequest, context: grpc.aio.ServicerContext[object, object]
    ) -> pb.TopicPartitionsResponse:
        """``[topic]``, else its ``-part-N`` topics, else ``[]``; INVALID_ARGUMENT for a bad name."""
        try:
            partitions = self.core.partitions(request.topic)
        except BrokerError as exc:
            await context.abort(exc.code, exc.message)
        return pb.TopicPartitionsResponse(request_id=request.request_id, partitions=partitions)
