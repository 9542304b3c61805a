"""A sink that appends each record as one JSON line to a file.

Writes are idempotent (invariant 2): message ids already in the file are skipped, so a redelivery after a
crash does not duplicate lines. A batch is flushed and fsynced before ``write`` returns, so the runtime
acks only what is on disk (invariant 1); a failed write raises Retryable and the whole batch is retried.

```toml
[jsonl_file]
path = "out.jsonl"

[[jsonl_file.topic_mappings]]
topic = "/default/numbers"
subscription = "file-sink"
```
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import orjson
from pydantic import BaseModel, ConfigDict, Field

from danube_connect_core import (
    ConnectorConfig,
    ConsumerConfig,
    Retryable,
    SinkBatch,
    SinkConnector,
    SinkRecord,
    SinkTopicMapping,
    connector_main,
    exact_json,
)

__all__ = ["JsonLinesFileSink", "JsonLinesSettings", "main"]


class JsonLinesSettings(BaseModel):
    model_config = ConfigDict(extra="forbid")

    path: Path
    topic_mappings: list[SinkTopicMapping] = Field(min_length=1)


class JsonLinesFileSink(SinkConnector):
    """Appends ``{"message_id", "topic", "partition", "offset", "payload", "attributes"}`` lines."""

    name = "jsonl-file"
    config_section = "jsonl_file"
    settings_model = JsonLinesSettings
    env_prefix = "JSONL_FILE"

    def __init__(self) -> None:
        self.path: Path | None = None
        self.mappings: list[SinkTopicMapping] = []
        self.seen: set[str] = set()

    def load_settings(self, config: ConnectorConfig) -> JsonLinesSettings:
        return config.settings_as(JsonLinesSettings)

    async def initialize(self, config: ConnectorConfig) -> None:
        settings = self.load_settings(config)
        self.path = settings.path
        self.mappings = list(settings.topic_mappings)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        if self.path.exists():
            for line in self.path.read_bytes().splitlines():
                if line.strip():
                    self.seen.add(orjson.loads(line)["message_id"])

    async def consumer_configs(self) -> list[ConsumerConfig]:
        return [m.consumer_config() for m in self.mappings]

    async def write(self, batch: SinkBatch[Any]) -> None:
        await self.append(batch.records)

    async def append(self, records: Sequence[SinkRecord]) -> None:
        """Append the lines of ``records`` not in the file yet and fsync (Retryable on an OSError)."""
        assert self.path is not None
        lines = []
        for r in records:
            if r.message_id in self.seen:
                continue
            lines.append(exact_json.dumps(_line(r)) + b"\n")  # big integers stay exact
        if not lines:
            return
        try:
            with self.path.open("ab") as f:
                f.write(b"".join(lines))
                f.flush()
                os.fsync(f.fileno())
        except OSError as exc:
            raise Retryable(f"cannot write {self.path}: {exc.strerror}") from exc
        self.seen.update(r.message_id for r in records)

    async def health_check(self) -> None:
        assert self.path is not None
        if not os.access(self.path.parent, os.W_OK):
            raise Retryable(f"{self.path.parent} is not writable")


def _line(r: SinkRecord) -> dict[str, Any]:
    payload = r.payload
    if isinstance(payload, bytes):
        payload = payload.decode("utf-8", "replace")
    return {
        "message_id": r.message_id,
        "topic": r.topic,
        "partition": r.partition,
        "offset": r.offset,
        "payload": payload,
        "attributes": dict(r.attributes),
    }


def main() -> None:
    connector_main(JsonLinesFileSink)
