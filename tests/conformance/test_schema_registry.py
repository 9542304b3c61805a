"""Schema registration, versions and compatibility answers (SchemaRegistryClient, schema_registration)."""

from __future__ import annotations

import json
import uuid

import grpc
import pytest
from danube_connect_core.client import NonRetryableError, SchemaReference

from .conformance_support import Target, receive

V1 = {"type": "object", "properties": {"id": {"type": "string"}}, "required": ["id"]}
V2 = {
    "type": "object",
    "properties": {"id": {"type": "string"}, "note": {"type": "string"}},
    "required": ["id"],
}
#: Changes the type of a required field: incompatible under the default (backward) mode.
BAD = {"type": "object", "properties": {"id": {"type": "integer"}}, "required": ["id"]}


def subject() -> str:
    return f"conf-subject-{uuid.uuid4().hex[:10]}"


async def test_register_versions_and_latest(target: Target) -> None:
    name = subject()
    async with target.client() as client:
        registry = client.schema_registry
        schema_id, v1, new = await registry.register(name, "json_schema", json.dumps(V1))
        assert (v1, new) == (1, True)
        again = await registry.register(name, "json_schema", json.dumps(V1))
        assert again == (schema_id, 1, False)
        id2, v2, new2 = await registry.register(name, "json_schema", json.dumps(V2))
        assert (id2, v2, new2) == (schema_id, 2, True)
        versions = await registry.list_versions(name)
        assert [v.version for v in versions] == [1, 2]
        latest = await registry.get_latest(name)
        assert (latest.subject, latest.version, latest.schema_id) == (name, 2, schema_id)
        assert json.loads(latest.definition) == V2
        first = await registry.get_schema(schema_id, 1)
        assert json.loads(first.definition) == V1
        assert first.schema_type == "json_schema"


async def test_compatibility_answers(target: Target) -> None:
    name = subject()
    async with target.client() as client:
        registry = client.schema_registry
        await registry.register(name, "json_schema", json.dumps(V1))
        ok, errors = await registry.check_compatibility(name, "json_schema", json.dumps(V2))
        assert ok and not errors
        ok, errors = await registry.check_compatibility(name, "json_schema", json.dumps(BAD))
        assert not ok
        with pytest.raises(NonRetryableError) as refused:
            await registry.register(name, "json_schema", json.dumps(BAD))
    # the real broker answers an incompatible registration with INTERNAL (SchemaRegistryClient docstring)
    assert refused.value.code == grpc.StatusCode.INTERNAL


async def test_unknown_subject_is_not_found(target: Target) -> None:
    async with target.client() as client:
        with pytest.raises(NonRetryableError) as missing:
            await client.schema_registry.get_latest(subject())
    assert missing.value.code == grpc.StatusCode.NOT_FOUND


async def test_producer_with_a_schema_stamps_id_and_version(target: Target) -> None:
    name = subject()
    topic = target.topic("schema")
    async with target.client() as client:
        schema_id, _, _ = await client.schema_registry.register(name, "json_schema", json.dumps(V1))
        producer = await client.create_producer(
            topic, "p", reliable=True, schema=SchemaReference.latest(name)
        )
        consumer = await client.subscribe(topic, "s", consumer_name="c")
        await producer.send(json.dumps({"id": "a"}).encode())
        message = await receive(consumer)
        assert await consumer.ack(message)
    assert (message.schema_id, message.schema_version) == (schema_id, 1)


async def test_producer_with_an_unknown_subject_is_refused(target: Target) -> None:
    async with target.client() as client:
        with pytest.raises(NonRetryableError):
            await client.create_producer(
                target.topic("noschema"), "p", reliable=True, schema=SchemaReference.latest(subject())
            )
