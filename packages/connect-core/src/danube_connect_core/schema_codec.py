"""Serialisation and validation per schema type: json_schema, string, bytes, number, avro.

Sources encode with :meth:`PayloadCodec.encode`, which validates first: a payload that does not match
its topic's JSON Schema (or cannot be represented in the topic's type) raises InvalidData and is never
published (invariant 4). Sinks decode with :meth:`PayloadCodec.decode`; undecodable bytes raise InvalidData
(the record is dead-lettered, invariant 5).
"""

from __future__ import annotations

import io
import math
from abc import ABC, abstractmethod
from typing import Any

import fastavro
import jsonschema_rs
import orjson

from danube_connect_core import exact_json
from danube_connect_core.errors import ConfigError, InvalidData
from danube_connect_core.records import SourceRecord

__all__ = [
    "AvroCodec",
    "BytesCodec",
    "JsonSchemaCodec",
    "NumberCodec",
    "PayloadCodec",
    "SchemalessCodec",
    "StringCodec",
    "codec_for",
    "compile_json_schema",
]


class PayloadCodec(ABC):
    schema_type: str = ""

    @abstractmethod
    def encode(self, record: SourceRecord) -> bytes:
        """Validate and serialise; raise InvalidData when the payload does not fit."""

    @abstractmethod
    def decode(self, data: bytes) -> Any:
        """Deserialise bytes from the topic; raise InvalidData when they cannot be."""


def _dumps_json(value: Any) -> bytes:
    try:
        return exact_json.dumps(value)
    except TypeError as exc:
        raise InvalidData(f"payload is not JSON-serialisable: {exc}") from None


def _loads_json(data: bytes) -> Any:
    try:
        return exact_json.loads(data)  # integers beyond 64 bits stay exact ints (invariant 4)
    except exact_json.JSONDecodeError as exc:
        raise InvalidData(f"payload is not valid JSON: {exc}") from None


def compile_json_schema(definition: bytes | str | dict[str, Any]) -> Any:
    """A compiled validator (jsonschema-rs; draft from ``$schema``, 2020-12 otherwise).

    Raises ValueError for a definition that is not JSON or not a valid schema.
    """
    doc = definition if isinstance(definition, dict) else orjson.loads(definition)
    try:
        return jsonschema_rs.validator_for(doc)
    except jsonschema_rs.ValidationError as exc:
        raise ValueError(f"not a valid JSON Schema: {exc.message}") from None


class JsonSchemaCodec(PayloadCodec):
    """JSON validated by a compiled JSON Schema. Raw ``bytes`` payloads are parsed, validated and published
    as they came (no re-serialisation)."""

    schema_type = "json_schema"

    def __init__(self, definition: bytes | str | dict[str, Any]) -> None:
        self.validator = compile_json_schema(definition)

    def validate(self, value: Any) -> None:
        if not self.validator.is_valid(value):
            err = next(iter(self.validator.iter_errors(value)))
            where = "/" + "/".join(str(p) for p in err.instance_path)
            raise InvalidData(f"schema violation at {where}: {err.message}")

    def errors(self, value: Any, limit: int = 10) -> list[dict[str, str]]:
        """Up to ``limit`` validation errors as ``{"path", "message"}`` (for HTTP 422 bodies)."""
        out = []
        for err in self.validator.iter_errors(value):
            out.append({"path": "/" + "/".join(str(p) for p in err.instance_path), "message": err.message})
            if len(out) >= limit:
                break
        return out

    def encode(self, record: SourceRecord) -> bytes:
        if record.kind == "bytes":
            value = _loads_json(record.payload)
            self.validate(value)
            return bytes(record.payload)
        self.validate(record.payload)
        return _dumps_json(record.payload)

    def decode(self, data: bytes) -> Any:
        return _loads_json(data)


class StringCodec(PayloadCodec):
    schema_type = "string"

    def encode(self, record: SourceRecord) -> bytes:
        if isinstance(record.payload, str):
            return record.payload.encode("utf-8")
        if isinstance(record.payload, bytes):
            try:
                record.payload.decode("utf-8")
            except UnicodeDecodeError:
                raise InvalidData("payload is not UTF-8 text") from None
            return record.payload
        raise InvalidData(f"topic {record.topic} takes strings, got {type(record.payload).__name__}")

    def decode(self, data: bytes) -> Any:
        try:
            return data.decode("utf-8")
        except UnicodeDecodeError:
            raise InvalidData("payload is not UTF-8 text") from None


