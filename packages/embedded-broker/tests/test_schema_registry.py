"""Schema registry of the embedded broker, exercised through a real grpc.aio server (only its servicer)."""

from __future__ import annotations

import json
import logging
import random
import struct
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import grpc
import pytest
from danube_connect_core.proto import DanubeApi_pb2 as pb
from danube_connect_core.proto import SchemaRegistry_pb2 as spb
from danube_connect_core.proto import SchemaRegistry_pb2_grpc as spb_grpc
from danube_embedded_broker.schema_registry import SchemaRegistry, SchemaRegistryError
from danube_embedded_broker.schema_registry.compatibility import check_compatibility
from danube_embedded_broker.schema_registry.model import parse_definition
from hypothesis import given, settings
from hypothesis import strategies as st

USER_V1: dict[str, Any] = {
    "type": "object",
    "properties": {"id": {"type": "integer"}, "name": {"type": "string"}},
    "required": ["id"],
}


def js(schema: Any) -> bytes:
    return json.dumps(schema).encode()


def with_props(base: dict[str, Any], **props: Any) -> dict[str, Any]:
    return {**base, "properties": {**base["properties"], **props}}


class Harness:
    def __init__(self, registry: SchemaRegistry, stub: spb_grpc.SchemaRegistryStub) -> None:
        self.registry = registry
        self.stub = stub

    async def register(
        self, subject: str, schema: Any, schema_type: str = "json_schema"
    ) -> spb.RegisterSchemaResponse:
        definition = schema if isinstance(schema, bytes) else js(schema)
        return await self.stub.RegisterSchema(
            spb.RegisterSchemaRequest(
                subject=subject,
                schema_type=schema_type,
                schema_definition=definition,
                description="d",
                created_by="tester",
                tags=["t1"],
            )
        )

    async def status_of(self, call: Any) -> grpc.StatusCode:
        with pytest.raises(grpc.aio.AioRpcError) as info:
            await call
        return info.value.code()


async def _serve(registry: SchemaRegistry) -> tuple[grpc.aio.Server, grpc.aio.Channel]:
    server = grpc.aio.server()
    spb_grpc.add_SchemaRegistryServicer_to_server(registry.servicer(), server)
    port = server.add_insecure_port("127.0.0.1:0")
    await server.start()
    channel = grpc.aio.insecure_channel(f"127.0.0.1:{port}")
    return server, channel


@pytest.fixture
async def harness(tmp_path: Path) -> AsyncIterator[Harness]:
    registry = SchemaRegistry(tmp_path)
    server, channel = await _serve(registry)
    try:
        yield Harness(registry, spb_grpc.SchemaRegistryStub(channel))
    finally:
        await channel.close()
        await server.stop(None)
        registry.close()


@pytest.fixture
def registry() -> Iterator[SchemaRegistry]:
    reg = SchemaRegistry(None)
    yield reg
    reg.close()


# ------------------------------------------------------------------------------------------- registration


async def test_ids_stable_per_subject_versions_increment_and_dedupe(harness: Harness) -> None:
    first = await harness.register("users", USER_V1)
    assert (first.schema_id, first.version, first.is_new_version) == (1, 1, True)
    assert first.fingerprint.startswith("sha256:") and len(first.fingerprint) == 7 + 64

    other = await harness.register("orders", {"type": "string"})
    assert (other.schema_id, other.version) == (2, 1)

    second = await harness.register("users", with_props(USER_V1, email={"type": "string"}))
    assert (second.schema_id, second.version, second.is_new_version) == (1, 2, True)

    # Identical definition (keys reordered, whitespace) -> existing version, not a new one.
    reordered = (
        b'{ "required": ["id"], "properties": {"name": {"type": "string"},'
        b' "id": {"type": "integer"}},\n "type": "object" }'
    )
    again = await harness.register("users", reordered)
    assert (again.schema_id, again.version, again.is_new_version) == (1, 1, False)
    assert again.fingerprint == first.fingerprint

    versions = await harness.stub.ListVersions(spb.ListVersionsRequest(subject="users"))
    assert [(v.version, v.schema_id, v.created_by, v.description) for v in versions.versions] == [
        (1, 1, "tester", "d"),
        (2, 1, "tester", "d"),
    ]
    assert versions.versions[0].fingerprint == first.fingerprint


