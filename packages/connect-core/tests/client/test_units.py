"""Unit tests of the pure parts: routing, backoff, unwrap, names, classification, auth, log budget."""

from __future__ import annotations

import logging
import random

import grpc
import pytest
from danube_connect_core.client import RetryPolicy, TlsOptions, fnv1a_64, unwrap_definition
from danube_connect_core.client.auth import MetadataProvider
from danube_connect_core.client.errors import Action, DanubeError, classify
from danube_connect_core.client.lookup import check_topic_name
from danube_connect_core.client.messages import SchemaReference
from danube_connect_core.client.pool import grpc_target, wants_tls
from danube_connect_core.client.ratelog import RateLimitedLog
from danube_connect_core.client.routing import PartitionRouter, filter_partitions, partition_index


def test_fnv1a_known_vectors() -> None:
    # Reference values of FNV-1a 64 (offset basis 0xcbf29ce484222325, prime 0x100000001b3).
    assert fnv1a_64("") == 0xCBF29CE484222325
    assert fnv1a_64("a") == 0xAF63DC4C8601EC8C
    assert fnv1a_64("foobar") == 0x85944171F73967E8


def test_fnv1a_hashes_utf8_bytes() -> None:
    h = 0xCBF29CE484222325
    for b in "é€".encode():
        h = ((h ^ b) * 0x100000001B3) % 2**64
    assert fnv1a_64("é€") == h


def test_router_round_robin_starts_at_zero_and_wraps() -> None:
    router = PartitionRouter(3)
    assert [router.route() for _ in range(7)] == [0, 1, 2, 0, 1, 2, 0]


def test_router_key_is_hash_mod_n_and_stable() -> None:
    router = PartitionRouter(7)
    for key in ("user-1", "user-2", "ключ", ""):
        assert router.route(key) == fnv1a_64(key) % 7
        assert router.route(key) == router.route(key)
    # more keys than the router remembers: still the hash, before and after it forgets
    keys = [f"customer-{i}" for i in range(5000)]
    assert [router.route(k) for k in keys + keys[:100]] == [fnv1a_64(k) % 7 for k in keys + keys[:100]]


def test_partition_filtering_keeps_exact_names_only() -> None:
    names = [
        "/ns/t-part-1",
        "/ns/t_v2",
        "/ns/t-part-0",
        "/ns/t-part-x",
        "/ns/t-part-01",
        "/ns/t-part-10",
        "/ns/t-part-2-part-0",
        "/ns/t2-part-0",
    ]
    assert filter_partitions("/ns/t", names) == ["/ns/t-part-0", "/ns/t-part-1", "/ns/t-part-10"]
    assert filter_partitions("/ns/t", ["/ns/t", "/ns/t_v2"]) == ["/ns/t"]
    assert filter_partitions("/ns/t", ["/ns/t_v2"]) == []
    assert partition_index("/ns/t", "/ns/t-part-3") == 3
    assert partition_index("/ns/t", "/ns/t-part-") is None


@pytest.mark.parametrize(
    ("code", "action"),
    [
        (grpc.StatusCode.UNAVAILABLE, Action.RETRY),
        (grpc.StatusCode.DEADLINE_EXCEEDED, Action.RETRY),
        (grpc.StatusCode.RESOURCE_EXHAUSTED, Action.RETRY),
        (grpc.StatusCode.NOT_FOUND, Action.RECREATE),
        (grpc.StatusCode.PERMISSION_DENIED, Action.FAIL),
        (grpc.StatusCode.INVALID_ARGUMENT, Action.FAIL),
        (grpc.StatusCode.FAILED_PRECONDITION, Action.FAIL),
        (grpc.StatusCode.ALREADY_EXISTS, Action.FAIL),
        (grpc.StatusCode.UNAUTHENTICATED, Action.FAIL),
        (grpc.StatusCode.INTERNAL, Action.FAIL),
    ],
)
def test_classification(code: grpc.StatusCode, action: Action) -> None:
    assert classify(code) is action


