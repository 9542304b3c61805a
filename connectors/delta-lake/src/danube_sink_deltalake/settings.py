"""The ``[deltalake]`` section: table root, storage options, topic -> table mappings with their columns.

Secrets (invariant 7): storage credentials (``AWS_SECRET_ACCESS_KEY``, ``AZURE_STORAGE_ACCOUNT_KEY``,
``GOOGLE_SERVICE_ACCOUNT_KEY``...) come from the environment only (see :mod:`.storage`); the TOML
``storage_options`` table is for non-secret options (region, endpoint, ...) and refuses keys that look
like credentials.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Literal

from danube_connect_core import SinkTopicMapping, SubscriptionType
from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

__all__ = ["ColumnMapping", "ColumnType", "DeltaLakeSettings", "DeltaTopicMapping"]

ColumnType = Literal[
    "string", "int64", "int32", "float64", "float32", "boolean", "timestamp", "date", "json", "binary"
]

_COLUMN = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")
_SECRET_KEY = re.compile(r"(secret|password|token|account_key|access_key|service_account_key|sas)", re.I)


class ColumnMapping(BaseModel):
    """``[[deltalake.topic_mappings.columns]]``: one table column filled from the payload.

    ``path`` is a JSON path into the payload (``$.amount``, ``$.customer.id``, ``$.items[0].sku``; the
    leading ``$.`` may be left out; ``$`` is the whole payload). A missing or null value is allowed only
    when ``nullable`` is true, otherwise the record is invalid (dead-lettered).
    """

    model_config = ConfigDict(extra="forbid", frozen=True)

    path: str
    column: str
    type: ColumnType = "string"
    nullable: bool = True

    @field_validator("column")
    @classmethod
    def _column_name(cls, value: str) -> str:
        if not _COLUMN.match(value):
            raise ValueError("must be letters, digits and '_' (not starting with a digit)")
        if value.startswith("_danube_"):
            raise ValueError("the _danube_ prefix is reserved for metadata columns")
        return value


class DeltaTopicMapping(SinkTopicMapping):
    """``[[deltalake.topic_mappings]]``: one subscription appended to one Delta table.

    ``table``: a URI (``s3://bucket/path``, ``az://...``, ``gs://...``, ``file:///...``), an absolute path,
    or a path relative to ``deltalake.table_root``. ``columns`` come from ``columns`` when given, else from
    the JSON Schema in ``schema_file`` (or the core ``[[schemas]]`` entry of the topic).
    ``partition_columns`` are Delta partition columns (each must be one of the columns).
    """

    # One writer per partition keeps the skip-by-offset idempotency exact (see target.py): Failover lets
    # several instances stand by for each other without ever writing the same partition concurrently.
    subscription_type: SubscriptionType = SubscriptionType.FAILOVER
    table: str = Field(min_length=1)
    columns: list[ColumnMapping] = Field(default_factory=list)
    schema_file: Path | None = None
    partition_columns: list[str] = Field(default_factory=list)

    @field_validator("subscription_type", mode="after")
    @classmethod
    def _one_writer_per_partition(cls, value: SubscriptionType) -> SubscriptionType:
        if value in (SubscriptionType.SHARED, SubscriptionType.KEY_SHARED):
            raise ValueError(
                "must be Failover or Exclusive: with Shared or KeyShared, two instances can commit one "
                "partition out of order and the Delta sink would then skip the earlier rows as replays"
            )
        return value

    @model_validator(mode="after")
    def _check_columns(self) -> DeltaTopicMapping:
        names = [c.column for c in self.columns]
        dupes = sorted({n for n in names if names.count(n) > 1})
        if dupes:
            raise ValueError(f"duplicate columns: {', '.join(dupes)}")
        if self.columns and self.schema_file is not None:
            raise ValueError("give either columns or schema_file, not both")
        if self.columns:
            unknown = [p for p in self.partition_columns if p not in names]
            if unknown:
                raise ValueError(f"partition_columns not among the columns: {', '.join(unknown)}")
        return self


class DeltaLakeSettings(BaseModel):
    """``[deltalake]``. Environment: ``DELTALAKE_TABLE_ROOT`` overrides ``table_root``; the standard
    ``AWS_*``, ``AZURE_*`` and ``GOOGLE_*`` variables become storage options (env wins over TOML).
    """

    model_config = ConfigDict(extra="forbid", frozen=True)

    table_root: str | None = None
    storage_options: dict[str, str] = Field(default_factory=dict)
    topic_mappings: list[DeltaTopicMapping] = Field(min_length=1)

    @field_validator("storage_options")
    @classmethod
    def _no_secrets(cls, value: dict[str, str]) -> dict[str, str]:
        secret = sorted(k for k in value if _SECRET_KEY.search(k))
        if secret:
            raise ValueError(
                f"{', '.join(secret)}: credentials come from the environment only "
                "(AWS_*/AZURE_*/GOOGLE_* variables), not from the file"
            )
        return value