async def test_get_schema_by_id_and_version_and_latest(harness: Harness) -> None:
    await harness.register("users", USER_V1)
    v2 = with_props(USER_V1, email={"type": "string"})
    await harness.register("users", v2)

    latest = await harness.stub.GetSchema(spb.GetSchemaRequest(schema_id=1))
    assert (latest.schema_id, latest.version, latest.subject, latest.schema_type) == (
        1,
        2,
        "users",
        "json_schema",
    )
    assert latest.compatibility_mode == "backward"
    assert list(latest.tags) == ["t1"] and latest.created_by == "tester" and latest.description == "d"
    assert latest.created_at > 0
    wrapped = json.loads(latest.schema_definition)
    assert json.loads(wrapped["JsonSchema"]["raw_schema"]) == v2
    assert wrapped["JsonSchema"]["fingerprint"] == latest.fingerprint

    pinned = await harness.stub.GetSchema(spb.GetSchemaRequest(schema_id=1, version=1))
    assert pinned.version == 1
    assert json.loads(json.loads(pinned.schema_definition)["JsonSchema"]["raw_schema"]) == USER_V1

    by_subject = await harness.stub.GetLatestSchema(spb.GetLatestSchemaRequest(subject="users"))
    assert by_subject == latest

    assert await harness.status_of(harness.stub.GetSchema(spb.GetSchemaRequest(schema_id=99))) == (
        grpc.StatusCode.NOT_FOUND
    )
    assert await harness.status_of(harness.stub.GetSchema(spb.GetSchemaRequest(schema_id=1, version=7))) == (
        grpc.StatusCode.NOT_FOUND
    )
    assert await harness.status_of(
        harness.stub.GetLatestSchema(spb.GetLatestSchemaRequest(subject="nope"))
    ) == (grpc.StatusCode.NOT_FOUND)
    assert await harness.status_of(harness.stub.ListVersions(spb.ListVersionsRequest(subject="nope"))) == (
        grpc.StatusCode.NOT_FOUND
    )


AVRO_USER = {"type": "record", "name": "User", "fields": [{"name": "id", "type": "long"}]}


@pytest.mark.parametrize(
    ("schema_type", "definition", "expected"),
    [
        ("string", b"", "String"),
        ("bytes", b"anything", "Bytes"),
        ("number", b"", "Number"),
        ("json_schema", b'{"type": "string"}', {"JsonSchema": {"raw_schema": '{"type": "string"}'}}),
        ("avro", js(AVRO_USER), {"Avro": {"raw_schema": json.dumps(AVRO_USER)}}),
        (
            "protobuf",
            b'syntax = "proto3";\nmessage U { string n = 1; }',
            {
                "Protobuf": {
                    "raw_proto": 'syntax = "proto3";\nmessage U { string n = 1; }',
                    "message_name": "DefaultMessage",
                }
            },
        ),
    ],
)
async def test_wrapped_definitions_match_the_real_broker(
    harness: Harness, schema_type: str, definition: bytes, expected: Any
) -> None:
    reg = await harness.register("s", definition, schema_type)
    got = await harness.stub.GetLatestSchema(spb.GetLatestSchemaRequest(subject="s"))
    assert got.schema_type == schema_type
    body = got.schema_definition.decode()
    decoded = json.loads(body)
    if isinstance(expected, str):
        assert body == f'"{expected}"'  # serde unit variant: a JSON string
        assert reg.fingerprint == schema_type  # constant fingerprints of the real broker
    else:
        (variant,) = expected
        expected[variant]["fingerprint"] = reg.fingerprint
        assert decoded == expected
        # serde_json field order and compact separators
        assert body == json.dumps(expected, separators=(",", ":"), ensure_ascii=False)


async def test_schema_type_aliases_are_canonicalised(harness: Harness) -> None:
    await harness.register("n", b"", "INT64")
    await harness.register("j", b'{"type":"object"}', "json")
    assert (
        await harness.stub.GetLatestSchema(spb.GetLatestSchemaRequest(subject="n"))
    ).schema_type == "number"
    assert (
        await harness.stub.GetLatestSchema(spb.GetLatestSchemaRequest(subject="j"))
    ).schema_type == "json_schema"


@pytest.mark.parametrize(
    ("subject", "schema_type", "definition"),
    [
        ("s", "yaml", b"{}"),
        ("s", "json_schema", b"{not json"),
        ("s", "json_schema", b'{"type": "no-such-type"}'),
        ("s", "json_schema", b'{"type": "object", "minProperties": -1}'),
        ("s", "json_schema", b"\xff\xfe"),
        ("s", "json_schema", b'{"$ref": "http://example.invalid/remote.json"}'),
        ("s", "avro", b"{not json"),
        ("s", "avro", b'{"type": "record", "name": "X"}'),
        ("s", "protobuf", b""),
        ("", "string", b""),
    ],
)
async def test_bad_definitions_are_invalid_argument(
    harness: Harness, subject: str, schema_type: str, definition: bytes
) -> None:
    assert await harness.status_of(harness.register(subject, definition, schema_type)) == (
        grpc.StatusCode.INVALID_ARGUMENT
    )


async def test_list_subjects(harness: Harness) -> None:
    await harness.register("b-users", USER_V1)
    await harness.register("b-users", with_props(USER_V1, email={"type": "string"}))
    await harness.register("a-text", b"", "string")
    await harness.stub.SetCompatibilityMode(
        spb.SetCompatibilityModeRequest(subject="a-text", compatibility_mode="none")
    )
    listed = await harness.stub.ListSubjects(spb.ListSubjectsRequest())
    assert [
        (s.subject, s.schema_type, s.latest_version, s.compatibility_mode, s.schema_id, list(s.tags))
        for s in listed.subjects
    ] == [
        ("a-text", "string", 1, "none", 2, ["t1"]),
        ("b-users", "json_schema", 2, "backward", 1, ["t1"]),
    ]


