"""How a source reads the bytes it receives into the SourceRecord it publishes.

A source whose upstream delivers opaque bytes (a Kafka value, an MQTT payload) reads them one of two ways:

- The Danube topic has a ``[[schemas]]`` entry: its type decides (:func:`read_format`). ``json_schema``
  and ``avro`` topics get the bytes as received and the topic's codec parses and validates them before
  publishing; a ``number`` topic gets the parsed value (its codec takes a number); a ``string`` topic gets
  UTF-8 text; a ``bytes`` topic gets the bytes.
- No schema: the mapping's ``payload_format`` setting decides (:data:`PayloadFormat`): ``bytes`` passes
  the bytes through, ``json`` requires JSON, ``string`` requires UTF-8 text, ``auto`` publishes JSON as
  is, else UTF-8 text, else bytes.

JSON is published **byte for byte as received** (``1.50`` stays ``1.50``; ``1E3``, 30-digit numbers,
whitespace and duplicate keys are kept): it is parsed only to check it, never re-serialised. The one
exception is a ``number`` topic, whose codec writes the parsed number back as JSON text.

Failure semantics: bytes that cannot be read as required make :func:`read_payload` raise
:class:`~danube_connect_core.errors.InvalidData` with a one-line reason naming what was read (``"payload
is not valid JSON: ..."``); the source dead-letters the record (``SourceEnvelope.invalid``) or raises it,
never publishes it.
"""

from __future__ import annotations

from typing import Literal

from danube_connect_core import exact_json
from danube_connect_core.errors import InvalidData
from danube_connect_core.records import SourceRecord

__all__ = ["PayloadFormat", "ReadFormat", "read_format", "read_payload"]

#: The ``payload_format`` setting of a mapping: how bytes are read when the topic has no schema.
PayloadFormat = Literal["auto", "json", "string", "bytes"]

#: How a mapping's bytes are read: its ``payload_format``, or what the topic's schema needs:
#: ``json_schema`` = the bytes as received, for the codec to parse and validate (JSON Schema, Avro);
#: ``number`` = the parsed JSON value (the number codec takes a value).
ReadFormat = Literal["auto", "json", "string", "bytes", "json_schema", "number"]


def read_format(schema_type: str | None, payload_format: PayloadFormat) -> ReadFormat:
    """How the bytes for a Danube topic are read: by its schema type when it has one (``None``: no
    schema), else by the mapping's ``payload_format``. A schema type this function does not know is read
    as ``bytes``."""
    if schema_type is None:
        return payload_format
    if schema_type in ("json_schema", "avro"):
        return "json_schema"
    if schema_type == "number":
        return "number"
    if schema_type == "string":
        return "string"
    return "bytes"


def read_payload(
    danube_topic: str,
    fmt: ReadFormat,
    payload: bytes,
    attributes: dict[str, str],
    *,
    key: str | None = None,
    noun: str = "payload",
) -> SourceRecord:
    """The record for ``payload`` read as ``fmt`` (see the module docstring), with ``attributes`` and
    routing ``key``.

    Raises InvalidData when the bytes cannot be read as ``fmt``: ``"<noun> is not UTF-8 text"`` for
    ``string``, ``"<noun> is not valid JSON: <parser message>"`` for ``json`` and ``number``; ``noun``
    is what the upstream calls the bytes (``"payload"``, ``"value"``). ``bytes``, ``json_schema`` and
    ``auto`` never raise here (a ``json_schema`` topic's codec checks the bytes when publishing).
    """
    payload = bytes(payload)
    if fmt == "bytes" or fmt == "json_schema":
        return SourceRecord(danube_topic, payload, "bytes", attributes, key=key)
    if fmt == "string":
        try:
            text = payload.decode("utf-8")
        except UnicodeDecodeError:
            raise InvalidData(f"{noun} is not UTF-8 text") from None
        return SourceRecord(danube_topic, text, "string", attributes, key=key)
    try:
        parsed = exact_json.loads(payload)
    except exact_json.JSONDecodeError as exc:
        if fmt != "auto":
            raise InvalidData(f"{noun} is not valid JSON: {exc}") from None
        try:  # auto, not JSON: text, else bytes
            text = payload.decode("utf-8")
        except UnicodeDecodeError:
            return SourceRecord(danube_topic, payload, "bytes", attributes, key=key)
        return SourceRecord(danube_topic, text, "string", attributes, key=key)
    if fmt == "number":
        return SourceRecord(danube_topic, parsed, "json", attributes, key=key)
    return SourceRecord(danube_topic, payload, "bytes", attributes, key=key)  # JSON: as received
