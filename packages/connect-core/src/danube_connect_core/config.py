"""The core configuration every connector shares, flattened at the root of its TOML file.

See :mod:`danube_connect_core.config_loader` for loading, environment overrides and error reporting.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Literal, TypeVar

from pydantic import BaseModel, ConfigDict, Field, PrivateAttr, model_validator
from pydantic_settings import BaseSettings, PydanticBaseSettingsSource, SettingsConfigDict

from danube_connect_core.secrets import EnvSecret

__all__ = [
    "ConnectorConfig",
    "DanubeSettings",
    "ErrorSettings",
    "MinimumVersion",
    "PinnedVersion",
    "ProcessingSettings",
    "RetrySettings",
    "SchemaMapping",
    "SchemaType",
    "VersionStrategy",
]

SchemaType = Literal["json_schema", "string", "bytes", "number", "avro"]
S = TypeVar("S", bound=BaseModel)


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class RetrySettings(_Strict):
    """``[retry]``: exponential backoff with jitter for Retryable errors and publish failures."""

    max_retries: int = Field(default=3, ge=0)
    retry_backoff_ms: int = Field(default=1000, ge=0)
    max_backoff_ms: int = Field(default=30000, ge=0)


class ProcessingSettings(_Strict):
    """``[processing]``: batching, polling, the HTTP port and shutdown budget."""

    batch_size: int = Field(default=1000, ge=1)
    batch_timeout_ms: int = Field(default=1000, ge=1)
    #: A sink batch is flushed when no message arrived for this long (the broker may be holding the rest
    #: back because its in-flight window is full).
    batch_idle_ms: int = Field(default=50, ge=1)
    #: The broker's per-subscription, per-partition in-flight window; a batch never waits for more.
    max_unacked_messages: int = Field(default=10, ge=1)
    poll_interval_ms: int = Field(default=100, ge=0)
    metrics_port: int = Field(default=9090, ge=0, le=65535)
    metrics_host: str = "0.0.0.0"
    log_level: Literal["trace", "debug", "info", "warn", "warning", "error", "critical"] = "info"
    log_format: Literal["json", "text"] = "json"
    shutdown_timeout_ms: int = Field(default=30000, ge=1)
    #: Publish window per producer partition (1 keeps order strictly).
    max_in_flight: int = Field(default=64, ge=1)
    #: How often the connector's health_check() is called.
    health_check_interval_ms: int = Field(default=5000, ge=1)


class ErrorSettings(_Strict):
    """``[errors]``: what to do with invalid data.

    ``tolerance = "all"`` (the default) dead-letters every invalid record and goes on; ``"none"`` makes the
    first invalid record fatal. Runtimes ask :attr:`invalid_is_fatal`, never compare the string.
    """

    tolerance: Literal["all", "none"] = "all"
    dead_letter_topic: str | None = None

    @property
    def invalid_is_fatal(self) -> bool:
        """True when an invalid record must stop the connector instead of being dead-lettered."""
        return self.tolerance == "none"


class PinnedVersion(_Strict):
    pinned: int = Field(ge=1)


class MinimumVersion(_Strict):
    minimum: int = Field(ge=1)


VersionStrategy = Literal["latest"] | PinnedVersion | MinimumVersion


class SchemaMapping(_Strict):
    """``[[schemas]]``: the schema a source publishes a topic with."""

    topic: str
    subject: str
    schema_type: SchemaType
    schema_file: Path | None = None
    auto_register: bool = True
    version_strategy: VersionStrategy = "latest"

    @model_validator(mode="after")
    def _file_required(self) -> SchemaMapping:
        if self.schema_type in ("json_schema", "avro") and self.schema_file is None:
            raise ValueError(f"schema_file is required for schema_type {self.schema_type!r}")
        return self


class DanubeSettings(_Strict):
    """``[danube]``: connection security. ``token_env`` names the variable holding the token."""

    tls: bool = False
    ca_file: Path | None = None
    cert_file: Path | None = None
    key_file: Path | None = None
    token_env: EnvSecret | None = None
    connect_timeout_ms: int = Field(default=10000, ge=1)


class ConnectorConfig(BaseSettings):
    """The core configuration (the TOML root without the connector's own section).

    Loaded only through :func:`danube_connect_core.config_loader.load_config`, which applies the
    documented environment overrides explicitly; this model reads nothing from the environment itself.
    The connector's own section is available as :attr:`settings` (or :meth:`settings_as`).
    """

    model_config = SettingsConfigDict(extra="forbid", frozen=True)

    danube_service_url: str
    connector_name: str = Field(min_length=1)
    retry: RetrySettings = Field(default_factory=RetrySettings)
    processing: ProcessingSettings = Field(default_factory=ProcessingSettings)
    errors: ErrorSettings = Field(default_factory=ErrorSettings)
    schemas: list[SchemaMapping] = Field(default_factory=list)
    danube: DanubeSettings = Field(default_factory=DanubeSettings)

    _settings: Any = PrivateAttr(default=None)
    _source_file: Path | None = PrivateAttr(default=None)

    @classmethod
    def settings_customise_sources(
        cls,
        settings_cls: type[BaseSettings],
        init_settings: PydanticBaseSettingsSource,
        env_settings: PydanticBaseSettingsSource,
        dotenv_settings: PydanticBaseSettingsSource,
        file_secret_settings: PydanticBaseSettingsSource,
    ) -> tuple[PydanticBaseSettingsSource, ...]:
        # Overrides are applied by the loader from a fixed list (config_loader.CORE_ENV_OVERRIDES), never
        # implicitly.
        return (init_settings,)

    @property
    def dead_letter_topic(self) -> str:
        return self.errors.dead_letter_topic or f"/default/{self.connector_name}-dlq"

    @property
    def settings(self) -> Any:
        """The connector's own section, validated by its model (None when it has none)."""
        return self._settings

    def settings_as(self, model: type[S]) -> S:
        """The connector's section as ``model`` (raises TypeError if it was loaded as something else)."""
        if not isinstance(self._settings, model):
            raise TypeError(f"connector settings are {type(self._settings).__name__}, not {model.__name__}")
        return self._settings

    @property
    def source_file(self) -> Path | None:
        return self._source_file

    def with_settings(self, settings: Any, source_file: Path | None = None) -> ConnectorConfig:
        """Attach the connector's section (used by the loader and by tests building configs in code)."""
        self._settings = settings
        self._source_file = source_file
        return self

    def schema_for(self, topic: str) -> SchemaMapping | None:
        for mapping in self.schemas:
            if mapping.topic == topic:
                return mapping
        return None
