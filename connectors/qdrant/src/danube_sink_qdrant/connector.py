"""QdrantSink: Danube topics to Qdrant collections, one idempotent upsert per batch and collection.

Failure semantics (what the runtime sees from :meth:`QdrantSink.write`):

- returns: every point of the batch was upserted and applied (``wait=True``), except the records
  reported with ``batch.reject``: they cannot be points (not an object, vector missing, not numeric, wrong
  dimension, unusable ``id_field``), or Qdrant refused their point as malformed (a refused upsert of
  several points is repeated point by point to find them). The runtime dead-letters those and acks the
  rest (invariants 1, 5).
- Retryable: Qdrant is unreachable, timed out or overloaded. Some points may be written already; the
  retry rewrites them with the same ids (invariant 2). Never dead-lettered (invariant 5).
- Fatal: the API key is refused, the local storage is locked by another process, or an existing
  collection does not fit the mapping (vector names).
"""

from __future__ import annotations

import logging

from danube_connect_core import (
    ConfigError,
    ConnectorConfig,
    ConsumerConfig,
    Fatal,
    InvalidData,
    Retryable,
    SinkBatch,
    SinkConnector,
    SinkRecord,
    connector_main,
)

from danube_sink_qdrant.engine import QdrantEngine
from danube_sink_qdrant.failures import classify, describe
from danube_sink_qdrant.location import parse_location
from danube_sink_qdrant.points import PointData, to_point
from danube_sink_qdrant.settings import QdrantSettings, QdrantTopicMapping

__all__ = ["QdrantSink", "main"]

log = logging.getLogger("danube_connect.qdrant")


class QdrantSink(SinkConnector):
    """Sink connector upserting Danube messages as points into Qdrant collections."""

    name = "qdrant"
    config_section = "qdrant"
    settings_model = QdrantSettings
    env_prefix = "QDRANT"

    def __init__(self) -> None:
        self.settings: QdrantSettings | None = None
        self.engine: QdrantEngine | None = None
        self.mappings: list[QdrantTopicMapping] = []
        self._sizes: dict[str, dict[str, int]] = {}

    async def initialize(self, config: ConnectorConfig) -> None:
        """Open the client. A server that is not reachable yet is waited for (not ready); a local
        storage directory locked by another process is Fatal."""
        settings = config.settings_as(QdrantSettings)
        self.settings = settings
        try:
            location = parse_location(settings.url)
        except ValueError as exc:  # validated at load time; kept for configs built in code
            raise ConfigError(str(exc), file=config.source_file, key="qdrant.url") from None
        self.engine = QdrantEngine(location, settings.secret_api_key(), settings.timeout_ms / 1000)
        self.mappings = list(settings.topic_mappings)
        try:
            await self.engine.open()
        except RuntimeError as exc:  # local mode: "already accessed by another instance"
            raise Fatal(f"cannot open Qdrant local storage {location.display}: {exc}") from exc
        log.info("qdrant sink writing to %s", location.display)

    async def consumer_configs(self) -> list[ConsumerConfig]:
        return [m.consumer_config() for m in self.mappings]

    async def write(self, batch: SinkBatch[QdrantTopicMapping]) -> None:
        """Upsert the batch in one call; see the module docstring for the failure semantics."""
        mapping = batch.mapping
        sizes = await self._ensure_collection(mapping)
        points: list[tuple[SinkRecord, PointData]] = []
        for record in batch.records:
            try:
                points.append((record, to_point(record, mapping, sizes)))
            except InvalidData as exc:
                batch.reject(record, exc.reason)
        if not points:
            return
        refusal = await self._upsert(mapping.collection, [p for _, p in points])
        if refusal is None:
            return
        if len(points) == 1:
            batch.reject(points[0][0], refusal)
            return
        for record, point in points:  # find the points Qdrant refuses: one upsert each
            refused = await self._upsert(mapping.collection, [point])
            if refused is not None:
                batch.reject(record, refused)

    async def _upsert(self, collection: str, points: list[PointData]) -> str | None:
        """Upsert ``points``; None when done, the reason when Qdrant refused them as malformed."""
        assert self.engine is not None
        try:
            await self.engine.upsert(collection, points)
        except Exception as exc:
            return self._refusal(exc, f"upsert into {collection}", collection)
        return None

    def _refusal(self, exc: Exception, what: str, collection: str) -> str:
        """The message of a refusal of the data as malformed; raises Fatal or Retryable for the rest."""
        assert self.engine is not None
        kind = classify(exc, local=self.engine.location.local)
        message = f"Qdrant {what} failed: {describe(exc)}"
        if kind == "invalid":
            return message
        if kind == "fatal":
            raise Fatal(message) from exc
        self._sizes.pop(collection, None)  # the collection may be gone: ensure it again next time
        raise Retryable(message) from exc

    async def _ensure_collection(self, mapping: QdrantTopicMapping) -> dict[str, int]:
        """The collection's vector sizes; creates it when missing and ``auto_create`` is on."""
        cached = self._sizes.get(mapping.collection)
        if cached is not None:
            return cached
        assert self.engine is not None
        name = mapping.collection
        try:
            sizes = await self.engine.vector_sizes(name)
            if sizes is None:
                if not mapping.auto_create:
                    raise Retryable(f"collection {name!r} does not exist (auto_create is off)")
                wanted = {n: mapping.dimension_of(n) or 0 for n in mapping.vector_fields()}
                try:
                    await self.engine.create_collection(name, wanted, mapping.distance)
                    log.info("created collection %s (%s, %s)", name, wanted, mapping.distance)
                except Exception:
                    # Another instance may have created it at the same time: read it back.
                    if await self.engine.vector_sizes(name) is None:
                        raise
                sizes = await self.engine.vector_sizes(name)
                if sizes is None:
                    raise Retryable(f"collection {name!r} was created but cannot be read back")
        except (Retryable, Fatal):
            raise
        except Exception as exc:
            # a setup request refused as malformed is no record's fault: retried like an outage
            raise Retryable(self._refusal(exc, f"collection {name} setup", name)) from exc
        for vector_name in mapping.vector_fields():
            if vector_name not in sizes:
                have = ", ".join(repr(n) if n else "unnamed" for n in sizes) or "none"
                want = repr(vector_name) if vector_name else "an unnamed vector"
                raise Fatal(f"collection {name!r} has no {want} (it has {have})")
            configured = mapping.dimension_of(vector_name)
            if configured is not None and configured != sizes[vector_name]:
                log.warning(
                    "collection %s vector %r has size %d, the mapping says %d; using the collection's",
                    name,
                    vector_name,
                    sizes[vector_name],
                    configured,
                )
        self._sizes[name] = sizes
        return sizes

    async def health_check(self) -> None:
        """Lists collections (drives /ready); raises Retryable when Qdrant does not answer."""
        assert self.engine is not None
        try:
            await self.engine.ping()
        except Exception as exc:
            raise Retryable(f"Qdrant: {describe(exc)}") from exc

    async def shutdown(self) -> None:
        if self.engine is not None:
            await self.engine.close()
            self.engine = None


def main() -> None:
    """Console script ``danube-sink-qdrant [--config FILE] [--check]``."""
    connector_main(QdrantSink)
