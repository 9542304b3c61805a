"""MQTT topic filters: validation, the shared-subscription prefix, and matching incoming topics.

A mapping's ``mqtt_topic`` is what the connector subscribes with. For a shared subscription
(``$share/<group>/<filter>``) the broker delivers messages under their real topic, so matching uses
the filter after the prefix. ``#`` and ``+`` follow the MQTT rules, including the rule that a filter
starting with a wildcard never matches a topic starting with ``$`` (``$SYS/...``).
"""

from __future__ import annotations

from dataclasses import dataclass

__all__ = ["TopicFilter"]

_SHARE_PREFIX = "$share/"


@dataclass(frozen=True, slots=True)
class TopicFilter:
    """One subscription filter. ``subscription`` is sent to the broker, ``filter`` is matched."""

    subscription: str
    filter: str
    share_group: str | None

    @classmethod
    def parse(cls, text: str) -> TopicFilter:
        """Parse and validate (``ValueError`` with a readable message when the filter is not valid)."""
        group: str | None = None
        body = text
        if text.startswith(_SHARE_PREFIX):
            rest = text[len(_SHARE_PREFIX) :]
            group, sep, body = rest.partition("/")
            if not sep or not group or not body:
                raise ValueError("a shared subscription is $share/<group>/<filter>")
            if any(c in group for c in "+#"):
                raise ValueError("the share group name cannot contain + or #")
        _validate_filter(body)
        return cls(subscription=text, filter=body, share_group=group)

    def matches(self, topic: str) -> bool:
        """Whether an incoming topic name matches this filter (MQTT 3.1.1 §4.7, MQTT 5 §4.7)."""
        if topic.startswith("$") and self.filter[:1] in ("+", "#"):
            return False
        levels = topic.split("/")
        parts = self.filter.split("/")
        for i, part in enumerate(parts):
            if part == "#":
                return True  # also matches the parent level: "a/#" matches "a"
            if i >= len(levels):
                return False
            if part != "+" and part != levels[i]:
                return False
        return len(levels) == len(parts)


def _validate_filter(body: str) -> None:
    if not body:
        raise ValueError("the topic filter is empty")
    if "\x00" in body:
        raise ValueError("the topic filter contains a NUL character")
    parts = body.split("/")
    for i, part in enumerate(parts):
        if "#" in part and (part != "#" or i != len(parts) - 1):
            raise ValueError("# must be a whole level and the last one")
        if "+" in part and part != "+":
            raise ValueError("+ must be a whole level")
