"""Which mapping an incoming MQTT message belongs to, and how its payload is read.

Rule: a message goes to the **first mapping in file order whose filter matches its topic**, once.

MQTT 5 brokers (mosquitto among them) send one copy of a message per matching subscription of the
client, so overlapping filters (``raw/#`` and ``#``) would bring the same message twice. Each mapping
therefore subscribes with its own MQTT 5 *subscription identifier*, and a copy names the subscription(s)
it was sent for. A copy is published when it was sent for the winning mapping's subscription; a copy sent
only for other subscriptions of this configuration is a duplicate: it is acknowledged (in order) and not
published. A copy that names none of this configuration's identifiers (MQTT 3.1.1, a broker without
subscription identifiers, or a message queued for a subscription of an earlier configuration) is routed by
its topic alone and published: at-least-once wins over dropping something no other copy may carry.

The identifiers are derived from the ordered list of filters, so a changed configuration uses different
ones and copies queued under the old configuration are never mistaken for the new one's. Routes are cached
per topic name (IoT topic sets are large but finite; the cache is bounded).
"""

from __future__ import annotations

import hashlib
from collections.abc import Sequence
from dataclasses import dataclass

from danube_connect_core import ReadFormat

from danube_source_mqtt.settings import TopicMapping
from danube_source_mqtt.topic_filter import TopicFilter

__all__ = ["Route", "Router", "subscription_identifiers"]

_CACHE_LIMIT = 100_000
_MAX_IDENTIFIER = 268_435_455  # MQTT 5 §3.8.2.1.2: 1 .. 2^28 - 1


@dataclass(frozen=True, slots=True)
class Route:
    mapping: TopicMapping
    filter: TopicFilter
    fmt: ReadFormat


def subscription_identifiers(filters: Sequence[str]) -> list[int]:
    """One MQTT 5 subscription identifier per filter: consecutive numbers from a base derived from the
    ordered filter list (another configuration almost surely gets a disjoint range)."""
    digest = hashlib.sha256("\n".join(filters).encode()).digest()
    span = _MAX_IDENTIFIER - len(filters)
    base = int.from_bytes(digest[:8], "big") % span + 1
    return [base + i for i in range(len(filters))]


class Router:
    def __init__(self, routes: list[Route]) -> None:
        self.routes = routes
        self.identifiers = subscription_identifiers([r.mapping.mqtt_topic for r in routes])
        self._by_identifier = {ident: i for i, ident in enumerate(self.identifiers)}
        self._cache: dict[str, int | None] = {}
        #: Copies acknowledged without publishing because another copy of the message carries it.
        self.duplicate_copies = 0

    def _index(self, topic: str) -> int | None:
        try:
            return self._cache[topic]
        except KeyError:
            pass
        found = next((i for i, r in enumerate(self.routes) if r.filter.matches(topic)), None)
        if len(self._cache) >= _CACHE_LIMIT:
            self._cache.clear()
        self._cache[topic] = found
        return found

    def route(self, topic: str) -> Route | None:
        """The first mapping (file order) whose filter matches ``topic``."""
        index = self._index(topic)
        return None if index is None else self.routes[index]

    def route_copy(self, topic: str, identifiers: Sequence[int] | None) -> tuple[Route | None, bool]:
        """``(route, duplicate)`` for one received copy: ``duplicate`` is True when the copy was sent only
        for other subscriptions of this configuration (acknowledge it, do not publish it)."""
        index = self._index(topic)
        if index is None or not identifiers:
            return (None if index is None else self.routes[index]), False
        ours = [self._by_identifier[i] for i in identifiers if i in self._by_identifier]
        if not ours or index in ours:
            return self.routes[index], False
        self.duplicate_copies += 1
        return None, True
