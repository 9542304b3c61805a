"""SurrealDbSink.write against SurrealDB's embedded engine: idempotency, refused rows, failure kinds."""

from __future__ import annotations

import socket
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest
import pytest_asyncio
from danube_connect_core.errors import Retryable
from danube_connect_core.sink_batch import SinkBatch
from danube_connect_core.testing import make_config, write_batch
from danube_sink_surrealdb.connector import SurrealDbSink
from danube_sink_surrealdb.settings import SurrealDbSettings
from surrealdb import RecordID

from .helpers import TOPIC, payment, record


async def open_sink(url: str = "mem://", **mapping: Any) -> SurrealDbSink:
    m = {"topic": TOPIC, "subscription": "s", "table": "stripe_payments", **mapping}
    settings = SurrealDbSettings.model_validate({"url": url, "topic_mappings": [m]})
    sink = SurrealDbSink()
    await sink.initialize(make_config("http://127.0.0.1:1", "sink-test", settings))
    return sink


@pytest_asyncio.fixture
async def sink() -> AsyncIterator[SurrealDbSink]:
    s = await open_sink()
    yield s
    await s.shutdown()


def rejected_offsets(batch: SinkBatch[Any]) -> list[int]:
    """Offsets of the records the sink rejected (the rest of the batch was written: nothing retried)."""
    assert batch.retried == {}
    return sorted(r.offset for r in batch.records if r.message_id in batch.rejected)


async def rows(sink: SurrealDbSink, table: str = "stripe_payments") -> list[dict[str, Any]]:
    assert sink.db is not None
    result = await sink.db.query(f"SELECT * FROM {table} ORDER BY amount")
    return list(result)


async def test_batch_is_written_once_and_redelivery_is_idempotent(sink: SurrealDbSink) -> None:
    batch = [record(payment(i), offset=i, partition=i % 4) for i in range(200)]
    await write_batch(sink, batch)
    await write_batch(sink, batch[50:150])  # a redelivery after a crash (invariant 2)
    await write_batch(sink, batch)
    stored = await rows(sink)
    assert len(stored) == 200
    assert stored[7]["id"] == RecordID("stripe_payments", batch[7].message_id)
    assert {k for k in stored[7] if k != "id"} == {"event", "amount", "currency", "timestamp"}
    writer = next(iter(sink.writers.values()))
    assert writer.statements == 3  # one statement per batch


async def test_message_ids_with_any_characters_are_valid_record_ids() -> None:
    topic = "/weird ns`x/päyments:'\"{}"
    sink = await open_sink(topic=topic)
    try:
        recs = [record(payment(i), offset=i, topic=topic) for i in range(3)]
        await write_batch(sink, recs)
        assert [r["id"].id for r in await rows(sink)] == [r.message_id for r in recs]
    finally:
        await sink.shutdown()


async def test_metadata_and_payload_id(tmp_path: Path) -> None:
    s = await open_sink(include_metadata=True)
    try:
        await write_batch(s, [record({**payment(1), "id": "evt_1"}, offset=9, partition=2)])
        (row,) = await rows(s)
        assert row["source_id"] == "evt_1"
        assert row["_danube"] == {
            "topic": TOPIC,
            "partition": 2,
            "offset": 9,
            "publish_time": 1_700_000_000_000_009,
            "producer_name": "p",
            "message_id": f"{TOPIC}:2:9",
        }
    finally:
        await s.shutdown()


async def test_id_field_insert_keeps_first_upsert_keeps_last() -> None:
    for mode, expected in (("insert", 1), ("upsert", 3)):
        s = await open_sink(id_field="data.object.id", write_mode=mode)
        try:
            recs = [record({"data": {"object": {"id": "pi_1"}}, "amount": n}, offset=n) for n in (1, 2, 3)]
            await write_batch(s, recs[:1])
            await write_batch(s, recs[1:])
            (row,) = await rows(s)
            assert row["id"] == RecordID("stripe_payments", "pi_1")
            assert row["amount"] == expected
        finally:
            await s.shutdown()


async def test_missing_id_field_names_the_record_and_writes_the_rest() -> None:
    s = await open_sink(id_field="pid")
    try:
        recs = [record({"pid": f"p{i}", **payment(i)}, offset=i) for i in range(10)]
        recs[3] = record(payment(3), offset=3)
        recs[6] = record({"pid": True, **payment(6)}, offset=6)
        batch = await write_batch(s, recs)
        assert rejected_offsets(batch) == [3, 6]
        assert "missing" in batch.rejected[recs[3].message_id]
        assert "string or an integer" in batch.rejected[recs[6].message_id]
        assert len(await rows(s)) == 8
    finally:
        await s.shutdown()


