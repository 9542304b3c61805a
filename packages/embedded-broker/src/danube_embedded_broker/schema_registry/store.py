"""The registry state: subjects, versions, per-topic schema configuration, persistence, publish checks.

Status codes (``SchemaRegistryError.code``), with the real broker v0.15 behaviour they follow
(``danube-broker/src/broker_server/schema_registry_handler.rs``, ``topic_control``):

* incompatible registration -> INTERNAL ("Failed to register schema: Schema is not compatible ...") as on
  the real broker;
* unknown subject / schema id / version -> NOT_FOUND (the real broker answers NOT_FOUND for GetSchema,
  GetLatestSchema, ListVersions and ConfigureTopicSchema; for CheckCompatibility, SetCompatibilityMode and
  DeleteSchemaVersion it wraps the lookup failure in INTERNAL: we answer NOT_FOUND everywhere);
* malformed input (unknown schema type, invalid JSON / JSON Schema / Avro, bad mode or policy, bad topic
  name, empty subject) -> INVALID_ARGUMENT (the real broker answers INTERNAL for bad definitions at
  registration and INVALID_ARGUMENT for bad modes/policies);
* UpdateTopicValidationPolicy on a topic without a schema subject -> FAILED_PRECONDITION (as the real broker).

Per-topic configuration: default policy ``warn`` with payload validation off (docs/wire-contract.md §2). A
configuration set on ``/ns/t`` applies to its partitions ``/ns/t-part-N`` unless a partition has its own.
"""

from __future__ import annotations

import contextlib
import io
import json
import logging
import os
import re
import tempfile
import threading
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import grpc
import jsonschema_rs
from danube_connect_core.proto import DanubeApi_pb2 as pb
from danube_connect_core.proto import SchemaRegistry_pb2_grpc as spb_grpc

from danube_embedded_broker.schema_registry.compatibility import check_compatibility
from danube_embedded_broker.schema_registry.model import (
    DEFAULT_COMPATIBILITY,
    DEFAULT_VALIDATION_POLICY,
    SchemaRegistryError,
    compile_json_schema,
    invalid,
    normalize_compatibility_mode,
    normalize_validation_policy,
    not_found,
    parse_definition,
    parse_json,
    wrap_definition,
)

logger = logging.getLogger("danube_embedded_broker.schema_registry")

STATE_FILE = "schema_registry.json"
_STATE_FORMAT = 1
_TOPIC_RE = re.compile(r"^/[A-Za-z0-9_-]+/[A-Za-z0-9_-]+$")
_PARTITION_RE = re.compile(r"^(?P<base>.+)-part-(?P<index>\d+)$")


@dataclass
class SchemaVersionRecord:
    version: int
    schema_type: str
    raw: str
    fingerprint: str
    created_at: int
    created_by: str
    description: str
    tags: list[str] = field(default_factory=list)


@dataclass
class SubjectRecord:
    schema_id: int
    subject: str
    compatibility_mode: str
    created_at: int
    created_by: str
    last_version: int  # highest version number ever assigned (numbers are never reused)
    last_schema_type: str
    versions: list[SchemaVersionRecord] = field(default_factory=list)

    def latest(self) -> SchemaVersionRecord | None:
        return self.versions[-1] if self.versions else None

    def get(self, version: int) -> SchemaVersionRecord | None:
        for record in self.versions:
            if record.version == version:
                return record
        return None


@dataclass(frozen=True)
class TopicSchemaConfig:
    """Schema configuration of a topic (``schema_subject`` empty when none is bound)."""

    schema_subject: str
    validation_policy: str = DEFAULT_VALIDATION_POLICY
    enable_payload_validation: bool = False


@dataclass(frozen=True)
class SchemaView:
    """One version of a subject, as GetSchema returns it."""

    schema_id: int
    subject: str
    compatibility_mode: str
    record: SchemaVersionRecord

    @property
    def wrapped_definition(self) -> bytes:
        return wrap_definition(self.record.schema_type, self.record.raw, self.record.fingerprint)


def _now() -> int:
    return int(time.time())


def _policy_debug(policy: str) -> str:
    """Rust ``{:?}`` of the real broker's ValidationPolicy, used in its response messages."""
    return policy.capitalize()


