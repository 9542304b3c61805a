"""Client of the broker's SchemaRegistry service (package ``danube_schema``, docs/wire-contract.md §1-§2)."""

from __future__ import annotations

import base64
import json
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass
from typing import Any, TypeVar

from ..proto import SchemaRegistry_pb2 as spb
from .auth import MetadataProvider
from .options import RetryPolicy
from .pool import ChannelPool
from .ratelog import RateLimitedLog
from .retry import call_with_retry
from .rpc import RegistryStubs

T = TypeVar("T")

_RAW_KEYS = ("raw_schema", "schema", "definition", "raw")


def unwrap_definition(definition: bytes) -> bytes:
    """The schema text of a definition as the registry returns it.

    The real broker wraps definitions in a JSON object naming the type, e.g.
    ``{"JsonSchema": {"raw_schema": "<text>", "fingerprint": "sha256:..."}}`` (likewise ``Avro``,
    ``Protobuf``, ...). This returns ``<text>`` for such a wrapper and the input unchanged otherwise, so
    unwrapped definitions (the embedded broker, older brokers) pass through. A wrapped value given as a
    list of byte values or as base64 text of a ``descriptor`` is decoded too.
    """
    stripped = definition.lstrip()
    if not stripped.startswith(b"{"):
        return definition
    try:
        doc = json.loads(definition)
    except ValueError:
        return definition
    if not isinstance(doc, dict) or len(doc) != 1:
        return definition
    (inner,) = doc.values()
    if not isinstance(inner, dict):
        return definition
    for key in _RAW_KEYS:
        if key in inner:
            return _as_bytes(inner[key], definition)
    if "descriptor" in inner:
        value = inner["descriptor"]
        if isinstance(value, str):
            try:
                return base64.b64decode(value, validate=True)
            except ValueError:
                return value.encode()
        return _as_bytes(value, definition)
    return definition


def _as_bytes(value: Any, fallback: bytes) -> bytes:
    if isinstance(value, str):
        return value.encode("utf-8")
    if isinstance(value, list) and all(isinstance(b, int) and 0 <= b < 256 for b in value):
        return bytes(value)
    if isinstance(value, dict):
        return json.dumps(value).encode("utf-8")
    return fallback


@dataclass(frozen=True, slots=True)
class SchemaInfo:
    """One version of a subject. ``definition`` is the schema text, already unwrapped."""

    schema_id: int
    version: int
    subject: str
    schema_type: str
    definition: bytes
    description: str = ""
    created_at: int = 0
    created_by: str = ""
    tags: tuple[str, ...] = ()
    fingerprint: str = ""
    compatibility_mode: str = ""


@dataclass(frozen=True, slots=True)
class SchemaVersion:
    version: int
    schema_id: int
    created_at: int
    created_by: str
    description: str
    fingerprint: str


@dataclass(frozen=True, slots=True)
class SubjectSummary:
    subject: str
    schema_type: str
    latest_version: int
    compatibility_mode: str
    schema_id: int
    tags: tuple[str, ...]


@dataclass(frozen=True, slots=True)
class TopicSchemaConfig:
    schema_subject: str
    validation_policy: str
    enable_payload_validation: bool
    schema_id: int


@dataclass(frozen=True, slots=True)
class RegistryResult:
    """Outcome of a registry mutation that answers ``success`` + ``message``."""

    success: bool
    message: str


