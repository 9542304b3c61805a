"""Hostile payloads for the SinkRuntime's decoding (invariants 4 and 5): every message that cannot be
decoded by its schema, names a schema the registry does not know, or carries another subject than the
mapping expects goes to the dead-letter topic with its reason and ``error.*`` attributes; the healthy
messages beside it reach the sink; the runtime keeps running.

One SinkRuntime with a MemorySink runs in this event loop against the in-process embedded broker with
four mappings: a ``json_schema`` topic (with ``expected_schema_subject``), an ``avro`` topic, a
``number`` topic and a ``string`` topic. Hypothesis draws the corrupt payloads; messages with schema ids
the registry never issued are forged by a producer whose stamped ids are replaced (a real client would
never send them, a buggy or hostile one can).
"""

from __future__ import annotations

import asyncio
import io
import json
import re
from collections import Counter
from dataclasses import dataclass
from typing import Any

import fastavro
import orjson
from danube_connect_core.client import DanubeClient, SchemaReference
from danube_connect_core.consumer_config import ConsumerConfig
from danube_connect_core.testing import MemorySink, consume, http_get, make_config, produce, start_runtime
from hypothesis import strategies as st

from .hostile_support import PAYMENT_SCHEMA, collect, payment

JSON_TOPIC = "/default/hostile-sink-json"
AVRO_TOPIC = "/default/hostile-sink-avro"
NUMBER_TOPIC = "/default/hostile-sink-number"
STRING_TOPIC = "/default/hostile-sink-string"
JSON_SUBJECT = "hostile-sink-payment"
AVRO_SUBJECT = "hostile-sink-avro"
NUMBER_SUBJECT = "hostile-sink-number"
STRING_SUBJECT = "hostile-sink-string"
CONNECTOR = "hostile-sink"
DLQ = f"/default/{CONNECTOR}-dlq"
SUBSCRIPTION = "hostile-sink-sub"

AVRO_SCHEMA = {
    "type": "record",
    "name": "Payment",
    "fields": [
        {"name": "event", "type": "string"},
        {"name": "amount", "type": "long"},
        {"name": "tags", "type": {"type": "array", "items": "string"}},
    ],
}
PARSED_AVRO = fastavro.parse_schema(AVRO_SCHEMA)


def avro_encode(value: dict[str, Any]) -> bytes:
    buf = io.BytesIO()
    fastavro.schemaless_writer(buf, PARSED_AVRO, value)
    return buf.getvalue()


def avro_record(i: int) -> dict[str, Any]:
    return {"event": f"payment-{i}", "amount": 1000 + i, "tags": ["a", "b"][: i % 3]}


def avro_decodes(data: bytes) -> bool:
    """The oracle for avro bytes: decodes, and nothing is left over (trailing bytes are corruption)."""
    buf = io.BytesIO(data)
    try:
        fastavro.schemaless_reader(buf, PARSED_AVRO, None)
    except Exception:
        return False
    return buf.tell() == len(data)


def json_decodes(data: bytes) -> bool:
    """Valid JSON as sinks read it: what orjson accepts, plus documents whose only problem for orjson is
    an integer beyond 64 bits (sinks decode those exactly, see test_sink_big_integers.py)."""
    try:
        orjson.loads(data)
        return True
    except orjson.JSONDecodeError:
        pass
    if re.search(rb"\d{19,}", data) is None:
        return False
    try:
        json.loads(data.decode("utf-8"), parse_constant=_refuse)
    except ValueError:  # UnicodeDecodeError and JSONDecodeError included
        return False
    return True


def _refuse(name: str) -> None:
    raise ValueError(f"{name} is not JSON")


@dataclass
class Sent:
    topic: str
    payload: bytes
    dead_kind: str | None  # None: healthy, must reach the sink


async def _producer(client: DanubeClient, topic: str, name: str, subject: str | None) -> Any:
    schema = SchemaReference.latest(subject) if subject else None
    return await client.create_producer(topic, name, reliable=True, schema=schema)