# ------------------------------------------------------------------------------------------- compatibility


async def test_incompatible_registration_is_internal_and_check_reports_errors(harness: Harness) -> None:
    await harness.register("users", USER_V1)
    breaking = with_props(USER_V1, id={"type": "string"})
    assert await harness.status_of(harness.register("users", breaking)) == grpc.StatusCode.INTERNAL
    with pytest.raises(grpc.aio.AioRpcError) as info:
        await harness.register("users", breaking)
    assert "not compatible" in (info.value.details() or "")

    result = await harness.stub.CheckCompatibility(
        spb.CheckCompatibilityRequest(
            subject="users", new_schema_definition=js(breaking), schema_type="json_schema"
        )
    )
    assert not result.is_compatible
    assert any("'$.id'" in e and "type changed" in e for e in result.errors), result.errors

    ok = await harness.stub.CheckCompatibility(
        spb.CheckCompatibilityRequest(
            subject="users",
            new_schema_definition=js(with_props(USER_V1, email={"type": "string"})),
            schema_type="json_schema",
        )
    )
    assert ok.is_compatible and list(ok.errors) == []

    # Per-request mode override: "none" accepts anything, the subject's mode is unchanged.
    overridden = await harness.stub.CheckCompatibility(
        spb.CheckCompatibilityRequest(
            subject="users",
            new_schema_definition=js(breaking),
            schema_type="json_schema",
            compatibility_mode="none",
        )
    )
    assert overridden.is_compatible
    assert (
        await harness.stub.GetLatestSchema(spb.GetLatestSchemaRequest(subject="users"))
    ).compatibility_mode == ("backward")

    for request, code in [
        (
            spb.CheckCompatibilityRequest(
                subject="nope", new_schema_definition=b"{}", schema_type="json_schema"
            ),
            grpc.StatusCode.NOT_FOUND,
        ),
        (
            spb.CheckCompatibilityRequest(
                subject="users", new_schema_definition=b"{x", schema_type="json_schema"
            ),
            grpc.StatusCode.INVALID_ARGUMENT,
        ),
        (
            spb.CheckCompatibilityRequest(
                subject="users",
                new_schema_definition=b"{}",
                schema_type="json_schema",
                compatibility_mode="sideways",
            ),
            grpc.StatusCode.INVALID_ARGUMENT,
        ),
    ]:
        assert await harness.status_of(harness.stub.CheckCompatibility(request)) == code


async def test_set_compatibility_mode_rpc(harness: Harness) -> None:
    await harness.register("users", USER_V1)
    breaking = with_props(USER_V1, id={"type": "string"})
    reply = await harness.stub.SetCompatibilityMode(
        spb.SetCompatibilityModeRequest(subject="users", compatibility_mode="NONE")
    )
    assert reply.success and "none" in reply.message
    assert (await harness.register("users", breaking)).version == 2
    assert (await harness.stub.GetSchema(spb.GetSchemaRequest(schema_id=1))).compatibility_mode == "none"
    assert (
        await harness.status_of(
            harness.stub.SetCompatibilityMode(
                spb.SetCompatibilityModeRequest(subject="users", compatibility_mode="x")
            )
        )
        == grpc.StatusCode.INVALID_ARGUMENT
    )
    assert (
        await harness.status_of(
            harness.stub.SetCompatibilityMode(
                spb.SetCompatibilityModeRequest(subject="nope", compatibility_mode="full")
            )
        )
        == grpc.StatusCode.NOT_FOUND
    )


ENUM_OLD = {"type": "object", "properties": {"status": {"type": "string", "enum": ["new", "paid"]}}}
ENUM_MORE = {
    "type": "object",
    "properties": {"status": {"type": "string", "enum": ["new", "paid", "refunded"]}},
}
CLOSED = {**USER_V1, "additionalProperties": False}