def test_backoff_is_exponential_capped_and_jittered() -> None:
    policy = RetryPolicy(max_retries=5, base_backoff_ms=200, max_backoff_ms=5000)
    rng = random.Random(1)
    for attempt, ceiling in [(0, 0.2), (1, 0.4), (2, 0.8), (4, 3.2), (5, 5.0), (40, 5.0)]:
        delays = [policy.backoff_s(attempt, rng) for _ in range(200)]
        assert all(ceiling / 2 <= d <= ceiling for d in delays)
        assert len({round(d, 6) for d in delays}) > 1  # jitter


def test_retry_policy_validation() -> None:
    with pytest.raises(ValueError):
        RetryPolicy(max_retries=-1)
    with pytest.raises(ValueError):
        RetryPolicy(base_backoff_ms=100, max_backoff_ms=10)
    with pytest.raises(ValueError):
        TlsOptions(cert_file="c.pem")


def test_unwrap_wrapped_and_plain_definitions() -> None:
    raw = '{"type":"object","properties":{"a":{"type":"string"}}}'
    import json

    wrapped = json.dumps({"JsonSchema": {"raw_schema": raw, "fingerprint": "sha256:abc"}}).encode()
    assert unwrap_definition(wrapped) == raw.encode()
    avro = json.dumps({"Avro": {"raw_schema": '{"type":"record"}', "fingerprint": "x"}}).encode()
    assert unwrap_definition(avro) == b'{"type":"record"}'
    proto_bytes = json.dumps({"Protobuf": {"raw_schema": [115, 121, 110]}}).encode()
    assert unwrap_definition(proto_bytes) == b"syn"
    # already unwrapped: a JSON Schema with one top-level key must not be mistaken for a wrapper
    assert unwrap_definition(raw.encode()) == raw.encode()
    single = b'{"type": "string"}'
    assert unwrap_definition(single) == single
    single_obj = b'{"properties": {"a": {"type": "string"}}}'
    assert unwrap_definition(single_obj) == single_obj
    assert unwrap_definition(b"syntax = 'proto3';") == b"syntax = 'proto3';"
    assert unwrap_definition(b"{not json") == b"{not json"


def test_schema_reference_to_proto() -> None:
    assert SchemaReference.latest("s").to_proto().use_latest
    assert SchemaReference.pinned("s", 3).to_proto().pinned_version == 3
    assert SchemaReference.minimum("s", 2).to_proto().WhichOneof("version_ref") == "min_version"
    with pytest.raises(ValueError):
        SchemaReference("s", pinned_version=1, min_version=1)


async def test_metadata_static_callable_and_async_token_and_proxy() -> None:
    assert await MetadataProvider(None).metadata() == ()
    static = MetadataProvider("tok")
    assert static.is_static
    assert await static.metadata("http://b:6650") == (
        ("authorization", "Bearer tok"),
        ("x-danube-broker-url", "http://b:6650"),
    )
    tokens = iter(["t1", "t2"])
    rotating = MetadataProvider(lambda: next(tokens))
    assert not rotating.is_static
    assert await rotating.metadata() == (("authorization", "Bearer t1"),)
    assert await rotating.metadata() == (("authorization", "Bearer t2"),)

    async def fetch() -> str:
        return "async-tok"

    assert await MetadataProvider(fetch).metadata() == (("authorization", "Bearer async-tok"),)


def test_urls_and_topic_names() -> None:
    assert grpc_target("http://127.0.0.1:6650") == "127.0.0.1:6650"
    assert grpc_target("https://broker:6650/") == "broker:6650"
    assert grpc_target("broker:6650") == "broker:6650"
    assert wants_tls("https://b:1", None) and not wants_tls("http://b:1", None)
    assert wants_tls("http://b:1", TlsOptions(ca_file="ca.pem"))
    check_topic_name("/default/t-1")
    for bad in ("default/t", "/default", "/a/b/c", "//t"):
        with pytest.raises(DanubeError):
            check_topic_name(bad)


def test_rate_limited_log_caps_lines_and_counts_suppressed(caplog: pytest.LogCaptureFixture) -> None:
    logger = logging.getLogger("test.ratelog")
    log = RateLimitedLog(logger, per_second=1.0, burst=3)
    with caplog.at_level(logging.WARNING, logger="test.ratelog"):
        emitted = sum(log.warning("broker away %d", i) for i in range(1000))
    assert emitted <= 4
    assert len(caplog.records) == emitted