def _forge(producer: Any, ids: tuple[int, int]) -> Any:
    """Stamp ``ids`` on every further message of ``producer`` (test-only: reaches into the client)."""
    for part in producer._parts:
        part._schema_ids = ids
    return producer


async def test_undecodable_and_unknown_schema_messages_are_dead_lettered_beside_healthy_ones(
    broker: Any,
) -> None:
    url = broker.url
    client = DanubeClient(url)
    registry = client.schema_registry
    json_id, json_version, _ = await registry.register(
        JSON_SUBJECT, "json_schema", PAYMENT_SCHEMA.read_bytes()
    )
    avro_id, avro_version, _ = await registry.register(AVRO_SUBJECT, "avro", json.dumps(AVRO_SCHEMA))
    await registry.register(NUMBER_SUBJECT, "number", b"{}")
    await registry.register(STRING_SUBJECT, "string", b"{}")

    # topics and subscriptions exist before anything is produced (subscriptions start at the latest)
    for topic in (JSON_TOPIC, AVRO_TOPIC, NUMBER_TOPIC, STRING_TOPIC, DLQ):
        await produce(url, topic, [])
        await consume(url, topic, SUBSCRIPTION if topic != DLQ else "inspect", 0)

    sink = MemorySink(
        [
            ConsumerConfig(JSON_TOPIC, SUBSCRIPTION, expected_schema_subject=JSON_SUBJECT, batch_size=16),
            ConsumerConfig(AVRO_TOPIC, SUBSCRIPTION, batch_size=16),
            ConsumerConfig(NUMBER_TOPIC, SUBSCRIPTION, batch_size=16),
            ConsumerConfig(STRING_TOPIC, SUBSCRIPTION, batch_size=16),
        ]
    )
    config = make_config(
        url, CONNECTOR, retry={"max_retries": 2, "retry_backoff_ms": 20, "max_backoff_ms": 100}
    )
    running = await start_runtime(sink, config)
    sent: list[Sent] = []
    try:
        # -- json_schema topic -------------------------------------------------------------------
        good_json = await _producer(client, JSON_TOPIC, "h-json", JSON_SUBJECT)
        corrupt_json = collect(
            st.one_of(
                st.binary(max_size=200),
                st.builds(lambda d: d[: max(0, len(d) - 1)], st.just(orjson.dumps(payment(0)))),
                st.integers(1, 2000).map(lambda n: b"[" * n),
                st.sampled_from([b"\xef\xbb\xbf{}", b'{"a":1e400}', b"NaN", b'"\xff"', b"1" + b"0" * 400]),
            ).filter(lambda b: not json_decodes(b)),
            40,
        )
        for i in range(30):
            body = orjson.dumps(payment(i))
            await good_json.send(body)
            sent.append(Sent(JSON_TOPIC, body, None))
            if i < len(corrupt_json):
                await good_json.send(corrupt_json[i])
                sent.append(Sent(JSON_TOPIC, corrupt_json[i], "decode"))
        for body in corrupt_json[30:]:
            await good_json.send(body)
            sent.append(Sent(JSON_TOPIC, body, "decode"))

        forged = [
            ((987_654, 1), "schema"),  # an id the registry never issued
            ((json_id, json_version + 40), "schema"),  # a version that does not exist
            ((avro_id, avro_version), "schema_mismatch"),  # another subject than the mapping expects
        ]
        for n, (ids, kind) in enumerate(forged):
            p = _forge(await _producer(client, JSON_TOPIC, f"h-forged-{n}", JSON_SUBJECT), ids)
            for i in range(3):
                body = orjson.dumps(payment(100 + 10 * n + i))
                await p.send(body)
                sent.append(Sent(JSON_TOPIC, body, kind))
        no_schema = await _producer(client, JSON_TOPIC, "h-json-noschema", None)
        for i in range(3):
            body = orjson.dumps(payment(200 + i))
            await no_schema.send(body)
            sent.append(Sent(JSON_TOPIC, body, "schema_mismatch"))

        # -- avro topic: truncated, extended, random ---------------------------------------------
        good_avro = await _producer(client, AVRO_TOPIC, "h-avro", AVRO_SUBJECT)
        encoded = [avro_encode(avro_record(i)) for i in range(20)]
        hostile_avro = collect(
            st.one_of(
                st.tuples(st.sampled_from(encoded), st.integers(1, 8)).map(lambda t: t[0][: -t[1]]),
                st.tuples(st.sampled_from(encoded), st.binary(min_size=1, max_size=8)).map(
                    lambda t: t[0] + t[1]
                ),
                st.binary(max_size=40),
                st.just(b"\xff\xff\xff\xff\xff\xff\xff\xff\xff\xff\x01"),  # an absurd string length
            ),
            40,
        )
        for i, body in enumerate(encoded):
            await good_avro.send(body)
            sent.append(Sent(AVRO_TOPIC, body, None))
            for bad in hostile_avro[2 * i : 2 * i + 2]:
                await good_avro.send(bad)
                sent.append(Sent(AVRO_TOPIC, bad, None if avro_decodes(bad) else "decode"))

        # -- number and string topics: payloads of the wrong type --------------------------------
        numbers = await _producer(client, NUMBER_TOPIC, "h-number", NUMBER_SUBJECT)
        for body in (b"42", b"-3.5", b'"42"', b"true", b"[1]", b"null", b"abc", b"", b"1e400", b"{}", b"7"):
            await numbers.send(body)
            ok = json_decodes(body) and isinstance(orjson.loads(body), int | float) and body != b"true"
            sent.append(Sent(NUMBER_TOPIC, body, None if ok else "decode"))
        strings = await _producer(client, STRING_TOPIC, "h-string", STRING_SUBJECT)
        for body in (b"hello", b"\xff\xfe", b"caf\xc3\xa9", b"\xed\xa0\x80", b"", b"\xc3", b"ok"):
            await strings.send(body)
            try:
                body.decode("utf-8")
                kind = None
            except UnicodeDecodeError:
                kind = "decode"
            sent.append(Sent(STRING_TOPIC, body, kind))

        healthy = [s for s in sent if s.dead_kind is None]
        dead = [s for s in sent if s.dead_kind is not None]
        assert len(dead) >= 60 and len(healthy) >= 50

        # -- every healthy message written, every bad one dead-lettered with its reason -----------
        await sink.wait_for(len(healthy), within=90)
        letters = await consume(url, DLQ, "inspect", len(dead), within=90)

        written = Counter((r.topic, r.raw) for r in sink.records)
        assert written == Counter((s.topic, s.payload) for s in healthy)
        got = Counter((m.attributes["error.topic"], m.payload, m.attributes["error.kind"]) for m in letters)
        assert got == Counter((s.topic, s.payload, s.dead_kind) for s in dead)
        for m in letters:
            a = m.attributes
            assert a["error.reason"], a
            assert a["error.connector"] == CONNECTOR
            assert a["error.subscription"] == SUBSCRIPTION
            assert int(a["error.offset"]) >= 0 and a["error.message_id"]
            assert "Traceback" not in a["error.reason"]
        kinds = Counter(m.attributes["error.kind"] for m in letters)
        assert set(kinds) == {"decode", "schema", "schema_mismatch"}, kinds

        # -- the runtime is alive and serving; nothing more arrives on the DLQ ---------------------
        assert not running.task.done()
        status, body = await asyncio.to_thread(http_get, running.port, "/health")
        assert status == 200, body
        marker = orjson.dumps(payment(999, marker=True))
        await good_json.send(marker)
        await sink.wait_for(len(healthy) + 1, within=60)
        assert sink.records[-1].raw == marker
    finally:
        await client.close()
        if not running.task.done():
            assert await running.stop() == 0
        else:
            raise AssertionError(f"the sink runtime ended with {running.task.result()}")
