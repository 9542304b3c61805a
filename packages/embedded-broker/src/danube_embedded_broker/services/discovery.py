"""Discovery: TopicLookup (always Connect to this broker) and TopicPartitions."""

from __future__ import annotations

import grpc

from danube_embedded_broker.core import BrokerCore
from danube_embedded_broker.errors import BrokerError
from danube_embedded_broker.wire import pb, pb_grpc


class DiscoveryService(pb_grpc.DiscoveryServicer):  # type: ignore[misc, unused-ignore]
    def __init__(self, core: BrokerCore) -> None:
        self.core = core

    async def TopicLookup(
        self, request: pb.TopicLookupRequest, context: grpc.aio.ServicerContext[object, object]
    ) -> pb.TopicLookupResponse:
        """Connect with this broker's URL; INVALID_ARGUMENT for a malformed topic name."""
        try:
            url = self.core.lookup(request.topic)
        except BrokerError as exc:
            await context.abort(exc.code, exc.message)
        return pb.TopicLookupResponse(
            request_id=request.request_id,
            response_type=pb.TopicLookupResponse.LookupType.Connect,
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
