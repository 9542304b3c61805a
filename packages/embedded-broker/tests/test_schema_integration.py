"""The broker's side of schemas: producer schema references and the per-topic validation policy."""

from __future__ import annotations

import json

import grpc
import pytest
from danube_connect_core.proto import SchemaRegistry_pb2 as spb
from danube_connect_core.proto import SchemaRegistry_pb2_grpc as spb_grpc
from danube_embedded_broker import EmbeddedBroker
from danube_embedded_broker.testing import StubClient, next_message
from danube_embedded_broker.wire import pb

T = "/default/payments"
SCHEMA = {"type": "object", "properties": {"amount": {"type": "integer"}}, "required": ["amount"]}


async def test_schema_reference_and_enforced_validation(broker: EmbeddedBroker, client: StubClient) -> None:
    registry = spb_grpc.SchemaRegistryStub(client.channel)
    registered = await registry.RegisterSchema(
        spb.RegisterSchemaRequest(
            subject="payments", schema_type="json_schema", schema_definition=json.dumps(SCHEMA).encode()
        )
    )
    # an unknown subject fails CreateProducer with the registry's status, and creates nothing
    with pytest.raises(grpc.aio.AioRpcError) as err:
        await client.create_producer(T, schema_ref=pb.SchemaReference(subject="nope", use_latest=True))
    assert err.value.code() == grpc.StatusCode.NOT_FOUND
    assert await client.partitions(T) == []

    pid = await client.create_producer(T, schema_ref=pb.SchemaReference(subject="payments", use_latest=True))
    await registry.ConfigureTopicSchema(
        spb.ConfigureTopicSchemaRequest(
            topic_name=T,
            schema_subject="payments",
            validation_policy="enforce",
            enable_payload_validation=True,
        )
    )
    call = await client.stream(await client.subscribe(T, "s"))
    stamp = {"schema_id": registered.schema_id, "schema_version": registered.version}
    await client.send(pid, T, b'{"amount": 5}', **stamp)
    with pytest.raises(grpc.aio.AioRpcError) as err:
        await client.send(pid, T, b'{"amount": "five"}', **stamp)
    assert err.value.code() == grpc.StatusCode.PERMISSION_DENIED
    with pytest.raises(grpc.aio.AioRpcError) as err:
        await client.send(pid, T, b'{"amount": 5}')  # no schema id under enforce
    assert err.value.code() == grpc.StatusCode.PERMISSION_DENIED
    message = await next_message(call)
    assert message.payload == b'{"amount": 5}' and message.schema_id == registered.schema_id
    call.cancel()
