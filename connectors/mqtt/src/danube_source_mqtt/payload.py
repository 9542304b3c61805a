"""Turn an MQTT message into the SourceRecord published to Danube.

The Danube topic's ``[[schemas]]`` type decides how the payload is read; without a schema the mapping's
``payload_format`` does. JSON payloads are published **byte for byte as received** (``1.50`` stays
``1.50``, ``1E3``, 30-digit numbers and duplicate keys are kept): the payload is parsed only to check it
(and, with a JSON Schema, by the topic's codec to validate it), never re-serialised. The one exception is
a ``number`` schema, whose codec takes a number and writes it back as JSON text. A payload that cannot be
read as required raises InvalidData (it is dead-lettered, never published to the topic).

Attributes: ``mqtt.topic``, ``mqtt.qos``, ``mqtt.retain`` and, with MQTT 5, ``mqtt.content_type`` and the
user properties: ``mqtt.user.<name>`` holds the value of a name sent once, or a JSON array of every value
(in order) of a name sent several times; ``mqtt.user_properties`` holds all of them as a JSON array of
``[name, value]`` pairs in the order received (lossless, for names that clash or need the order).
"""

from __future__ import annotations

from typing import Any, Literal

import orjson
from danube_connect_core import InvalidData, SourceRecord, exact_json

from danube_source_mqtt.settings import PayloadFormat

__all__ = ["ReadFormat", "build_record", "mqtt_attributes", "read_format"]

#: How a route reads payloads: the mapping's ``payload_format``, or what the topic's schema needs:
#: ``json_schema`` = the raw bytes go to the codec, which parses and validates them (JSON Schema, Avro);
#: ``number`` = parsed to a value here (the number codec takes a number).
ReadFormat = Literal["auto", "json", "string", "bytes", "json_schema", "number"]


def read_format(schema_type: str | None, payload_format: PayloadFormat) -> ReadFormat:
    """How payloads of a topic are read: by its schema type when it has one, else by the mapping."""
    if schema_type is None:
        return payload_format
    if schema_type in ("json_schema", "avro"):
        return "json_schema"
    if schema_type == "number":
        return "number"
    if schema_type == "string":
        return "string"
    return "bytes"


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


def _check_json(payload: bytes) -> exact_json.JSONDecodeError | None:
    try:
        exact_json.loads(payload)
    except exact_json.JSONDecodeError as exc:
        return exc
    return None


def build_record(
    danube_topic: str, fmt: ReadFormat, topic: str, payload: bytes, attributes: dict[str, str]
) -> SourceRecord:
    """The record for one message (raises InvalidData when the payload cannot be read as ``fmt``)."""
    payload = bytes(payload)
    if fmt in ("bytes", "json_schema"):
        return SourceRecord(danube_topic, payload, "bytes", attributes, key=topic)
    if fmt == "string":
        try:
            return SourceRecord(danube_topic, payload.decode("utf-8"), "string", attributes, key=topic)
        except UnicodeDecodeError:
            raise InvalidData("payload is not UTF-8 text") from None
    if fmt == "number":
        try:
            value = exact_json.loads(payload)
        except exact_json.JSONDecodeError as exc:
            raise InvalidData(f"payload is not valid JSON: {exc}") from None
        return SourceRecord(danube_topic, value, "json", attributes, key=topic)
    error = _check_json(payload)
    if error is None:
        return SourceRecord(danube_topic, payload, "bytes", attributes, key=topic)
    if fmt == "json":
        raise InvalidData(f"payload is not valid JSON: {error}")
    try:  # auto, not JSON: text, else bytes
        return SourceRecord(danube_topic, payload.decode("utf-8"), "string", attributes, key=topic)
    except UnicodeDecodeError:
        return SourceRecord(danube_topic, payload, "bytes", attributes, key=topic)
