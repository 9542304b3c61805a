"""Schema types, parsing, fingerprints and the wire form of stored definitions.

Facts matched from the Danube broker v0.15 sources (``danube-broker/src/schema``):

* schema type names and aliases (``SchemaType::from_str``, case-insensitive): ``bytes``; ``string``;
  ``number`` (aliases ``int64``, ``int``, ``float``, ``double``); ``avro``; ``json_schema`` (alias ``json``);
  ``protobuf`` (alias ``proto``). Responses always carry the canonical name.
* fingerprints: ``bytes``/``string``/``number`` use the constant strings ``"bytes"``, ``"string"``,
  ``"number"``; JSON Schema uses ``"sha256:" + hex(SHA-256(canonical JSON))`` where the canonical form is
  the parsed document re-serialised compactly with sorted keys (serde_json's ``Value`` is a BTreeMap);
  Protobuf hashes the raw text. Avro: the real broker hashes apache_avro's re-serialisation, which cannot
  be reproduced exactly here; we use the same canonical-JSON hash as for JSON Schema (same format,
  different digest for some Avro documents).
* ``schema_definition`` in GetSchema responses is ``serde_json::to_vec(&SchemaDefinition)``, an externally
  tagged enum: ``"Bytes"``, ``"String"``, ``"Number"`` (JSON strings, quotes included),
  ``{"Avro":{"raw_schema":..,"fingerprint":..}}``, ``{"JsonSchema":{"raw_schema":..,"fingerprint":..}}``,
  ``{"Protobuf":{"raw_proto":..,"message_name":"DefaultMessage","fingerprint":..}}``.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass, field
from typing import Any

import grpc
import jsonschema_rs

SCHEMA_TYPES = ("avro", "json_schema", "protobuf", "bytes", "string", "number")
_TYPE_ALIASES = {
    "bytes": "bytes",
    "string": "string",
    "number": "number",
    "int64": "number",
    "int": "number",
    "float": "number",
    "double": "number",
    "avro": "avro",
    "json_schema": "json_schema",
    "json": "json_schema",
    "protobuf": "protobuf",
    "proto": "protobuf",
}
COMPATIBILITY_MODES = ("none", "backward", "forward", "full")
DEFAULT_COMPATIBILITY = "backward"
VALIDATION_POLICIES = ("none", "warn", "enforce")
DEFAULT_VALIDATION_POLICY = "warn"
PROTOBUF_MESSAGE_NAME = "DefaultMessage"  # what the real broker stores for every protobuf schema


class SchemaRegistryError(Exception):
    """A request the registry refuses: a gRPC status code and a message for the client."""

    def __init__(self, code: grpc.StatusCode, message: str) -> None:
        super().__init__(message)
        self.code = code
        self.message = message

    def __repr__(self) -> str:
        return f"SchemaRegistryError({self.code.name}, {self.message!r})"


def invalid(message: str) -> SchemaRegistryError:
    return SchemaRegistryError(grpc.StatusCode.INVALID_ARGUMENT, message)


def not_found(message: str) -> SchemaRegistryError:
    return SchemaRegistryError(grpc.StatusCode.NOT_FOUND, message)


def normalize_schema_type(value: str) -> str:
    """Canonical schema type name for ``value`` (aliases accepted, case-insensitive)."""
    canonical = _TYPE_ALIASES.get(value.strip().lower())
    if canonical is None:
        raise invalid(f"Unknown schema type: {value!r} (expected one of {', '.join(SCHEMA_TYPES)})")
    return canonical


def normalize_compatibility_mode(value: str) -> str:
    mode = value.strip().lower()
    if mode not in COMPATIBILITY_MODES:
        raise invalid(
            f"Invalid compatibility mode: {value!r} (expected one of {', '.join(COMPATIBILITY_MODES)})"
        )
    return mode


def normalize_validation_policy(value: str) -> str:
    policy = value.strip().lower()
    if policy not in VALIDATION_POLICIES:
        raise invalid(f"Invalid validation policy: '{value}'. Must be 'none', 'warn', or 'enforce'")
    return policy


def _reject_constant(name: str) -> Any:
    raise ValueError(f"{name} is not valid JSON")


def parse_json(text: str | bytes) -> Any:
    """Strict JSON parse (no NaN/Infinity, like serde_json); raises ``ValueError``."""
    return json.loads(text, parse_constant=_reject_constant)


def canonical_json(value: Any) -> str:
    """Compact JSON with sorted keys and raw UTF-8, as serde_json writes a ``Value``."""
    return json.dumps(value, sort_keys=True, separators=(",", ":"), ensure_ascii=False, allow_nan=False)


def sha256_fingerprint(text: str) -> str:
    return "sha256:" + hashlib.sha256(text.encode("utf-8")).hexdigest()


def compile_json_schema(schema: Any) -> jsonschema_rs.Validator:
    """Compile a JSON Schema without network access (remote ``$ref`` is an error)."""
    return jsonschema_rs.validator_for(schema, offline=True)


_AVRO_REQUIRED = {
    "record": ("name", "fields"),
    "error": ("name", "fields"),
    "enum": ("name", "symbols"),
    "fixed": ("name", "size"),
    "array": ("items",),
    "map": ("values",),
}


def _avro_structure(schema: Any, path: str = "$") -> None:
    """Attributes the Avro specification requires (fastavro alone is lenient about some of them)."""
    if isinstance(schema, list):
        for index, member in enumerate(schema):
            _avro_structure(member, f"{path}[{index}]")
        return
    if isinstance(schema, str):
        return
    if not isinstance(schema, dict) or "type" not in schema:
        raise ValueError(f"{path}: expected a type name, a union or an object with a 'type'")
    kind = schema["type"]
    if isinstance(kind, dict | list):
        _avro_structure(kind, path)
        return
    for attribute in _AVRO_REQUIRED.get(kind, ()):
        if attribute not in schema:
            raise ValueError(f"{path}: {kind} requires '{attribute}'")
    if kind in ("record", "error"):
        if not isinstance(schema["fields"], list):
            raise ValueError(f"{path}: record 'fields' must be a list")
        for fld in schema["fields"]:
            if not isinstance(fld, dict) or "name" not in fld or "type" not in fld:
                raise ValueError(f"{path}: every record field needs 'name' and 'type'")
            _avro_structure(fld["type"], f"{path}.{fld['name']}")
    elif kind == "array":
        _avro_structure(schema["items"], f"{path}[]")
    elif kind == "map":
        _avro_structure(schema["values"], f"{path}{{}}")


def _avro_parse(schema: Any) -> Any:
    """Validate an Avro schema (structure, then fastavro when installed); returns fastavro's parsed form."""
    _avro_structure(schema)
    try:
        import fastavro
    except ImportError:  # pragma: no cover - fastavro is a workspace dependency
        return None
    return fastavro.parse_schema(schema)