# (old, new, {mode: compatible?})
JSON_CASES: list[tuple[str, dict[str, Any], dict[str, Any], dict[str, bool]]] = [
    (
        "add optional field",
        USER_V1,
        with_props(USER_V1, email={"type": "string"}),
        {"backward": True, "forward": True, "full": True},
    ),
    (
        "add required field without default",
        USER_V1,
        {**with_props(USER_V1, email={"type": "string"}), "required": ["id", "email"]},
        {"backward": False, "forward": True, "full": False},
    ),
    (
        "add required field with default",
        USER_V1,
        {**with_props(USER_V1, email={"type": "string", "default": ""}), "required": ["id", "email"]},
        {"backward": True, "forward": True, "full": True},
    ),
    (
        "make optional field required",
        USER_V1,
        {**USER_V1, "required": ["id", "name"]},
        {"backward": False, "forward": True, "full": False},
    ),
    (
        "remove required field (open model)",
        USER_V1,
        {"type": "object", "properties": {"name": {"type": "string"}}},
        {"backward": True, "forward": False, "full": False},
    ),
    (
        "remove property when reader is closed",
        CLOSED,
        {
            "type": "object",
            "properties": {"id": {"type": "integer"}},
            "required": ["id"],
            "additionalProperties": False,
        },
        {"backward": False, "forward": True, "full": False},
    ),
    (
        "change field type",
        USER_V1,
        with_props(USER_V1, id={"type": "string"}),
        {"backward": False, "forward": False, "full": False},
    ),
    (
        "widen integer to number",
        USER_V1,
        with_props(USER_V1, id={"type": "number"}),
        {"backward": True, "forward": False, "full": False},
    ),
    (
        "widen to type union",
        USER_V1,
        with_props(USER_V1, name={"type": ["string", "null"]}),
        {"backward": True, "forward": False, "full": False},
    ),
    ("remove enum value", ENUM_MORE, ENUM_OLD, {"backward": False, "forward": True, "full": False}),
    ("add enum value", ENUM_OLD, ENUM_MORE, {"backward": True, "forward": False, "full": False}),
    (
        "tighten maxLength",
        with_props(USER_V1, name={"type": "string", "maxLength": 10}),
        with_props(USER_V1, name={"type": "string", "maxLength": 5}),
        {"backward": False, "forward": True, "full": False},
    ),
    (
        "raise minimum",
        with_props(USER_V1, id={"type": "integer", "minimum": 0}),
        with_props(USER_V1, id={"type": "integer", "minimum": 1}),
        {"backward": False, "forward": True, "full": False},
    ),
    (
        "nested object type change",
        {
            "type": "object",
            "properties": {"addr": {"type": "object", "properties": {"zip": {"type": "string"}}}},
        },
        {
            "type": "object",
            "properties": {"addr": {"type": "object", "properties": {"zip": {"type": "integer"}}}},
        },
        {"backward": False, "forward": False, "full": False},
    ),
    (
        "array item type change",
        {"type": "object", "properties": {"tags": {"type": "array", "items": {"type": "string"}}}},
        {"type": "object", "properties": {"tags": {"type": "array", "items": {"type": "integer"}}}},
        {"backward": False, "forward": False, "full": False},
    ),
    (
        "anyOf gains an alternative",
        {"type": "object", "properties": {"v": {"anyOf": [{"type": "string"}]}}},
        {"type": "object", "properties": {"v": {"anyOf": [{"type": "string"}, {"type": "integer"}]}}},
        {"backward": True, "forward": False, "full": False},
    ),
    (
        "local $ref followed",
        {
            "$defs": {"id": {"type": "integer"}},
            "type": "object",
            "properties": {"id": {"$ref": "#/$defs/id"}},
        },
        {"$defs": {"id": {"type": "string"}}, "type": "object", "properties": {"id": {"$ref": "#/$defs/id"}}},
        {"backward": False, "forward": False, "full": False},
    ),
]


@pytest.mark.parametrize(("name", "old", "new", "expected"), JSON_CASES, ids=[c[0] for c in JSON_CASES])
def test_json_schema_compatibility_rules(
    name: str, old: dict[str, Any], new: dict[str, Any], expected: dict[str, bool]
) -> None:
    for mode, compatible in expected.items():
        errors = check_compatibility(mode, "json_schema", old, "json_schema", new)
        assert (not errors) == compatible, f"{name} / {mode}: {errors}"
        assert all(e.startswith(("Backward incompatible", "Forward incompatible")) for e in errors)
    assert check_compatibility("none", "json_schema", old, "json_schema", new) == []


@pytest.mark.parametrize("mode", ["backward", "forward", "full"])
async def test_registration_honours_each_mode(harness: Harness, mode: str) -> None:
    await harness.register("m", USER_V1)
    await harness.stub.SetCompatibilityMode(
        spb.SetCompatibilityModeRequest(subject="m", compatibility_mode=mode)
    )
    add_required = {**with_props(USER_V1, email={"type": "string"}), "required": ["id", "email"]}
    drop_required = {"type": "object", "properties": {"name": {"type": "string"}}}
    outcomes = {}
    for label, schema in [("add_required", add_required), ("drop_required", drop_required)]:
        try:
            await harness.register("m", schema)
            outcomes[label] = True
            await harness.stub.DeleteSchemaVersion(spb.DeleteSchemaVersionRequest(subject="m", version=2))
        except grpc.aio.AioRpcError as exc:
            assert exc.code() == grpc.StatusCode.INTERNAL
            outcomes[label] = False
    assert (
        outcomes
        == {
            "backward": {"add_required": False, "drop_required": True},
            "forward": {"add_required": True, "drop_required": False},
            "full": {"add_required": False, "drop_required": False},
        }[mode]
    )


def test_type_change_is_incompatible_unless_mode_none() -> None:
    assert check_compatibility("backward", "json_schema", {}, "avro", AVRO_USER)
    assert check_compatibility("none", "json_schema", {}, "avro", AVRO_USER) == []
    assert check_compatibility("full", "string", None, "string", None) == []


def _avro(*fields: dict[str, Any], name: str = "User") -> dict[str, Any]:
    return {"type": "record", "name": name, "fields": list(fields)}


