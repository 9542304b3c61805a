"""Our async Danube client (grpc.aio), wire-compatible with Danube brokers and the embedded broker.

See docs/wire-contract.md §3 for why it exists. Entry point: :class:`DanubeClient`.
"""

from danube_connect_core.subscription import SubscriptionType

from .client import DanubeClient
from .consumer import Consumer
from .errors import ClientClosed, DanubeError, NonRetryableError, RetriesExhausted
from .messages import MessageId, ReceivedMessage, SchemaReference
from .options import ClientOptions, RetryPolicy, TlsOptions
from .producer import Producer
from .routing import fnv1a_64
from .schema_registry import SchemaInfo, SchemaRegistryClient, unwrap_definition

__all__ = [
    "ClientClosed",
    "ClientOptions",
    "Consumer",
    "DanubeClient",
    "DanubeError",
    "MessageId",
    "NonRetryableError",
    "Producer",
    "ReceivedMessage",
    "RetriesExhausted",
    "RetryPolicy",
    "SchemaInfo",
    "SchemaReference",
    "SchemaRegistryClient",
    "SubscriptionType",
    "TlsOptions",
    "fnv1a_64",
    "unwrap_definition",
]
