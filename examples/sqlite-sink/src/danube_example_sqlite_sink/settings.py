"""The ``[sqlite]`` section of the connector's TOML file.

```toml
[sqlite]
path = "data/events.db"

[[sqlite.topic_mappings]]
topic = "/default/events"
subscription = "sqlite-sink"
table = "events"
columns = ["i", "name"]
```
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

from danube_connect_core import SinkTopicMapping
from pydantic import BaseModel, ConfigDict, Field, StringConstraints

__all__ = ["SqliteMapping", "SqliteSettings"]

#: Table and column names go into SQL text, so they are plain identifiers only.
Identifier = Annotated[str, StringConstraints(pattern=r"^[A-Za-z_][A-Za-z0-9_]{0,62}$")]


class SqliteMapping(SinkTopicMapping):
    """One topic into one table: each record is one row keyed by its message id."""

    #: The table, created on start when missing.
    table: Identifier
    #: Top-level fields of the JSON object copied into columns of the same name; each is required.
    columns: list[Identifier] = Field(min_length=1)


class SqliteSettings(BaseModel):
    model_config = ConfigDict(extra="forbid")

    #: The database file (its directory is created on start).
    path: Path
    #: How long a write waits for another process's lock before it fails (and is retried).
    busy_timeout_ms: int = Field(default=5000, ge=0)
    topic_mappings: list[SqliteMapping] = Field(min_length=1)