class BytesCodec(PayloadCodec):
    schema_type = "bytes"

    def encode(self, record: SourceRecord) -> bytes:
        if isinstance(record.payload, bytes | bytearray | memoryview):
            return bytes(record.payload)
        if isinstance(record.payload, str):
            return record.payload.encode("utf-8")
        return _dumps_json(record.payload)

    def decode(self, data: bytes) -> Any:
        return data


class NumberCodec(PayloadCodec):
    """Numbers travel as their JSON text (``42``, ``3.5``)."""

    schema_type = "number"

    def encode(self, record: SourceRecord) -> bytes:
        value = record.payload
        if isinstance(value, bool) or not isinstance(value, int | float):
            raise InvalidData(f"topic {record.topic} takes numbers, got {type(value).__name__}")
        if isinstance(value, float) and not math.isfinite(value):
            raise InvalidData("payload is not a finite number")
        return _dumps_json(value)

    def decode(self, data: bytes) -> Any:
        value = _loads_json(data)
        if isinstance(value, bool) or not isinstance(value, int | float):
            raise InvalidData("payload is not a number")
        return value


class AvroCodec(PayloadCodec):
    """Avro binary (no container header) with the subject's schema; validation is the writer's."""

    schema_type = "avro"

    def __init__(self, definition: bytes | str | dict[str, Any]) -> None:
        doc = definition if isinstance(definition, dict) else orjson.loads(definition)
        try:
            self.schema = fastavro.parse_schema(doc)
        except Exception as exc:
            raise ValueError(f"not a valid Avro schema: {exc}") from None

    def encode(self, record: SourceRecord) -> bytes:
        value = _loads_json(record.payload) if record.kind == "bytes" else record.payload
        buf = io.BytesIO()
        try:
            fastavro.schemaless_writer(buf, self.schema, value, strict=True)
        except (ValueError, TypeError, KeyError, AttributeError) as exc:
            raise InvalidData(f"payload does not match the Avro schema: {exc}") from None
        return buf.getvalue()

    def decode(self, data: bytes) -> Any:
        """The decoded value; InvalidData when the bytes do not decode or are not all consumed.

        Schemaless Avro carries no length, so bytes left over after a complete value mean the payload is
        not what its schema says (corrupted, or written with another schema): dead-letter it rather than
        hand a silently truncated reading to the sink (invariant 5).
        """
        buf = io.BytesIO(data)
        try:
            value = fastavro.schemaless_reader(buf, self.schema, None)
        except Exception as exc:
            detail = str(exc) or type(exc).__name__  # EOFError and friends carry no message
            raise InvalidData(f"payload is not valid Avro for its schema: {detail}") from None
        left = len(data) - buf.tell()
        if left:
            raise InvalidData(
                f"payload is not valid Avro for its schema: {left} byte(s) left after the value"
            )
        return value


class SchemalessCodec(PayloadCodec):
    """No schema on the topic: encode by the record's kind; decode JSON when it parses, else keep bytes."""

    def encode(self, record: SourceRecord) -> bytes:
        if record.kind == "string":
            return StringCodec().encode(record)
        if record.kind == "bytes":
            return bytes(record.payload)
        if record.kind == "number":
            return NumberCodec().encode(record)
        return _dumps_json(record.payload)

    def decode(self, data: bytes) -> Any:
        try:
            return exact_json.loads(data)
        except exact_json.JSONDecodeError:
            return data


def codec_for(schema_type: str, definition: bytes | str | None) -> PayloadCodec:
    """The codec for a registry schema type (``ValueError`` for an unusable definition or type)."""
    kind = schema_type.lower().replace("-", "_")
    if kind in ("json_schema", "jsonschema", "json"):
        if not definition:
            raise ValueError("json_schema needs a definition")
        return JsonSchemaCodec(definition)
    if kind == "avro":
        if not definition:
            raise ValueError("avro needs a definition")
        return AvroCodec(definition)
    if kind == "string":
        return StringCodec()
    if kind == "bytes":
        return BytesCodec()
    if kind == "number":
        return NumberCodec()
    raise ValueError(f"unsupported schema type {schema_type!r}")


def load_schema_file_codec(
    schema_type: str, path: Any, *, config_file: Any = None, key: str = ""
) -> PayloadCodec:
    """Build the codec of a ``[[schemas]]`` entry, reporting problems as ConfigError naming the key."""
    definition = None
    if path is not None:
        try:
            definition = path.read_bytes()
        except OSError as exc:
            raise ConfigError(f"cannot read schema file: {exc.strerror}", file=config_file, key=key) from None
    try:
        return codec_for(schema_type, definition)
    except (ValueError, orjson.JSONDecodeError) as exc:
        raise ConfigError(f"{path}: {exc}", file=config_file, key=key) from None
