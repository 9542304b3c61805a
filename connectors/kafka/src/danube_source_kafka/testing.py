"""Test and benchmark helpers: a real Apache Kafka broker (KRaft, one node) and a plain producer.

The broker is the one ``scripts/install_kafka.sh`` installs (published jars from Maven Central in
:func:`kafka_home`), run as ``java -cp "<libs>/*" kafka.Kafka server.properties`` after its storage is
formatted with ``kafka.tools.StorageTool``. It listens on 127.0.0.1 only, on two ports: PLAINTEXT, and
SASL_PLAINTEXT with the PLAIN and SCRAM-SHA-256 mechanisms (users :data:`SASL_USERS`).

:func:`session_broker` starts one broker per test process and reuses it (a JVM start costs seconds on a
loaded machine); tests isolate themselves with their own topic names and consumer groups.
"""

from __future__ import annotations

import asyncio
import atexit
import contextlib
import os
import shutil
import socket
import subprocess
import tempfile
import time
import uuid
from collections import Counter
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import orjson
from danube_connect_core.testing.conformance import SourceCase, SourceUpstream, payload
from danube_connect_core.testing.harness import free_port

__all__ = [
    "CASE",
    "SASL_USERS",
    "DanubeCollector",
    "KafkaBroker",
    "KafkaMissing",
    "KafkaUpstream",
    "Produced",
    "committed_offsets",
    "create_topic",
    "kafka_home",
    "kafka_positions",
    "produce",
    "session_broker",
    "source_toml",
    "unique",
    "wait_ready",
]

#: The Kafka version scripts/kafka/pom.xml installs (the default install directory carries it).
KAFKA_VERSION = "4.1.1"
#: Users of the SASL listener: PLAIN and SCRAM-SHA-256 accept the same names and passwords.
SASL_USERS = {"alice": "alice-secret", "bob": "bob-secret"}


class KafkaMissing(RuntimeError):
    """The broker's jars or java are not installed (run scripts/install_kafka.sh)."""


def kafka_home() -> Path:
    """Where scripts/install_kafka.sh put the broker (``DANUBE_KAFKA_HOME`` moves it)."""
    default = Path.home() / ".cache" / "danube-connect" / f"kafka-{KAFKA_VERSION}"
    return Path(os.environ.get("DANUBE_KAFKA_HOME", default))


