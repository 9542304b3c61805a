"""Sink side: decode messages by the schema they were published with (registry lookups cached).

Schema versions are immutable, so a (schema_id, version) is fetched once per process.
"""

from __future__ import annotations

from typing import Any

from danube_connect_core.errors import InvalidData, Retryable
from danube_connect_core.records import SchemaMetadata
from danube_connect_core.resilience import RetriesExhausted
from danube_connect_core.schema_codec import PayloadCodec, SchemalessCodec, codec_for

__all__ = ["SchemaCache"]


class SchemaCache:
    def __init__(self, registry: Any) -> None:
        self._registry = registry
        self._entries: dict[tuple[int, int | None], tuple[SchemaMetadata, PayloadCodec]] = {}
        self._schemaless = SchemalessCodec()

    def cached(
        self, schema_id: int | None, version: int | None
    ) -> tuple[SchemaMetadata | None, PayloadCodec] | None:
        """What :meth:`lookup` returns when it needs no registry call (schemaless, or fetched before);
        None otherwise. Never raises."""
        if schema_id is None:
            return None, self._schemaless
        return self._entries.get((schema_id, version))

    async def lookup(
        self, schema_id: int | None, version: int | None
    ) -> tuple[SchemaMetadata | None, PayloadCodec]:
        """The schema metadata and codec of a message.

        Raises Retryable when the registry cannot be reached (the broker is down: not the record's fault)
        and InvalidData when the schema is unknown or unusable.
        """
        hit = self.cached(schema_id, version)
        if hit is not None:
            return hit
        assert schema_id is not None  # cached() answers every schemaless message
        key = (schema_id, version)
        from danube_connect_core.client import NonRetryableError

        try:
            info = await self._registry.get_schema(schema_id, version)
        except RetriesExhausted as exc:
            raise Retryable(f"schema registry unreachable: {exc}") from exc
        except NonRetryableError as exc:
            raise InvalidData(f"schema {schema_id} v{version} not found in the registry: {exc}") from exc
        try:
            codec = codec_for(info.schema_type, info.definition)
        except ValueError as exc:
            raise InvalidData(f"schema {info.subject} v{info.version} is unusable: {exc}") from exc
        meta = SchemaMetadata(info.subject, info.version, info.schema_type, info.schema_id)
        self._entries[key] = (meta, codec)
        return meta, codec