class SchemaRegistry:
    """Subjects, versions and per-topic schema configuration of the embedded broker.

    All methods are synchronous and fast (the broker calls them on its event loop); state is written to
    ``<data_dir>/schema_registry.json`` (temp file + ``os.replace``) after every change when ``data_dir``
    is given. ``topic_exists``, when given, makes the topic RPCs answer NOT_FOUND for unknown topics as
    the real broker does (it must answer True for the base name of a partitioned topic).
    """

    def __init__(self, data_dir: Path | None, *, topic_exists: Callable[[str], bool] | None = None) -> None:
        self._lock = threading.RLock()
        self._path = Path(data_dir) / STATE_FILE if data_dir is not None else None
        self._topic_exists = topic_exists
        self._subjects: dict[str, SubjectRecord] = {}
        self._by_id: dict[int, str] = {}
        self._topics: dict[str, TopicSchemaConfig] = {}
        self._next_id = 1
        self._validators: dict[tuple[int, int], Callable[[bytes], str | None]] = {}
        self._closed = False
        if self._path is not None:
            self._path.parent.mkdir(parents=True, exist_ok=True)
            self._load()

    # ------------------------------------------------------------------------------------ lifecycle

    def servicer(self) -> spb_grpc.SchemaRegistryServicer:
        from danube_embedded_broker.schema_registry.servicer import SchemaRegistryServicer

        return SchemaRegistryServicer(self)

    def close(self) -> None:
        """Save the state a last time; a disk that refuses it is logged (every change that the disk
        accepted was saved when it was made)."""
        with self._lock:
            if not self._closed:
                self._closed = True
                try:
                    self._save()
                except OSError as exc:
                    logger.error("cannot save the schema registry state on close: %s", exc)

    # ------------------------------------------------------------------------------------ subjects

    def register_schema(
        self,
        subject: str,
        schema_type: str,
        definition: bytes,
        description: str = "",
        created_by: str = "",
        tags: list[str] | None = None,
    ) -> tuple[int, int, bool, str]:
        """Register under ``subject``; returns ``(schema_id, version, is_new_version, fingerprint)``."""
        if not subject:
            raise invalid("subject must not be empty")
        parsed = parse_definition(schema_type, definition)
        with self._lock:
            record = self._subjects.get(subject)
            now = _now()
            if record is None:
                schema_id = self._next_id
                self._next_id += 1
                record = SubjectRecord(
                    schema_id=schema_id,
                    subject=subject,
                    compatibility_mode=DEFAULT_COMPATIBILITY,
                    created_at=now,
                    created_by=created_by,
                    last_version=0,
                    last_schema_type=parsed.schema_type,
                )
                self._subjects[subject] = record
                self._by_id[schema_id] = subject
            else:
                for existing in record.versions:
                    if existing.fingerprint == parsed.fingerprint:
                        return record.schema_id, existing.version, False, existing.fingerprint
                latest = record.latest()
                if latest is not None:
                    errors = check_compatibility(
                        record.compatibility_mode,
                        latest.schema_type,
                        self._parsed(latest),
                        parsed.schema_type,
                        parsed.parsed,
                    )
                    if errors:
                        raise SchemaRegistryError(
                            grpc.StatusCode.INTERNAL,
                            f"Failed to register schema: Schema is not compatible with subject '{subject}' "
                            f"(mode: {record.compatibility_mode.capitalize()}): {'; '.join(errors)}",
                        )
            version = SchemaVersionRecord(
                version=record.last_version + 1,
                schema_type=parsed.schema_type,
                raw=parsed.raw,
                fingerprint=parsed.fingerprint,
                created_at=now,
                created_by=created_by,
                description=description,
                tags=list(tags or []),
            )
            record.versions.append(version)
            record.last_version = version.version
            record.last_schema_type = version.schema_type
            self._save()
            logger.info(
                "registered schema subject=%s id=%d version=%d", subject, record.schema_id, version.version
            )
            return record.schema_id, version.version, True, version.fingerprint

    def get_schema(self, schema_id: int, version: int | None = None) -> SchemaView:
        with self._lock:
            subject = self._by_id.get(schema_id)
            if subject is None:
                raise not_found(f"Schema not found for ID: {schema_id}")
            return self._view(self._subjects[subject], version)

    def get_latest_schema(self, subject: str) -> SchemaView:
        with self._lock:
            record = self._subjects.get(subject)
            if record is None:
                raise not_found(f"Schema not found for subject: {subject}")
            return self._view(record, None)

    def list_versions(self, subject: str) -> tuple[int, list[SchemaVersionRecord]]:
        with self._lock:
            record = self._require_subject(subject)
            return record.schema_id, list(record.versions)

    def list_subjects(self) -> list[SubjectRecord]:
        with self._lock:
            return [self._subjects[name] for name in sorted(self._subjects)]

    def check_compatibility(
        self, subject: str, schema_type: str, definition: bytes, mode: str | None
    ) -> list[str]:
        """Errors (empty = compatible) of ``definition`` against the subject's latest version."""
        parsed = parse_definition(schema_type, definition)
        effective_mode = normalize_compatibility_mode(mode) if mode else None
        with self._lock:
            record = self._require_subject(subject)
            latest = record.latest()
            if latest is None:
                return []
            return check_compatibility(
                effective_mode or record.compatibility_mode,
                latest.schema_type,
                self._parsed(latest),
                parsed.schema_type,
                parsed.parsed,
            )

    def set_compatibility_mode(self, subject: str, mode: str) -> str:
        normalized = normalize_compatibility_mode(mode)
        with self._lock:
            record = self._require_subject(subject)
            record.compatibility_mode = normalized
            self._save()
            return normalized

    def delete_schema_version(self, subject: str, version: int) -> None:
        """Delete one version; the subject and its schema_id stay (version numbers are never reused)."""
        with self._lock:
            record = self._require_subject(subject)
            existing = record.get(version)
            if existing is None:
                raise not_found(f"Schema version {version} not found for subject: {subject}")
            record.versions.remove(existing)
            self._validators.pop((record.schema_id, version), None)
            self._save()

    def resolve_reference(self, ref: pb.SchemaReference) -> tuple[int, int]:
        """``(schema_id, version)`` a producer's schema reference designates (latest when unspecified)."""
        with self._lock:
            record = self._subjects.get(ref.subject)
            if record is None or not record.versions:
                raise not_found(f"Schema not found for subject: {ref.subject}")
            latest = record.versions[-1]
            which = ref.WhichOneof("version_ref")
            if which == "pinned_version":
                if record.get(ref.pinned_version) is None:
                    raise not_found(
                        f"Pinned version {ref.pinned_version} does not exist for subject '{ref.subject}'. "
                        f"Latest version is {latest.version}"
                    )
                return record.schema_id, ref.pinned_version
            if which == "min_version" and latest.version < ref.min_version:
                raise not_found(
                    f"Latest version {latest.version} does not meet minimum version requirement "
                    f"{ref.min_version} for subject '{ref.subject}'"
                )
            return record.schema_id, latest.version

    def subject_of(self, schema_id: int) -> str | None:
        with self._lock:
            return self._by_id.get(schema_id)

    # ------------------------------------------------------------------------------------ topics

    def configure_topic_schema(
        self, topic: str, subject: str, validation_policy: str, enable_payload_validation: bool
    ) -> str:
        policy = normalize_validation_policy(validation_policy)
        self._check_topic(topic)
        with self._lock:
            if subject not in self._subjects:
                raise not_found(f"Schema subject '{subject}' not found in registry")
            self._topics[topic] = TopicSchemaConfig(subject, policy, enable_payload_validation)
            for name in [t for t in self._topics if _partition_base(t) == topic]:
                del self._topics[name]  # the base configuration now governs every partition
            self._save()
        return (
            f"Topic '{topic}' configured with schema '{subject}', "
            f"validation policy '{_policy_debug(policy)}', "
            f"payload validation {'enabled' if enable_payload_validation else 'disabled'}"
        )

    def update_topic_validation_policy(
        self, topic: str, validation_policy: str, enable_payload_validation: bool
    ) -> str:
        policy = normalize_validation_policy(validation_policy)
        self._check_topic(topic)
        with self._lock:
            current = self.topic_config(topic)
            if not current.schema_subject:
                raise SchemaRegistryError(
                    grpc.StatusCode.FAILED_PRECONDITION,
                    f"Topic '{topic}' has no schema subject configured. Use ConfigureTopicSchema first.",
                )
            self._topics[topic] = TopicSchemaConfig(current.schema_subject, policy, enable_payload_validation)
            self._save()
        return (
            f"Validation policy updated to '{_policy_debug(policy)}', payload validation "
            f"{'enabled' if enable_payload_validation else 'disabled'}"
        )

    def get_topic_schema_config(self, topic: str) -> tuple[TopicSchemaConfig, int]:
        """The topic's configuration and its subject's schema_id (0 when no subject is bound)."""
        self._check_topic(topic)
        with self._lock:
            config = self.topic_config(topic)
            record = self._subjects.get(config.schema_subject)
            return config, record.schema_id if record is not None else 0

    def topic_config(self, topic: str) -> TopicSchemaConfig:
        """Effective configuration of ``topic`` (its own, else its partitioned base's, else the default)."""
        config = self._topics.get(topic)
        if config is None:
            base = _partition_base(topic)
            if base is not None:
                config = self._topics.get(base)
        return config if config is not None else TopicSchemaConfig("")

    def bind_topic_subject(self, topic: str, subject: str) -> None:
        """First-producer privilege of the real broker: a producer's schema subject becomes the topic's
        subject when the topic has none yet (policy and payload validation keep their values)."""
        with self._lock:
            current = self.topic_config(topic)
            if current.schema_subject or subject not in self._subjects:
                return
            self._topics[topic] = TopicSchemaConfig(
                subject, current.validation_policy, current.enable_payload_validation
            )
            self._save()

    def check_publish(
        self, topic: str, payload: bytes, schema_id: int | None, schema_version: int | None = None
    ) -> str | None:
        """``None`` to accept a message, else the reason to reject it (answer PERMISSION_DENIED).

        Mirrors the real broker's ``validate_message``: policy ``none`` accepts everything; a topic without
        a subject accepts (``enforce`` cannot be set without one here); a missing schema_id, a schema_id
        of another subject or (with payload validation on) a payload that does not validate is a
        violation, rejected under ``enforce`` and logged under ``warn``. Payload validation uses
        ``schema_version`` when it exists, else the subject's latest version.
        """
        config = self.topic_config(topic)
        policy = config.validation_policy
        if policy == "none":
            return None
        if not config.schema_subject:
            if policy == "enforce":
                return self._violation(policy, topic, f"Topic {topic} requires schema but none is configured")
            return None
        subject = config.schema_subject
        if schema_id is None:
            return self._violation(
                policy, topic, f"Message missing schema_id for topic {topic} (expected subject: {subject})"
            )
        message_subject = self._by_id.get(schema_id)
        if message_subject is None:
            return self._violation(policy, topic, f"Schema ID {schema_id} not found in registry")
        if message_subject != subject:
            return self._violation(
                policy,
                topic,
                f"Schema subject mismatch for topic {topic}: message schema_id={schema_id} belongs to "
                f"subject '{message_subject}', but topic requires '{subject}'",
            )
        if not config.enable_payload_validation:
            return None
        validator = self._validator(schema_id, schema_version)
        if validator is None:
            return None
        problem = validator(payload)
        if problem is None:
            return None
        return self._violation(policy, topic, f"Payload validation failed: {problem}")

    # ------------------------------------------------------------------------------------ internals

    @staticmethod
    def _violation(policy: str, topic: str, reason: str) -> str | None:
        if policy == "enforce":
            return reason
        logger.warning("schema validation (warn) on %s: %s", topic, reason)
        return None

    def _check_topic(self, topic: str) -> None:
        if not _TOPIC_RE.match(topic):
            raise invalid(
                f"invalid topic name {topic!r}: expected /namespace/topic using letters, digits, '_' and '-'"
            )
        if self._topic_exists is not None and not self._topic_exists(topic):
            raise not_found(f"Topic '{topic}' not found on this broker")

    def _require_subject(self, subject: str) -> SubjectRecord:
        record = self._subjects.get(subject)
        if record is None:
            raise not_found(f"Subject not found: {subject}")
        return record

    def _view(self, record: SubjectRecord, version: int | None) -> SchemaView:
        if version is None:
            chosen = record.latest()
            if chosen is None:
                raise not_found(f"No versions found for subject: {record.subject}")
        else:
            chosen = record.get(version)
            if chosen is None:
                raise not_found(f"Schema version {version} not found for subject: {record.subject}")
        return SchemaView(record.schema_id, record.subject, record.compatibility_mode, chosen)

    @staticmethod
    def _parsed(record: SchemaVersionRecord) -> Any:
        if record.schema_type in ("json_schema", "avro"):
            return parse_json(record.raw)
        return None

    def _validator(self, schema_id: int, schema_version: int | None) -> Callable[[bytes], str | None] | None:
        subject = self._subjects.get(self._by_id.get(schema_id, ""))
        if subject is None:
            return None
        record = subject.get(schema_version) if schema_version is not None else None
        if record is None:
            record = subject.latest()
            if record is None:
                return None
        key = (schema_id, record.version)
        validator = self._validators.get(key)
        if validator is None:
            validator = _build_validator(record)
            self._validators[key] = validator
        return validator

    # ------------------------------------------------------------------------------------ persistence

    def _save(self) -> None:
        if self._path is None:
            return
        state = {
            "format": _STATE_FORMAT,
            "next_schema_id": self._next_id,
            "subjects": [asdict(record) for record in self._subjects.values()],
            "topics": {name: asdict(config) for name, config in sorted(self._topics.items())},
        }
        data = json.dumps(state, indent=1, ensure_ascii=False).encode("utf-8")
        fd, tmp = tempfile.mkstemp(prefix=".schema_registry.", suffix=".tmp", dir=self._path.parent)
        try:
            with os.fdopen(fd, "wb") as handle:
                handle.write(data)
                handle.flush()
                os.fsync(handle.fileno())
            os.replace(tmp, self._path)
        except BaseException:
            with contextlib.suppress(OSError):
                os.unlink(tmp)
            raise

    def _load(self) -> None:
        assert self._path is not None
        if not self._path.exists():
            return
        try:
            state = json.loads(self._path.read_text(encoding="utf-8"))
            if state.get("format") != _STATE_FORMAT:
                raise ValueError(f"unsupported format {state.get('format')!r}")
            for raw in state["subjects"]:
                versions = [SchemaVersionRecord(**v) for v in raw.pop("versions")]
                record = SubjectRecord(**raw, versions=versions)
                self._subjects[record.subject] = record
                self._by_id[record.schema_id] = record.subject
            for name, config in state["topics"].items():
                self._topics[name] = TopicSchemaConfig(**config)
            self._next_id = max(
                [int(state["next_schema_id"]), *(r.schema_id + 1 for r in self._subjects.values())]
            )
        except (ValueError, KeyError, TypeError) as exc:
            raise RuntimeError(f"cannot load schema registry state from {self._path}: {exc}") from exc