async def test_rows_refused_by_surrealdb_are_isolated(sink: SurrealDbSink) -> None:
    assert sink.db is not None
    await sink.db.query(
        "DEFINE TABLE stripe_payments SCHEMAFULL;"
        "DEFINE FIELD event ON stripe_payments TYPE string;"
        "DEFINE FIELD amount ON stripe_payments TYPE int;"
        "DEFINE FIELD currency ON stripe_payments TYPE string;"
        "DEFINE FIELD timestamp ON stripe_payments TYPE int;"
    )
    recs = [record(payment(i), offset=i) for i in range(100)]
    bad_offsets = {5, 6, 61, 99}
    for i in bad_offsets:
        recs[i] = record({**payment(i), "amount": "not a number"}, offset=i)
    recs[40] = record({**payment(40), "amount": 2**70}, offset=40)  # not encodable: beyond 64 bits
    batch = await write_batch(sink, recs)
    assert rejected_offsets(batch) == sorted(bad_offsets | {40})
    assert "amount" in batch.rejected[recs[5].message_id]
    assert len(await rows(sink)) == 95


async def test_rows_refused_by_a_table_event_are_dead_lettered_each(sink: SurrealDbSink) -> None:
    assert sink.db is not None
    await sink.db.query(
        "DEFINE EVENT no_small ON stripe_payments WHEN $event = 'CREATE' AND $after.amount < 2 "
        "THEN { THROW 'amount too small' };"
    )
    batch = await write_batch(sink, [record(payment(i), offset=i) for i in range(6)])
    assert rejected_offsets(batch) == [0, 1]
    assert "amount too small" in next(iter(batch.rejected.values()))
    assert len(await rows(sink)) == 4


async def test_a_statement_that_fails_without_rows_is_retryable_not_poison(sink: SurrealDbSink) -> None:
    # A failure that does not depend on the rows (the statement fails with no rows at all) is never
    # blamed on the data (invariant 5): here a statement SurrealDB cannot parse.
    writer = next(iter(sink.writers.values()))
    writer.statement = "INSERT IGNORE INTO stripe_payments $rows RETURN NONE BROKEN"
    with pytest.raises(Retryable, match="refuses writes"):
        await write_batch(sink, [record(payment(i), offset=i) for i in range(4)])


def closed_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@pytest.mark.parametrize("scheme", ["ws", "http", "bare"])
async def test_unreachable_server_is_retryable_and_not_ready(scheme: str) -> None:
    port = closed_port()
    url = f"127.0.0.1:{port}" if scheme == "bare" else f"{scheme}://127.0.0.1:{port}"
    s = await open_sink(url)  # not fatal: the sink waits for the server
    try:
        with pytest.raises(Retryable):
            await s.health_check()
        with pytest.raises(Retryable):
            await write_batch(s, [record(payment(1), offset=1)])
    finally:
        await s.shutdown()


async def test_surrealkv_store_survives_reopen(tmp_path: Path) -> None:
    url = f"surrealkv://{tmp_path / 'kv'}"
    s = await open_sink(url)
    await write_batch(s, [record(payment(i), offset=i) for i in range(30)])
    await s.shutdown()
    s = await open_sink(url)
    try:
        await write_batch(s, [record(payment(i), offset=i) for i in range(20, 40)])
        assert len(await rows(s)) == 40
    finally:
        await s.shutdown()


async def test_integers_beyond_64_bits_are_refused_by_name_not_wrapped(sink: SurrealDbSink) -> None:
    # The sink decodes these exactly (exact_json). SurrealDB's int is 64-bit signed: unchecked, the SDK
    # encoded 2**63..2**64-1 and the database stored them wrapped (2**64 - 1 read back as -1), and refused
    # larger ones with "unknown CBOR tag". Each such row alone is dead-lettered with a clear reason.
    recs = [record(payment(i), offset=i) for i in range(7)]
    recs[2] = record({**payment(2), "amount": 10**20 + 1}, offset=2)
    recs[4] = record({**payment(4), "meta": {"ids": [1, -(2**63) - 1]}}, offset=4)  # nested, negative
    recs[5] = record({**payment(5), "amount": 2**64 - 1}, offset=5)  # was silently stored as -1
    edge = {**payment(6), "meta": {"lo": -(2**63), "hi": 2**63 - 1}}
    recs[6] = record(edge, offset=6)  # the int64 edges still fit
    batch = await write_batch(sink, recs)
    assert rejected_offsets(batch) == [2, 4, 5]
    assert "integer at /amount is beyond SurrealDB's 64-bit int range" in batch.rejected[recs[2].message_id]
    assert "integer at /meta/ids/1 is beyond" in batch.rejected[recs[4].message_id]
    stored = await rows(sink)
    assert sorted(r["amount"] for r in stored) == sorted(payment(i)["amount"] for i in (0, 1, 3, 6))
    assert [r["meta"] for r in stored if "meta" in r] == [edge["meta"]]