AVRO_CASES: list[tuple[str, dict[str, Any], dict[str, Any], dict[str, bool]]] = [
    (
        "add field with default",
        _avro({"name": "id", "type": "long"}),
        _avro({"name": "id", "type": "long"}, {"name": "email", "type": ["null", "string"], "default": None}),
        {"backward": True, "forward": True, "full": True},
    ),
    (
        "add field without default",
        _avro({"name": "id", "type": "long"}),
        _avro({"name": "id", "type": "long"}, {"name": "email", "type": "string"}),
        {"backward": False, "forward": True, "full": False},
    ),
    (
        "promote int to long",
        _avro({"name": "id", "type": "int"}),
        _avro({"name": "id", "type": "long"}),
        {"backward": True, "forward": False, "full": False},
    ),
    (
        "string to int",
        _avro({"name": "id", "type": "string"}),
        _avro({"name": "id", "type": "int"}),
        {"backward": False, "forward": False, "full": False},
    ),
    (
        "record renamed",
        _avro({"name": "id", "type": "long"}),
        _avro({"name": "id", "type": "long"}, name="Other"),
        {"backward": False, "forward": False, "full": False},
    ),
    (
        "enum symbol added",
        _avro({"name": "s", "type": {"type": "enum", "name": "S", "symbols": ["A"]}}),
        _avro({"name": "s", "type": {"type": "enum", "name": "S", "symbols": ["A", "B"]}}),
        {"backward": True, "forward": False, "full": False},
    ),
]


@pytest.mark.parametrize(("name", "old", "new", "expected"), AVRO_CASES, ids=[c[0] for c in AVRO_CASES])
def test_avro_compatibility_rules(
    name: str, old: dict[str, Any], new: dict[str, Any], expected: dict[str, bool]
) -> None:
    for mode, compatible in expected.items():
        errors = check_compatibility(mode, "avro", old, "avro", new)
        assert (not errors) == compatible, f"{name} / {mode}: {errors}"


# ------------------------------------------------------------------------------------------- delete


async def test_delete_schema_version(harness: Harness) -> None:
    await harness.register("users", USER_V1)
    v2 = with_props(USER_V1, email={"type": "string"})
    await harness.register("users", v2)
    reply = await harness.stub.DeleteSchemaVersion(spb.DeleteSchemaVersionRequest(subject="users", version=2))
    assert reply.success and reply.message == "Deleted version 2 for subject users"
    assert (await harness.stub.GetLatestSchema(spb.GetLatestSchemaRequest(subject="users"))).version == 1
    assert await harness.status_of(harness.stub.GetSchema(spb.GetSchemaRequest(schema_id=1, version=2))) == (
        grpc.StatusCode.NOT_FOUND
    )
    # Version numbers are never reused; the schema_id stays.
    again = await harness.register("users", v2)
    assert (again.schema_id, again.version, again.is_new_version) == (1, 3, True)
    for request in (
        spb.DeleteSchemaVersionRequest(subject="users", version=2),
        spb.DeleteSchemaVersionRequest(subject="nope", version=1),
    ):
        assert await harness.status_of(harness.stub.DeleteSchemaVersion(request)) == grpc.StatusCode.NOT_FOUND


# ------------------------------------------------------------------------------------------- topic config


async def test_topic_schema_config_rpcs(harness: Harness) -> None:
    await harness.register("users", USER_V1)
    default = await harness.stub.GetTopicSchemaConfig(
        spb.GetTopicSchemaConfigRequest(topic_name="/default/t")
    )
    assert (
        default.schema_subject,
        default.validation_policy,
        default.enable_payload_validation,
        default.schema_id,
    ) == (
        "",
        "warn",
        False,
        0,
    )
    reply = await harness.stub.ConfigureTopicSchema(
        spb.ConfigureTopicSchemaRequest(
            topic_name="/default/t",
            schema_subject="users",
            validation_policy="Enforce",
            enable_payload_validation=True,
        )
    )
    assert reply.success and "validation policy 'Enforce'" in reply.message
    got = await harness.stub.GetTopicSchemaConfig(spb.GetTopicSchemaConfigRequest(topic_name="/default/t"))
    assert (got.schema_subject, got.validation_policy, got.enable_payload_validation, got.schema_id) == (
        "users",
        "enforce",
        True,
        1,
    )
    update = await harness.stub.UpdateTopicValidationPolicy(
        spb.UpdateTopicValidationPolicyRequest(topic_name="/default/t", validation_policy="warn")
    )
    assert update.success
    got = await harness.stub.GetTopicSchemaConfig(spb.GetTopicSchemaConfigRequest(topic_name="/default/t"))
    assert (got.schema_subject, got.validation_policy, got.enable_payload_validation) == (
        "users",
        "warn",
        False,
    )

    # Partition topics inherit the base topic's configuration.
    part = await harness.stub.GetTopicSchemaConfig(
        spb.GetTopicSchemaConfigRequest(topic_name="/default/t-part-3")
    )
    assert (part.schema_subject, part.validation_policy, part.schema_id) == ("users", "warn", 1)

    for call, code in [
        (
            harness.stub.ConfigureTopicSchema(
                spb.ConfigureTopicSchemaRequest(
                    topic_name="/default/t", schema_subject="nope", validation_policy="warn"
                )
            ),
            grpc.StatusCode.NOT_FOUND,
        ),
        (
            harness.stub.ConfigureTopicSchema(
                spb.ConfigureTopicSchemaRequest(
                    topic_name="/default/t", schema_subject="users", validation_policy="strict"
                )
            ),
            grpc.StatusCode.INVALID_ARGUMENT,
        ),
        (
            harness.stub.ConfigureTopicSchema(
                spb.ConfigureTopicSchemaRequest(
                    topic_name="not-a-topic", schema_subject="users", validation_policy="warn"
                )
            ),
            grpc.StatusCode.INVALID_ARGUMENT,
        ),
        (
            harness.stub.UpdateTopicValidationPolicy(
                spb.UpdateTopicValidationPolicyRequest(
                    topic_name="/default/other", validation_policy="enforce"
                )
            ),
            grpc.StatusCode.FAILED_PRECONDITION,
        ),
        (
            harness.stub.UpdateTopicValidationPolicy(
                spb.UpdateTopicValidationPolicyRequest(topic_name="/default/t", validation_policy="")
            ),
            grpc.StatusCode.INVALID_ARGUMENT,
        ),
        (
            harness.stub.GetTopicSchemaConfig(spb.GetTopicSchemaConfigRequest(topic_name="/a/b/c")),
            grpc.StatusCode.INVALID_ARGUMENT,
        ),
    ]:
        assert await harness.status_of(call) == code


