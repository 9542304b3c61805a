"""Turn an MQTT message into the SourceRecord published to Danube.

The Danube topic's ``[[schemas]]`` type decides how the payload is read; without a schema the mapping's
``payload_format`` does; the reading is the core's (:mod:`danube_connect_core.payload_format`). JSON
payloads are published **byte for byte as received** (``1.50`` stays ``1.50``, ``1E3``, 30-digit numbers
and duplicate keys are kept): the payload is parsed only to check it (and, with a JSON Schema, by the
topic's codec to validate it), never re-serialised. The one exception is
a ``number`` schema, whose codec takes a number and writes it back as JSON text. A payload that cannot be
read as required raises InvalidData (it is dead-lettered, never published to the topic).

Attributes: ``mqtt.topic``, ``mqtt.qos``, ``mqtt.retain`` and, with MQTT 5, ``mqtt.content_type`` and the
user properties: ``mqtt.user.<name>`` holds the value of a name sent once, or a JSON array of every value
(in order) of a name sent several times; ``mqtt.user_properties`` holds all of them as a JSON array of
``[name, value]`` pairs in the order received (lossless, for names that clash or need the order).
"""

from __future__ import annotations

from typing import Any

import orjson
from danube_connect_core import ReadFormat, SourceRecord, read_format, read_payload

# read_format is the core's, named here too for the connector.
__all__ = ["build_record", "mqtt_attributes", "read_format"]


def mqtt_attributes(topic: str, qos: int, retain: bool, properties: Any = None) -> dict[str, str]:
    attrs = {"mqtt.topic": topic, "mqtt.qos": str(qos), "mqtt.retain": "true" if retain else "false"}
    if properties is not None:
        content_type = getattr(properties, "ContentType", None)
        if content_type:
            attrs["mqtt.content_type"] = str(content_type)
        pairs = [(str(n), str(v)) for n, v in getattr(properties, "UserProperty", None) or ()]
        if pairs:
            values: dict[str, list[str]] = {}
            for name, value in pairs:
                values.setdefault(name, []).append(value)
            for name, vals in values.items():
                attrs[f"mqtt.user.{name}"] = vals[0] if len(vals) == 1 else orjson.dumps(vals).decode()
            attrs["mqtt.user_properties"] = orjson.dumps(pairs).decode()
    return attrs


def build_record(
    danube_topic: str, fmt: ReadFormat, topic: str, payload: bytes, attributes: dict[str, str]
) -> SourceRecord:
    """The record for one message, its MQTT topic as the routing key (raises InvalidData when the payload
    cannot be read as ``fmt``: :func:`danube_connect_core.read_payload`)."""
    return read_payload(danube_topic, fmt, payload, attributes, key=topic)
