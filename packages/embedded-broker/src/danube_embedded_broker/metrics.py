"""Prometheus metrics of one broker, in its own registry (several brokers may share a process).

Counters: ``danube_topic_messages_in_total{topic}``, ``danube_topic_messages_out_total{topic}``,
``danube_subscription_messages_dropped_total{topic,subscription}`` (non-reliable drops),
``danube_subscription_dead_lettered_total{topic,subscription}``.
Gauges computed at scrape time: ``danube_subscription_backlog{topic,subscription}``,
``danube_topic_producers{topic}``, ``danube_topic_consumers{topic}``, ``danube_topics``.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import Any
from wsgiref.simple_server import WSGIServer

from prometheus_client import CollectorRegistry, Counter, start_http_server
from prometheus_client.core import GaugeMetricFamily, Metric
from prometheus_client.registry import Collector

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Snapshot:
    """What the gauges report, gathered from the broker at scrape time."""

    backlog: dict[tuple[str, str], int]
    producers: dict[str, int]
    consumers: dict[str, int]


class _GaugeCollector(Collector):
    def __init__(self, snapshot: Callable[[], Snapshot]) -> None:
        self._snapshot = snapshot

    def collect(self) -> Iterable[Metric]:
        snap = self._snapshot()
        backlog = GaugeMetricFamily(
            "danube_subscription_backlog",
            "Messages in the topic not yet acked by the subscription",
            labels=["topic", "subscription"],
        )
        for (topic, sub), value in sorted(snap.backlog.items()):
            backlog.add_metric([topic, sub], value)
        producers = GaugeMetricFamily("danube_topic_producers", "Producers attached", labels=["topic"])
        for topic, value in sorted(snap.producers.items()):
            producers.add_metric([topic], value)
        consumers = GaugeMetricFamily("danube_topic_consumers", "Consumers attached", labels=["topic"])
        for topic, value in sorted(snap.consumers.items()):
            consumers.add_metric([topic], value)
        topics = GaugeMetricFamily("danube_topics", "Topics served")
        topics.add_metric([], len(snap.producers))
        return [backlog, producers, consumers, topics]


class BrokerMetrics:
    """Counters updated by the broker, gauges pulled from it, and the optional HTTP exporter."""

    def __init__(self) -> None:
        self.registry = CollectorRegistry(auto_describe=True)
        self._in = Counter(
            "danube_topic_messages_in", "Messages published", ["topic"], registry=self.registry
        )
        self._out = Counter(
            "danube_topic_messages_out", "Messages delivered to consumers", ["topic"], registry=self.registry
        )
        self._dropped = Counter(
            "danube_subscription_messages_dropped",
            "Non-reliable messages dropped (buffer full or no consumer)",
            ["topic", "subscription"],
            registry=self.registry,
        )
        self._dead = Counter(
            "danube_subscription_dead_lettered",
            "Poison messages moved to the dead-letter topic",
            ["topic", "subscription"],
            registry=self.registry,
        )
        # Labelled children per topic, looked up once: prometheus_client's labels() validates and hashes its
        # arguments under a lock on every call, which showed in the broker's per-message profile.
        self._in_by_topic: dict[str, Any] = {}
        self._out_by_topic: dict[str, Any] = {}
        self._server: WSGIServer | None = None
        self._thread: threading.Thread | None = None
        self.port: int | None = None

    def published(self, topic: str) -> None:
        child = self._in_by_topic.get(topic)
        if child is None:
            child = self._in_by_topic[topic] = self._in.labels(topic)
        child.inc()

    def delivered(self, topic: str) -> None:
        child = self._out_by_topic.get(topic)
        if child is None:
            child = self._out_by_topic[topic] = self._out.labels(topic)
        child.inc()

    def dropped(self, topic: str, subscription: str) -> None:
        self._dropped.labels(topic, subscription).inc()

    def dead_lettered(self, topic: str, subscription: str) -> None:
        self._dead.labels(topic, subscription).inc()

    def register_gauges(self, snapshot: Callable[[], Snapshot]) -> None:
        self.registry.register(_GaugeCollector(snapshot))

    def serve(self, host: str, port: int) -> int:
        """Start the exporter on ``host:port`` (``0``: a free port); returns the bound port.

        Raises ``OSError`` when the port cannot be bound.
        """
        self._server, self._thread = start_http_server(port, addr=host, registry=self.registry)
        self.port = int(self._server.server_port)
        return self.port

    def stop(self) -> None:
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()
            self._server = None
        if self._thread is not None:
            self._thread.join(timeout=5)
            self._thread = None
