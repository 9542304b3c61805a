"""Danube Connect sink: Danube topics to HTTP endpoints (one request per record, or batched)."""

from danube_sink_http.connector import HttpSink
from danube_sink_http.settings import HttpSettings, HttpTopicMapping

__all__ = ["HttpSettings", "HttpSink", "HttpTopicMapping"]
