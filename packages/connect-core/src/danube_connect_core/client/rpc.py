"""Typed gRPC method handles over one channel (the generated ``*_pb2_grpc`` modules are untyped)."""

from __future__ import annotations

from typing import Any, TypeVar

import grpc

from ..proto import DanubeApi_pb2 as pb
from ..proto import SchemaRegistry_pb2 as spb

Req = TypeVar("Req")
Resp = TypeVar("Resp")


def _unary(channel: grpc.aio.Channel, path: str, resp: Any) -> Any:
    # _registered_method: the fast path the generated stubs use (absent from the typing stubs)
    return channel.unary_unary(  # type: ignore[call-arg]
        path,
        request_serializer=_serialize,
        response_deserializer=resp.FromString,
        _registered_method=True,
    )


def _serialize(message: Any) -> bytes:
    data: bytes = message.SerializeToString()
    return data


class BrokerStubs:
    """Every Danube RPC the client uses, bound to one channel. Cheap to keep; built once per channel."""

    def __init__(self, channel: grpc.aio.Channel) -> None:
        self.create_producer: grpc.aio.UnaryUnaryMultiCallable[pb.ProducerRequest, pb.ProducerResponse] = (
            _unary(channel, "/danube.ProducerService/CreateProducer", pb.ProducerResponse)
        )
        self.send_message: grpc.aio.UnaryUnaryMultiCallable[pb.StreamMessage, pb.MessageResponse] = _unary(
            channel, "/danube.ProducerService/SendMessage", pb.MessageResponse
        )
        self.subscribe: grpc.aio.UnaryUnaryMultiCallable[pb.ConsumerRequest, pb.ConsumerResponse] = _unary(
            channel, "/danube.ConsumerService/Subscribe", pb.ConsumerResponse
        )
        self.receive_messages: grpc.aio.UnaryStreamMultiCallable[pb.ReceiveRequest, pb.StreamMessage] = (
            channel.unary_stream(  # type: ignore[call-arg]
                "/danube.ConsumerService/ReceiveMessages",
                request_serializer=_serialize,
                response_deserializer=pb.StreamMessage.FromString,
                _registered_method=True,
            )
        )
        self.ack: grpc.aio.UnaryUnaryMultiCallable[pb.AckRequest, pb.AckResponse] = _unary(
            channel, "/danube.ConsumerService/Ack", pb.AckResponse
        )
        self.nack: grpc.aio.UnaryUnaryMultiCallable[pb.NackRequest, pb.NackResponse] = _unary(
            channel, "/danube.ConsumerService/Nack", pb.NackResponse
        )
        self.topic_lookup: grpc.aio.UnaryUnaryMultiCallable[pb.TopicLookupRequest, pb.TopicLookupResponse] = (
            _unary(channel, "/danube.Discovery/TopicLookup", pb.TopicLookupResponse)
        )
        self.topic_partitions: grpc.aio.UnaryUnaryMultiCallable[
            pb.TopicLookupRequest, pb.TopicPartitionsResponse
        ] = _unary(channel, "/danube.Discovery/TopicPartitions", pb.TopicPartitionsResponse)
        self.health_check: grpc.aio.UnaryUnaryMultiCallable[pb.HealthCheckRequest, pb.HealthCheckResponse] = (
            _unary(channel, "/danube.HealthCheck/HealthCheck", pb.HealthCheckResponse)
        )


class RegistryStubs:
    """The SchemaRegistry service (package ``danube_schema``) bound to one channel."""

    def __init__(self, channel: grpc.aio.Channel) -> None:
        svc = "/danube_schema.SchemaRegistry/"
        self.register_schema: grpc.aio.UnaryUnaryMultiCallable[
            spb.RegisterSchemaRequest, spb.RegisterSchemaResponse
        ] = _unary(channel, svc + "RegisterSchema", spb.RegisterSchemaResponse)
        self.get_schema: grpc.aio.UnaryUnaryMultiCallable[spb.GetSchemaRequest, spb.GetSchemaResponse] = (
            _unary(channel, svc + "GetSchema", spb.GetSchemaResponse)
        )
        self.get_latest_schema: grpc.aio.UnaryUnaryMultiCallable[
            spb.GetLatestSchemaRequest, spb.GetSchemaResponse
        ] = _unary(channel, svc + "GetLatestSchema", spb.GetSchemaResponse)
        self.list_versions: grpc.aio.UnaryUnaryMultiCallable[
            spb.ListVersionsRequest, spb.ListVersionsResponse
        ] = _unary(channel, svc + "ListVersions", spb.ListVersionsResponse)
        self.check_compatibility: grpc.aio.UnaryUnaryMultiCallable[
            spb.CheckCompatibilityRequest, spb.CheckCompatibilityResponse
        ] = _unary(channel, svc + "CheckCompatibility", spb.CheckCompatibilityResponse)
        self.delete_schema_version: grpc.aio.UnaryUnaryMultiCallable[
            spb.DeleteSchemaVersionRequest, spb.DeleteSchemaVersionResponse
        ] = _unary(channel, svc + "DeleteSchemaVersion", spb.DeleteSchemaVersionResponse)
        self.set_compatibility_mode: grpc.aio.UnaryUnaryMultiCallable[
            spb.SetCompatibilityModeRequest, spb.SetCompatibilityModeResponse
        ] = _unary(channel, svc + "SetCompatibilityMode", spb.SetCompatibilityModeResponse)
        self.configure_topic_schema: grpc.aio.UnaryUnaryMultiCallable[
            spb.ConfigureTopicSchemaRequest, spb.ConfigureTopicSchemaResponse
        ] = _unary(channel, svc + "ConfigureTopicSchema", spb.ConfigureTopicSchemaResponse)
        self.update_topic_validation_policy: grpc.aio.UnaryUnaryMultiCallable[
            spb.UpdateTopicValidationPolicyRequest, spb.UpdateTopicValidationPolicyResponse
        ] = _unary(channel, svc + "UpdateTopicValidationPolicy", spb.UpdateTopicValidationPolicyResponse)
        self.get_topic_schema_config: grpc.aio.UnaryUnaryMultiCallable[
            spb.GetTopicSchemaConfigRequest, spb.GetTopicSchemaConfigResponse
        ] = _unary(channel, svc + "GetTopicSchemaConfig", spb.GetTopicSchemaConfigResponse)
        self.list_subjects: grpc.aio.UnaryUnaryMultiCallable[
            spb.ListSubjectsRequest, spb.ListSubjectsResponse
        ] = _unary(channel, svc + "ListSubjects", spb.ListSubjectsResponse)