def _partition_base(topic: str) -> str | None:
    match = _PARTITION_RE.match(topic)
    return match.group("base") if match else None


def _build_validator(record: SchemaVersionRecord) -> Callable[[bytes], str | None]:
    """Payload validator of one schema version (the real broker's ValidatorFactory)."""
    kind = record.schema_type
    if kind == "string":

        def validate_string(payload: bytes) -> str | None:
            try:
                payload.decode("utf-8")
            except UnicodeDecodeError as exc:
                return f"Invalid UTF-8 string: {exc}"
            return None

        return validate_string
    if kind == "number":

        def validate_number(payload: bytes) -> str | None:
            if len(payload) in (4, 8):
                return None
            return f"Invalid number: expected 4 or 8 bytes, got {len(payload)}"

        return validate_number
    if kind == "json_schema":
        compiled = compile_json_schema(parse_json(record.raw))

        def validate_json(payload: bytes) -> str | None:
            try:
                instance = parse_json(payload)
            except (ValueError, UnicodeDecodeError) as exc:
                return f"Invalid JSON data: {exc}"
            try:
                errors = [_json_error(e) for e in compiled.iter_errors(instance)]
            except Exception as exc:  # never let a validator problem break the publish path
                return f"JSON Schema validation error: {exc}"
            if errors:
                return "JSON Schema validation failed: " + ", ".join(errors)
            return None

        return validate_json
    if kind == "avro":
        return _avro_validator(record.raw)
    return _accept  # bytes; protobuf payloads are not validated (the real broker does not either)


def _accept(payload: bytes) -> str | None:
    return None


def _json_error(error: jsonschema_rs.ValidationError) -> str:
    where = "/".join(str(p) for p in error.instance_path)
    return f"{error.message} at /{where}" if where else error.message


def _avro_validator(raw: str) -> Callable[[bytes], str | None]:
    """Avro binary (schemaless datum) validation with fastavro; accepts everything without fastavro."""
    try:
        import fastavro
    except ImportError:  # pragma: no cover - fastavro is a workspace dependency
        return _accept
    parsed = fastavro.parse_schema(parse_json(raw))

    def validate_avro(payload: bytes) -> str | None:
        buffer = io.BytesIO(payload)
        try:
            fastavro.schemaless_reader(buffer, parsed, None)
        except Exception as exc:  # fastavro raises EOFError, ValueError, UnicodeDecodeError, ...
            return f"Avro validation failed: {exc or type(exc).__name__}"
        if buffer.tell() != len(payload):
            return f"Avro validation failed: {len(payload) - buffer.tell()} trailing bytes"
        return None

    return validate_avro