async def test_topic_exists_hook_answers_not_found(tmp_path: Path) -> None:
    registry = SchemaRegistry(None, topic_exists=lambda topic: topic == "/default/known")
    registry.register_schema("s", "string", b"")
    registry.configure_topic_schema("/default/known", "s", "warn", False)
    with pytest.raises(SchemaRegistryError) as info:
        registry.configure_topic_schema("/default/unknown", "s", "warn", False)
    assert info.value.code == grpc.StatusCode.NOT_FOUND


# ------------------------------------------------------------------------------------------- publish checks


def _enforced(
    registry: SchemaRegistry, topic: str = "/default/orders", payload_validation: bool = True
) -> int:
    schema_id, _, _, _ = registry.register_schema("orders", "json_schema", js(USER_V1))
    registry.configure_topic_schema(topic, "orders", "enforce", payload_validation)
    return schema_id


def test_check_publish_enforce_with_payload_validation(registry: SchemaRegistry) -> None:
    schema_id = _enforced(registry)
    other_id, _, _, _ = registry.register_schema("other", "string", b"")
    topic = "/default/orders"
    assert registry.check_publish(topic, b'{"id": 1, "name": "a"}', schema_id) is None
    assert "Invalid JSON" in (registry.check_publish(topic, b"{nope", schema_id) or "")
    reason = registry.check_publish(topic, b'{"name": 1}', schema_id) or ""
    assert "JSON Schema validation failed" in reason and "id" in reason
    assert "missing schema_id" in (registry.check_publish(topic, b'{"id": 1}', None) or "")
    assert "subject mismatch" in (registry.check_publish(topic, b'{"id": 1}', other_id) or "")
    assert "not found" in (registry.check_publish(topic, b'{"id": 1}', 999) or "")
    # Other topics keep the default (warn, no subject): accepted.
    assert registry.check_publish("/default/elsewhere", b"{nope", None) is None


def test_check_publish_enforce_without_payload_validation(registry: SchemaRegistry) -> None:
    schema_id = _enforced(registry, payload_validation=False)
    assert registry.check_publish("/default/orders", b"not json at all", schema_id) is None
    assert registry.check_publish("/default/orders", b"{}", None) is not None


def test_check_publish_warn_logs_and_accepts(
    registry: SchemaRegistry, caplog: pytest.LogCaptureFixture
) -> None:
    schema_id = _enforced(registry)
    registry.update_topic_validation_policy("/default/orders", "warn", True)
    with caplog.at_level(logging.WARNING, logger="danube_embedded_broker.schema_registry"):
        assert registry.check_publish("/default/orders", b"{nope", schema_id) is None
        assert registry.check_publish("/default/orders", b"{}", None) is None
    messages = [r.getMessage() for r in caplog.records]
    assert any("Invalid JSON" in m for m in messages) and any("missing schema_id" in m for m in messages)


def test_check_publish_none_accepts_everything(registry: SchemaRegistry) -> None:
    _enforced(registry)
    registry.update_topic_validation_policy("/default/orders", "none", True)
    assert registry.check_publish("/default/orders", b"{nope", None) is None
    assert registry.check_publish("/default/orders", b"{nope", 12345) is None