@dataclass(frozen=True)
class ParsedSchema:
    """A validated schema definition, ready to store."""

    schema_type: str
    raw: str  # raw definition text ("" for bytes/string/number)
    fingerprint: str
    parsed: Any = field(default=None, compare=False)  # parsed JSON for avro/json_schema


def parse_definition(schema_type: str, definition: bytes) -> ParsedSchema:
    """Validate ``definition`` for ``schema_type``; raises ``SchemaRegistryError(INVALID_ARGUMENT)``."""
    kind = normalize_schema_type(schema_type)
    if kind in ("bytes", "string", "number"):
        return ParsedSchema(kind, "", kind)
    try:
        raw = definition.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise invalid(f"Invalid UTF-8 in {kind} schema: {exc}") from None
    if kind == "protobuf":
        if not raw.strip():
            raise invalid("Invalid Protobuf schema: empty definition")
        return ParsedSchema(kind, raw, sha256_fingerprint(raw))
    try:
        parsed = parse_json(raw)
    except ValueError as exc:
        label = "JSON" if kind == "json_schema" else "Avro"
        raise invalid(f"Invalid JSON in {label} schema: {exc}") from None
    if kind == "json_schema":
        try:
            compile_json_schema(parsed)
        except jsonschema_rs.ValidationError as exc:
            raise invalid(f"Invalid JSON Schema: {exc.message}") from None
    else:
        try:
            _avro_parse(parsed)
        except Exception as exc:  # fastavro raises several exception types for bad schemas
            raise invalid(f"Invalid Avro schema: {exc}") from None
    return ParsedSchema(kind, raw, sha256_fingerprint(canonical_json(parsed)), parsed)


def wrap_definition(schema_type: str, raw: str, fingerprint: str) -> bytes:
    """The ``schema_definition`` bytes of a GetSchemaResponse, exactly as the real broker encodes them."""
    wrapped: Any
    if schema_type == "bytes":
        wrapped = "Bytes"
    elif schema_type == "string":
        wrapped = "String"
    elif schema_type == "number":
        wrapped = "Number"
    elif schema_type == "avro":
        wrapped = {"Avro": {"raw_schema": raw, "fingerprint": fingerprint}}
    elif schema_type == "json_schema":
        wrapped = {"JsonSchema": {"raw_schema": raw, "fingerprint": fingerprint}}
    else:
        wrapped = {
            "Protobuf": {"raw_proto": raw, "message_name": PROTOBUF_MESSAGE_NAME, "fingerprint": fingerprint}
        }
    # serde_json: compact, struct fields in declaration order, non-ASCII unescaped.
    return json.dumps(wrapped, separators=(",", ":"), ensure_ascii=False).encode("utf-8")
