"""What producers and consumers share with their client: channels, auth, lookup, policy, log budget."""

from __future__ import annotations

import logging
from dataclasses import dataclass

from .auth import MetadataProvider
from .lookup import Lookup
from .options import ClientOptions
from .pool import ChannelPool
from .ratelog import RateLimitedLog
from .schema_registry import SchemaRegistryClient

logger = logging.getLogger("danube_connect_core.client")


@dataclass(slots=True)
class ClientContext:
    service_url: str
    options: ClientOptions
    pool: ChannelPool
    auth: MetadataProvider
    lookup: Lookup
    registry: SchemaRegistryClient
    log: RateLimitedLog
    """Shared by everything of one client: while the broker is away the whole client logs a few lines/s."""

    @classmethod
    def create(cls, service_url: str, options: ClientOptions) -> ClientContext:
        pool = ChannelPool(options)
        auth = MetadataProvider(options.token)
        log = RateLimitedLog(logger, per_second=1.0, burst=5)
        lookup = Lookup(service_url, pool, auth, options.rpc_timeout_s)
        registry = SchemaRegistryClient(service_url, pool, auth, options.retry, options.rpc_timeout_s, log)
        return cls(service_url, options, pool, auth, lookup, registry, log)

    def pool_closed(self) -> bool:
        """True once the client closed its channels (RPCs then end with CANCELLED)."""
        return self.pool.closed
