"""Turn an MQTT message into the SourceRecord published to Danube.

The Danube topic's ``[[schemas]]`` type decides how the payload is read (json_schema, avro and number
want JSON; string wants UTF-8 text; bytes takes anything); without a schema the mapping's
``payload_format`` does (``auto``: JSON when it parses, else UTF-8 text, else bytes). A payload that
cannot be read that way raises InvalidData (it is dead-lettered, never published to the topic).
The MQTT topic is the routing key; attributes carry ``mqtt.topic``, ``mqtt.qos``, ``mqtt.retain`` and,
with MQTT 5, ``mqtt.content_type`` and each user property as ``mqtt.user.<name>``.
"""

from __future__ import annotations

from typing import Any

from danube_connect_core import exact_json
from danube_connect_core.errors import InvalidData
from danube_connect_core.records import SourceRecord

from danube_source_mqtt.settings import PayloadFormat

__all__ = ["build_record", "mqtt_attributes", "read_format"]

_JSON_SCHEMA_TYPES = {"json_schema", "avro", "number"}


def read_format(schema_type: str | None, payload_format: PayloadFormat) -> PayloadFormat:
    """How payloads of a topic are read: by its schema type when it has one, else by the mapping."""
    if schema_type is None:
        return payload_format
    if schema_type in _JSON_SCHEMA_TYPES:
        return "json"
    if schema_type == "string":
        return "string"
    return "bytes"


def mqtt_attributes(topic: str, qos: int, retain: bool, properties: Any = None) -> dict[str, str]:
    attrs = {"mqtt.topic": topic, "mqtt.qos": str(qos), "mqtt.retain": "true" if retain else "false"}
    if properties is not None:
        content_type = getattr(properties, "ContentType", None)
        if content_type:
            attrs["mqtt.content_type"] = str(content_type)
        for name, value in getattr(properties, "UserProperty", None) or ():
            attrs[f"mqtt.user.{name}"] = str(value)
    return attrs


def build_record(
    danube_topic: str, fmt: PayloadFormat, topic: str, payload: bytes, attributes: dict[str, str]
) -> SourceRecord:
    """The record for one message (raises InvalidData when the payload cannot be read as ``fmt``)."""
    value: Any
    kind: Any
    if fmt == "bytes":
        value, kind = bytes(payload), "bytes"
    elif fmt == "string":
        try:
            value, kind = payload.decode("utf-8"), "string"
        except UnicodeDecodeError:
            raise InvalidData("payload is not UTF-8 text") from None
    else:
        try:
            value, kind = exact_json.loads(payload), "json"  # big integers stay exact
        except exact_json.JSONDecodeError as exc:
            if fmt == "json":
                raise InvalidData(f"payload is not valid JSON: {exc}") from None
            try:
                value, kind = payload.decode("utf-8"), "string"
            except UnicodeDecodeError:
                value, kind = bytes(payload), "bytes"
    return SourceRecord(danube_topic, value, kind, attributes, key=topic)