def test_check_publish_partitions_follow_the_base_topic(registry: SchemaRegistry) -> None:
    schema_id = _enforced(registry)
    assert registry.check_publish("/default/orders-part-0", b'{"id": 1}', schema_id) is None
    assert registry.check_publish("/default/orders-part-7", b'{"id": "x"}', schema_id) is not None
    assert registry.check_publish("/default/orders-part-7", b'{"id": 1}', None) is not None
    # A name that merely shares the prefix is not a partition.
    assert registry.check_publish("/default/orders_v2", b"{nope", None) is None
    assert registry.check_publish("/default/orders-part-x", b"{nope", None) is None


def test_check_publish_uses_the_message_schema_version(registry: SchemaRegistry) -> None:
    schema_id = _enforced(registry)
    registry.set_compatibility_mode("orders", "none")
    registry.register_schema("orders", "json_schema", js({"type": "object", "required": ["sku"]}))
    assert registry.check_publish("/default/orders", b'{"id": 1}', schema_id, 1) is None
    assert registry.check_publish("/default/orders", b'{"id": 1}', schema_id, 2) is not None
    assert registry.check_publish("/default/orders", b'{"id": 1}', schema_id) is not None  # latest = v2


@pytest.mark.parametrize(
    ("schema_type", "definition", "good", "bad"),
    [
        ("string", b"", "héllo".encode(), b"\xff\xfe"),
        ("number", b"", struct.pack(">d", 1.5), b"\x01\x02"),
        ("bytes", b"", b"\x00\xff", None),
    ],
)
def test_check_publish_primitive_payloads(
    registry: SchemaRegistry, schema_type: str, definition: bytes, good: bytes, bad: bytes | None
) -> None:
    schema_id, _, _, _ = registry.register_schema("p", schema_type, definition)
    registry.configure_topic_schema("/default/p", "p", "enforce", True)
    assert registry.check_publish("/default/p", good, schema_id) is None
    if bad is not None:
        assert registry.check_publish("/default/p", bad, schema_id) is not None


def test_check_publish_avro_payload(registry: SchemaRegistry) -> None:
    fastavro = pytest.importorskip("fastavro")
    import io

    schema_id, _, _, _ = registry.register_schema("u", "avro", js(AVRO_USER))
    registry.configure_topic_schema("/default/u", "u", "enforce", True)
    buffer = io.BytesIO()
    fastavro.schemaless_writer(buffer, fastavro.parse_schema(AVRO_USER), {"id": 42})
    assert registry.check_publish("/default/u", buffer.getvalue(), schema_id) is None
    assert registry.check_publish("/default/u", b"", schema_id) is not None
    assert registry.check_publish("/default/u", buffer.getvalue() + b"\x00", schema_id) is not None


def test_enforce_on_base_replaces_partition_overrides(registry: SchemaRegistry) -> None:
    schema_id = _enforced(registry)
    registry.update_topic_validation_policy("/default/orders-part-1", "none", False)
    assert registry.check_publish("/default/orders-part-1", b"{nope", None) is None
    registry.configure_topic_schema("/default/orders", "orders", "enforce", True)
    assert registry.check_publish("/default/orders-part-1", b"{nope", schema_id) is not None


def test_bind_topic_subject_first_producer(registry: SchemaRegistry) -> None:
    registry.register_schema("a", "string", b"")
    registry.register_schema("b", "bytes", b"")
    registry.bind_topic_subject("/default/t", "a")
    registry.bind_topic_subject("/default/t", "b")  # already bound: unchanged
    assert registry.topic_config("/default/t").schema_subject == "a"
    assert registry.topic_config("/default/t").validation_policy == "warn"


# ------------------------------------------------------------------------------------------- references


def test_resolve_reference(registry: SchemaRegistry) -> None:
    registry.register_schema("users", "json_schema", js(USER_V1))
    registry.register_schema("users", "json_schema", js(with_props(USER_V1, email={"type": "string"})))
    assert registry.resolve_reference(pb.SchemaReference(subject="users")) == (1, 2)
    assert registry.resolve_reference(pb.SchemaReference(subject="users", use_latest=True)) == (1, 2)
    assert registry.resolve_reference(pb.SchemaReference(subject="users", pinned_version=1)) == (1, 1)
    assert registry.resolve_reference(pb.SchemaReference(subject="users", min_version=2)) == (1, 2)
    for ref in (
        pb.SchemaReference(subject="nope"),
        pb.SchemaReference(subject="users", pinned_version=5),
        pb.SchemaReference(subject="users", min_version=3),
    ):
        with pytest.raises(SchemaRegistryError) as info:
            registry.resolve_reference(ref)
        assert info.value.code == grpc.StatusCode.NOT_FOUND


# ------------------------------------------------------------------------------------------- persistence


def _populate_and_close(data_dir: Path) -> list[str]:
    first = SchemaRegistry(data_dir)
    first.register_schema("users", "json_schema", js(USER_V1), "v1", "me", ["x"])
    first.register_schema("users", "json_schema", js(with_props(USER_V1, email={"type": "string"})))
    first.register_schema("text", "string", b"")
    first.set_compatibility_mode("text", "full")
    first.delete_schema_version("users", 2)
    first.configure_topic_schema("/default/orders", "users", "enforce", True)
    first.close()
    return sorted(p.name for p in data_dir.iterdir())


