"""ProducerService: CreateProducer and SendMessage (status codes: see BrokerCore.create_producer/send)."""

from __future__ import annotations

import grpc

from danube_embedded_broker.core import BrokerCore
from danube_embedded_broker.errors import BrokerError
from danube_embedded_broker.wire import pb, pb_grpc

#: A real Danube broker (tonic's default) refuses a request whose encoded size exceeds 4 MiB with
#: OUT_OF_RANGE, whatever its max_message_size policy says; this broker answers the same.
DECODE_LIMIT_BYTES = 4 * 1024 * 1024


class ProducerService(pb_grpc.ProducerServiceServicer):  # type: ignore[misc, unused-ignore]
    def __init__(self, core: BrokerCore) -> None:
        self.core = core

    async def CreateProducer(
        self, request: pb.ProducerRequest, context: grpc.aio.ServicerContext[object, object]
    ) -> pb.ProducerResponse:
        try:
            producer_id = self.core.create_producer(request)
        except BrokerError as exc:
            await context.abort(exc.code, exc.message)
        return pb.ProducerResponse(
            request_id=request.request_id, producer_id=producer_id, producer_name=request.producer_name
        )

    async def SendMessage(
        self, request: pb.StreamMessage, context: grpc.aio.ServicerContext[object, object]
    ) -> pb.MessageResponse:
        """Answers only after the message is written to the log (reliable) or handed out."""
        size = request.ByteSize()
        if size > DECODE_LIMIT_BYTES:
            await context.abort(
                grpc.StatusCode.OUT_OF_RANGE,
                f"Error, decoded message length too large: found {size} bytes, "
                f"the limit is: {DECODE_LIMIT_BYTES} bytes",
            )
        try:
            self.core.send(request)
        except BrokerError as exc:
            await context.abort(exc.code, exc.message)
        return pb.MessageResponse(request_id=request.request_id)
