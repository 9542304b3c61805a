"""A JSON-lines sink with injectable failures, for tests of the runtime's failure semantics.

```toml
[faulty_sink]
path = "out.jsonl"
retryable_failures = 2        # the first 2 write calls raise Retryable
always_fail = false           # every call raises Retryable (a target outage)
invalid_field = "bad"         # records whose payload[invalid_field] == invalid_value are rejected
invalid_value = true
crash_at_record = 0           # 0 = never; K = the process dies (os._exit(137)) before writing record K
write_delay_ms = 0            # slow target
write_started_file = ""       # touched when a batch write begins (lets a test signal mid-write)
[[faulty_sink.topic_mappings]]
topic = "/default/t"
subscription = "s"
```
"""

from __future__ import annotations

import asyncio
import os
from pathlib import Path
from typing import Any

from danube_connect_core.config import ConnectorConfig
from danube_connect_core.errors import Retryable
from danube_connect_core.examples.jsonl_file_sink import JsonLinesFileSink, JsonLinesSettings
from danube_connect_core.sink_batch import SinkBatch

__all__ = ["FaultySink", "FaultySinkSettings"]


class FaultySinkSettings(JsonLinesSettings):
    retryable_failures: int = 0
    always_fail: bool = False
    invalid_field: str | None = None
    invalid_value: Any = True
    crash_at_record: int = 0
    write_delay_ms: int = 0
    write_started_file: Path | None = None


class FaultySink(JsonLinesFileSink):
    """Fails on purpose as configured; otherwise behaves as :class:`JsonLinesFileSink`."""

    name = "faulty-sink"
    config_section = "faulty_sink"
    settings_model = FaultySinkSettings
    env_prefix = "FAULTY_SINK"

    def __init__(self, settings: FaultySinkSettings | None = None) -> None:
        super().__init__()
        self.faults = settings
        self.calls = 0
        self.records_seen = 0

    def load_settings(self, config: ConnectorConfig) -> JsonLinesSettings:
        if self.faults is None:
            self.faults = config.settings_as(FaultySinkSettings)
        return self.faults

    async def write(self, batch: SinkBatch[Any]) -> None:
        f = self.faults
        records = list(batch.records)
        assert f is not None
        self.calls += 1
        if f.write_started_file is not None:
            f.write_started_file.touch()
        if f.write_delay_ms:
            await asyncio.sleep(f.write_delay_ms / 1000)
        if f.always_fail:
            raise Retryable("target unavailable (always_fail)")
        if self.calls <= f.retryable_failures:
            raise Retryable(f"injected failure {self.calls} of {f.retryable_failures}")
        if f.crash_at_record:
            for _ in records:
                self.records_seen += 1
                if self.records_seen >= f.crash_at_record:
                    os._exit(137)
        if f.invalid_field is not None:
            for r in records:
                if isinstance(r.payload, dict) and r.payload.get(f.invalid_field) == f.invalid_value:
                    batch.reject(r, f"{f.invalid_field} is {f.invalid_value!r}")
        await self.append([r for r in records if r.message_id not in batch.rejected])
