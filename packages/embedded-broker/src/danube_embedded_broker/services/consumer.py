"""ConsumerService: Subscribe, the ReceiveMessages stream, Ack and Nack."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

import grpc

from danube_embedded_broker.consumer import Session
from danube_embedded_broker.core import BrokerCore
from danube_embedded_broker.errors import BrokerError
from danube_embedded_broker.wire import pb, pb_grpc


def encode_stream_message(message: pb.StreamMessage | bytes) -> bytes:
    """ReceiveMessages' serializer: a reliable subscription hands over the encoded message (its stored
    record plus the subscription name), sent as it is; a non-reliable one a message object."""
    if isinstance(message, bytes):
        return message
    return bytes(message.SerializeToString())


def add_consumer_service(servicer: ConsumerService, server: grpc.aio.Server) -> None:
    """Register the servicer as the generated ``add_ConsumerServiceServicer_to_server`` does, except that
    ReceiveMessages sends already-encoded messages without decoding and re-encoding them."""
    handlers: dict[str, grpc.RpcMethodHandler[Any, Any]] = {
        "Subscribe": grpc.unary_unary_rpc_method_handler(
            servicer.Subscribe,
            request_deserializer=pb.ConsumerRequest.FromString,
            response_serializer=pb.ConsumerResponse.SerializeToString,
        ),
        "ReceiveMessages": grpc.unary_stream_rpc_method_handler(
            servicer.ReceiveMessages,
            request_deserializer=pb.ReceiveRequest.FromString,
            response_serializer=encode_stream_message,
        ),
        "Ack": grpc.unary_unary_rpc_method_handler(
            servicer.Ack,
            request_deserializer=pb.AckRequest.FromString,
            response_serializer=pb.AckResponse.SerializeToString,
        ),
        "Nack": grpc.unary_unary_rpc_method_handler(
            servicer.Nack,
            request_deserializer=pb.NackRequest.FromString,
            response_serializer=pb.NackResponse.SerializeToString,
        ),
    }
    server.add_generic_rpc_handlers((grpc.method_handlers_generic_handler(SERVICE, handlers),))
    server.add_registered_method_handlers(SERVICE, handlers)


#: The gRPC service name (proto/DanubeApi.proto: package danube).
SERVICE = "danube.ConsumerService"


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
    ) -> AsyncIterator[pb.StreamMessage | bytes]:
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
