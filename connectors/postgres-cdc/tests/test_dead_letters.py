"""A change its topic's schema rejects goes through the core's delivery pipeline like any polled record:
dead-lettered with the reason, and the slot advances past it only once the dead letter is acknowledged."""

from __future__ import annotations

import asyncio
import json
from pathlib import Path
from typing import Any

import orjson
import pytest
from danube_connect_core.testing import consume, make_config, produce, start_runtime
from danube_source_postgres_cdc import PostgresCdcSource

from .cdc_helpers import Collector, settings, wait_ready

pytestmark = pytest.mark.asyncio(loop_scope="function")

TOPIC = "/default/ledger"
DLQ = "/default/cdc-ledger-dlq"
#: Inserted and updated rows must have a non-negative amount (deletes have no ``after``).
SCHEMA = {
    "type": "object",
    "required": ["op"],
    "properties": {
        "after": {
            "anyOf": [
                {"type": "null"},
                {"type": "object", "properties": {"amount": {"type": "integer", "minimum": 0}}},
            ]
        }
    },
}


async def test_a_rejected_change_is_dead_lettered_and_committed_only_after_its_dead_letter(
    pg_db: Any, broker: Any, tmp_path: Path
) -> None:
    schema_file = tmp_path / "ledger.json"
    schema_file.write_text(json.dumps(SCHEMA))
    schemas = [
        {"topic": TOPIC, "subject": "ledger", "schema_type": "json_schema", "schema_file": schema_file}
    ]
    retry = {"max_retries": 1, "retry_backoff_ms": 10, "max_backoff_ms": 10}
    conn = await pg_db.connect()
    await conn.execute("CREATE TABLE ledger (id int PRIMARY KEY, amount int)")
    s = settings(
        pg_db.dsn, [{"table": "public.ledger", "danube_topic": TOPIC}], plugin="pgoutput", slot_name="s_dlq"
    )
    collector = await Collector(broker.url, {TOPIC: None}).start()
    await produce(broker.url, DLQ, [])  # the dead-letter topic and its reader, before anything is sent
    await consume(broker.url, DLQ, "reader", 0)
    try:
        # 1. The dead-letter topic cannot be written: the runtime exits 1 and the slot stays before the
        #    rejected change (one transaction per row, so each has its own end LSN).
        refused = make_config(
            broker.url,
            "cdc-ledger",
            s,
            schemas=schemas,
            retry=retry,
            errors={"dead_letter_topic": "not a topic"},
        )
        first = await start_runtime(PostgresCdcSource(), refused)
        await wait_ready(first.port)
        for i, amount in ((1, 5), (2, -1), (3, 7)):
            await conn.execute("INSERT INTO ledger VALUES ($1, $2)", i, amount)
        assert await first.wait(within=60) == 1
        async with asyncio.timeout(60):  # the first run did publish the change before the rejected one
            while 1 not in {e["after"]["id"] for e in collector.events}:  # noqa: ASYNC110
                await asyncio.sleep(0.05)

        # 2. Restarted with a usable dead-letter topic: the change is decoded again and dead-lettered.
        running = await start_runtime(
            PostgresCdcSource(), make_config(broker.url, "cdc-ledger", s, schemas=schemas, retry=retry)
        )
        (letter,) = await consume(broker.url, DLQ, "reader", 1, within=60)
        await conn.execute("INSERT INTO ledger VALUES (4, 9)")  # a marker: everything before it is through
        async with asyncio.timeout(60):
            while 4 not in {e["after"]["id"] for e in collector.events}:  # noqa: ASYNC110
                await asyncio.sleep(0.05)
        assert await running.stop() == 0
    finally:
        await collector.stop()
        await conn.close()
    rejected = orjson.loads(letter.payload)
    assert rejected["op"] == "c" and rejected["after"] == {"id": 2, "amount": -1}
    assert letter.attributes["error.kind"] == "invalid_data"
    assert letter.attributes["error.topic"] == TOPIC
    assert "minimum" in letter.attributes["error.reason"] or "-1" in letter.attributes["error.reason"]
    assert letter.attributes["error.source_offset"].startswith("wal:")
    assert letter.attributes["cdc.table"] == "public.ledger"
    ids = [e["after"]["id"] for e in collector.events]
    assert 2 not in ids  # never on its topic
    assert {1, 3, 4} <= set(ids)
