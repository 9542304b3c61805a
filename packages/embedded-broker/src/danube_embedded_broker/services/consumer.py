"""ConsumerService: Subscribe, the ReceiveMessages stream, Ack and Nack."""

from __future__ import annotations

from collections.abc import AsyncIterator

import grpc

from danube_embedded_broker.consumer import Session
from danube_embedded_broker.core import BrokerCore
from danube_embedded_broker.errors import BrokerError
from danube_embedded_broker.wire import pb, pb_grpc


class ConsumerService(pb_grpc.ConsumerServiceServicer):  # type: ignore[misc, unused-ignore]
    def __init__(self, core: BrokerCore) -> None:
        self.core = core

    async def Subscribe(
        self, request: pb.ConsumerRequest, context: grpc.aio.ServicerContext[object, object]
    ) -> pb.ConsumerResponse:
        try:
            consumer_id = self.core.subscribe(request)
        except BrokerError as exc:
            await context.abort(exc.code, exc.message)
        return pb.ConsumerResponse(
            request_id=request.request_id, consumer_id=consumer_id, consumer_name=request.consumer_name
        )

    async def ReceiveMessages(
        self, request: pb.ReceiveRequest, context: grpc.aio.ServicerContext[object, object]
    ) -> AsyncIterator[pb.StreamMessage]:
        """Stream until the client goes away, the consumer re-subscribes or the broker stops (then the
        stream ends with OK). NOT_FOUND for an unknown consumer id. Whatever was sent on the stream
        and not acked is redelivered (reliable) once the stream ends."""
        session: Session | None = None
        try:
            session = self.core.open_session(request.consumer_id)
        except BrokerError as exc:
            await context.abort(exc.code, exc.message)
        assert session is not None
        try:
            # Headers go out at once, so a client can tell the stream is established (initial_metadata()).
            await context.send_initial_metadata(())
            while True:
                message = await session.queue.get()
                if message is None:
                    return
                yield message
        finally:
            self.core.release_session(session)

    async def Ack(
        self, request: pb.AckRequest, context: grpc.aio.ServicerContext[object, object]
    ) -> pb.AckResponse:
        try:
            self.core.ack(request)
        except BrokerError as exc:
            await context.abort(exc.code, exc.message)
        return pb.AckResponse(request_id=request.request_id)

    async def Nack(
        self, request: pb.NackRequest, context: grpc.aio.ServicerContext[object, object]
    ) -> pb.NackResponse:
        try:
            self.core.nack(request)
        except BrokerError as exc:
            await context.abort(exc.code, exc.message)
        return pb.NackResponse(request_id=request.request_id)