@dataclass
class KafkaBroker:
    """One KRaft broker+controller process on loopback. ``start()`` returns once it answers metadata."""

    workdir: Path
    port: int = field(default_factory=free_port)
    sasl_port: int = field(default_factory=free_port)
    controller_port: int = field(default_factory=free_port)
    heap_mb: int = 512
    proc: subprocess.Popen[bytes] | None = None

    @property
    def bootstrap(self) -> str:
        return f"127.0.0.1:{self.port}"

    @property
    def sasl_bootstrap(self) -> str:
        return f"127.0.0.1:{self.sasl_port}"

    @property
    def log_file(self) -> Path:
        return self.workdir / "kafka.log"

    def _classpath(self) -> str:
        libs = kafka_home() / "libs"
        if not (kafka_home() / "installed").is_file() or not libs.is_dir():
            raise KafkaMissing(
                f"Apache Kafka is not installed in {kafka_home()} (bash scripts/install_kafka.sh)"
            )
        if shutil.which("java") is None:
            raise KafkaMissing("java is not installed (apt-get install openjdk-17-jre-headless)")
        return f"{libs}/*"

    def _write_config(self) -> Path:
        users = " ".join(f'user_{name}="{password}"' for name, password in SASL_USERS.items())
        conf = self.workdir / "server.properties"
        conf.write_text(
            "process.roles=broker,controller\n"
            "node.id=1\n"
            f"controller.quorum.voters=1@127.0.0.1:{self.controller_port}\n"
            f"listeners=PLAINTEXT://127.0.0.1:{self.port},SASL_PLAINTEXT://127.0.0.1:{self.sasl_port},"
            f"CONTROLLER://127.0.0.1:{self.controller_port}\n"
            f"advertised.listeners=PLAINTEXT://127.0.0.1:{self.port},"
            f"SASL_PLAINTEXT://127.0.0.1:{self.sasl_port}\n"
            "controller.listener.names=CONTROLLER\n"
            "inter.broker.listener.name=PLAINTEXT\n"
            "listener.security.protocol.map=PLAINTEXT:PLAINTEXT,SASL_PLAINTEXT:SASL_PLAINTEXT,"
            "CONTROLLER:PLAINTEXT\n"
            "sasl.enabled.mechanisms=PLAIN,SCRAM-SHA-256\n"
            "listener.name.sasl_plaintext.plain.sasl.jaas.config="
            "org.apache.kafka.common.security.plain.PlainLoginModule required "
            f'username="alice" password="{SASL_USERS["alice"]}" {users};\n'
            "listener.name.sasl_plaintext.scram-sha-256.sasl.jaas.config="
            "org.apache.kafka.common.security.scram.ScramLoginModule required;\n"
            f"log.dirs={self.workdir / 'data'}\n"
            "num.partitions=1\n"
            "offsets.topic.replication.factor=1\n"
            "offsets.topic.num.partitions=4\n"
            "transaction.state.log.replication.factor=1\n"
            "transaction.state.log.min.isr=1\n"
            "share.coordinator.state.topic.replication.factor=1\n"
            "share.coordinator.state.topic.min.isr=1\n"
            # A new group starts at once instead of waiting 3 s for more members.
            "group.initial.rebalance.delay.ms=0\n"
            "auto.create.topics.enable=false\n"
            "num.network.threads=2\n"
            "num.io.threads=2\n"
        )
        return conf

    def start(self, timeout: float = 90.0) -> KafkaBroker:
        classpath = self._classpath()
        self.workdir.mkdir(parents=True, exist_ok=True)
        conf = self._write_config()
        java = ["java", f"-Xmx{self.heap_mb}m", "-Xms128m", "-XX:+UseSerialGC", "-cp", classpath]
        if not (self.workdir / "data" / "meta.properties").exists():
            scram = [
                arg
                for name, password in SASL_USERS.items()
                for arg in ("--add-scram", f"SCRAM-SHA-256=[name={name},password={password}]")
            ]
            formatted = subprocess.run(
                [
                    *java,
                    "kafka.tools.StorageTool",
                    "format",
                    "-t",
                    uuid.uuid4().hex[:22],
                    "-c",
                    str(conf),
                    *scram,
                ],
                capture_output=True,
                timeout=120,
                check=False,
            )
            if formatted.returncode != 0:
                raise RuntimeError(f"kafka storage format failed: {formatted.stderr.decode()[-2000:]}")
        log = open(self.log_file, "ab")  # noqa: SIM115 - owned by the process
        self.proc = subprocess.Popen(
            [*java, "kafka.Kafka", str(conf)], stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL
        )
        log.close()
        deadline = time.monotonic() + timeout
        while not self._answers():
            if self.proc.poll() is not None:
                raise RuntimeError(f"kafka exited with {self.proc.returncode}: see {self.log_file}")
            if time.monotonic() > deadline:
                self.stop()
                raise RuntimeError(f"kafka did not answer within {timeout}s: see {self.log_file}")
            time.sleep(0.3)
        return self

    def _answers(self) -> bool:
        from confluent_kafka.admin import AdminClient

        try:
            with socket.create_connection(("127.0.0.1", self.port), timeout=0.5):
                pass
        except OSError:
            return False
        admin = AdminClient({"bootstrap.servers": self.bootstrap, "log_level": 0})
        try:
            metadata = admin.list_topics(timeout=5)
        except Exception:
            return False
        return bool(metadata.brokers)

    @property
    def running(self) -> bool:
        return self.proc is not None and self.proc.poll() is None

    def stop(self, timeout: float = 30.0) -> None:
        """SIGTERM (a controlled shutdown), SIGKILL when it does not exit within ``timeout``."""
        if self.proc is None or self.proc.poll() is not None:
            return
        self.proc.terminate()
        try:
            self.proc.wait(timeout)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait(10)

    def kill(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait(10)


_SESSION: KafkaBroker | None = None


def session_broker() -> KafkaBroker:
    """The broker shared by every test of this process (started on first use, stopped at exit)."""
    global _SESSION
    if _SESSION is None or not _SESSION.running:
        workdir = Path(tempfile.mkdtemp(prefix="danube-kafka-"))
        broker = KafkaBroker(workdir).start()
        _SESSION = broker

        def _stop() -> None:
            broker.stop()
            shutil.rmtree(workdir, ignore_errors=True)

        atexit.register(_stop)
    return _SESSION


def create_topic(bootstrap: str, name: str, partitions: int = 1, timeout: float = 60.0) -> None:
    """Create ``name`` and wait until its partitions have leaders."""
    from confluent_kafka.admin import AdminClient
    from confluent_kafka.cimpl import NewTopic

    admin = AdminClient({"bootstrap.servers": bootstrap})
    futures = admin.create_topics([NewTopic(name, partitions, 1)], operation_timeout=timeout)
    futures[name].result(timeout)
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        topic = admin.list_topics(name, timeout=10).topics.get(name)
        if (
            topic is not None
            and topic.error is None
            and len(topic.partitions) == partitions
            and all(p.leader >= 0 for p in topic.partitions.values())
        ):
            return
        time.sleep(0.2)
    raise TimeoutError(f"topic {name} has no leaders after {timeout}s")


@dataclass(frozen=True)
class Produced:
    topic: str
    key: bytes | None
    value: bytes
    headers: Sequence[tuple[str, bytes]] = ()
    partition: int | None = None


def produce(bootstrap: str, records: Iterable[Produced], **config: object) -> int:
    """Produce ``records`` (idempotent producer, acks=all) and flush; returns how many were acknowledged."""
    from confluent_kafka import KafkaError, Message, Producer

    producer = Producer(
        {
            "bootstrap.servers": bootstrap,
            "enable.idempotence": True,
            "linger.ms": 5,
            "queue.buffering.max.messages": 200_000,
            **config,
        }
    )
    errors: list[KafkaError] = []
    delivered = 0

    def report(err: KafkaError | None, _msg: Message) -> None:
        nonlocal delivered
        if err is not None:
            errors.append(err)
        else:
            delivered += 1

    for r in records:
        kwargs: dict[str, object] = {"key": r.key, "value": r.value, "on_delivery": report}
        if r.headers:
            kwargs["headers"] = list(r.headers)
        if r.partition is not None:
            kwargs["partition"] = r.partition
        while True:
            try:
                producer.produce(r.topic, **kwargs)  # type: ignore[arg-type]
                break
            except BufferError:
                producer.poll(0.1)
        producer.poll(0)
    remaining = producer.flush(120)
    if errors or remaining:
        raise RuntimeError(f"produce failed: {errors[:3]} ({remaining} not delivered)")
    return delivered


def unique(prefix: str) -> str:
    """A topic or group name no other test of the session uses."""
    return f"{prefix}-{uuid.uuid4().hex[:8]}"


class DanubeCollector:
    """Subscribes to a Danube topic (before anything is published: a new subscription starts at the
    latest offset) and keeps every stored message once, acking it; a message redelivered by Danube (same
    partition and offset) is not kept twice, so equal payloads in :attr:`messages` are duplicate publishes.
    """

    def __init__(self, service_url: str, topic: str, subscription: str) -> None:
        self.service_url = service_url
        self.topic = topic
        self.subscription = subscription
        self.messages: list[Any] = []
        self._positions: set[tuple[str, int]] = set()
        self._client: Any = None
        self._consumer: Any = None
        self._task: asyncio.Task[None] | None = None
        self._changed = asyncio.Event()

    async def start(self) -> DanubeCollector:
        from danube_connect_core.client import DanubeClient

        self._client = DanubeClient(self.service_url)
        self._consumer = await self._client.subscribe(
            self.topic, self.subscription, consumer_name=f"collector-{self.subscription}"
        )
        self._task = asyncio.create_task(self._run())
        return self

    async def _run(self) -> None:
        while True:
            msg = await self._consumer.receive()
            position = (msg.partition_topic, msg.offset)
            if position not in self._positions:
                self._positions.add(position)
                self.messages.append(msg)
            await self._consumer.ack(msg)
            self._changed.set()

    async def wait_for(self, count: int, within: float = 120.0) -> list[Any]:
        """Wait until at least ``count`` messages arrived (TimeoutError after ``within`` seconds)."""
        async with asyncio.timeout(within):
            while len(self.messages) < count:
                self._changed.clear()
                await self._changed.wait()
        return self.messages

    async def close(self) -> None:
        if self._task is not None:
            self._task.cancel()
            await asyncio.gather(self._task, return_exceptions=True)
        if self._consumer is not None:
            with contextlib.suppress(Exception):
                await self._consumer.close()
        if self._client is not None:
            await self._client.close()


async def wait_ready(port: int, within: float = 120.0) -> None:
    """Poll ``GET /ready`` on the metrics port until it answers 200."""
    from danube_connect_core.testing import http_get

    async with asyncio.timeout(within):
        while True:
            try:
                status, _ = await asyncio.to_thread(http_get, port, "/ready", 5.0)
            except OSError:
                status = 0
            if status == 200:
                return
            await asyncio.sleep(0.1)


def source_toml(
    path: Path,
    danube_url: str,
    bootstrap: str,
    name: str,
    group: str,
    mappings: Sequence[dict[str, object]],
    extra: str = "",
) -> Path:
    """Write a connector TOML (metrics on a free loopback port, info logs) and return its path."""
    lines = [
        f'danube_service_url = "{danube_url}"',
        f'connector_name = "{name}"',
        extra,
        "[processing]",
        "metrics_port = 0",
        'metrics_host = "127.0.0.1"',
        'log_level = "info"',
        "[kafka]",
        f'bootstrap_servers = "{bootstrap}"',
        f'group_id = "{group}"',
        "max_poll_records = 200",
        "session_timeout_ms = 10000",
        "heartbeat_interval_ms = 1000",
    ]
    for m in mappings:
        lines.append("[[kafka.topic_mappings]]")
        lines += [f"{k} = {orjson.dumps(v).decode()}" for k, v in m.items()]
    path.write_text("\n".join(lines) + "\n")
    return path


def committed_offsets(bootstrap: str, group: str, topic: str, partitions: int) -> dict[int, int]:
    """The group's committed offset per partition (-1001 = none)."""
    from confluent_kafka import Consumer, TopicPartition

    consumer = Consumer({"bootstrap.servers": bootstrap, "group.id": group, "enable.auto.commit": False})
    try:
        tps = consumer.committed([TopicPartition(topic, p) for p in range(partitions)], timeout=30)
        return {tp.partition: tp.offset for tp in tps}
    finally:
        consumer.close()


def kafka_positions(messages: Iterable[Any]) -> Counter[tuple[int, int]]:
    """(Kafka partition, offset) of every record published to Danube, with how often it was."""
    return Counter(
        (int(m.attributes["kafka.partition"]), int(m.attributes["kafka.offset"])) for m in messages
    )


class KafkaUpstream(SourceUpstream):
    """The Kafka source's conformance upstream (danube_connect_core.testing.conformance): a fresh
    3-partition topic on the session's Kafka broker; record ``i`` is produced (acks=all) with key
    ``k<i % 8>`` and counts as acknowledged once Kafka confirmed it. The consumer group is the same for
    every process of the check, so a restarted source continues from the group's commits: at least once,
    duplicates allowed."""

    section_name = "kafka"

    def __init__(self, root: Path) -> None:
        super().__init__(root)
        self.broker: KafkaBroker | None = None
        self.topic = unique("conformance")
        self._producer: Any = None

    async def start(self) -> None:
        try:
            self.broker = await asyncio.to_thread(session_broker)
        except KafkaMissing as exc:
            if os.environ.get("CI") == "true":
                raise AssertionError(str(exc)) from None
            import pytest

            pytest.skip(str(exc))
        from confluent_kafka import Producer

        await asyncio.to_thread(create_topic, self.broker.bootstrap, self.topic, 3)
        self._producer = Producer(
            {"bootstrap.servers": self.broker.bootstrap, "enable.idempotence": True, "linger.ms": 0}
        )

    async def stop(self) -> None:
        if self._producer is not None:
            await asyncio.to_thread(self._producer.flush, 30)
            self._producer = None

    def section(self, topic: str) -> dict[str, Any]:
        assert self.broker is not None
        return {
            "bootstrap_servers": self.broker.bootstrap,
            "group_id": f"group-{self.topic}",
            "session_timeout_ms": 10_000,
            "heartbeat_interval_ms": 1_000,
            "topic_mappings": [
                {"kafka_topic": self.topic, "danube_topic": topic, "partitions": 2, "payload_format": "json"}
            ],
        }

    def bad_records(self) -> list[bytes]:
        # The mapping reads JSON (payload_format): these are not JSON documents.
        return [b"not json", b'{"i": 1', b"\xff\xfe"]

    async def send_bad(self, data: bytes) -> None:
        assert await self._produce(b"bad", data), "Kafka did not acknowledge a bad record"

    async def send(self, i: int) -> bool:
        delivered = await self._produce(f"k{i % 8}".encode(), orjson.dumps(payload(i)))
        assert delivered, f"Kafka did not acknowledge record {i}"
        return True

    async def _produce(self, key: bytes, value: bytes) -> bool:
        assert self._producer is not None
        outcome: list[object] = []
        self._producer.produce(self.topic, value, key, on_delivery=lambda err, _msg: outcome.append(err))
        await asyncio.to_thread(self._producer.flush, 30)
        return outcome == [None]


CASE = SourceCase("kafka", idempotent=False, upstream_type=KafkaUpstream)
