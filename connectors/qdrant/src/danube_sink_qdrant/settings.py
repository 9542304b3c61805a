"""The ``[qdrant]`` section: where Qdrant is, and how each topic maps onto a collection.

Secrets (invariant 7): the API key comes from ``QDRANT_API_KEY`` (or the variable named by
``api_key_env``); writing it in the TOML file is refused.
"""

from __future__ import annotations

import re
from typing import Any, Literal

from danube_connect_core import EnvSecret, SinkTopicMapping
from pydantic import BaseModel, ConfigDict, Field, SecretStr, field_validator, model_validator

__all__ = ["Distance", "QdrantSettings", "QdrantTopicMapping"]

Distance = Literal["Cosine", "Euclid", "Dot", "Manhattan"]
_FIELD_PATH = re.compile(r"^[^.\s]+(\.[^.\s]+)*$")
_COLLECTION = re.compile(r"^[A-Za-z0-9_\-]+$")


def _path(value: str) -> str:
    if not _FIELD_PATH.match(value):
        raise ValueError(f"{value!r} is not a field name or dotted path such as 'doc.embedding'")
    return value


class QdrantTopicMapping(SinkTopicMapping):
    """``[[qdrant.topic_mappings]]``: one subscription upserted into one collection.

    Vectors: ``vector_field`` (the collection's unnamed vector) or ``vectors`` (vector name -> field).
    ``dimension`` is an int (every vector) or a table name -> int; it is required to auto-create a
    collection and otherwise read from the existing collection. Point ids: ``id_field`` (UUIDv5 of the
    value, non-negative integers as they are) or, by default, UUIDv5 of the message id (invariant 2).
    ``payload_fields`` keeps only those fields (default: all but the vector fields);
    ``include_metadata`` adds the Danube coordinates under ``metadata_field``.
    """

    collection: str
    vector_field: str | None = None
    vectors: dict[str, str] | None = None
    id_field: str | None = None
    payload_fields: list[str] | None = None
    metadata_field: str = "_danube"
    auto_create: bool = True
    dimension: int | dict[str, int] | None = None
    distance: Distance = "Cosine"

    @field_validator("collection")
    @classmethod
    def _collection(cls, value: str) -> str:
        if not _COLLECTION.match(value):
            raise ValueError("must contain only letters, digits, '_' and '-'")
        return value

    @field_validator("vector_field", "id_field")
    @classmethod
    def _one_path(cls, value: str | None) -> str | None:
        return None if value is None else _path(value)

    @field_validator("vectors")
    @classmethod
    def _vector_paths(cls, value: dict[str, str] | None) -> dict[str, str] | None:
        if value is not None:
            if not value:
                raise ValueError("needs at least one vector name = field")
            for field in value.values():
                _path(field)
        return value

    @field_validator("dimension")
    @classmethod
    def _positive(cls, value: int | dict[str, int] | None) -> int | dict[str, int] | None:
        values = value.values() if isinstance(value, dict) else [] if value is None else [value]
        if any(v < 1 for v in values):
            raise ValueError("must be at least 1")
        return value

    @model_validator(mode="after")
    def _vector_choice(self) -> QdrantTopicMapping:
        if (self.vector_field is None) == (self.vectors is None):
            raise ValueError("set exactly one of vector_field (unnamed vector) or vectors (named vectors)")
        if isinstance(self.dimension, dict):
            if self.vectors is None:
                raise ValueError("dimension as a table needs named vectors")
            missing = set(self.vectors) - set(self.dimension)
            if missing:
                raise ValueError(f"dimension has no entry for vector(s) {sorted(missing)}")
        if self.auto_create and self.dimension is None:
            raise ValueError("auto_create needs dimension (or set auto_create = false)")
        return self

    def dimension_of(self, name: str) -> int | None:
        if isinstance(self.dimension, dict):
            return self.dimension.get(name)
        return self.dimension

    def vector_fields(self) -> dict[str, str]:
        """Vector name -> payload field; the unnamed vector is named ``""``."""
        if self.vectors is not None:
            return dict(self.vectors)
        assert self.vector_field is not None
        return {"": self.vector_field}


class QdrantSettings(BaseModel):
    """``[qdrant]``. Environment overrides: ``QDRANT_URL``, ``QDRANT_API_KEY`` (env wins over TOML)."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    url: str = ":memory:"
    api_key: SecretStr | None = None
    api_key_env: EnvSecret | None = None
    timeout_ms: int = Field(default=30_000, ge=1)
    topic_mappings: list[QdrantTopicMapping] = Field(min_length=1)

    @field_validator("api_key", mode="before")
    @classmethod
    def _api_key_from_env_only(cls, value: Any) -> Any:
        # The loader hands environment overrides over as SecretStr; a plain string came from the file.
        if isinstance(value, str):
            raise ValueError("must not be written in the file: set QDRANT_API_KEY (or api_key_env)")
        return value

    @field_validator("url")
    @classmethod
    def _url(cls, value: str) -> str:
        from danube_sink_qdrant.location import parse_location

        parse_location(value)
        return value

    @model_validator(mode="after")
    def _unique_subscriptions(self) -> QdrantSettings:
        seen: set[tuple[str, str]] = set()
        for m in self.topic_mappings:
            key = (m.topic, m.subscription)
            if key in seen:
                raise ValueError(f"topic {m.topic!r} with subscription {m.subscription!r} is mapped twice")
            seen.add(key)
        return self

    def secret_api_key(self) -> str | None:
        secret = self.api_key or self.api_key_env
        return secret.get_secret_value() if secret is not None else None
