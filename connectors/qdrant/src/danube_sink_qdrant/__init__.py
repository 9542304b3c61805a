"""Danube Connect sink: Danube topics to Qdrant collections (server, or local mode for tests and demos)."""

from danube_sink_qdrant.connector import QdrantSink
from danube_sink_qdrant.settings import QdrantSettings, QdrantTopicMapping

__all__ = ["QdrantSettings", "QdrantSink", "QdrantTopicMapping"]
