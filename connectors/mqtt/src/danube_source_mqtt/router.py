"""Which mapping an incoming MQTT topic belongs to, and how its payload is read.

The first mapping in file order whose filter matches wins (list specific filters before general ones).
The result is cached per topic name: IoT topic sets are large but finite; the cache is bounded.
"""

from __future__ import annotations

from dataclasses import dataclass

from danube_source_mqtt.settings import PayloadFormat, TopicMapping
from danube_source_mqtt.topic_filter import TopicFilter

__all__ = ["Route", "Router"]

_CACHE_LIMIT = 100_000


@dataclass(frozen=True, slots=True)
class Route:
    mapping: TopicMapping
    filter: TopicFilter
    fmt: PayloadFormat


class Router:
    def __init__(self, routes: list[Route]) -> None:
        self.routes = routes
        self._cache: dict[str, Route | None] = {}

    def route(self, topic: str) -> Route | None:
        try:
            return self._cache[topic]
        except KeyError:
            pass
        found = next((r for r in self.routes if r.filter.matches(topic)), None)
        if len(self._cache) >= _CACHE_LIMIT:
            self._cache.clear()
        self._cache[topic] = found
        return found
