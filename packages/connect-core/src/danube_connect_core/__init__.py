"""Danube Connect core: the public API for connector authors.

Import what a connector needs from here, not from the modules::

    from danube_connect_core import ConsumerConfig, InvalidData, SinkConnector, SinkRecord, connector_main

Everything in ``__all__`` is the supported surface; the submodules are the implementation and may move.
Names are loaded on first use (PEP 562), so ``import danube_connect_core.client`` or a configuration check
does not pay for the runtime, the HTTP server and the metrics it never uses.

The SDK's own pieces live in subpackages: ``danube_connect_core.client`` (the broker client),
``danube_connect_core.testing`` (test helpers, the ``testing`` extra), ``danube_connect_core.examples``
(two minimal connectors).
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from danube_connect_core.config import ConnectorConfig, RetrySettings
    from danube_connect_core.connector import SinkConnector, SourceConnector, SourceMode, SourceSender
    from danube_connect_core.consumer_config import ConsumerConfig, SinkTopicMapping
    from danube_connect_core.errors import (
        Backpressure,
        ConfigError,
        ConnectorError,
        Fatal,
        InvalidData,
        Retryable,
        ShuttingDown,
    )
    from danube_connect_core.lifecycle import connector_main
    from danube_connect_core.payload_format import PayloadFormat, ReadFormat, read_format, read_payload
    from danube_connect_core.producer_config import ProducerConfig
    from danube_connect_core.publisher import Published
    from danube_connect_core.records import (
        Offset,
        PayloadKind,
        SchemaMetadata,
        SinkRecord,
        SourceEnvelope,
        SourceRecord,
    )
    from danube_connect_core.resilience import RetriesExhausted
    from danube_connect_core.runtime_context import RuntimeContext
    from danube_connect_core.secrets import EnvSecret, resolve_env_secret
    from danube_connect_core.sink_batch import SinkBatch
    from danube_connect_core.subscription import SubscriptionType

#: Public name -> the module that defines it.
_EXPORTS: dict[str, str] = {
    # connectors and how they are run
    "SinkConnector": "connector",
    "SourceConnector": "connector",
    "SourceMode": "connector",
    "SourceSender": "connector",
    "RuntimeContext": "runtime_context",
    "connector_main": "lifecycle",
    # records
    "SinkBatch": "sink_batch",
    "SinkRecord": "records",
    "SourceRecord": "records",
    "SourceEnvelope": "records",
    "Offset": "records",
    "PayloadKind": "records",
    "SchemaMetadata": "records",
    # how a source reads the bytes it receives
    "PayloadFormat": "payload_format",
    "ReadFormat": "payload_format",
    "read_format": "payload_format",
    "read_payload": "payload_format",
    # the error kinds (what the runtime does with each: danube_connect_core.errors)
    "ConnectorError": "errors",
    "Retryable": "errors",
    "ShuttingDown": "errors",
    "Backpressure": "errors",
    "InvalidData": "errors",
    "Fatal": "errors",
    "ConfigError": "errors",
    "RetriesExhausted": "resilience",
    # configuration
    "ConnectorConfig": "config",
    "RetrySettings": "config",
    "ConsumerConfig": "consumer_config",
    "SinkTopicMapping": "consumer_config",
    "SubscriptionType": "subscription",
    "ProducerConfig": "producer_config",
    "Published": "publisher",
    "EnvSecret": "secrets",
    "resolve_env_secret": "secrets",
}

__all__ = [
    "Backpressure",
    "ConfigError",
    "ConnectorConfig",
    "ConnectorError",
    "ConsumerConfig",
    "EnvSecret",
    "Fatal",
    "InvalidData",
    "Offset",
    "PayloadFormat",
    "PayloadKind",
    "ProducerConfig",
    "Published",
    "ReadFormat",
    "RetriesExhausted",
    "RetrySettings",
    "Retryable",
    "RuntimeContext",
    "SchemaMetadata",
    "ShuttingDown",
    "SinkBatch",
    "SinkConnector",
    "SinkRecord",
    "SinkTopicMapping",
    "SourceConnector",
    "SourceEnvelope",
    "SourceMode",
    "SourceRecord",
    "SourceSender",
    "SubscriptionType",
    "connector_main",
    "read_format",
    "read_payload",
    "resolve_env_secret",
]


def __getattr__(name: str) -> Any:
    module = _EXPORTS.get(name)
    if module is None:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    value = getattr(importlib.import_module(f"{__name__}.{module}"), name)
    globals()[name] = value  # later lookups skip this function
    return value


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(__all__))
