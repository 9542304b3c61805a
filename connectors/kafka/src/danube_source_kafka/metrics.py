"""The Kafka source's own metrics, registered in the runtime's registry (the one the core's /metrics
serves) next to the standard ``danube_connector_*`` ones.

- ``danube_kafka_records_consumed_total{connector, kafka_topic}``: records fetched from Kafka.
- ``danube_kafka_commits_total{connector}``: offset commits to the consumer group that succeeded.
- ``danube_kafka_commit_failures_total{connector}``: offset commits Kafka refused (e.g. during a
  rebalance): those records are consumed again by the partition's next owner (at-least-once).
- ``danube_kafka_rebalances_total{connector, event}``: ``assigned`` and ``revoked`` callbacks.
- ``danube_kafka_assigned_partitions{connector}``: partitions this instance owns now.
- ``danube_kafka_consumer_lag{connector, kafka_topic}``: records in Kafka after the last fetched one,
  summed over the owned partitions of the topic (updated on every fetch).
"""

from __future__ import annotations

from prometheus_client import CollectorRegistry, Counter, Gauge

__all__ = ["KafkaMetrics"]


class KafkaMetrics:
    def __init__(self, connector: str, registry: CollectorRegistry | None) -> None:
        self.connector = connector
        self.consumed = Counter(
            "danube_kafka_records_consumed",
            "Records fetched from Kafka",
            ("connector", "kafka_topic"),
            registry=registry,
        )
        self.commits = Counter(
            "danube_kafka_commits",
            "Offset commits to the consumer group",
            ("connector",),
            registry=registry,
        ).labels(connector)
        self.commit_failures = Counter(
            "danube_kafka_commit_failures",
            "Offset commits refused by Kafka",
            ("connector",),
            registry=registry,
        ).labels(connector)
        self.rebalances = Counter(
            "danube_kafka_rebalances",
            "Partition assignment changes",
            ("connector", "event"),
            registry=registry,
        )
        self.assigned = Gauge(
            "danube_kafka_assigned_partitions",
            "Kafka partitions owned by this instance",
            ("connector",),
            registry=registry,
        ).labels(connector)
        self.lag = Gauge(
            "danube_kafka_consumer_lag",
            "Records in Kafka after the last one fetched (owned partitions)",
            ("connector", "kafka_topic"),
            registry=registry,
        )
