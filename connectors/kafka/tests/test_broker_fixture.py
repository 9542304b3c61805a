"""The test broker itself: the installed Kafka answers on loopback, and its SASL listener accepts the
PLAIN and SCRAM-SHA-256 users the SASL tests log in with (and refuses a wrong password)."""

from __future__ import annotations

import time

import pytest
from confluent_kafka import Consumer, KafkaError
from danube_source_kafka.testing import SASL_USERS, KafkaBroker, Produced, create_topic, produce, unique


def _consume_all(config: dict[str, object], topic: str, expected: int) -> int:
    consumer = Consumer({"group.id": unique("g"), "auto.offset.reset": "earliest", **config})
    consumer.subscribe([topic])
    seen = 0
    deadline = time.monotonic() + 60
    try:
        while seen < expected and time.monotonic() < deadline:
            seen += sum(1 for m in consumer.consume(100, 0.5) if m.error() is None)
    finally:
        consumer.close()
    return seen


@pytest.mark.parametrize("mechanism", ["PLAIN", "SCRAM-SHA-256"])
def test_sasl_listener_accepts_the_test_users(kafka: KafkaBroker, mechanism: str) -> None:
    topic = unique("sasl")
    create_topic(kafka.bootstrap, topic)
    assert produce(kafka.bootstrap, (Produced(topic, None, b"%d" % i) for i in range(20))) == 20
    login = {
        "bootstrap.servers": kafka.sasl_bootstrap,
        "security.protocol": "SASL_PLAINTEXT",
        "sasl.mechanism": mechanism,
        "sasl.username": "bob",
        "sasl.password": SASL_USERS["bob"],
    }
    assert _consume_all(login, topic, 20) == 20


def test_sasl_listener_refuses_a_wrong_password(kafka: KafkaBroker) -> None:
    errors: list[KafkaError] = []
    consumer = Consumer(
        {
            "bootstrap.servers": kafka.sasl_bootstrap,
            "group.id": unique("g"),
            "security.protocol": "SASL_PLAINTEXT",
            "sasl.mechanism": "PLAIN",
            "sasl.username": "bob",
            "sasl.password": "wrong",
            "error_cb": errors.append,
            "log_level": 0,
        }
    )
    try:
        consumer.subscribe([unique("none")])
        deadline = time.monotonic() + 60
        while not any(e.code() == KafkaError._AUTHENTICATION for e in errors):
            assert time.monotonic() < deadline, errors
            consumer.poll(0.5)
    finally:
        consumer.close()