async def test_state_survives_a_restart(tmp_path: Path) -> None:
    assert _populate_and_close(tmp_path) == ["schema_registry.json"]  # no temp files left

    second = SchemaRegistry(tmp_path)
    server, channel = await _serve(second)
    try:
        stub = spb_grpc.SchemaRegistryStub(channel)
        latest = await stub.GetLatestSchema(spb.GetLatestSchemaRequest(subject="users"))
        assert (
            latest.schema_id,
            latest.version,
            latest.description,
            latest.created_by,
            list(latest.tags),
        ) == (
            1,
            1,
            "v1",
            "me",
            ["x"],
        )
        text = await stub.GetLatestSchema(spb.GetLatestSchemaRequest(subject="text"))
        assert (text.schema_id, text.compatibility_mode) == (2, "full")
        config = await stub.GetTopicSchemaConfig(
            spb.GetTopicSchemaConfigRequest(topic_name="/default/orders")
        )
        assert (config.schema_subject, config.validation_policy, config.enable_payload_validation) == (
            "users",
            "enforce",
            True,
        )
        # Ids continue after the persisted ones; version numbers are not reused after a delete.
        new = await stub.RegisterSchema(spb.RegisterSchemaRequest(subject="third", schema_type="bytes"))
        assert new.schema_id == 3
        again = await stub.RegisterSchema(
            spb.RegisterSchemaRequest(
                subject="users",
                schema_type="json_schema",
                schema_definition=js(with_props(USER_V1, x={"type": "string"})),
            )
        )
        assert again.version == 3
        assert second.check_publish("/default/orders", b'{"id": "x"}', 1) is not None
    finally:
        await channel.close()
        await server.stop(None)
        second.close()


def test_corrupt_state_file_is_an_error(tmp_path: Path) -> None:
    (tmp_path / "schema_registry.json").write_text("{broken")
    with pytest.raises(RuntimeError, match="cannot load schema registry state"):
        SchemaRegistry(tmp_path)


# ------------------------------------------------------------------------------------------- properties

_json_leaf = st.one_of(st.none(), st.booleans(), st.integers(-1000, 1000), st.text(max_size=5))
_json_values = st.recursive(
    _json_leaf,
    lambda children: st.one_of(
        st.lists(children, max_size=3), st.dictionaries(st.text(max_size=5), children, max_size=4)
    ),
    max_leaves=12,
)


def _shuffled_dump(value: Any, rng: random.Random) -> str:
    if isinstance(value, dict):
        items = list(value.items())
        rng.shuffle(items)
        inner = ", ".join(f"{json.dumps(k)}:  {_shuffled_dump(v, rng)}" for k, v in items)
        return "{\n " + inner + " }"
    if isinstance(value, list):
        return "[ " + " ,".join(_shuffled_dump(v, rng) for v in value) + "]"
    return json.dumps(value, ensure_ascii=rng.random() < 0.5)


@settings(max_examples=60, deadline=None)
@given(
    props=st.dictionaries(st.text(min_size=1, max_size=6), _json_values, max_size=5),
    seed=st.integers(0, 2**32),
)
def test_fingerprint_is_stable_under_key_order_and_whitespace(props: dict[str, Any], seed: int) -> None:
    schema = {"type": "object", "description": "x", "examples": [props], "title": "t"}
    compact = json.dumps(schema, separators=(",", ":")).encode()
    reformatted = _shuffled_dump(schema, random.Random(seed)).encode()
    a = parse_definition("json_schema", compact)
    b = parse_definition("json_schema", reformatted)
    assert a.fingerprint == b.fingerprint
    avro = {**AVRO_USER, "x-meta": props}
    rng = random.Random(seed)
    assert (
        parse_definition("avro", json.dumps(avro).encode()).fingerprint
        == parse_definition("avro", _shuffled_dump(avro, rng).encode()).fingerprint
    )


_simple_types = st.sampled_from(["string", "integer", "number", "boolean"])
_object_schemas = st.builds(
    lambda props, required, closed: {
        "type": "object",
        "properties": {name: {"type": t} for name, t in props.items()},
        "required": sorted(set(required) & set(props)),
        **({"additionalProperties": False} if closed else {}),
    },
    st.dictionaries(st.sampled_from(["a", "b", "c", "d"]), _simple_types, max_size=4),
    st.lists(st.sampled_from(["a", "b", "c", "d"]), max_size=4),
    st.booleans(),
)


@settings(max_examples=100, deadline=None)
@given(old=_object_schemas, new=_object_schemas)
def test_compatibility_modes_are_consistent(old: dict[str, Any], new: dict[str, Any]) -> None:
    assert check_compatibility("full", "json_schema", old, "json_schema", old) == []
    backward = not check_compatibility("backward", "json_schema", old, "json_schema", new)
    forward = not check_compatibility("forward", "json_schema", old, "json_schema", new)
    full = not check_compatibility("full", "json_schema", old, "json_schema", new)
    assert full == (backward and forward)
    # Forward(old -> new) is backward(new -> old).
    assert forward == (not check_compatibility("backward", "json_schema", new, "json_schema", old))
