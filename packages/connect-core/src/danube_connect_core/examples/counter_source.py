"""A polling source that publishes ``{"n": 1}``, ``{"n": 2}``, ... to one topic.

It shows offsets: each record carries ``Offset("counter", n)`` and ``commit`` stores the newest
acknowledged ``n`` in ``state_file``, so a restarted counter continues where the broker's acks left off.

```toml
[counter]
topic = "/default/numbers"
count = 100            # stop producing after this many (0 = forever)
per_poll = 10
state_file = "counter.state"   # optional
```
"""

from __future__ import annotations

from pathlib import Path

from pydantic import BaseModel, ConfigDict, Field

from danube_connect_core import (
    ConnectorConfig,
    Offset,
    ProducerConfig,
    SourceConnector,
    SourceEnvelope,
    SourceRecord,
    connector_main,
)

__all__ = ["CounterSettings", "CounterSource", "main"]


class CounterSettings(BaseModel):
    model_config = ConfigDict(extra="forbid")

    topic: str
    count: int = Field(default=0, ge=0)
    per_poll: int = Field(default=10, ge=1)
    partitions: int | None = Field(default=None, ge=1)
    reliable_dispatch: bool = True
    state_file: Path | None = None


class CounterSource(SourceConnector):
    """Counts upwards and publishes each number as a JSON record."""

    name = "counter"
    config_section = "counter"
    settings_model = CounterSettings
    env_prefix = "COUNTER"

    def __init__(self) -> None:
        self.settings: CounterSettings | None = None
        self.next = 1
        self.committed: list[Offset] = []

    async def initialize(self, config: ConnectorConfig) -> None:
        self.settings = config.settings_as(CounterSettings)
        state = self.settings.state_file
        if state is not None and state.exists():
            self.next = int(state.read_text().strip() or 0) + 1

    async def producer_configs(self) -> list[ProducerConfig]:
        assert self.settings is not None
        s = self.settings
        return [ProducerConfig(s.topic, partitions=s.partitions, reliable_dispatch=s.reliable_dispatch)]

    async def poll(self) -> list[SourceEnvelope]:
        assert self.settings is not None
        s = self.settings
        last = self.next + s.per_poll - 1
        if s.count:
            last = min(last, s.count)
        out = [
            SourceEnvelope.with_offset(SourceRecord.from_json(s.topic, {"n": n}), Offset("counter", n))
            for n in range(self.next, last + 1)
        ]
        self.next = last + 1
        return out

    async def commit(self, offsets: list[Offset]) -> None:
        self.committed.extend(offsets)
        assert self.settings is not None
        if self.settings.state_file is not None:
            newest = max(o.position for o in offsets)
            self.settings.state_file.write_text(str(newest))


def main() -> None:
    connector_main(CounterSource)