class SchemaRegistryClient:
    """Async client of every SchemaRegistry RPC.

    Transient failures (UNAVAILABLE, DEADLINE_EXCEEDED, RESOURCE_EXHAUSTED) are retried per the client's
    :class:`RetryPolicy`; other statuses raise :class:`NonRetryableError` (an incompatible registration is
    INTERNAL on the real broker). Schema versions are immutable, so :meth:`get_schema` caches by
    (schema_id, version).
    """

    def __init__(
        self,
        service_url: str,
        pool: ChannelPool,
        auth: MetadataProvider,
        retry: RetryPolicy,
        timeout_s: float,
        log: RateLimitedLog | None = None,
    ) -> None:
        self._service_url = service_url
        self._pool = pool
        self._auth = auth
        self._retry = retry
        self._timeout_s = timeout_s
        self._log = log
        self._cache: dict[tuple[int, int], SchemaInfo] = {}

    async def _call(self, what: str, rpc: Callable[[RegistryStubs, Any], Awaitable[T]]) -> T:
        async def once() -> T:
            stubs = self._pool.get(self._service_url).registry
            return await rpc(stubs, await self._auth.metadata())

        return await call_with_retry(once, self._retry, f"schema registry {what}", self._log)

    async def register(
        self,
        subject: str,
        schema_type: str,
        definition: bytes | str,
        *,
        description: str = "",
        created_by: str = "",
        tags: Sequence[str] = (),
    ) -> tuple[int, int, bool]:
        """Register ``definition`` under ``subject``; returns (schema_id, version, is_new_version).

        Registering an identical definition again returns the existing version with ``is_new_version`` False.
        ``schema_type`` is one of avro, json_schema, protobuf, bytes, string, number.
        """
        data = definition.encode("utf-8") if isinstance(definition, str) else definition
        request = spb.RegisterSchemaRequest(
            subject=subject,
            schema_type=schema_type,
            schema_definition=data,
            description=description,
            created_by=created_by,
            tags=list(tags),
        )
        resp = await self._call(
            f"register {subject}",
            lambda s, md: s.register_schema(request, metadata=md, timeout=self._timeout_s),
        )
        return resp.schema_id, resp.version, resp.is_new_version

    async def get_schema(self, schema_id: int, version: int | None = None) -> SchemaInfo:
        """A version of a subject by schema id (the latest when ``version`` is None)."""
        if version is not None:
            cached = self._cache.get((schema_id, version))
            if cached is not None:
                return cached
            request = spb.GetSchemaRequest(schema_id=schema_id, version=version)
        else:
            request = spb.GetSchemaRequest(schema_id=schema_id)
        resp = await self._call(
            f"get schema {schema_id}",
            lambda s, md: s.get_schema(request, metadata=md, timeout=self._timeout_s),
        )
        return self._remember(resp)

    async def get_latest(self, subject: str) -> SchemaInfo:
        """The latest version of ``subject``."""
        request = spb.GetLatestSchemaRequest(subject=subject)
        resp = await self._call(
            f"get latest {subject}",
            lambda s, md: s.get_latest_schema(request, metadata=md, timeout=self._timeout_s),
        )
        return self._remember(resp)

    async def list_versions(self, subject: str) -> list[SchemaVersion]:
        request = spb.ListVersionsRequest(subject=subject)
        resp = await self._call(
            f"list versions {subject}",
            lambda s, md: s.list_versions(request, metadata=md, timeout=self._timeout_s),
        )
        return [
            SchemaVersion(v.version, v.schema_id, v.created_at, v.created_by, v.description, v.fingerprint)
            for v in resp.versions
        ]

    async def check_compatibility(
        self, subject: str, schema_type: str, definition: bytes | str, mode: str | None = None
    ) -> tuple[bool, list[str]]:
        """Whether ``definition`` could be registered under ``subject``; returns (is_compatible, errors)."""
        data = definition.encode("utf-8") if isinstance(definition, str) else definition
        request = spb.CheckCompatibilityRequest(
            subject=subject, new_schema_definition=data, schema_type=schema_type
        )
        if mode is not None:
            request.compatibility_mode = mode
        resp = await self._call(
            f"check compatibility {subject}",
            lambda s, md: s.check_compatibility(request, metadata=md, timeout=self._timeout_s),
        )
        return resp.is_compatible, list(resp.errors)

    async def delete_version(self, subject: str, version: int) -> RegistryResult:
        request = spb.DeleteSchemaVersionRequest(subject=subject, version=version)
        resp = await self._call(
            f"delete {subject} v{version}",
            lambda s, md: s.delete_schema_version(request, metadata=md, timeout=self._timeout_s),
        )
        for key, info in list(self._cache.items()):
            if info.subject == subject and info.version == version:
                del self._cache[key]
        return RegistryResult(resp.success, resp.message)

    async def set_compatibility_mode(self, subject: str, mode: str) -> RegistryResult:
        """``mode``: none | backward | forward | full."""
        request = spb.SetCompatibilityModeRequest(subject=subject, compatibility_mode=mode)
        resp = await self._call(
            f"set compatibility {subject}",
            lambda s, md: s.set_compatibility_mode(request, metadata=md, timeout=self._timeout_s),
        )
        return RegistryResult(resp.success, resp.message)

    async def configure_topic_schema(
        self,
        topic: str,
        subject: str,
        validation_policy: str = "warn",
        enable_payload_validation: bool = False,
    ) -> RegistryResult:
        """Bind ``subject`` to ``topic``; ``validation_policy``: none | warn | enforce."""
        request = spb.ConfigureTopicSchemaRequest(
            topic_name=topic,
            schema_subject=subject,
            validation_policy=validation_policy,
            enable_payload_validation=enable_payload_validation,
        )
        resp = await self._call(
            f"configure topic schema {topic}",
            lambda s, md: s.configure_topic_schema(request, metadata=md, timeout=self._timeout_s),
        )
        return RegistryResult(resp.success, resp.message)

    async def update_topic_validation_policy(
        self, topic: str, validation_policy: str, enable_payload_validation: bool = False
    ) -> RegistryResult:
        request = spb.UpdateTopicValidationPolicyRequest(
            topic_name=topic,
            validation_policy=validation_policy,
            enable_payload_validation=enable_payload_validation,
        )
        resp = await self._call(
            f"update validation policy {topic}",
            lambda s, md: s.update_topic_validation_policy(request, metadata=md, timeout=self._timeout_s),
        )
        return RegistryResult(resp.success, resp.message)

    async def get_topic_schema_config(self, topic: str) -> TopicSchemaConfig:
        request = spb.GetTopicSchemaConfigRequest(topic_name=topic)
        resp = await self._call(
            f"get topic schema config {topic}",
            lambda s, md: s.get_topic_schema_config(request, metadata=md, timeout=self._timeout_s),
        )
        return TopicSchemaConfig(
            resp.schema_subject, resp.validation_policy, resp.enable_payload_validation, resp.schema_id
        )

    async def list_subjects(self) -> list[SubjectSummary]:
        request = spb.ListSubjectsRequest()
        resp = await self._call(
            "list subjects", lambda s, md: s.list_subjects(request, metadata=md, timeout=self._timeout_s)
        )
        return [
            SubjectSummary(
                s.subject, s.schema_type, s.latest_version, s.compatibility_mode, s.schema_id, tuple(s.tags)
            )
            for s in resp.subjects
        ]

    def _remember(self, resp: spb.GetSchemaResponse) -> SchemaInfo:
        info = SchemaInfo(
            schema_id=resp.schema_id,
            version=resp.version,
            subject=resp.subject,
            schema_type=resp.schema_type,
            definition=unwrap_definition(resp.schema_definition),
            description=resp.description,
            created_at=resp.created_at,
            created_by=resp.created_by,
            tags=tuple(resp.tags),
            fingerprint=resp.fingerprint,
            compatibility_mode=resp.compatibility_mode,
        )
        self._cache[(info.schema_id, info.version)] = info
        return info
